// The gRPC `grpc-timeout` header (gRPC "PROTOCOL-HTTP2.md", Requests):
//   Timeout     = "grpc-timeout" TimeoutValue TimeoutUnit
//   TimeoutValue = {positive integer as ASCII string of at most 8 digits}
//   TimeoutUnit  = Hour / Minute / Second / Millisecond / Microsecond / Nanosecond
//                = "H" / "M" / "S" / "m" / "u" / "n"
// Pure functions, no allocation.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mulligan::retry {

// The longest value formatGrpcTimeout() produces: 8 digits and a unit.
constexpr size_t kGrpcTimeoutMaxChars = 9;
// The most digits TimeoutValue may have.
constexpr int64_t kGrpcTimeoutMaxValue = 99'999'999;

// Parses an inbound grpc-timeout into microseconds. Nanoseconds are rounded
// UP to whole microseconds (a deadline is never shortened by rounding).
// Accepts 1 to 8 ASCII digits (leading zeros allowed) followed by exactly one
// unit letter; surrounding OWS is stripped. Anything else — no digits, 9+
// digits, a sign, a decimal point, an unknown or missing unit, trailing
// bytes — is malformed: nullopt. A zero value ("0S") is malformed too: the
// spec says "positive integer", and many peers read 0 as "no deadline", so
// we neither send it nor trust it.
std::optional<int64_t> parseGrpcTimeoutUs(std::string_view v);

// A formatted grpc-timeout value in a fixed buffer (no heap).
struct GrpcTimeoutText {
  char data[kGrpcTimeoutMaxChars + 1] = {};
  uint8_t size = 0;
  std::string_view view() const { return {data, size}; }
  std::string str() const { return std::string(view()); }
  friend bool operator==(const GrpcTimeoutText& a, std::string_view b) { return a.view() == b; }
};

// Formats `us` for the wire:
//   - never less than 1 ms: values below 1000 us (including <= 0) are sent as
//     1 ms, because many peers read 0 as "no deadline";
//   - ROUNDED UP, never down, to the unit used (the peer's deadline may be up
//     to one unit later than ours, never earlier than the time we grant);
//   - in the finest unit whose value fits 8 digits, trying u, m, S, M, H in
//     that order. "n" is never chosen: our clock counts microseconds, so
//     nanoseconds would add digits but no precision. So up to ~100 s is
//     exact in "u", up to ~27.7 h exact to the next ms in "m", and so on;
//   - beyond 99999999H (11,407 years) it saturates at "99999999H".
GrpcTimeoutText formatGrpcTimeout(int64_t us);

}  // namespace mulligan::retry
