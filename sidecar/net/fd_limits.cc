#include "sidecar/net/fd_limits.h"

#include <sys/resource.h>

#include <algorithm>

namespace mulligan::net {
namespace {

constexpr uint64_t kHuge = uint64_t{1} << 20;

}  // namespace

uint64_t reservedDescriptors(uint64_t nofile, int workers) {
  nofile = std::min(nofile, kHuge);
  return 32 + 8 * static_cast<uint64_t>(std::max(workers, 1)) + nofile / 16;
}

size_t defaultMaxConnectionsPerWorker(uint64_t nofile, int workers) {
  nofile = std::min(nofile, kHuge);
  workers = std::max(workers, 1);
  uint64_t reserved = reservedDescriptors(nofile, workers);
  if (nofile <= reserved) return 1;
  uint64_t per_worker = (nofile - reserved) / 2 / static_cast<uint64_t>(workers);
  return static_cast<size_t>(std::max<uint64_t>(per_worker, 1));
}

uint64_t raiseDescriptorLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
  }
  return rl.rlim_cur == RLIM_INFINITY ? kHuge : static_cast<uint64_t>(rl.rlim_cur);
}

}  // namespace mulligan::net
