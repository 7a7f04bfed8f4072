#include "sidecar/retry/retry_state.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <ctime>

namespace mulligan::retry {

std::string_view outcomeName(OutcomeKind k) {
  switch (k) {
    case OutcomeKind::kConnectFailure: return "connect-failure";
    case OutcomeKind::kReset: return "reset";
    case OutcomeKind::kRefusedStream: return "refused-stream";
    case OutcomeKind::kPerTryTimeout: return "per-try-timeout";
    case OutcomeKind::kResponse: return "response";
  }
  return "?";
}

std::string Outcome::label() const {
  if (kind != OutcomeKind::kResponse) return std::string(outcomeName(kind));
  if (grpc_status > 0) {
    auto name = pfc::grpcCodeName(static_cast<pfc::GrpcCode>(grpc_status));
    if (!name.empty()) return std::string(name);
    return "grpc-" + std::to_string(grpc_status);
  }
  return std::to_string(status);
}

std::string_view refusalName(Refusal r) {
  switch (r) {
    case Refusal::kNone: return "";
    case Refusal::kNotRetriable: return "not-retriable";
    case Refusal::kRetriesExhausted: return "retries-exhausted";
    case Refusal::kIdempotency: return "idempotency";
    case Refusal::kBodyTooLarge: return "body-too-large";
    case Refusal::kResponseStarted: return "response-started";
    case Refusal::kDeadline: return "deadline";
    case Refusal::kBudget: return "budget";
    case Refusal::kPushback: return "pushback";
  }
  return "?";
}

int64_t backoffUs(const pfc::RetryPolicy& r, uint32_t retry_number, double random01) {
  if (retry_number == 0) retry_number = 1;
  int64_t cap = r.backoff_max_us;
  int64_t ceiling = r.backoff_base_us;
  // base * 2^(n-1) without overflow: stop doubling at the cap.
  for (uint32_t i = 1; i < retry_number && ceiling < cap; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, cap);
  if (ceiling <= 0) return 0;
  return static_cast<int64_t>(random01 * static_cast<double>(ceiling));
}

std::optional<int64_t> parseRetryAfterUs(std::string_view v, int64_t now_unix_s) {
  if (!v.empty() && std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (v.size() > 9) return std::nullopt;
    return std::stoll(std::string(v)) * 1000000;
  }
  // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
  std::string s(v);
  tm t{};
  const char* end = strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &t);
  if (!end || *end != '\0') return std::nullopt;
  int64_t when = timegm(&t);
  return std::max<int64_t>(0, when - now_unix_s) * 1000000;
}

RetryState::RetryState(const pfc::EffectivePolicy* policy, std::string_view method, bool grpc,
                       bool has_idempotency_key)
    : policy_(policy), grpc_(grpc) {
  // RFC 9110 §9.2.2: these methods are idempotent. POST/PATCH only by key.
  idempotent_by_method_ = method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "PUT" ||
                          method == "DELETE" || method == "TRACE";
  idempotent_ = idempotent_by_method_ || has_idempotency_key || grpc;
}

bool RetryState::wouldRetry(const Outcome& o) const {
  const pfc::RetryPolicy& r = policy_->retry;
  switch (o.kind) {
    case OutcomeKind::kConnectFailure: return r.has(pfc::RetryCondition::kConnectFailure);
    case OutcomeKind::kReset: return r.has(pfc::RetryCondition::kReset);
    case OutcomeKind::kRefusedStream: return r.has(pfc::RetryCondition::kRefusedStream);
    case OutcomeKind::kPerTryTimeout: return r.has(pfc::RetryCondition::kPerTryTimeout);
    case OutcomeKind::kResponse:
      if (grpc_) {
        // A gRPC call is retried when retry_on names gRPC codes: opting in.
        return o.grpc_status > 0 && o.grpc_status <= 16 && r.hasGrpc(static_cast<pfc::GrpcCode>(o.grpc_status));
      }
      return r.retriesStatus(o.status);
  }
  return false;
}

Decision RetryState::decide(const Outcome& o, int64_t now_us, int64_t now_unix_s, const Deadline& deadline,
                            bool response_started, bool body_replayable, RetryBudget& budget, Random& rnd) {
  Decision d;
  const pfc::RetryPolicy& r = policy_->retry;
  auto refuse = [&](Refusal why) {
    d.retry = false;
    d.refusal = why;
    return d;
  };
  if (!wouldRetry(o)) return refuse(Refusal::kNotRetriable);
  if (response_started) return refuse(Refusal::kResponseStarted);
  if (attempts_ > r.num_retries) return refuse(Refusal::kRetriesExhausted);
  // Requests that provably never reached the upstream are safe for any method.
  bool never_reached = o.kind == OutcomeKind::kConnectFailure || o.kind == OutcomeKind::kRefusedStream;
  if (!idempotent_ && !never_reached) return refuse(Refusal::kIdempotency);
  if (!body_replayable) return refuse(Refusal::kBodyTooLarge);

  // Wait: the server's pushback when it gave one, else full-jitter backoff.
  int64_t wait = backoffUs(r, attempts_, rnd.uniform());
  if (r.retry_after && o.kind == OutcomeKind::kResponse) {
    std::optional<int64_t> pushback;
    if (o.grpc_pushback) {
      auto ms = parseBudgetMs(*o.grpc_pushback);  // non-negative decimal ms
      if (!ms) return refuse(Refusal::kPushback);  // negative or malformed: do not retry
      pushback = *ms * 1000;
    } else if (o.retry_after && (o.status == 429 || o.status == 503)) {
      pushback = parseRetryAfterUs(*o.retry_after, now_unix_s);  // malformed: plain backoff
    }
    if (pushback) {
      if (*pushback > r.retry_after_max_us) return refuse(Refusal::kPushback);
      wait = *pushback;
    }
  }
  int64_t left = deadline.remaining(now_us);
  if (left != kNoDeadline && (left - wait < policy_->deadline.min_attempt_budget_us || wait >= left)) {
    return refuse(Refusal::kDeadline);
  }
  if (!never_reached && !budget.tryAcquireRetry(now_us, policy_->budget)) return refuse(Refusal::kBudget);
  d.retry = true;
  d.wait_us = wait;
  return d;
}

}  // namespace mulligan::retry
