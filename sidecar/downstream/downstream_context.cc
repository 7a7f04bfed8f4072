#include "sidecar/downstream/downstream_context.h"

#include "sidecar/event/event_loop.h"

namespace mulligan::proxy {

int64_t DownstreamContext::downstreamIdleTimeoutUs() {
  const auto table = streamContext().policyTable(event::monotonicNowUs());
  return table ? table->defaults().idle_timeout_us : downstream_limits_.idle_timeout_us;
}

}  // namespace mulligan::proxy
