#include "sidecar/retry/grpc_timeout.h"

#include <algorithm>

#include "sidecar/retry/header_value.h"

namespace mulligan::retry {
namespace {

constexpr int64_t kUsPerMs = 1000;
constexpr int64_t kUsPerS = 1000 * kUsPerMs;
constexpr int64_t kUsPerM = 60 * kUsPerS;
constexpr int64_t kUsPerH = 60 * kUsPerM;

}  // namespace

std::optional<int64_t> parseGrpcTimeoutUs(std::string_view v) {
  v = trimOws(v);
  if (v.size() < 2 || v.size() > kGrpcTimeoutMaxChars) return std::nullopt;
  int64_t n = 0;
  for (char c : v.substr(0, v.size() - 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');  // at most 8 digits: no overflow
  }
  if (n == 0) return std::nullopt;  // "positive integer"
  // 99999999H = 3.6e17 us: every unit fits int64 without a check.
  switch (v.back()) {
    case 'H':
      return n * kUsPerH;
    case 'M':
      return n * kUsPerM;
    case 'S':
      return n * kUsPerS;
    case 'm':
      return n * kUsPerMs;
    case 'u':
      return n;
    case 'n':
      return (n + 999) / 1000;  // round up: never shorten a deadline
    default:
      return std::nullopt;
  }
}

GrpcTimeoutText formatGrpcTimeout(int64_t us) {
  struct Unit {
    char letter;
    int64_t us;
  };
  static constexpr Unit kUnits[] = {{'u', 1}, {'m', kUsPerMs}, {'S', kUsPerS}, {'M', kUsPerM}, {'H', kUsPerH}};
  us = std::max<int64_t>(us, kUsPerMs);
  int64_t value = kGrpcTimeoutMaxValue;
  char letter = 'H';
  for (const Unit& u : kUnits) {
    // Ceiling division that cannot overflow near INT64_MAX.
    int64_t n = us / u.us + (us % u.us != 0 ? 1 : 0);
    if (n <= kGrpcTimeoutMaxValue) {
      value = n;
      letter = u.letter;
      break;
    }
  }
  GrpcTimeoutText out;
  char digits[8];
  int len = 0;
  do {
    digits[len++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value > 0);
  for (int i = 0; i < len; ++i) out.data[i] = digits[len - 1 - i];
  out.data[len] = letter;
  out.size = static_cast<uint8_t>(len + 1);
  return out;
}

}  // namespace mulligan::retry
