// Deadlines as pure functions (DESIGN.md "Deadlines"; the shape of Envoy's
// finalTimeout / setTimeoutHeaders). All times are microseconds on the
// MONOTONIC clock (core::Clock::nowUs()); nothing here reads a clock itself.
//
// A call's clock starts when its request headers arrive (not when its body
// ends). Its deadline is the earliest of:
//   - the policy's request_timeout (0 = none),
//   - an inbound grpc-timeout            } only when deadline.accept_inbound;
//   - an inbound x-timeout-budget (ms)   } malformed values are ignored.
//   - an inbound connect-timeout-ms      } (a Connect call's, connectrpc.com)
// An inbound value can only shorten the deadline, never extend it.
//
// Who calls: the proxy, once when request headers arrive (computeDeadline),
// then before each attempt (enoughTimeForAttempt, attemptTimeout) and to
// build the headers each attempt carries (attempt_headers.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "proto-free-config/policy.h"
#include "sidecar/retry/header_value.h"
#include "sidecar/retry/timeout_kind.h"

namespace mulligan::retry {

// "No deadline": remaining() returns this, and it compares greater than any
// real duration, so min() with it does the right thing.
constexpr int64_t kNoDeadline = INT64_MAX;

// What set the deadline (for access logs).
enum class DeadlineSource : uint8_t {
  kNone,            // no request_timeout and nothing inbound: no deadline
  kRequestTimeout,  // the policy's request_timeout
  kGrpcTimeout,     // the caller's grpc-timeout was earlier
  kTimeoutBudget,   // the caller's x-timeout-budget was earlier
  kConnectTimeout,  // the caller's connect-timeout-ms was earlier
};
// "none", "request-timeout", "grpc-timeout", "x-timeout-budget",
// "connect-timeout-ms".
std::string_view deadlineSourceName(DeadlineSource s);

struct Deadline {
  int64_t start_us = 0;               // when the request headers arrived
  int64_t deadline_us = kNoDeadline;  // absolute, monotonic
  DeadlineSource source = DeadlineSource::kNone;

  bool none() const { return deadline_us == kNoDeadline; }
  // Time left at `now_us`: negative once passed; kNoDeadline when none().
  int64_t remaining(int64_t now_us) const { return none() ? kNoDeadline : deadline_us - now_us; }
  bool expired(int64_t now_us) const { return !none() && now_us >= deadline_us; }
  // The whole call's budget (deadline - start); -1 when none().
  int64_t budgetUs() const { return none() ? -1 : deadline_us - start_us; }
  bool fromInbound() const {
    return source == DeadlineSource::kGrpcTimeout || source == DeadlineSource::kTimeoutBudget ||
           source == DeadlineSource::kConnectTimeout;
  }
};

// x-timeout-budget: decimal milliseconds, digits only (surrounding OWS
// stripped). nullopt when malformed or 0 (0 reads as "no deadline" to many
// peers, so it does not mean "already expired"). Values beyond
// kMaxTimeoutBudgetMs saturate there.
constexpr int64_t kMaxTimeoutBudgetMs = 1'000'000'000'000;  // ~31.7 years
std::optional<int64_t> parseTimeoutBudgetMs(std::string_view v);

// connect-timeout-ms (Connect protocol, "Timeout-Milliseconds"): a positive
// integer of at most 10 digits (surrounding OWS stripped). nullopt when
// malformed, 0 or longer.
std::optional<int64_t> parseConnectTimeoutMs(std::string_view v);

// The call's deadline. `grpc_timeout`, `timeout_budget` and `connect_timeout`
// are the inbound header values (absent when the request had none). Ties
// between sources go to the first in the order request_timeout,
// grpc-timeout, x-timeout-budget, connect-timeout-ms.
Deadline computeDeadline(int64_t start_us, const pfc::EffectivePolicy& p, HeaderValue grpc_timeout,
                         HeaderValue timeout_budget, HeaderValue connect_timeout = {});

// Milliseconds for the wire: rounded UP, and at least 1 (never 0).
int64_t ceilMs(int64_t us);

struct AttemptTimeout {
  int64_t us = kNoDeadline;  // how long the attempt may wait; >= 0
  // kPerTry or kRequest; none: neither a deadline nor a per-try timeout
  // (wait forever).
  std::optional<TimeoutKind> kind;
  // The attempt's own header timer is armed only for a per-try timeout; the
  // call's deadline timer answers for kRequest.
  bool perTry() const { return kind == TimeoutKind::kPerTry; }
};
// The attempt's timeout, started at `now_us`: min(per_try_timeout, time
// left). A per-try timeout at or above the time left IS the time left, and
// then the kind is kRequest (the whole call ends, not just this try).
AttemptTimeout attemptTimeout(const Deadline& d, const pfc::EffectivePolicy& p, int64_t now_us);

// DESIGN.md "Retry rules": no attempt starts when, after waiting `wait_us`,
// the deadline would leave nothing or less than min_attempt_budget.
// Always true without a deadline.
bool enoughTimeForAttempt(const Deadline& d, const pfc::EffectivePolicy& p, int64_t now_us, int64_t wait_us = 0);

}  // namespace mulligan::retry
