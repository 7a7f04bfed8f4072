#include "sidecar/retry/hedge.h"

#include <algorithm>

namespace mulligan::retry {

std::string_view hedgeRefusalName(HedgeRefusal r) {
  switch (r) {
    case HedgeRefusal::kNone:
      return "";
    case HedgeRefusal::kOff:
      return "off";
    case HedgeRefusal::kIdempotency:
      return "idempotency";
    case HedgeRefusal::kBody:
      return "body";
    case HedgeRefusal::kResponseStarted:
      return "response-started";
    case HedgeRefusal::kMaxAttempts:
      return "max-attempts";
    case HedgeRefusal::kDeadline:
      return "deadline";
    case HedgeRefusal::kExtraLoad:
      return "extra-load";
    case HedgeRefusal::kBudget:
      return "budget";
  }
  return "";
}

void HedgeLoad::rotate(int64_t now_us) {
  if (half_start_us_ < 0) {
    half_start_us_ = now_us;
    return;
  }
  int64_t age = now_us - half_start_us_;
  if (age < kHalfUs) return;
  int prev = cur_ ^ 1;
  requests_[prev] = hedges_[prev] = 0;
  if (age >= 2 * kHalfUs) {
    requests_[cur_] = hedges_[cur_] = 0;
    half_start_us_ = now_us;
    return;
  }
  cur_ = prev;
  half_start_us_ += kHalfUs;
}

void HedgeLoad::recordRequest(int64_t now_us) {
  rotate(now_us);
  ++requests_[cur_];
}

void HedgeLoad::recordHedge(int64_t now_us) {
  rotate(now_us);
  ++hedges_[cur_];
}

uint64_t HedgeLoad::requests(int64_t now_us) {
  rotate(now_us);
  return requests_[0] + requests_[1];
}

uint64_t HedgeLoad::hedges(int64_t now_us) {
  rotate(now_us);
  return hedges_[0] + hedges_[1];
}

bool HedgeLoad::allowsOneMore(double max_extra_load, int64_t now_us) {
  uint64_t r = requests(now_us);
  uint64_t h = hedges_[0] + hedges_[1];
  return static_cast<double>(h + 1) <= max_extra_load * static_cast<double>(r);
}

std::optional<int64_t> hedgeDelayUs(const pfc::HedgePolicy& p, LatencyEstimator& estimate, int64_t now_us) {
  if (!p.enabled()) return std::nullopt;
  if (p.delay_quantile_permille == 0) return p.delay_us;
  std::optional<int64_t> q = estimate.quantileUs(p.delay_quantile_permille, now_us);
  if (!q) return std::nullopt;
  return std::max<int64_t>(*q, 1);
}

HedgeDecision decideHedge(const HedgeQuery& q, HedgeLoad& load, RetryBudget& budget) {
  auto refuse = [](HedgeRefusal why) {
    HedgeDecision d;
    d.refusal = why;
    return d;
  };
  const pfc::EffectivePolicy& p = *q.policy;
  if (!p.hedge.enabled()) return refuse(HedgeRefusal::kOff);
  if (!q.may_repeat) return refuse(HedgeRefusal::kIdempotency);
  if (!q.body_in_hand) return refuse(HedgeRefusal::kBody);
  if (q.response_started) return refuse(HedgeRefusal::kResponseStarted);
  if (q.in_flight >= std::min<uint32_t>(p.hedge.max_attempts, pfc::kMaxHedgeAttempts)) {
    return refuse(HedgeRefusal::kMaxAttempts);
  }
  if (!enoughTimeForAttempt(*q.deadline, p, q.now_us)) return refuse(HedgeRefusal::kDeadline);
  if (!load.allowsOneMore(p.hedge.max_extra_load, q.now_us)) return refuse(HedgeRefusal::kExtraLoad);
  if (!budget.tryAcquireRetry(q.now_us, p.budget)) return refuse(HedgeRefusal::kBudget);
  load.recordHedge(q.now_us);
  HedgeDecision d;
  d.hedge = true;
  return d;
}

}  // namespace mulligan::retry
