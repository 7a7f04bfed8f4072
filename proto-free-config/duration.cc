#include "proto-free-config/duration.h"

#include <limits>
#include <numeric>

namespace mulligan::pfc {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

struct Unit {
  std::string_view name;
  int64_t factor;  // in the base unit (microseconds or bytes)
  int rank;        // parts of a duration must come in increasing rank
};

constexpr int64_t kMicrosPerMilli = 1000;
constexpr int64_t kMicrosPerSecond = 1000 * kMicrosPerMilli;
constexpr int64_t kMicrosPerMinute = 60 * kMicrosPerSecond;
constexpr int64_t kMicrosPerHour = 60 * kMicrosPerMinute;

constexpr Unit kDurationUnits[] = {
    {"h", kMicrosPerHour, 0},
    {"m", kMicrosPerMinute, 1},
    {"s", kMicrosPerSecond, 2},
    {"ms", kMicrosPerMilli, 3},
    {"us", 1, 4},
    {"\xc2\xb5s", 1, 4},  // "µs"
};
constexpr Unit kSizeUnits[] = {
    {"B", 1, 0},
    {"KiB", int64_t{1} << 10, 0},
    {"MiB", int64_t{1} << 20, 0},
    {"GiB", int64_t{1} << 30, 0},
};

bool isDigit(char c) { return c >= '0' && c <= '9'; }

// One "<int>[.<frac>]" number as written, before its unit is known.
struct Number {
  std::string_view int_part;
  std::string_view frac_part;
  bool has_point = false;
};

// Reads a number at s[*i]; false when there is none or it is malformed
// ("1.", ".", "").
bool readNumber(std::string_view s, size_t* i, Number* out) {
  size_t start = *i;
  while (*i < s.size() && isDigit(s[*i])) ++*i;
  out->int_part = s.substr(start, *i - start);
  out->has_point = *i < s.size() && s[*i] == '.';
  if (out->has_point) {
    size_t frac_start = ++*i;
    while (*i < s.size() && isDigit(s[*i])) ++*i;
    out->frac_part = s.substr(frac_start, *i - frac_start);
    if (out->frac_part.empty()) return false;
  }
  return !out->int_part.empty() || !out->frac_part.empty();
}

// number * factor, exactly. False on overflow, or when the result is not a
// whole number of base units ("0.5us", "0.3B").
bool scale(const Number& n, int64_t factor, int64_t* out) {
  int64_t whole = 0;
  for (char c : n.int_part) {
    int digit = c - '0';
    if (whole > (kMax - digit) / 10) return false;
    whole = whole * 10 + digit;
  }
  if (whole > kMax / factor) return false;
  int64_t value = whole * factor;

  // The fraction is num / 10^k; trailing zeros say nothing ("1.50s").
  std::string_view frac = n.frac_part;
  while (!frac.empty() && frac.back() == '0') frac.remove_suffix(1);
  if (frac.size() > 18) return false;  // 10^19 divides no factor we have
  int64_t num = 0, den = 1;
  for (char c : frac) {
    num = num * 10 + (c - '0');
    den *= 10;
  }
  if (num != 0) {
    // num/den is in lowest terms after dividing by the gcd, so num*factor/den
    // is whole iff den divides factor.
    int64_t g = std::gcd(num, den);
    num /= g;
    den /= g;
    if (factor % den != 0) return false;
    int64_t per = factor / den;
    if (num > kMax / per) return false;
    int64_t f = num * per;
    if (value > kMax - f) return false;
    value += f;
  }
  *out = value;
  return true;
}

// The unit spelled exactly by the letters at s[*i] (up to the next digit,
// '.' or the end), or null.
const Unit* readUnit(std::string_view s, size_t* i, const Unit* units, size_t count) {
  size_t start = *i;
  while (*i < s.size() && !isDigit(s[*i]) && s[*i] != '.') ++*i;
  std::string_view name = s.substr(start, *i - start);
  for (size_t u = 0; u < count; ++u) {
    if (units[u].name == name) return &units[u];
  }
  return nullptr;
}

// "250" + up to `digits` fraction digits of `frac` (out of 10^digits),
// trailing zeros dropped: ("1", 500, 3) -> "1.5".
std::string withFraction(uint64_t whole, uint64_t frac, int digits) {
  std::string out = std::to_string(whole);
  if (frac == 0) return out;
  std::string f = std::to_string(frac);
  f.insert(0, static_cast<size_t>(digits) - f.size(), '0');
  while (f.back() == '0') f.pop_back();
  return out + "." + f;
}

}  // namespace

std::optional<int64_t> parseDuration(std::string_view s) {
  if (s.empty()) return std::nullopt;
  int64_t total = 0;
  int last_rank = -1;
  size_t i = 0;
  while (i < s.size()) {
    Number n;
    if (!readNumber(s, &i, &n)) return std::nullopt;
    const Unit* unit = readUnit(s, &i, kDurationUnits, std::size(kDurationUnits));
    // "1m30s" reads left to right from the largest unit; "30s1m" or "1s1s"
    // is more likely a typo than an intent.
    if (!unit || unit->rank <= last_rank) return std::nullopt;
    last_rank = unit->rank;
    int64_t part;
    if (!scale(n, unit->factor, &part) || total > kMax - part) return std::nullopt;
    total += part;
  }
  return total;
}

std::optional<uint64_t> parseSize(std::string_view s) {
  size_t i = 0;
  Number n;
  if (!readNumber(s, &i, &n)) return std::nullopt;
  int64_t factor = 1;
  if (i < s.size()) {
    const Unit* unit = readUnit(s, &i, kSizeUnits, std::size(kSizeUnits));
    if (!unit || i != s.size()) return std::nullopt;
    factor = unit->factor;
  } else if (n.has_point) {
    return std::nullopt;  // a plain number is a count of bytes: "1.5" means nothing
  }
  int64_t value;
  if (!scale(n, factor, &value)) return std::nullopt;
  return static_cast<uint64_t>(value);
}

std::string formatDuration(int64_t us) {
  if (us == 0) return "0s";
  // Magnitude as unsigned so that INT64_MIN (only from a corrupt table)
  // does not overflow.
  uint64_t v = us < 0 ? uint64_t{0} - static_cast<uint64_t>(us) : static_cast<uint64_t>(us);
  std::string sign = us < 0 ? "-" : "";
  if (v < kMicrosPerMilli) return sign + std::to_string(v) + "us";
  if (v < kMicrosPerSecond) {
    return sign + withFraction(v / kMicrosPerMilli, v % kMicrosPerMilli, 3) + "ms";
  }
  std::string out = sign;
  uint64_t hours = v / kMicrosPerHour;
  v %= kMicrosPerHour;
  uint64_t minutes = v / kMicrosPerMinute;
  v %= kMicrosPerMinute;
  if (hours) out += std::to_string(hours) + "h";
  if (minutes) out += std::to_string(minutes) + "m";
  if (v) out += withFraction(v / kMicrosPerSecond, v % kMicrosPerSecond, 6) + "s";
  return out;
}

std::string formatSize(uint64_t bytes) {
  for (auto it = std::rbegin(kSizeUnits); it != std::rend(kSizeUnits); ++it) {
    uint64_t f = static_cast<uint64_t>(it->factor);
    if (bytes != 0 && bytes % f == 0) return std::to_string(bytes / f) + std::string(it->name);
  }
  return "0B";
}

}  // namespace mulligan::pfc
