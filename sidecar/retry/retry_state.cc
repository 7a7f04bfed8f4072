#include "sidecar/retry/retry_state.h"

#include <algorithm>

#include "sidecar/retry/backoff.h"
#include "sidecar/retry/retry_after.h"

namespace mulligan::retry {

std::string_view refusalName(Refusal r) {
  switch (r) {
    case Refusal::kNone:
      return "";
    case Refusal::kNotRetriable:
      return "not-retriable";
    case Refusal::kResponseStarted:
      return "response-started";
    case Refusal::kRetriesExhausted:
      return "retries-exhausted";
    case Refusal::kIdempotency:
      return "idempotency";
    case Refusal::kBodyTooLarge:
      return "body-too-large";
    case Refusal::kPushbackRefused:
      return "pushback-refused";
    case Refusal::kPushbackTooLong:
      return "pushback-too-long";
    case Refusal::kDeadline:
      return "deadline";
    case Refusal::kBudget:
      return "budget";
    case Refusal::kOverloaded:
      return "overloaded";
  }
  return "";
}

bool isBlockedRetry(Refusal r) {
  return r != Refusal::kNone && r != Refusal::kNotRetriable && r != Refusal::kRetriesExhausted;
}

bool isRetryableMethod(std::string_view m) {
  return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "PUT" || m == "DELETE" || m == "TRACE";
}

RetryState::RetryState(const pfc::EffectivePolicy& policy, const RequestFacts& request, const Deadline& deadline)
    : policy_(&policy),
      deadline_(deadline),
      body_declared_(request.body_size),
      grpc_(request.grpc),
      connect_(request.connect) {
  // DESIGN.md: naming gRPC codes in retry_on is a gRPC call's opt-in to
  // retries (gRPC calls are all POST, so the method cannot say it).
  safe_by_request_ = isRetryableMethod(request.method) || request.has_idempotency_key ||
                     ((request.grpc || request.connect) && policy.retry.grpc_codes != 0);
}

bool RetryState::bodyReplayable() const {
  uint64_t cap = policy_->retry.max_buffered_body;
  return body_seen_ <= cap && (!body_declared_ || *body_declared_ <= cap);
}

bool RetryState::wouldRetry(const Outcome& o) const {
  const pfc::RetryPolicy& r = policy_->retry;
  switch (o.kind) {
    case OutcomeKind::kConnectFailure:
      return r.has(pfc::RetryCondition::kConnectFailure);
    case OutcomeKind::kReset:
      return r.has(pfc::RetryCondition::kReset);
    case OutcomeKind::kRefusedStream:
      return r.has(pfc::RetryCondition::kRefusedStream);
    case OutcomeKind::kPerTryTimeout:
      return r.has(pfc::RetryCondition::kPerTryTimeout);
    case OutcomeKind::kResponse:
      if (grpc_ || connect_) {
        // Connect: the code of its error (JSON body or end-of-stream
        // message), else the one its clients derive from the HTTP status —
        // never the HTTP status entries of retry_on, since Connect maps
        // deadline_exceeded to 504 and already_exists to 409.
        int code = o.grpc_status != kNoGrpcStatus ? o.grpc_status : grpcStatusFromHttp(o.status);
        return code > 0 && code <= 16 && r.hasGrpc(static_cast<pfc::GrpcCode>(code));
      }
      return r.retriesStatus(o.status);
    case OutcomeKind::kOverflow:
      return false;
  }
  return false;
}

bool RetryState::safeToRepeat(const Outcome& o) const { return safe_by_request_ || o.neverReachedUpstream(); }

Decision RetryState::decide(const Outcome& o, const core::Clock& clock, RetryBudget& budget, core::Random& rnd) {
  if (o.overloaded) overloaded_ = true;  // sticky: no later attempt either
  // Most outcomes (a 200) are not retriable at all: decided without reading
  // the two clocks, which every response would otherwise pay for.
  if (!wouldRetry(o)) {
    Decision d;
    d.refusal = Refusal::kNotRetriable;
    return d;
  }
  return decideAt(o, clock.nowUs(), clock.systemNowUnixSeconds(), deadline_, response_started_, bodyReplayable(),
                  budget, rnd);
}

Decision RetryState::decideAt(const Outcome& o, int64_t now_us, int64_t now_unix_s, const Deadline& deadline,
                              bool response_started, bool body_replayable, RetryBudget& budget, core::Random& rnd) {
  const pfc::RetryPolicy& r = policy_->retry;
  auto refuse = [](Refusal why) {
    Decision d;
    d.refusal = why;
    return d;
  };
  if (!wouldRetry(o)) return refuse(Refusal::kNotRetriable);
  if (overloaded_) return refuse(Refusal::kOverloaded);
  if (response_started) return refuse(Refusal::kResponseStarted);
  if (retries() >= r.num_retries) return refuse(Refusal::kRetriesExhausted);
  if (!safeToRepeat(o)) return refuse(Refusal::kIdempotency);
  if (!body_replayable) return refuse(Refusal::kBodyTooLarge);

  Decision d;
  d.retry = true;
  if (r.retry_after && o.kind == OutcomeKind::kResponse) {
    std::optional<int64_t> pushback;
    if (grpc_ && o.grpc_pushback) {
      // gRFC A6: negative or not an integer means "do not retry".
      pushback = parseGrpcPushbackUs(o.grpc_pushback.value());
      if (!pushback) return refuse(Refusal::kPushbackRefused);
    } else if (o.retry_after && (o.status == 429 || o.status == 503)) {
      pushback = parseRetryAfterUs(o.retry_after.value(), now_unix_s);  // malformed: plain backoff
    }
    if (pushback) {
      if (*pushback > r.retry_after_max_us) return refuse(Refusal::kPushbackTooLong);
      d.wait_us = *pushback;
      d.pushback = true;
    }
  }
  // Retry n = retries() + 1: hedges are not retries (no longer waits after
  // a hedged round).
  if (!d.pushback) d.wait_us = backoffUs(r, retries() + 1, rnd.nextU64());

  if (!enoughTimeForAttempt(deadline, *policy_, now_us, d.wait_us)) return refuse(Refusal::kDeadline);
  if (!o.neverReachedUpstream()) {
    if (!budget.tryAcquireRetry(now_us, policy_->budget)) return refuse(Refusal::kBudget);
    d.spent_budget = true;
  }
  return d;
}

}  // namespace mulligan::retry
