// RetryState: the retry decision for one request, in one class (Envoy's
// split between a pure wouldRetry() and a shouldRetry() that adds limits).
//
//   wouldRetry(outcome)  pure: does the policy name this outcome at all?
//   decide(outcome, ...) the full decision: wouldRetry, then every limit that
//                        can stop a retry the policy asked for, then the wait.
//
// It knows nothing of HTTP/1, HTTP/2 or sockets. The proxy reports an Outcome
// and does what the Decision says: wait `wait_us`, then (if the deadline still
// allows, see enoughTimeForAttempt) start the next attempt; or hand the
// client the last upstream response as it is (or its own 502/504 when there
// is none).
//
// The rules (DESIGN.md "Retry rules"), checked in this order, the first that
// fails naming the refusal:
//   1. kNotRetriable     retry_on does not name the outcome. For a gRPC call
//                        a response counts by its grpc-status (or the status
//                        gRPC derives from a non-200 HTTP status); only gRPC
//                        codes named in retry_on opt in. connect-failure,
//                        reset, refused-stream and per-try-timeout count as
//                        for any call. A Connect call (RequestFacts::connect)
//                        counts as a gRPC call: its Connect error code is
//                        carried in Outcome::grpc_status (the codes are
//                        gRPC's), and HTTP status entries never apply to it.
//   1b. kOverloaded      an upstream response of this call carried
//                        x-envoy-overloaded (DESIGN.md "Overload signals"):
//                        from then on nothing repeats the call — no retry
//                        and, through overloaded(), no hedge.
//   2. kResponseStarted  a response header already went downstream.
//   3. kRetriesExhausted num_retries retries already made.
//   4. kIdempotency      not safe to repeat: the method is not GET, HEAD,
//                        OPTIONS, PUT, DELETE or TRACE, there is no
//                        idempotency header, it is not a gRPC call whose
//                        policy opted in by naming gRPC codes, and the
//                        request may have reached the upstream (anything but
//                        connect-failure, refused-stream, never_reached).
//   5. kBodyTooLarge     the request body exceeds max_buffered_body (declared
//                        or seen), so it was not kept for replay.
//   6. kPushbackRefused  (retry_after on, gRPC) grpc-retry-pushback-ms was
//                        negative or not an integer: the server said "no".
//      kPushbackTooLong  (retry_after on) the pushback — Retry-After on a 429
//                        or 503, or grpc-retry-pushback-ms on a gRPC call —
//                        exceeds retry_after_max. A malformed Retry-After is
//                        ignored (plain backoff). A valid pushback REPLACES
//                        the jittered backoff.
//   7. kDeadline         after the wait, the deadline would leave nothing or
//                        less than min_attempt_budget (this is also how a
//                        pushback longer than the time left ends).
//   8. kBudget           the service's retry budget refuses. Retries of
//                        requests that never reached the upstream do not
//                        spend budget (and are never refused by it).
// The budget is consulted last because admitting a retry spends it.
// Backoff for retry n = attempts() so far: backoff.h, one random draw, only
// when no pushback applies.
//
// Attempts: call attemptStarted() as each attempt (the first included)
// starts; attempts() is then N of `x-envoy-attempt-count: N`.
//
// Lifetime and threading: one per request, used on its worker thread only.
// The policy is the snapshot the request started with and must outlive this
// object (the proxy keeps the snapshot for the request's life).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "proto-free-config/policy.h"
#include "sidecar/core/clock.h"
#include "sidecar/core/random.h"
#include "sidecar/retry/budget.h"
#include "sidecar/retry/deadline.h"
#include "sidecar/retry/outcome.h"

namespace mulligan::retry {

// Why a retry did not happen.
enum class Refusal : uint8_t {
  kNone,              // it did happen
  kNotRetriable,      // the policy does not name this outcome
  kResponseStarted,   // a response header already went downstream
  kRetriesExhausted,  // num_retries used up
  kIdempotency,       // not safe to repeat (POST/PATCH without the header)
  kBodyTooLarge,      // the request body was too large to keep for replay
  kPushbackRefused,   // grpc-retry-pushback-ms negative or malformed: "no"
  kPushbackTooLong,   // the server's pushback exceeds retry_after_max
  kDeadline,          // not enough time left for the wait and an attempt
  kBudget,            // the service's retry budget is spent
  kOverloaded,        // the upstream said x-envoy-overloaded: do not repeat
};
// "", "not-retriable", "response-started", "retries-exhausted",
// "idempotency", "body-too-large", "pushback-refused", "pushback-too-long",
// "deadline", "budget", "overloaded". Static storage: use as metric labels.
std::string_view refusalName(Refusal r);
// True when a limit stopped a retry the policy asked for — what DESIGN.md
// says must be logged and counted. False for kNone, kNotRetriable and
// kRetriesExhausted (the policy itself said "no more").
bool isBlockedRetry(Refusal r);

struct Decision {
  bool retry = false;
  int64_t wait_us = 0;               // retry: wait this long, then attempt again
  Refusal refusal = Refusal::kNone;  // !retry: why not
  bool pushback = false;             // retry: wait_us is the server's pushback
  bool spent_budget = false;         // retry: it counted against the budget
};

// What the engine needs to know about the request, once its headers are in.
struct RequestFacts {
  std::string_view method;           // the request method token (case-sensitive)
  bool grpc = false;                 // content-type application/grpc[+...]
  bool has_idempotency_key = false;  // policy's idempotency_header is present
  // Declared body size (Content-Length) when known; nullopt when the body is
  // chunked or its size is not declared. Bytes seen later are reported with
  // addRequestBodyBytes().
  std::optional<uint64_t> body_size;
  // A Connect call (codec/connect_rpc.h): retried as a gRPC call is (opted in
  // by gRPC codes in retry_on, whatever the method), by its Connect error code.
  bool connect = false;
};

// RFC 9110 §9.2.2 idempotent methods that DESIGN.md retries freely:
// GET, HEAD, OPTIONS, PUT, DELETE, TRACE.
bool isRetryableMethod(std::string_view method);

class RetryState {
 public:
  RetryState(const pfc::EffectivePolicy& policy, const RequestFacts& request, const Deadline& deadline);

  // Pure: does the policy ask to retry this outcome at all?
  bool wouldRetry(const Outcome& o) const;

  // The full decision for the attempt that just ended. When it says retry
  // and the request may have reached the upstream, it has already counted the
  // retry against `budget`. Draws from `rnd` at most once.
  Decision decide(const Outcome& o, const core::Clock& clock, RetryBudget& budget, core::Random& rnd);

  // An attempt (the first included) is starting.
  void attemptStarted() { ++attempts_; }
  // A hedge (retry/hedge.h) is starting: an attempt, not a retry — it does
  // not use up num_retries (max_attempts, max_extra_load and the budget
  // bound hedges).
  void hedgeStarted() {
    ++attempts_;
    ++hedges_;
  }
  // Attempts started so far, hedges included: N for `x-envoy-attempt-count`.
  uint32_t attempts() const { return attempts_; }
  // Hedges started so far.
  uint32_t hedges() const { return hedges_; }
  // Retries started so far (attempts() - hedges() - 1, or 0).
  uint32_t retries() const { return attempts_ > hedges_ ? attempts_ - hedges_ - 1 : 0; }
  // The request may be sent again whatever the outcome (method, idempotency
  // header or gRPC opt-in) and its body fits max_buffered_body: what a hedge
  // needs (a hedge cannot know that the first attempt never reached the
  // upstream).
  bool mayRepeat() const { return safe_by_request_ && bodyReplayable(); }

  // Request body bytes read from downstream (cumulative calls).
  void addRequestBodyBytes(uint64_t n) { body_seen_ += n; }
  // The body so far (and as declared) fits max_buffered_body.
  bool bodyReplayable() const;
  // A response header went downstream: from now on nothing is retried.
  void responseStarted() { response_started_ = true; }
  bool hasResponseStarted() const { return response_started_; }

  // Whether any retry is still possible (num_retries > 0 and the body fits):
  // when false the proxy need not buffer the body for replay.
  bool mayRetry() const { return policy_->retry.num_retries > 0 && bodyReplayable(); }

  const Deadline& deadline() const { return deadline_; }
  const pfc::EffectivePolicy& policy() const { return *policy_; }
  bool grpc() const { return grpc_; }
  bool connect() const { return connect_; }
  // An upstream response of this call carried x-envoy-overloaded (seen by
  // decide()): no retry and no hedge may start any more. The one place both
  // the retry decision and the hedge decision read (DESIGN.md "Overload
  // signals").
  bool overloaded() const { return overloaded_; }


 private:
  Decision decideAt(const Outcome& o, int64_t now_us, int64_t now_unix_s, const Deadline& deadline,
                    bool response_started, bool body_replayable, RetryBudget& budget, core::Random& rnd);
  // May this request be sent again after `o`? (rule 4)
  bool safeToRepeat(const Outcome& o) const;

  const pfc::EffectivePolicy* policy_;
  Deadline deadline_;
  std::optional<uint64_t> body_declared_;
  uint64_t body_seen_ = 0;
  uint32_t attempts_ = 0;
  uint32_t hedges_ = 0;
  bool grpc_ = false;
  bool connect_ = false;
  bool overloaded_ = false;       // an x-envoy-overloaded response was seen
  bool safe_by_request_ = false;  // method, idempotency key or gRPC opt-in
  bool response_started_ = false;
};

}  // namespace mulligan::retry

