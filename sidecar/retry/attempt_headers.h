// The request headers the engine sets on each upstream attempt, as
// name/value pairs any codec can emit (HTTP/1 lines, HTTP/2 nv pairs), in a
// fixed-size value object: no heap.
//
// For attempt N (N = 1 for the first):
//   x-envoy-attempt-count: N                     always
//   grpc-previous-rpc-attempts: N-1              gRPC calls, retries only (N > 1)
// and when deadline.propagate is on:
//   grpc-timeout: remaining - grpc_timeout_offset   gRPC calls with a deadline;
//                                                wire format of grpc_timeout.h
//   connect-timeout-ms: ceil(remaining ms)       Connect calls with a deadline
//   x-timeout-budget: ceil(remaining ms)         calls with a deadline
//   x-envoy-expected-rq-timeout-ms: ceil(min(per_try_timeout, remaining) ms)
//                                                calls with a deadline or a
//                                                per-try timeout
// Every time is rounded UP and is at least 1 ms: never 0, which many peers
// read as "no deadline". With propagate off, or with neither a deadline nor a
// per-try timeout, no timing header is set.
//
// "Set" means REPLACE: the proxy drops any inbound header of a name returned
// here before adding ours. Inbound headers of names NOT returned pass through
// untouched (e.g. a caller's grpc-timeout when propagate is off).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "proto-free-config/policy.h"
#include "sidecar/retry/deadline.h"

namespace mulligan::retry {

class RetryState;

// Header names (lower case, as HTTP/2 requires).
inline constexpr std::string_view kAttemptCountHeader = "x-envoy-attempt-count";
inline constexpr std::string_view kGrpcPreviousAttemptsHeader = "grpc-previous-rpc-attempts";
inline constexpr std::string_view kGrpcTimeoutHeader = "grpc-timeout";
inline constexpr std::string_view kTimeoutBudgetHeader = "x-timeout-budget";
inline constexpr std::string_view kConnectTimeoutHeader = "connect-timeout-ms";
inline constexpr std::string_view kExpectedRqTimeoutHeader = "x-envoy-expected-rq-timeout-ms";
// Response side, for the proxy's own 504 and for the pushback parsers.
inline constexpr std::string_view kMulliganTimeoutHeader = "x-mulligan-timeout";
inline constexpr std::string_view kRetryAfterHeader = "retry-after";
inline constexpr std::string_view kGrpcPushbackHeader = "grpc-retry-pushback-ms";

struct HeaderField {
  std::string_view name;
  std::string_view value;
};

class AttemptHeaders {
 public:
  static constexpr size_t kMaxFields = 6;
  static constexpr size_t kMaxValue = 20;  // int64 digits; grpc-timeout is 9

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Views into this object: valid while it lives (copies carry their own).
  HeaderField operator[](size_t i) const { return {names_[i], {values_[i], lens_[i]}}; }
  // The value set for `name` (exact, lower-case match), if any.
  std::optional<std::string_view> find(std::string_view name) const;

  class Iterator {
   public:
    Iterator(const AttemptHeaders* h, size_t i) : h_(h), i_(i) {}
    HeaderField operator*() const { return (*h_)[i_]; }
    Iterator& operator++() {
      ++i_;
      return *this;
    }
    bool operator!=(const Iterator& o) const { return i_ != o.i_; }
    bool operator==(const Iterator& o) const { return i_ == o.i_; }

   private:
    const AttemptHeaders* h_;
    size_t i_;
  };
  Iterator begin() const { return {this, 0}; }
  Iterator end() const { return {this, size_}; }

  // Builders. `name` must have static storage (the constants above).
  void add(std::string_view name, std::string_view value);
  void addNumber(std::string_view name, int64_t value);

 private:
  std::string_view names_[kMaxFields];
  // Only the first lens_[i] bytes of values_[i], for i < size_, are ever
  // read: left uninitialised (one is built per attempt).
  char values_[kMaxFields][kMaxValue];
  uint8_t lens_[kMaxFields];
  uint8_t size_ = 0;
};

// The headers for attempt `attempt_number` (>= 1; 0 is treated as 1) of a
// call with deadline `d`, built at `now_us` (just before sending).
// `connect`: a Connect call (it gets connect-timeout-ms).
AttemptHeaders attemptHeaders(const Deadline& d, const pfc::EffectivePolicy& p, int64_t now_us, uint32_t attempt_number,
                              bool grpc, bool connect = false);
// The same for the attempt `rs` has just counted with attemptStarted().
AttemptHeaders attemptHeaders(const RetryState& rs, int64_t now_us);

}  // namespace mulligan::retry
