#include "sidecar/retry/backoff.h"

namespace mulligan::retry {

int64_t backoffCeilingUs(int64_t base_us, int64_t max_us, uint32_t retry_number) {
  if (base_us <= 0 || max_us <= 0) return 0;
  if (base_us >= max_us) return max_us;
  // Double until reaching the cap; base < max, so at most 63 doublings, and
  // base <= max/2 before each one, so no doubling overflows.
  int64_t ceiling = base_us;
  for (uint32_t i = 1; i < retry_number; ++i) {
    if (ceiling > max_us / 2) return max_us;
    ceiling *= 2;
  }
  return ceiling < max_us ? ceiling : max_us;
}

int64_t jitteredBackoffUs(int64_t ceiling_us, uint64_t draw) {
  if (ceiling_us <= 0) return 0;
  unsigned __int128 product = static_cast<unsigned __int128>(draw) * static_cast<uint64_t>(ceiling_us);
  return static_cast<int64_t>(product >> 64);
}

}  // namespace mulligan::retry
