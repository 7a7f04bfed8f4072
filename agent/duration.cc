#include "agent/duration.h"

#include <limits>

namespace mulligan::agent {
namespace {

struct Unit {
  std::string_view name;
  int64_t factor;  // in the base unit (µs or bytes)
};

// Longest names first so "ms" is not read as "m" + garbage.
constexpr Unit kDurationUnits[] = {
    {"us", 1}, {"µs", 1}, {"ms", 1000}, {"s", 1000000}, {"m", 60000000}, {"h", 3600000000},
};
constexpr Unit kSizeUnits[] = {
    {"GiB", int64_t{1} << 30}, {"MiB", int64_t{1} << 20}, {"KiB", int64_t{1} << 10}, {"B", 1},
};

bool isDigit(char c) { return c >= '0' && c <= '9'; }

// Multiplies a decimal "int.frac" by `factor` exactly; false on overflow or
// when the result is not a whole number of base units.
bool scaled(std::string_view int_part, std::string_view frac_part, int64_t factor, int64_t* out) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  int64_t whole = 0;
  for (char c : int_part) {
    if (whole > (kMax - (c - '0')) / 10) return false;
    whole = whole * 10 + (c - '0');
  }
  if (whole > kMax / factor) return false;
  int64_t value = whole * factor;
  // Fraction: value += frac * factor / 10^len, required to be exact.
  int64_t num = 0, den = 1;
  for (char c : frac_part) {
    if (den > kMax / 10) return false;
    num = num * 10 + (c - '0');
    den *= 10;
  }
  if (num != 0) {
    if (num > kMax / factor) return false;
    int64_t f = num * factor;
    if (f % den != 0) return false;
    if (value > kMax - f / den) return false;
    value += f / den;
  }
  *out = value;
  return true;
}

}  // namespace

std::optional<int64_t> parseDuration(std::string_view s) {
  if (s.empty()) return std::nullopt;
  if (s == "0") return 0;
  int64_t total = 0;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    while (i < s.size() && isDigit(s[i])) ++i;
    std::string_view int_part = s.substr(start, i - start);
    std::string_view frac_part;
    if (i < s.size() && s[i] == '.') {
      size_t fs = ++i;
      while (i < s.size() && isDigit(s[i])) ++i;
      frac_part = s.substr(fs, i - fs);
      if (frac_part.empty()) return std::nullopt;
    }
    if (int_part.empty() && frac_part.empty()) return std::nullopt;
    const Unit* unit = nullptr;
    for (const Unit& u : kDurationUnits) {
      if (s.substr(i, u.name.size()) == u.name && (!unit || u.name.size() > unit->name.size())) unit = &u;
    }
    if (!unit) return std::nullopt;
    i += unit->name.size();
    int64_t part;
    if (!scaled(int_part, frac_part, unit->factor, &part)) return std::nullopt;
    if (total > std::numeric_limits<int64_t>::max() - part) return std::nullopt;
    total += part;
  }
  return total;
}

std::optional<uint64_t> parseSize(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && isDigit(s[i])) ++i;
  if (i == 0 || i > 18) return std::nullopt;
  std::string_view unit = s.substr(i);
  int64_t factor = unit.empty() ? 1 : 0;
  for (const Unit& u : kSizeUnits) {
    if (unit == u.name) factor = u.factor;
  }
  int64_t value;
  if (factor == 0 || !scaled(s.substr(0, i), {}, factor, &value)) return std::nullopt;
  return static_cast<uint64_t>(value);
}

std::string formatDuration(int64_t us) {
  if (us == 0) return "0s";
  // The largest unit that divides exactly: "90s" rather than "1m30s", which
  // also parses, but one unit reads faster in a dump.
  for (auto it = std::rbegin(kDurationUnits); it != std::rend(kDurationUnits); ++it) {
    if (it->name == "µs") continue;
    if (us % it->factor == 0) return std::to_string(us / it->factor) + std::string(it->name);
  }
  return std::to_string(us) + "us";
}

std::string formatSize(uint64_t bytes) {
  for (const Unit& u : kSizeUnits) {
    if (bytes != 0 && bytes % static_cast<uint64_t>(u.factor) == 0) {
      return std::to_string(bytes / static_cast<uint64_t>(u.factor)) + std::string(u.name);
    }
  }
  return "0B";
}

}  // namespace mulligan::agent
