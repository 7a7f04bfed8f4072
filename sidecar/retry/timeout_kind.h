// TimeoutKind: which timeout fired (or would fire) — the ONE list, shared by
// the engine's attempt timeout (deadline.h), the attempt lifecycle
// (upstream/attempt.h), the route counters (stats/), the sidecar's own 504
// (x-mulligan-timeout) and the access log. Each value is the policy field of
// that name (DESIGN.md "Deadlines"). Adding a kind: a value here, its name
// and message in timeout_kind.cc, then the policy field and the phase of
// the attempt lifecycle that arms it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mulligan::retry {

enum class TimeoutKind : uint8_t {
  kConnect,  // connect_timeout: the TCP connect (or HTTP/2 handshake) took too long
  kPerTry,   // per_try_timeout: one attempt had no response headers in time
  kRequest,  // request_timeout or the caller's deadline: the whole call
  kRead,     // read_timeout: the upstream went silent mid-response
};
// Number of kinds: the size of per-kind counter arrays (index = the value).
inline constexpr size_t kTimeoutKindCount = 4;

// "connect", "per-try", "request", "read": the x-mulligan-timeout value, the
// access log's timeout field and the metric label. Static storage.
std::string_view timeoutKindName(TimeoutKind k);
// The grpc-message of the sidecar's DEADLINE_EXCEEDED and the body of its
// HTTP 504: "upstream request timeout", "upstream per-try timeout", ...
// Plain ASCII: needs no percent-encoding.
std::string_view timeoutMessage(TimeoutKind k);

}  // namespace mulligan::retry
