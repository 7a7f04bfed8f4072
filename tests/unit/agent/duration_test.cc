#include "agent/duration.h"

#include <gtest/gtest.h>

namespace mulligan::agent {
namespace {

TEST(DurationTest, ParsesEveryUnitAndCombinations) {
  EXPECT_EQ(parseDuration("250us"), 250);
  EXPECT_EQ(parseDuration("500ms"), 500'000);
  EXPECT_EQ(parseDuration("2s"), 2'000'000);
  EXPECT_EQ(parseDuration("1m"), 60'000'000);
  EXPECT_EQ(parseDuration("2h"), 7'200'000'000);
  EXPECT_EQ(parseDuration("1m30s"), 90'000'000);
  EXPECT_EQ(parseDuration("1.5s"), 1'500'000);
  EXPECT_EQ(parseDuration("0.25ms"), 250);
  EXPECT_EQ(parseDuration("0s"), 0);
  EXPECT_EQ(parseDuration("0"), 0);
}

TEST(DurationTest, RejectsGarbageNegativesMissingUnitsAndOverflow) {
  for (const char* bad : {"", "ten seconds", "5", "-1s", "1.5", "s", "1x", "1 s", "1.s", "1.0001us",
                          "99999999999999999999s", "1s ", "1ss"}) {
    EXPECT_FALSE(parseDuration(bad).has_value()) << bad;
  }
}

TEST(DurationTest, FormatRoundTripsExactly) {
  for (int64_t us : {int64_t{0}, int64_t{1}, int64_t{999}, int64_t{1000}, int64_t{25'000}, int64_t{1'000'000},
                     int64_t{90'000'000}, int64_t{3'600'000'000}, int64_t{1'500'000}, int64_t{86'400'000'000}}) {
    EXPECT_EQ(parseDuration(formatDuration(us)), us) << formatDuration(us);
  }
  EXPECT_EQ(formatDuration(250'000), "250ms");
  EXPECT_EQ(formatDuration(1'500'000), "1500ms");
  EXPECT_EQ(formatDuration(60'000'000), "1m");
}

TEST(SizeTest, ParsesUnitsAndRoundTrips) {
  EXPECT_EQ(parseSize("64KiB"), 65536u);
  EXPECT_EQ(parseSize("1MiB"), 1u << 20);
  EXPECT_EQ(parseSize("512B"), 512u);
  EXPECT_EQ(parseSize("100"), 100u);
  for (const char* bad : {"", "KiB", "1.5MiB", "-1B", "64kb", "1 MiB"}) EXPECT_FALSE(parseSize(bad)) << bad;
  for (uint64_t b : {uint64_t{0}, uint64_t{1}, uint64_t{1024}, uint64_t{65536}, uint64_t{1000}, uint64_t{3} << 20}) {
    EXPECT_EQ(parseSize(formatSize(b)), b) << formatSize(b);
  }
}

}  // namespace
}  // namespace mulligan::agent
