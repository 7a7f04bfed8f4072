#include "sidecar/retry/deadline.h"

#include <algorithm>

#include "sidecar/retry/grpc_timeout.h"

namespace mulligan::retry {
namespace {

// start + duration, saturating at kNoDeadline - 1 (a deadline, not "none").
int64_t addClamped(int64_t start_us, int64_t dur_us) {
  if (dur_us > kNoDeadline - 1 - start_us) return kNoDeadline - 1;
  return start_us + dur_us;
}

}  // namespace

std::string_view deadlineSourceName(DeadlineSource s) {
  switch (s) {
    case DeadlineSource::kNone:
      return "none";
    case DeadlineSource::kRequestTimeout:
      return "request-timeout";
    case DeadlineSource::kGrpcTimeout:
      return "grpc-timeout";
    case DeadlineSource::kTimeoutBudget:
      return "x-timeout-budget";
    case DeadlineSource::kConnectTimeout:
      return "connect-timeout-ms";
  }
  return "none";
}

std::optional<int64_t> parseTimeoutBudgetMs(std::string_view v) {
  v = trimOws(v);
  if (v.empty()) return std::nullopt;
  int64_t ms = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return std::nullopt;
    if (ms < kMaxTimeoutBudgetMs) ms = ms * 10 + (c - '0');  // stops growing once saturated
  }
  if (ms == 0) return std::nullopt;
  return std::min(ms, kMaxTimeoutBudgetMs);
}

std::optional<int64_t> parseConnectTimeoutMs(std::string_view v) {
  // connectrpc.com/docs/protocol: Timeout-Milliseconds → {positive integer as
  // ASCII string of at most 10 digits}.
  v = trimOws(v);
  if (v.size() > 10) return std::nullopt;
  return parseTimeoutBudgetMs(v);
}

Deadline computeDeadline(int64_t start_us, const pfc::EffectivePolicy& p, HeaderValue grpc_timeout,
                         HeaderValue timeout_budget, HeaderValue connect_timeout) {
  Deadline d;
  d.start_us = start_us;
  if (p.request_timeout_us > 0) {
    d.deadline_us = addClamped(start_us, p.request_timeout_us);
    d.source = DeadlineSource::kRequestTimeout;
  }
  if (!p.deadline.accept_inbound) return d;
  auto tighten = [&](std::optional<int64_t> us, DeadlineSource source) {
    if (!us) return;  // malformed inbound values are ignored: the policy stands
    int64_t at = addClamped(start_us, *us);
    if (at < d.deadline_us) {
      d.deadline_us = at;
      d.source = source;
    }
  };
  if (grpc_timeout) tighten(parseGrpcTimeoutUs(grpc_timeout.value()), DeadlineSource::kGrpcTimeout);
  if (timeout_budget) {
    std::optional<int64_t> ms = parseTimeoutBudgetMs(timeout_budget.value());
    tighten(ms ? std::optional<int64_t>(*ms * 1000) : std::nullopt, DeadlineSource::kTimeoutBudget);
  }
  if (connect_timeout) {
    std::optional<int64_t> ms = parseConnectTimeoutMs(connect_timeout.value());
    tighten(ms ? std::optional<int64_t>(*ms * 1000) : std::nullopt, DeadlineSource::kConnectTimeout);
  }
  return d;
}

int64_t ceilMs(int64_t us) {
  if (us <= 1000) return 1;
  return us / 1000 + (us % 1000 != 0 ? 1 : 0);
}

AttemptTimeout attemptTimeout(const Deadline& d, const pfc::EffectivePolicy& p, int64_t now_us) {
  int64_t per_try = p.retry.per_try_timeout_us;
  if (d.none()) {
    if (per_try > 0) return {per_try, TimeoutKind::kPerTry};
    return {};
  }
  int64_t left = std::max<int64_t>(0, d.remaining(now_us));
  if (per_try > 0 && per_try < left) return {per_try, TimeoutKind::kPerTry};
  return {left, TimeoutKind::kRequest};
}

bool enoughTimeForAttempt(const Deadline& d, const pfc::EffectivePolicy& p, int64_t now_us, int64_t wait_us) {
  if (d.none()) return true;
  int64_t left = d.remaining(now_us) - std::max<int64_t>(0, wait_us);
  return left > 0 && left >= p.deadline.min_attempt_budget_us;
}

}  // namespace mulligan::retry
