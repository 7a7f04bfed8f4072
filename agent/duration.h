// Durations and sizes as people write them in the policy, and back.
//   durations: "500ms", "2s", "1m30s", "1.5s", "250us", "0s"  (units us ms s m h)
//   sizes:     "64KiB", "1MiB", "512B"                        (units B KiB MiB GiB)
// format*() gives the canonical spelling that parses back to the same value.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mulligan::agent {

// Microseconds, or nullopt when `s` is not a well-formed, non-negative
// duration that fits in int64 microseconds.
std::optional<int64_t> parseDuration(std::string_view s);
std::optional<uint64_t> parseSize(std::string_view s);

std::string formatDuration(int64_t us);  // "250ms", "1s", "90s", "0s"
std::string formatSize(uint64_t bytes);  // "64KiB", "1MiB", "100B"

}  // namespace mulligan::agent
