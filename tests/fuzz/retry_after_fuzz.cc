// Fuzz target: the server pushback parsers (sidecar/retry/retry_after.h):
// Retry-After (delay-seconds and the three HTTP-date forms), HTTP-date
// alone, and grpc-retry-pushback-ms. Checked on every input: a wait is
// within [0, kMaxPushbackUs] whatever the value and the clock, and a date
// that parses gives the same answer through parseRetryAfterUs.
// Input: 8 bytes of "now" (Unix seconds, folded into 0..2^40), then the value.
#include <cstring>
#include <string_view>

#include "sidecar/retry/retry_after.h"
#include "tests/fuzz/fuzz_target.h"

using namespace mulligan::retry;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  uint64_t raw = 0;
  size_t head = size < sizeof raw ? size : sizeof raw;
  std::memcpy(&raw, data, head);
  // Any time from 1970 to ~36,800 AD: a wall clock far off is still a clock.
  int64_t now = static_cast<int64_t>(raw & ((uint64_t{1} << 40) - 1));
  std::string_view v(reinterpret_cast<const char*>(data) + head, size - head);

  auto wait = parseRetryAfterUs(v, now);
  if (wait) {
    FUZZ_CHECK(*wait >= 0 && *wait <= kMaxPushbackUs, "Retry-After \"%.*s\" at %lld: %lld us",
               static_cast<int>(v.size()), v.data(), static_cast<long long>(now), static_cast<long long>(*wait));
  }
  if (auto when = parseHttpDate(v, now)) {
    FUZZ_CHECK(wait.has_value(), "\"%.*s\" is an HTTP-date but not a Retry-After", static_cast<int>(v.size()),
               v.data());
  }
  if (auto ms = parseGrpcPushbackUs(v)) {
    FUZZ_CHECK(*ms >= 0 && *ms <= kMaxPushbackUs, "grpc-retry-pushback-ms \"%.*s\": %lld us",
               static_cast<int>(v.size()), v.data(), static_cast<long long>(*ms));
  }
  return 0;
}
