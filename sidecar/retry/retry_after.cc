#include "sidecar/retry/retry_after.h"

#include "sidecar/retry/header_value.h"

namespace mulligan::retry {
namespace {

constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
constexpr std::string_view kDays[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
constexpr std::string_view kLongDays[] = {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"};

// Days since 1970-01-01 of a proleptic Gregorian date (the era arithmetic of
// H. Hinnant's "chrono-Compatible Low-Level Date Algorithms").
int64_t daysFromCivil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

// The (proleptic Gregorian) year that Unix day `z` falls in.
int64_t yearOfDay(int64_t z) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  return yoe + era * 400 + (mp >= 10 ? 1 : 0);
}

bool leapYear(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int daysInMonth(int64_t y, int m) {
  static constexpr int kLen[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leapYear(y) ? 29 : kLen[m - 1];
}

// A tiny cursor over the header value; every take*() consumes on success only.
class Cursor {
 public:
  explicit Cursor(std::string_view s) : s_(s) {}
  bool done() const { return s_.empty(); }
  bool lit(std::string_view l) {
    if (s_.substr(0, l.size()) != l) return false;
    s_.remove_prefix(l.size());
    return true;
  }
  // Exactly n ASCII digits.
  bool digits(size_t n, int64_t* out) {
    if (s_.size() < n) return false;
    int64_t v = 0;
    for (size_t i = 0; i < n; ++i) {
      char c = s_[i];
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    s_.remove_prefix(n);
    *out = v;
    return true;
  }
  // One of `names`; its index in *out.
  template <size_t N>
  bool oneOf(const std::string_view (&names)[N], int* out) {
    for (size_t i = 0; i < N; ++i) {
      if (lit(names[i])) {
        *out = static_cast<int>(i);
        return true;
      }
    }
    return false;
  }
  // time-of-day = hour ":" minute ":" second
  bool timeOfDay(int64_t* secs) {
    int64_t h, m, s;
    if (!digits(2, &h) || !lit(":") || !digits(2, &m) || !lit(":") || !digits(2, &s)) return false;
    if (h > 23 || m > 59 || s > 60) return false;  // 60: a leap second (RFC 5322)
    *secs = h * 3600 + m * 60 + s;
    return true;
  }

 private:
  std::string_view s_;
};

std::optional<int64_t> toUnix(int64_t year, int month /*1-12*/, int64_t day, int64_t secs) {
  if (day < 1 || day > daysInMonth(year, month)) return std::nullopt;
  return daysFromCivil(year, month, static_cast<int>(day)) * 86400 + secs;
}

// Digits of a non-negative integer, saturating at `cap`; false unless the
// whole string is 1*DIGIT.
bool parseSaturating(std::string_view v, int64_t cap, int64_t* out) {
  if (v.empty()) return false;
  int64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    if (n < cap) n = n * 10 + (c - '0');
  }
  *out = n < cap ? n : cap;
  return true;
}

}  // namespace

std::optional<int64_t> parseHttpDate(std::string_view v, int64_t now_unix_s) {
  v = trimOws(v);
  Cursor c(v);
  int wday, mon;
  int64_t day, year, secs;
  if (v.size() > 3 && v[3] == ',') {
    // IMF-fixdate: day-name "," SP date1 SP time-of-day SP GMT
    if (!c.oneOf(kDays, &wday) || !c.lit(", ") || !c.digits(2, &day) || !c.lit(" ") || !c.oneOf(kMonths, &mon) ||
        !c.lit(" ") || !c.digits(4, &year) || !c.lit(" ") || !c.timeOfDay(&secs) || !c.lit(" GMT") || !c.done()) {
      return std::nullopt;
    }
    return toUnix(year, mon + 1, day, secs);
  }
  if (v.find(',') != std::string_view::npos) {
    // rfc850-date: day-name-l "," SP date2 SP time-of-day SP GMT; date2 = DD-Mon-YY
    if (!c.oneOf(kLongDays, &wday) || !c.lit(", ") || !c.digits(2, &day) || !c.lit("-") || !c.oneOf(kMonths, &mon) ||
        !c.lit("-") || !c.digits(2, &year) || !c.lit(" ") || !c.timeOfDay(&secs) || !c.lit(" GMT") || !c.done()) {
      return std::nullopt;
    }
    // RFC 9110 §5.6.7: a two-digit year that appears more than 50 years in
    // the future is the most recent past year with those digits.
    int64_t now_year = yearOfDay(now_unix_s >= 0 ? now_unix_s / 86400 : (now_unix_s - 86399) / 86400);
    int64_t full = now_year - ((now_year % 100) + 100) % 100 + year;
    if (full > now_year + 50) full -= 100;
    if (full <= now_year - 50) full += 100;
    return toUnix(full, mon + 1, day, secs);
  }
  // asctime-date: day-name SP month SP ( 2DIGIT / ( SP DIGIT ) ) SP time-of-day SP year
  if (!c.oneOf(kDays, &wday) || !c.lit(" ") || !c.oneOf(kMonths, &mon) || !c.lit(" ")) return std::nullopt;
  if (c.lit(" ")) {
    if (!c.digits(1, &day)) return std::nullopt;
  } else if (!c.digits(2, &day)) {
    return std::nullopt;
  }
  if (!c.lit(" ") || !c.timeOfDay(&secs) || !c.lit(" ") || !c.digits(4, &year) || !c.done()) return std::nullopt;
  return toUnix(year, mon + 1, day, secs);
}

std::optional<int64_t> parseRetryAfterUs(std::string_view v, int64_t now_unix_s) {
  v = trimOws(v);
  int64_t seconds;
  if (parseSaturating(v, kMaxPushbackUs / 1'000'000, &seconds)) return seconds * 1'000'000;
  std::optional<int64_t> when = parseHttpDate(v, now_unix_s);
  if (!when) return std::nullopt;
  int64_t delta = *when - now_unix_s;
  if (delta <= 0) return 0;
  if (delta >= kMaxPushbackUs / 1'000'000) return kMaxPushbackUs;
  return delta * 1'000'000;
}

std::optional<int64_t> parseGrpcPushbackUs(std::string_view v) {
  v = trimOws(v);
  int64_t ms;
  if (!parseSaturating(v, kMaxPushbackUs / 1000, &ms)) return std::nullopt;
  return ms * 1000;
}

}  // namespace mulligan::retry
