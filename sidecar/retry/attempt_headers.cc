#include "sidecar/retry/attempt_headers.h"

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cstring>

#include "sidecar/retry/grpc_timeout.h"
#include "sidecar/retry/retry_state.h"

namespace mulligan::retry {

std::optional<std::string_view> AttemptHeaders::find(std::string_view name) const {
  for (size_t i = 0; i < size_; ++i) {
    if (names_[i] == name) return std::string_view(values_[i], lens_[i]);
  }
  return std::nullopt;
}

void AttemptHeaders::add(std::string_view name, std::string_view value) {
  // Overflow here is a bug in this file (the builder knows its sizes).
  assert(size_ < kMaxFields && value.size() <= kMaxValue);
  if (size_ >= kMaxFields) return;
  size_t n = std::min(value.size(), kMaxValue);
  names_[size_] = name;
  std::memcpy(values_[size_], value.data(), n);
  lens_[size_] = static_cast<uint8_t>(n);
  ++size_;
}

void AttemptHeaders::addNumber(std::string_view name, int64_t value) {
  assert(size_ < kMaxFields);
  if (size_ >= kMaxFields) return;
  // Digits straight into the slot; all our values are >= 0, and kMaxValue
  // holds any int64. A single digit (an attempt number, nearly always)
  // needs no conversion.
  char* out = values_[size_];
  if (value >= 0 && value < 10) {
    out[0] = static_cast<char>('0' + value);
    lens_[size_] = 1;
  } else {
    char* end = std::to_chars(out, out + kMaxValue, std::max<int64_t>(value, 0)).ptr;
    lens_[size_] = static_cast<uint8_t>(end - out);
  }
  names_[size_] = name;
  ++size_;
}

AttemptHeaders attemptHeaders(const Deadline& d, const pfc::EffectivePolicy& p, int64_t now_us, uint32_t attempt_number,
                              bool grpc, bool connect) {
  AttemptHeaders h;
  attempt_number = std::max<uint32_t>(1, attempt_number);
  h.addNumber(kAttemptCountHeader, attempt_number);
  if (grpc && attempt_number > 1) h.addNumber(kGrpcPreviousAttemptsHeader, attempt_number - 1);
  if (!p.deadline.propagate) return h;
  int64_t left = -1;
  size_t budget = 0;  // x-timeout-budget's index, when set
  if (!d.none()) {
    left = d.remaining(now_us);
    if (grpc) h.add(kGrpcTimeoutHeader, formatGrpcTimeout(left - p.deadline.grpc_timeout_offset_us).view());
    budget = h.size();
    h.addNumber(kTimeoutBudgetHeader, ceilMs(left));
    // Connect: the time left, as the caller's own connect-timeout-ms would
    // have said it (rounded up, at least 1).
    if (connect) h.addNumber(kConnectTimeoutHeader, ceilMs(left));
  }
  AttemptTimeout t = attemptTimeout(d, p, now_us);
  if (t.kind) {
    if (t.us == left) {
      // No shorter per-try timeout (most calls): the same number as the
      // budget's, whose digits are copied rather than formatted again.
      h.add(kExpectedRqTimeoutHeader, h[budget].value);
    } else {
      h.addNumber(kExpectedRqTimeoutHeader, ceilMs(t.us));
    }
  }
  return h;
}

AttemptHeaders attemptHeaders(const RetryState& rs, int64_t now_us) {
  return attemptHeaders(rs.deadline(), rs.policy(), now_us, rs.attempts(), rs.grpc(), rs.connect());
}

}  // namespace mulligan::retry
