// The retry decision, in one class (Envoy's split): a pure wouldRetry() — does
// the policy name this outcome? — and decide(), which adds the limits that
// can refuse a retry the policy allows: idempotency, attempts left, response
// already started, body too large to replay, the deadline, the budget, and
// server pushback. It knows nothing of HTTP/1, HTTP/2 or sockets: the proxy
// reports an Outcome and does what the Decision says.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "proto-free-config/policy.h"
#include "sidecar/retry/budget.h"
#include "sidecar/retry/deadline.h"

namespace mulligan::retry {

// How one attempt ended.
enum class OutcomeKind {
  kConnectFailure,  // TCP connect refused, unreachable or timed out
  kReset,           // connection closed or reset before response headers
  kRefusedStream,   // HTTP/2 REFUSED_STREAM / beyond GOAWAY: never processed
  kPerTryTimeout,   // no response headers within the per-try timeout
  kResponse,        // response headers arrived (status, maybe grpc-status)
};
std::string_view outcomeName(OutcomeKind k);

struct Outcome {
  OutcomeKind kind = OutcomeKind::kResponse;
  int status = 0;                  // kResponse
  int grpc_status = -1;            // from a trailers-only response, -1 = none
  const std::string* retry_after = nullptr;     // Retry-After header, if any
  const std::string* grpc_pushback = nullptr;   // grpc-retry-pushback-ms, if any
  // The reason label for logs and counters: "503", "reset", "unavailable"...
  std::string label() const;
};

// Why a retry did not happen.
enum class Refusal {
  kNone,
  kNotRetriable,       // the policy does not name this outcome
  kRetriesExhausted,   // num_retries used up
  kIdempotency,        // POST/PATCH without the idempotency header
  kBodyTooLarge,       // the request body was not buffered for replay
  kResponseStarted,    // a response byte already went downstream
  kDeadline,           // not enough time left (min_attempt_budget / backoff)
  kBudget,             // the service's retry budget is spent
  kPushback,           // Retry-After / grpc pushback too long or "never"
};
std::string_view refusalName(Refusal r);

struct Decision {
  bool retry = false;
  int64_t wait_us = 0;    // backoff or pushback before the next attempt
  Refusal refusal = Refusal::kNone;
};

// A uniform random source (injected: tests script it).
class Random {
 public:
  virtual ~Random() = default;
  virtual double uniform() = 0;  // [0, 1)
};

// Full jitter (as Envoy's code does it): uniform in [0, min(max, base * 2^(n-1))).
int64_t backoffUs(const pfc::RetryPolicy& r, uint32_t retry_number, double random01);

// Retry-After: delta-seconds or an IMF-fixdate (RFC 9110 §10.2.3), relative to
// `now_unix_s`. Nullopt when malformed.
std::optional<int64_t> parseRetryAfterUs(std::string_view v, int64_t now_unix_s);

class RetryState {
 public:
  // `policy` is the snapshot the request started with and must outlive this.
  RetryState(const pfc::EffectivePolicy* policy, std::string_view method, bool grpc, bool has_idempotency_key);

  // Pure: does the policy ask to retry this outcome at all?
  bool wouldRetry(const Outcome& o) const;

  // The full decision for the attempt that just ended. Counts the retry
  // against the budget when it says yes.
  Decision decide(const Outcome& o, int64_t now_us, int64_t now_unix_s, const Deadline& deadline,
                  bool response_started, bool body_replayable, RetryBudget& budget, Random& rnd);

  uint32_t attempts() const { return attempts_; }  // attempts started so far
  void attemptStarted() { ++attempts_; }

 private:
  const pfc::EffectivePolicy* policy_;
  bool grpc_;
  bool idempotent_;  // by method, or by key
  bool idempotent_by_method_;
  uint32_t attempts_ = 0;
};

}  // namespace mulligan::retry
