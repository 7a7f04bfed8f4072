#include "proto-free-config/policy.h"

#include <cstring>

namespace mulligan::pfc {
namespace {

constexpr std::string_view kConditionNames[] = {
    "connect-failure", "reset", "refused-stream", "per-try-timeout", "5xx", "gateway-error", "retriable-4xx",
};
static_assert(std::size(kConditionNames) == static_cast<size_t>(RetryCondition::kCount));

constexpr std::string_view kMethodNames[] = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
};
static_assert(std::size(kMethodNames) == static_cast<size_t>(Method::kCount));

}  // namespace

std::string_view conditionName(RetryCondition c) {
  auto i = static_cast<size_t>(c);
  return i < std::size(kConditionNames) ? kConditionNames[i] : std::string_view{};
}

std::string_view grpcCodeName(GrpcCode c) {
  // Only the codes DESIGN.md lets `retry_on` name; the others are not
  // transient and retrying them would be a bug in the policy.
  switch (c) {
    case GrpcCode::kCancelled: return "cancelled";
    case GrpcCode::kDeadlineExceeded: return "deadline-exceeded";
    case GrpcCode::kInternal: return "internal";
    case GrpcCode::kResourceExhausted: return "resource-exhausted";
    case GrpcCode::kUnavailable: return "unavailable";
    default: return {};
  }
}

std::string_view methodName(Method m) {
  auto i = static_cast<size_t>(m);
  return i < std::size(kMethodNames) ? kMethodNames[i] : std::string_view{};
}

bool parseMethod(std::string_view s, Method* out) {
  for (size_t i = 0; i < std::size(kMethodNames); ++i) {
    if (kMethodNames[i] == s) {
      *out = static_cast<Method>(i);
      return true;
    }
  }
  return false;
}

std::string_view quantileName(uint32_t permille) {
  for (size_t i = 0; i < std::size(kQuantilePermille); ++i) {
    if (kQuantilePermille[i] == permille) return kQuantileNames[i];
  }
  return {};
}

bool parseQuantile(std::string_view s, uint16_t* permille) {
  for (size_t i = 0; i < std::size(kQuantileNames); ++i) {
    if (kQuantileNames[i] == s) {
      *permille = kQuantilePermille[i];
      return true;
    }
  }
  return false;
}

bool RetryPolicy::retriesStatus(int code) const {
  if (code >= 500 && code <= 599 && has(RetryCondition::k5xx)) return true;
  if ((code == 502 || code == 503 || code == 504) && has(RetryCondition::kGatewayError)) return true;
  if (code == 409 && has(RetryCondition::kRetriable4xx)) return true;
  return hasStatus(code);
}

std::string_view RetryPolicy::idempotencyHeader() const {
  return std::string_view(idempotency_header, strnlen(idempotency_header, sizeof(idempotency_header)));
}

EffectivePolicy builtinDefaults() {
  constexpr int64_t kMs = 1000;
  constexpr int64_t kS = 1000 * kMs;
  EffectivePolicy p{};
  p.connect_timeout_us = 1 * kS;
  p.request_timeout_us = 15 * kS;
  p.idle_timeout_us = 60 * kS;
  p.read_timeout_us = 0;
  p.retry.conditions = conditionBit(RetryCondition::kConnectFailure) | conditionBit(RetryCondition::kRefusedStream) |
                       conditionBit(RetryCondition::kReset);
  p.retry.addStatus(502);
  p.retry.addStatus(503);
  p.retry.addStatus(504);
  p.retry.grpc_codes = 0;
  p.retry.num_retries = 1;
  p.retry.per_try_timeout_us = 0;
  p.retry.backoff_base_us = 25 * kMs;
  p.retry.backoff_max_us = 250 * kMs;
  p.retry.retry_after = 1;
  p.retry.retry_after_max_us = 5 * kS;
  p.retry.fresh_connection = 1;
  std::memcpy(p.retry.idempotency_header, "idempotency-key", sizeof("idempotency-key"));
  p.retry.max_buffered_body = 64 * 1024;
  p.budget.retry_ratio = 0.2;
  p.budget.min_retries_per_second = 10;
  p.budget.window_us = 10 * kS;
  p.deadline.propagate = 1;
  p.deadline.accept_inbound = 1;
  p.deadline.grpc_timeout_offset_us = 0;
  p.deadline.min_attempt_budget_us = 5 * kMs;
  p.hedge.delay_us = 0;  // no hedging
  p.hedge.delay_quantile_permille = 0;
  p.hedge.max_attempts = 2;
  p.hedge.max_extra_load = 0.05;
  p.outlier.consecutive_failures = 5;
  p.outlier.ejection_us = 30 * kS;
  p.outlier.max_ejection_us = 5 * 60 * kS;
  p.outlier.max_ejected = 0.5;
  return p;
}

}  // namespace mulligan::pfc
