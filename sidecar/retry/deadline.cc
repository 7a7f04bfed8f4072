#include "sidecar/retry/deadline.h"

#include <algorithm>

namespace mulligan::retry {
namespace {

bool allDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

std::optional<int64_t> parseGrpcTimeout(std::string_view v) {
  // gRPC "PROTOCOL-HTTP2": TimeoutValue = 1*8 DIGIT; TimeoutUnit = H/M/S/m/u/n.
  if (v.size() < 2 || v.size() > 9) return std::nullopt;
  std::string_view digits = v.substr(0, v.size() - 1);
  if (!allDigits(digits)) return std::nullopt;
  int64_t n = std::stoll(std::string(digits));
  switch (v.back()) {
    case 'H': return n * 3600 * 1000000;
    case 'M': return n * 60 * 1000000;
    case 'S': return n * 1000000;
    case 'm': return n * 1000;
    case 'u': return n;
    case 'n': return (n + 999) / 1000;  // rounded up to whole microseconds
    default: return std::nullopt;
  }
}

std::string formatGrpcTimeout(int64_t us) {
  // At least 1 ms (0 reads as "no deadline" to some peers), then the finest
  // unit whose value fits 8 digits, rounded up: the error is under one unit
  // and the finest unit that fits keeps it as small as the format allows.
  us = std::max<int64_t>(us, 1000);
  constexpr int64_t kMax = 99'999'999;
  struct Unit {
    char c;
    int64_t us;
  };
  for (Unit u : {Unit{'u', 1}, Unit{'m', 1000}, Unit{'S', 1000000}, Unit{'M', 60000000}, Unit{'H', 3600000000}}) {
    int64_t n = (us + u.us - 1) / u.us;
    if (n <= kMax) return std::to_string(n) + u.c;
  }
  return std::to_string(kMax) + "H";
}

std::optional<int64_t> parseBudgetMs(std::string_view v) {
  if (!allDigits(v) || v.size() > 15) return std::nullopt;
  return std::stoll(std::string(v));
}

Deadline computeDeadline(int64_t start_us, const pfc::EffectivePolicy& p, const std::string* grpc_timeout,
                         const std::string* timeout_budget) {
  Deadline d;
  d.start_us = start_us;
  if (p.request_timeout_us > 0) d.deadline_us = start_us + p.request_timeout_us;
  if (!p.deadline.accept_inbound) return d;
  auto tighten = [&](std::optional<int64_t> us) {
    if (us && start_us + *us < d.deadline_us) {
      d.deadline_us = start_us + *us;
      d.from_inbound = true;
    }
  };
  // Malformed inbound values are ignored (the policy's own timeout stands).
  if (grpc_timeout) tighten(parseGrpcTimeout(*grpc_timeout));
  if (timeout_budget) {
    if (auto ms = parseBudgetMs(*timeout_budget)) tighten(*ms * 1000);
  }
  return d;
}

int64_t ceilMs(int64_t us) { return std::max<int64_t>(1, (us + 999) / 1000); }

int64_t attemptTimeoutUs(const Deadline& d, const pfc::EffectivePolicy& p, int64_t now_us) {
  int64_t left = d.remaining(now_us);
  int64_t per_try = p.retry.per_try_timeout_us > 0 ? p.retry.per_try_timeout_us : kNoDeadline;
  return std::min(left, per_try);
}

AttemptDeadlineHeaders attemptDeadlineHeaders(const Deadline& d, const pfc::EffectivePolicy& p, int64_t now_us,
                                              bool grpc) {
  AttemptDeadlineHeaders h;
  if (!p.deadline.propagate) return h;
  int64_t attempt = attemptTimeoutUs(d, p, now_us);
  if (attempt != kNoDeadline) h.expected_rq_timeout = std::to_string(ceilMs(attempt));
  if (d.none()) return h;
  int64_t left = d.remaining(now_us);
  h.timeout_budget = std::to_string(ceilMs(left));
  if (grpc) h.grpc_timeout = formatGrpcTimeout(left - p.deadline.grpc_timeout_offset_us);
  return h;
}

}  // namespace mulligan::retry
