// Durations and sizes as people write them in the policy, and back.
//
//   durations: one or more <number><unit> parts, units in decreasing order:
//              "500ms", "2s", "1m30s", "1.5s", "250us", "0s"
//              units h, m, s, ms, us (µs accepted too); a number may have a
//              fraction as long as the total is a whole number of microseconds.
//   sizes:     "64KiB", "1MiB", "512B", "1.5KiB", or a plain integer ("100" =
//              100 bytes); units B, KiB, MiB, GiB (powers of 1024).
//
// Negative values, a missing unit ("5", also "0"), spaces, unknown or
// repeated units and values that overflow are rejected.
//
// format*() returns the canonical spelling, and parse*(format*(x)) == x for
// every value parse*() can return. Durations are written like Go's
// time.Duration without zero parts: "1h", "1m30s", "1.5s", "250ms", "1.5ms",
// "250us", "0s". Sizes use the largest unit that divides exactly: "64KiB",
// "1536B", "0B".
//
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mulligan::pfc {

// Microseconds, or nullopt when `s` is not a well-formed duration.
std::optional<int64_t> parseDuration(std::string_view s);
// Bytes, or nullopt when `s` is not a well-formed size.
std::optional<uint64_t> parseSize(std::string_view s);

// Canonical spellings (see above). A negative duration (only possible from
// an untrusted table) is written with a leading "-" and does not parse back.
std::string formatDuration(int64_t us);
std::string formatSize(uint64_t bytes);

}  // namespace mulligan::pfc
