// Full-jitter backoff: exact values for scripted draws.
#include "sidecar/retry/backoff.h"

#include <gtest/gtest.h>

#include "sidecar/core/random.h"

namespace mulligan::retry {
namespace {

constexpr int64_t kMs = 1000;
constexpr uint64_t kHalf = uint64_t{1} << 63;
constexpr uint64_t kQuarter = uint64_t{1} << 62;

TEST(BackoffTest, CeilingDoublesFromBaseThenStopsAtMax) {
  EXPECT_EQ(backoffCeilingUs(25 * kMs, 250 * kMs, 1), 25 * kMs);
  EXPECT_EQ(backoffCeilingUs(25 * kMs, 250 * kMs, 2), 50 * kMs);
  EXPECT_EQ(backoffCeilingUs(25 * kMs, 250 * kMs, 3), 100 * kMs);
  EXPECT_EQ(backoffCeilingUs(25 * kMs, 250 * kMs, 4), 200 * kMs);
  EXPECT_EQ(backoffCeilingUs(25 * kMs, 250 * kMs, 5), 250 * kMs);
  EXPECT_EQ(backoffCeilingUs(25 * kMs, 250 * kMs, 6), 250 * kMs);
  EXPECT_EQ(backoffCeilingUs(25 * kMs, 250 * kMs, 1000), 250 * kMs);
  EXPECT_EQ(backoffCeilingUs(25 * kMs, 250 * kMs, UINT32_MAX), 250 * kMs);
}

TEST(BackoffTest, RetryZeroIsTreatedAsTheFirst) { EXPECT_EQ(backoffCeilingUs(25 * kMs, 250 * kMs, 0), 25 * kMs); }

TEST(BackoffTest, BaseAboveMaxIsCappedAndZeroMeansNoWait) {
  EXPECT_EQ(backoffCeilingUs(500 * kMs, 250 * kMs, 1), 250 * kMs);
  EXPECT_EQ(backoffCeilingUs(0, 250 * kMs, 3), 0);
  EXPECT_EQ(backoffCeilingUs(25 * kMs, 0, 3), 0);
  EXPECT_EQ(jitteredBackoffUs(0, UINT64_MAX), 0);
}

TEST(BackoffTest, NoOverflowNearInt64Max) {
  EXPECT_EQ(backoffCeilingUs(1, INT64_MAX, 63), int64_t{1} << 62);
  EXPECT_EQ(backoffCeilingUs(1, INT64_MAX, 64), INT64_MAX);
  EXPECT_EQ(backoffCeilingUs(INT64_MAX / 3, INT64_MAX, 2), INT64_MAX / 3 * 2);
  EXPECT_EQ(backoffCeilingUs(INT64_MAX / 3, INT64_MAX, 3), INT64_MAX);
}

TEST(BackoffTest, ExactWaitForAGivenDraw) {
  EXPECT_EQ(jitteredBackoffUs(100 * kMs, 0), 0);
  EXPECT_EQ(jitteredBackoffUs(100 * kMs, kHalf), 50 * kMs);
  EXPECT_EQ(jitteredBackoffUs(100 * kMs, kQuarter), 25 * kMs);
  EXPECT_EQ(jitteredBackoffUs(100 * kMs, kHalf + kQuarter), 75 * kMs);
  EXPECT_EQ(jitteredBackoffUs(100 * kMs, UINT64_MAX), 100 * kMs - 1);  // the interval is half-open
  EXPECT_EQ(jitteredBackoffUs(1, UINT64_MAX), 0);
}

TEST(BackoffTest, PolicyRetryNumberPicksTheCeiling) {
  pfc::RetryPolicy r = pfc::builtinDefaults().retry;  // 25ms base, 250ms max
  EXPECT_EQ(backoffUs(r, 1, kHalf), 12'500);
  EXPECT_EQ(backoffUs(r, 3, kHalf), 50 * kMs);
  EXPECT_EQ(backoffUs(r, 9, kHalf), 125 * kMs);
}

TEST(BackoffTest, RealDrawsStayBelowTheCeilingAndSpreadOverIt) {
  core::SplitMix64 rng(7);
  int64_t ceiling = backoffCeilingUs(25 * kMs, 250 * kMs, 2);
  double sum = 0;
  int64_t lo = ceiling, hi = 0;
  constexpr int kN = 50'000;
  for (int i = 0; i < kN; ++i) {
    int64_t w = jitteredBackoffUs(ceiling, rng.nextU64());
    ASSERT_GE(w, 0);
    ASSERT_LT(w, ceiling);
    sum += static_cast<double>(w);
    lo = std::min(lo, w);
    hi = std::max(hi, w);
  }
  EXPECT_NEAR(sum / kN, ceiling / 2.0, ceiling * 0.01);
  EXPECT_LT(lo, ceiling / 100);
  EXPECT_GT(hi, ceiling - ceiling / 100);
}

}  // namespace
}  // namespace mulligan::retry
