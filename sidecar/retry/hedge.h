// Hedging (DESIGN.md "Hedging"): when a call's first attempt has no response
// headers after the hedge delay, another attempt starts while it is still
// out, up to hedge.max_attempts in flight; the first response that is not a
// retry_on condition wins. This file is the decision — may a hedge start
// now? — and the two small per-route states it reads; ProxyStream arms the
// timer and starts the attempt.
//
//   hedgeDelayUs()  the delay: fixed, or a quantile of the route's recent
//                   latency (LatencyEstimator; none until it has samples).
//   decideHedge()   every rule that can stop a hedge, in order, the first
//                   that fails naming the refusal:
//     kOff           the policy has no hedge delay.
//     kIdempotency   the request may not be repeated at all (RetryState's
//                    rules: method, idempotency header, gRPC opt-in).
//     kBody          the request body is not complete in the replay buffer
//                    (still arriving, or larger than max_buffered_body):
//                    a hedge must send the whole body at once.
//     kResponseStarted  a response head won already.
//     kMaxAttempts   hedge.max_attempts attempts are in flight.
//     kDeadline      the deadline leaves less than min_attempt_budget.
//     kExtraLoad     one more hedge would make the route's hedges exceed
//                    max_extra_load x its requests (HedgeLoad's window).
//     kBudget        the service's retry budget refuses (a hedge is a
//                    retry for the budget: it spends one).
//   The budget is consulted last because admitting spends it; HedgeLoad
//   counts the hedge when the decision says yes.
//
// Pure logic (no libevent, no sockets): tested on numbers (retry/hedge_test).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "proto-free-config/policy.h"
#include "sidecar/retry/budget.h"
#include "sidecar/retry/deadline.h"
#include "sidecar/retry/latency_estimator.h"

namespace mulligan::retry {

// Hedges sent against the route's requests, per worker and route, over a
// sliding window of two halves of kHalfUs (the last 5 to 10 s, as
// LatencyEstimator's). Per worker: each worker keeps its own share under
// max_extra_load, so the sum over workers is under it too, with no shared
// counter. A route with fewer than 1 / max_extra_load requests in the window
// (20 at 0.05) gets no hedge: the cap is a fraction, never a floor.
class HedgeLoad {
 public:
  static constexpr int64_t kHalfUs = 5'000'000;

  void recordRequest(int64_t now_us);
  void recordHedge(int64_t now_us);
  // One more hedge keeps hedges <= max_extra_load * requests.
  bool allowsOneMore(double max_extra_load, int64_t now_us);
  uint64_t requests(int64_t now_us);
  uint64_t hedges(int64_t now_us);

 private:
  void rotate(int64_t now_us);
  uint64_t requests_[2] = {};
  uint64_t hedges_[2] = {};
  int cur_ = 0;
  int64_t half_start_us_ = -1;
};

enum class HedgeRefusal : uint8_t {
  kNone,             // a hedge starts
  kOff,              // no hedge delay in the policy
  kIdempotency,      // the request may not be repeated
  kBody,             // the body is not all in hand for replay
  kResponseStarted,  // a response head won already
  kMaxAttempts,      // max_attempts in flight
  kDeadline,         // less than min_attempt_budget left
  kExtraLoad,        // max_extra_load reached
  kBudget,           // the retry budget is spent
};
// "", "off", "idempotency", "body", "response-started", "max-attempts",
// "deadline", "extra-load", "budget". Static storage.
std::string_view hedgeRefusalName(HedgeRefusal r);

// The hedge delay for a call starting now: hedge.delay_us, or the
// hedge.delay_quantile_permille quantile of `estimate` (at least 1 us);
// nullopt when hedging is off or the estimate has too few samples.
std::optional<int64_t> hedgeDelayUs(const pfc::HedgePolicy& p, LatencyEstimator& estimate, int64_t now_us);

// What decideHedge reads of the call.
struct HedgeQuery {
  const pfc::EffectivePolicy* policy = nullptr;
  bool may_repeat = false;        // RetryState::mayRepeat()
  bool body_in_hand = false;      // request complete and all of it kept for replay
  bool response_started = false;  // a response head won (held or sent)
  size_t in_flight = 0;           // attempts in flight now
  const Deadline* deadline = nullptr;
  int64_t now_us = 0;
};

struct HedgeDecision {
  bool hedge = false;
  HedgeRefusal refusal = HedgeRefusal::kNone;
};

// The decision (rules above). When it says hedge, it has spent one retry of
// `budget` and counted the hedge in `load`.
HedgeDecision decideHedge(const HedgeQuery& q, HedgeLoad& load, RetryBudget& budget);

}  // namespace mulligan::retry
