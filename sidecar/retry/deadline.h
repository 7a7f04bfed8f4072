// Deadlines as pure functions (DESIGN.md "Deadlines"; Envoy's finalTimeout /
// setTimeoutHeaders). All times are microseconds on the monotonic clock.
//
// A call's deadline is the earliest of its request_timeout, an inbound
// grpc-timeout and an inbound x-timeout-budget (the inbound ones only when the
// policy accepts them). Every value sent upstream is rounded UP, never down,
// and is never 0 (many peers read 0 as "no deadline"): at least 1 ms.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "proto-free-config/policy.h"

namespace mulligan::retry {

constexpr int64_t kNoDeadline = INT64_MAX;

// grpc-timeout (gRPC over HTTP/2: 1 to 8 ASCII digits, then one of H M S m u
// n) in microseconds, nanoseconds rounded up. Nullopt when malformed.
std::optional<int64_t> parseGrpcTimeout(std::string_view v);
// The wire form of `us`: the finest unit whose value fits in 8 digits,
// rounded up, at least 1 ms ("1m"). Never shorter than `us`.
std::string formatGrpcTimeout(int64_t us);
// x-timeout-budget: decimal milliseconds, 1..18 digits. Nullopt otherwise.
std::optional<int64_t> parseBudgetMs(std::string_view v);

struct Deadline {
  int64_t start_us = 0;      // when the request headers arrived
  int64_t deadline_us = kNoDeadline;
  // Which limit set it: "request" (request_timeout) or "inbound"
  // (grpc-timeout / x-timeout-budget from the caller).
  bool from_inbound = false;

  bool none() const { return deadline_us == kNoDeadline; }
  int64_t remaining(int64_t now_us) const { return none() ? kNoDeadline : deadline_us - now_us; }
  int64_t budgetUs() const { return none() ? -1 : deadline_us - start_us; }
};

// The call's deadline from the policy and the inbound headers (either may be
// null/absent).
Deadline computeDeadline(int64_t start_us, const pfc::EffectivePolicy& p, const std::string* grpc_timeout,
                         const std::string* timeout_budget);

// Milliseconds, rounded up, at least 1.
int64_t ceilMs(int64_t us);

// How long one attempt may wait for response headers: the per-try timeout,
// capped by what is left of the deadline; kNoDeadline when neither applies.
int64_t attemptTimeoutUs(const Deadline& d, const pfc::EffectivePolicy& p, int64_t now_us);

// The deadline headers for one attempt, values already formatted. Empty
// strings mean "do not send this one" (no deadline, or propagate = false).
struct AttemptDeadlineHeaders {
  std::string grpc_timeout;         // gRPC calls only
  std::string timeout_budget;       // x-timeout-budget
  std::string expected_rq_timeout;  // x-envoy-expected-rq-timeout-ms
};
AttemptDeadlineHeaders attemptDeadlineHeaders(const Deadline& d, const pfc::EffectivePolicy& p, int64_t now_us,
                                              bool grpc);

}  // namespace mulligan::retry
