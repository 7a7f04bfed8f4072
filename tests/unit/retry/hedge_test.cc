// Hedging's decision and the two per-route states it reads: the latency
// quantile estimator and the extra-load window (retry/hedge.h,
// retry/latency_estimator.h). Numbers only: no clock but the one passed in.
#include "sidecar/retry/hedge.h"

#include <gtest/gtest.h>

namespace mulligan::retry {
namespace {

constexpr int64_t kMs = 1000;
constexpr int64_t kS = 1000 * kMs;
constexpr int64_t kT0 = 1000 * kS;

// ------------------------------------------------------- LatencyEstimator --

TEST(LatencyEstimatorTest, EveryValueLiesInItsBucketAndBucketsAreAtMostAQuarterWide) {
  for (int64_t v : {0L, 1L, 3L, 4L, 5L, 7L, 8L, 9L, 15L, 16L, 100L, 999L, 1000L, 1023L, 1024L, 12345L, 1'000'000L,
                    67'000'000L}) {
    size_t b = LatencyEstimator::bucketOf(v);
    ASSERT_LT(b, LatencyEstimator::kBuckets - 1) << v;
    EXPECT_LE(v, LatencyEstimator::upperBoundUs(b)) << v;
    if (b > 0) {
      EXPECT_GT(v, LatencyEstimator::upperBoundUs(b - 1)) << v;
    }
    EXPECT_LE(LatencyEstimator::upperBoundUs(b), v + v / 4 + 1) << v;
  }
  EXPECT_EQ(LatencyEstimator::bucketOf(int64_t{1} << 40), LatencyEstimator::kBuckets - 1);
}

TEST(LatencyEstimatorTest, BucketsAreContiguous) {
  for (size_t b = 1; b + 1 < LatencyEstimator::kBuckets; ++b) {
    EXPECT_EQ(LatencyEstimator::bucketOf(LatencyEstimator::upperBoundUs(b - 1) + 1), b) << b;
    EXPECT_EQ(LatencyEstimator::bucketOf(LatencyEstimator::upperBoundUs(b)), b) << b;
  }
}

TEST(LatencyEstimatorTest, MinSamplesPutTenAboveTheQuantile) {
  EXPECT_EQ(LatencyEstimator::minSamples(900), 100u);
  EXPECT_EQ(LatencyEstimator::minSamples(950), 200u);
  EXPECT_EQ(LatencyEstimator::minSamples(990), 1000u);
  EXPECT_EQ(LatencyEstimator::minSamples(999), 10000u);
}

TEST(LatencyEstimatorTest, NoQuantileUntilEnoughSamples) {
  LatencyEstimator e;
  for (int i = 0; i < 99; ++i) e.record(10 * kMs, kT0);
  EXPECT_FALSE(e.quantileUs(900, kT0));
  e.record(10 * kMs, kT0);
  ASSERT_TRUE(e.quantileUs(900, kT0));
  EXPECT_FALSE(e.quantileUs(950, kT0));
}

TEST(LatencyEstimatorTest, P99OfAFastBulkAndASlowTail) {
  LatencyEstimator e;
  // 98% at 1 ms, 2% at 1 s: p95 is 1 ms (its bucket's top), p99 is 1 s's bucket.
  for (int i = 0; i < 980; ++i) e.record(1 * kMs, kT0);
  for (int i = 0; i < 20; ++i) e.record(1 * kS, kT0);
  std::optional<int64_t> p95 = e.quantileUs(950, kT0);
  ASSERT_TRUE(p95);
  EXPECT_GE(*p95, 1 * kMs);
  EXPECT_LE(*p95, 1 * kMs + kMs / 4);
  std::optional<int64_t> p99 = e.quantileUs(990, kT0);
  ASSERT_TRUE(p99);
  EXPECT_GE(*p99, 1 * kS);
  EXPECT_LE(*p99, 1 * kS + kS / 4);
}

TEST(LatencyEstimatorTest, TheWindowForgetsAfterTwoHalves) {
  LatencyEstimator e;
  for (int i = 0; i < 100; ++i) e.record(1 * kS, kT0);
  EXPECT_EQ(e.samples(kT0 + LatencyEstimator::kHalfUs - 1), 100u);
  EXPECT_EQ(e.samples(kT0 + LatencyEstimator::kHalfUs), 100u);  // the previous half now
  for (int i = 0; i < 100; ++i) e.record(1 * kMs, kT0 + LatencyEstimator::kHalfUs);
  EXPECT_EQ(e.samples(kT0 + LatencyEstimator::kHalfUs), 200u);
  // One more half: the 1 s samples are gone, the 1 ms ones remain.
  EXPECT_EQ(e.samples(kT0 + 2 * LatencyEstimator::kHalfUs), 100u);
  std::optional<int64_t> p90 = e.quantileUs(900, kT0 + 2 * LatencyEstimator::kHalfUs);
  ASSERT_TRUE(p90);
  EXPECT_LT(*p90, 2 * kMs);
  EXPECT_EQ(e.samples(kT0 + 4 * LatencyEstimator::kHalfUs), 0u);
}

// --------------------------------------------------------------- HedgeLoad --

TEST(HedgeLoadTest, HedgesStayUnderTheFractionOfRequests) {
  HedgeLoad l;
  for (int i = 0; i < 19; ++i) l.recordRequest(kT0);
  EXPECT_FALSE(l.allowsOneMore(0.05, kT0));  // 1 > 0.05 * 19
  l.recordRequest(kT0);
  EXPECT_TRUE(l.allowsOneMore(0.05, kT0));  // 1 <= 0.05 * 20
  l.recordHedge(kT0);
  EXPECT_FALSE(l.allowsOneMore(0.05, kT0));
  for (int i = 0; i < 20; ++i) l.recordRequest(kT0 + kS);
  EXPECT_TRUE(l.allowsOneMore(0.05, kT0 + kS));
}

TEST(HedgeLoadTest, OldHalvesAreForgotten) {
  HedgeLoad l;
  for (int i = 0; i < 100; ++i) l.recordRequest(kT0);
  EXPECT_EQ(l.requests(kT0 + HedgeLoad::kHalfUs), 100u);
  EXPECT_EQ(l.requests(kT0 + 2 * HedgeLoad::kHalfUs), 0u);
  EXPECT_FALSE(l.allowsOneMore(0.05, kT0 + 2 * HedgeLoad::kHalfUs));
}

// ------------------------------------------------------------- the delay --

pfc::EffectivePolicy hedging(int64_t delay_us, uint16_t quantile = 0) {
  pfc::EffectivePolicy p = pfc::builtinDefaults();
  p.hedge.delay_us = delay_us;
  p.hedge.delay_quantile_permille = quantile;
  p.hedge.max_attempts = 2;
  p.hedge.max_extra_load = 0.05;
  return p;
}

TEST(HedgeDelayTest, FixedOrAQuantileOrNone) {
  LatencyEstimator e;
  EXPECT_FALSE(hedgeDelayUs(hedging(0).hedge, e, kT0));
  EXPECT_EQ(hedgeDelayUs(hedging(50 * kMs).hedge, e, kT0), 50 * kMs);
  EXPECT_FALSE(hedgeDelayUs(hedging(0, 900).hedge, e, kT0));  // no samples yet
  for (int i = 0; i < 100; ++i) e.record(3, kT0);
  EXPECT_EQ(hedgeDelayUs(hedging(0, 900).hedge, e, kT0), 3);
}

// ------------------------------------------------------------ decideHedge --

class DecideHedgeTest : public ::testing::Test {
 protected:
  DecideHedgeTest() : policy_(hedging(50 * kMs)), deadline_(computeDeadline(kT0, policy_, {}, {})) {
    for (int i = 0; i < 100; ++i) load_.recordRequest(kT0);
    q_.policy = &policy_;
    q_.may_repeat = true;
    q_.body_in_hand = true;
    q_.in_flight = 1;
    q_.deadline = &deadline_;
    q_.now_us = kT0 + 50 * kMs;
  }
  HedgeRefusal refusal() { return decideHedge(q_, load_, budget_).refusal; }

  pfc::EffectivePolicy policy_;
  Deadline deadline_;
  HedgeLoad load_;
  RetryBudget budget_;
  HedgeQuery q_;
};

TEST_F(DecideHedgeTest, AllowedSpendsBudgetAndCountsTheHedge) {
  HedgeDecision d = decideHedge(q_, load_, budget_);
  EXPECT_TRUE(d.hedge);
  EXPECT_EQ(d.refusal, HedgeRefusal::kNone);
  EXPECT_EQ(load_.hedges(q_.now_us), 1u);
  EXPECT_EQ(budget_.snapshot(q_.now_us, policy_.budget).retries, 1u);
}

TEST_F(DecideHedgeTest, EachRuleRefusesInOrder) {
  policy_.hedge.delay_us = 0;
  EXPECT_EQ(refusal(), HedgeRefusal::kOff);
  policy_.hedge.delay_us = 50 * kMs;
  q_.may_repeat = false;
  EXPECT_EQ(refusal(), HedgeRefusal::kIdempotency);
  q_.may_repeat = true;
  q_.body_in_hand = false;
  EXPECT_EQ(refusal(), HedgeRefusal::kBody);
  q_.body_in_hand = true;
  q_.response_started = true;
  EXPECT_EQ(refusal(), HedgeRefusal::kResponseStarted);
  q_.response_started = false;
  q_.in_flight = 2;
  EXPECT_EQ(refusal(), HedgeRefusal::kMaxAttempts);
  policy_.hedge.max_attempts = 3;
  EXPECT_NE(refusal(), HedgeRefusal::kMaxAttempts);
  EXPECT_EQ(load_.hedges(q_.now_us), 1u);  // that one was allowed
  q_.in_flight = 1;
  EXPECT_EQ(budget_.snapshot(q_.now_us, policy_.budget).retries, 1u);
}

TEST_F(DecideHedgeTest, DeadlineLeavingLessThanMinAttemptBudgetRefuses) {
  policy_.request_timeout_us = 100 * kMs;
  policy_.deadline.min_attempt_budget_us = 20 * kMs;
  deadline_ = computeDeadline(kT0, policy_, {}, {});
  q_.now_us = kT0 + 80 * kMs + 1;
  EXPECT_EQ(refusal(), HedgeRefusal::kDeadline);
  q_.now_us = kT0 + 80 * kMs;
  EXPECT_EQ(refusal(), HedgeRefusal::kNone);
}

TEST_F(DecideHedgeTest, ExtraLoadRefusesBeforeTheBudgetIsSpent) {
  for (int i = 0; i < 5; ++i) load_.recordHedge(kT0);  // 5 of 100 = max_extra_load
  EXPECT_EQ(refusal(), HedgeRefusal::kExtraLoad);
  EXPECT_EQ(budget_.snapshot(q_.now_us, policy_.budget).retries, 0u);
}

TEST_F(DecideHedgeTest, BudgetRefusalIsLastAndCountsNoHedge) {
  policy_.budget.retry_ratio = 0;
  policy_.budget.min_retries_per_second = 0;
  EXPECT_EQ(refusal(), HedgeRefusal::kBudget);
  EXPECT_EQ(load_.hedges(q_.now_us), 0u);
}

}  // namespace
}  // namespace mulligan::retry
