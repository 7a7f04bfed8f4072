// Server pushback: how long the upstream asks us to wait before a retry.
//   - HTTP `Retry-After` (RFC 9110 §10.2.3) = HTTP-date / delay-seconds,
//     honoured on 429 and 503 responses;
//   - gRPC `grpc-retry-pushback-ms` (gRFC A6 "Client Retries": a
//     non-negative integer of milliseconds; "if the value is negative or
//     not an integer, the client will not retry").
// Pure functions: the current wall-clock time is a parameter.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace mulligan::retry {

// Pushbacks saturate here (~31.7 years): far beyond any retry_after_max, so
// a huge value is "too long", never an overflow.
constexpr int64_t kMaxPushbackUs = int64_t{1'000'000'000} * 1'000'000;

// An HTTP-date as Unix seconds. Accepts the three forms RFC 9110 §5.6.7 says
// a recipient MUST accept:
//   IMF-fixdate  "Sun, 06 Nov 1994 08:49:37 GMT"   (the preferred form)
//   rfc850-date  "Sunday, 06-Nov-94 08:49:37 GMT"  (obsolete; two-digit year
//                read as within 50 years of `now_unix_s`, as §5.6.7 says)
//   asctime-date "Sun Nov  6 08:49:37 1994"        (obsolete)
// Names are case-sensitive, as the grammar says; the day name must be valid
// but is not checked against the date; the date itself must exist
// (no Feb 30). Surrounding OWS is stripped. nullopt when malformed.
std::optional<int64_t> parseHttpDate(std::string_view v, int64_t now_unix_s);

// Retry-After as a wait in microseconds, >= 0: delay-seconds (1*DIGIT,
// saturating at kMaxPushbackUs), or an HTTP-date minus `now_unix_s` (a date
// in the past means 0: retry now). nullopt when malformed — the caller then
// falls back to its own backoff (a broken header is not a "no").
std::optional<int64_t> parseRetryAfterUs(std::string_view v, int64_t now_unix_s);

// grpc-retry-pushback-ms as a wait in microseconds, >= 0 (1*DIGIT,
// saturating at kMaxPushbackUs). nullopt means "do not retry": the value was
// negative or not an integer (empty, "abc", "1.5", "+3").
std::optional<int64_t> parseGrpcPushbackUs(std::string_view v);

}  // namespace mulligan::retry
