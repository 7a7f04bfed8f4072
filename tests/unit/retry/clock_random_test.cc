// sidecar/core: the injected clock and randomness the engine runs on.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <thread>

#include "sidecar/core/clock.h"
#include "sidecar/core/random.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/fake_random.h"

namespace mulligan::core {
namespace {

TEST(FakeClockTest, AdvanceMovesMonotonicAndWallClockTogether) {
  FakeClock clock(5'000'000, 1'700'000'000);
  EXPECT_EQ(clock.nowUs(), 5'000'000);
  EXPECT_EQ(clock.systemNowUnixSeconds(), 1'700'000'000);
  clock.advance(1'500'000);
  EXPECT_EQ(clock.nowUs(), 6'500'000);
  EXPECT_EQ(clock.systemNowUnixSeconds(), 1'700'000'001);  // whole seconds, floored
  clock.advanceMs(500);
  EXPECT_EQ(clock.nowUs(), 7'000'000);
  EXPECT_EQ(clock.systemNowUnixSeconds(), 1'700'000'002);
}

TEST(FakeClockTest, NegativeStepIsIgnoredAndWallClockCanBeSetAlone) {
  FakeClock clock;
  int64_t before = clock.nowUs();
  clock.advance(-10);
  EXPECT_EQ(clock.nowUs(), before);
  clock.setUnixSeconds(784111777);
  EXPECT_EQ(clock.systemNowUnixSeconds(), 784111777);
  EXPECT_EQ(clock.nowUs(), before);
}

TEST(MonotonicClockTest, NeverGoesBackAndWallClockIsAfter2020) {
  const Clock& clock = systemClock();
  int64_t a = clock.nowUs();
  int64_t b = clock.nowUs();
  EXPECT_LE(a, b);
  EXPECT_GT(clock.systemNowUnixSeconds(), 1'577'836'800);  // 2020-01-01
}

TEST(SplitMix64Test, MatchesTheReferenceSequenceForSeedZero) {
  SplitMix64 rng(0);
  EXPECT_EQ(rng.nextU64(), 0xE220A8397B1DCDAFULL);
  EXPECT_EQ(rng.nextU64(), 0x6E789E6AA1B965F4ULL);
  EXPECT_EQ(rng.nextU64(), 0x06C45D188009454FULL);
}

TEST(SplitMix64Test, DoublesAreInUnitIntervalAndSpread) {
  SplitMix64 rng(42);
  double sum = 0;
  constexpr int kN = 100'000;
  for (int i = 0; i < kN; ++i) {
    double d = rng.nextDouble();
    ASSERT_GE(d, 0.0);
    ASSERT_LT(d, 1.0);
    sum += d;
  }
  EXPECT_NEAR(sum / kN, 0.5, 0.01);
}

TEST(FakeRandomTest, ReturnsScriptInOrderThenCyclesAndCountsDraws) {
  FakeRandom rng{7, 8};
  EXPECT_EQ(rng.nextU64(), 7u);
  EXPECT_EQ(rng.nextU64(), 8u);
  EXPECT_EQ(rng.nextU64(), 7u);
  EXPECT_EQ(rng.draws(), 3u);
  FakeRandom empty;
  EXPECT_EQ(empty.nextU64(), 0u);
  EXPECT_EQ(empty.draws(), 1u);
}

TEST(FakeRandomTest, FractionMapsOntoTheFullDrawRange) {
  EXPECT_EQ(FakeRandom::fraction(0.0), 0u);
  EXPECT_EQ(FakeRandom::fraction(0.5), uint64_t{1} << 63);
  EXPECT_EQ(FakeRandom::fraction(0.25), uint64_t{1} << 62);
  EXPECT_EQ(FakeRandom::fraction(1.0), UINT64_MAX);
  EXPECT_EQ(FakeRandom::fraction(-3.0), 0u);
  EXPECT_EQ(FakeRandom::fraction(std::nan("")), 0u);
  FakeRandom rng;
  rng.pushFraction(0.5);
  EXPECT_EQ(rng.nextDouble(), 0.5);
}

TEST(ThreadRandomTest, OneGeneratorPerThreadSeededDifferently) {
  Random* mine = &threadRandom();
  EXPECT_EQ(mine, &threadRandom());
  uint64_t a = threadRandom().nextU64();
  Random* other = nullptr;
  uint64_t b = 0;
  std::thread t([&] {
    other = &threadRandom();
    b = other->nextU64();
  });
  t.join();
  EXPECT_NE(mine, other);
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace mulligan::core
