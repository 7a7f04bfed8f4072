// Durations and sizes: what parses, what does not, and the canonical
// spelling that always parses back to the same value.
#include "agent/duration.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>

namespace mulligan::agent {
namespace {

constexpr int64_t kMs = 1000;
constexpr int64_t kS = 1000 * kMs;
constexpr int64_t kM = 60 * kS;
constexpr int64_t kH = 60 * kM;

TEST(DurationTest, ParsesEveryUnit) {
  EXPECT_EQ(parseDuration("250us"), 250);
  EXPECT_EQ(parseDuration("250\xc2\xb5s"), 250);  // "µs"
  EXPECT_EQ(parseDuration("500ms"), 500 * kMs);
  EXPECT_EQ(parseDuration("2s"), 2 * kS);
  EXPECT_EQ(parseDuration("3m"), 3 * kM);
  EXPECT_EQ(parseDuration("2h"), 2 * kH);
  EXPECT_EQ(parseDuration("0s"), 0);
  EXPECT_EQ(parseDuration("0ms"), 0);
  EXPECT_EQ(parseDuration("007s"), 7 * kS);
}

TEST(DurationTest, ParsesCompoundsAndFractions) {
  EXPECT_EQ(parseDuration("1m30s"), 90 * kS);
  EXPECT_EQ(parseDuration("1h2m3s4ms5us"), kH + 2 * kM + 3 * kS + 4 * kMs + 5);
  EXPECT_EQ(parseDuration("1.5s"), 1500 * kMs);
  EXPECT_EQ(parseDuration("0.25ms"), 250);
  EXPECT_EQ(parseDuration(".5s"), 500 * kMs);
  EXPECT_EQ(parseDuration("1.50000000000000000000000s"), 1500 * kMs);  // trailing zeros say nothing
  EXPECT_EQ(parseDuration("0.000001s"), 1);
  EXPECT_EQ(parseDuration("1.0000001h"), kH + 360);  // exact even past 6 digits, for large units
  EXPECT_FALSE(parseDuration("1.000000001h"));       // 3.6 us: not a whole microsecond
}

TEST(DurationTest, RejectsNegativesMissingUnitsAndGarbage) {
  for (const char* bad : {"",     "ten seconds", "5",     "0",     "-1s",  "+1s",     "1.5",    "s",   "ms",  "1x",
                          "1S",   "1 s",         " 1s",   "1s ",   "1.s",  "1..5s",   "1.2.3s", "1ss", "1sm", "30s1m",
                          "1s1s", "1ms1s",       "1e3ms", "0x10s", "1,5s", "1_000ms", "inf",    "nan"}) {
    EXPECT_FALSE(parseDuration(bad).has_value()) << '"' << bad << '"';
  }
}

TEST(DurationTest, RejectsSubMicrosecondFractionsAndOverflow) {
  EXPECT_FALSE(parseDuration("0.5us"));
  EXPECT_FALSE(parseDuration("1.0000001s"));
  EXPECT_FALSE(parseDuration("99999999999999999999s"));
  EXPECT_FALSE(parseDuration("9223372036854775808us"));  // INT64_MAX + 1
  EXPECT_EQ(parseDuration("9223372036854775807us"), std::numeric_limits<int64_t>::max());
  // INT64_MAX microseconds is 2562047788h0m54.775807s.
  EXPECT_FALSE(parseDuration("2562047789h"));
  EXPECT_EQ(parseDuration("2562047788h54.775807s"), std::numeric_limits<int64_t>::max());
  EXPECT_FALSE(parseDuration("2562047788h54.775808s"));  // parts overflow only when added
  EXPECT_FALSE(parseDuration("2562047788h1m"));
}

TEST(DurationTest, FormatsTheCanonicalSpelling) {
  EXPECT_EQ(formatDuration(0), "0s");
  EXPECT_EQ(formatDuration(1), "1us");
  EXPECT_EQ(formatDuration(250), "250us");
  EXPECT_EQ(formatDuration(1500), "1.5ms");
  EXPECT_EQ(formatDuration(25 * kMs), "25ms");
  EXPECT_EQ(formatDuration(250 * kMs), "250ms");
  EXPECT_EQ(formatDuration(kS), "1s");
  EXPECT_EQ(formatDuration(1500 * kMs), "1.5s");
  EXPECT_EQ(formatDuration(15 * kS), "15s");
  EXPECT_EQ(formatDuration(60 * kS), "1m");
  EXPECT_EQ(formatDuration(90 * kS), "1m30s");
  EXPECT_EQ(formatDuration(kH), "1h");
  EXPECT_EQ(formatDuration(kH + 30 * kM), "1h30m");
  EXPECT_EQ(formatDuration(kH + 500 * kMs), "1h0.5s");
  EXPECT_EQ(formatDuration(24 * kH), "24h");
  EXPECT_EQ(formatDuration(kM + 1), "1m0.000001s");
  EXPECT_EQ(formatDuration(-kS), "-1s");
}

TEST(DurationTest, FormatRoundTripsExactly) {
  std::vector<int64_t> values = {
      0,      1,       999, 1000,   1001,    25 * kMs, kS - 1,    kS,
      kS + 1, 90 * kS, kH,  kH - 1, 24 * kH, kH + kMs, 123456789, std::numeric_limits<int64_t>::max()};
  std::mt19937_64 rng(42);
  for (int i = 0; i < 10000; ++i) values.push_back(static_cast<int64_t>(rng() >> (1 + rng() % 63)));
  for (int64_t us : values) {
    std::string text = formatDuration(us);
    EXPECT_EQ(parseDuration(text), us) << text;
  }
}

TEST(SizeTest, ParsesUnitsAndPlainBytes) {
  EXPECT_EQ(parseSize("512B"), 512u);
  EXPECT_EQ(parseSize("64KiB"), 65536u);
  EXPECT_EQ(parseSize("1MiB"), uint64_t{1} << 20);
  EXPECT_EQ(parseSize("2GiB"), uint64_t{2} << 30);
  EXPECT_EQ(parseSize("1.5KiB"), 1536u);
  EXPECT_EQ(parseSize("100"), 100u);
  EXPECT_EQ(parseSize("0"), 0u);
  EXPECT_EQ(parseSize("0B"), 0u);
}

TEST(SizeTest, RejectsGarbage) {
  for (const char* bad : {"", "KiB", "B", "-1B", "64kb", "64KB", "64kib", "1 MiB", "1MiB ", "1.5", "0.3B",
                          "1.0000001KiB", "99999999999999999999B", "1MiBB", "1KiB1B"}) {
    EXPECT_FALSE(parseSize(bad).has_value()) << '"' << bad << '"';
  }
}

TEST(SizeTest, FormatsTheLargestExactUnitAndRoundTrips) {
  EXPECT_EQ(formatSize(0), "0B");
  EXPECT_EQ(formatSize(1), "1B");
  EXPECT_EQ(formatSize(1000), "1000B");
  EXPECT_EQ(formatSize(1536), "1536B");
  EXPECT_EQ(formatSize(65536), "64KiB");
  EXPECT_EQ(formatSize(uint64_t{1} << 20), "1MiB");
  EXPECT_EQ(formatSize(uint64_t{3} << 30), "3GiB");
  std::mt19937_64 rng(7);
  std::vector<uint64_t> values = {0, 1, 1023, 1024, 1025, uint64_t{64} << 20, uint64_t{1} << 62};
  for (int i = 0; i < 1000; ++i) values.push_back(rng() >> (2 + rng() % 60));
  for (uint64_t b : values) EXPECT_EQ(parseSize(formatSize(b)), b) << formatSize(b);
}

}  // namespace
}  // namespace mulligan::agent
