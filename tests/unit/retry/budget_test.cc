// The per-service retry budget: arithmetic, the sliding window, and
// concurrent use by many worker threads.
#include "sidecar/retry/budget.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace mulligan::retry {
namespace {

constexpr int64_t kS = 1'000'000;
constexpr int64_t kT0 = 1000 * kS;  // slice-aligned for every window used here

pfc::BudgetPolicy budget(double ratio, uint32_t min_per_s, int64_t window_us) {
  pfc::BudgetPolicy p{};
  p.retry_ratio = ratio;
  p.min_retries_per_second = min_per_s;
  p.window_us = window_us;
  return p;
}

int acquireUntilRefused(RetryBudget& b, int64_t now, const pfc::BudgetPolicy& p, int limit = 100'000) {
  int n = 0;
  while (n < limit && b.tryAcquireRetry(now, p)) ++n;
  return n;
}

TEST(RetryBudgetTest, FloorIsMinRetriesPerSecondTimesWindow) {
  RetryBudget b;
  pfc::BudgetPolicy p = budget(0, 10, 1 * kS);
  EXPECT_EQ(acquireUntilRefused(b, kT0, p), 10);
  EXPECT_FALSE(b.tryAcquireRetry(kT0, p));
  pfc::BudgetPolicy p10 = budget(0, 10, 10 * kS);
  RetryBudget b10;
  EXPECT_EQ(acquireUntilRefused(b10, kT0, p10), 100);
}

TEST(RetryBudgetTest, RatioOfOriginalRequests) {
  RetryBudget b;
  pfc::BudgetPolicy p = budget(0.2, 0, 10 * kS);
  for (int i = 0; i < 100; ++i) b.recordRequest(kT0, p);
  EXPECT_EQ(acquireUntilRefused(b, kT0, p), 20);  // retries <= 0.2 * 100
  b.recordRequest(kT0, p);
  EXPECT_FALSE(b.tryAcquireRetry(kT0, p));  // 0.2 * 101 = 20.2: still 20
  for (int i = 0; i < 4; ++i) b.recordRequest(kT0, p);
  EXPECT_TRUE(b.tryAcquireRetry(kT0, p));  // 0.2 * 105 = 21
  EXPECT_FALSE(b.tryAcquireRetry(kT0, p));
}

TEST(RetryBudgetTest, RatioPlusFloor) {
  RetryBudget b;
  pfc::BudgetPolicy p = budget(0.2, 1, 10 * kS);
  for (int i = 0; i < 50; ++i) b.recordRequest(kT0, p);
  EXPECT_EQ(acquireUntilRefused(b, kT0, p), 20);  // 0.2 * 50 + 1 * 10
}

TEST(RetryBudgetTest, DefaultPolicyAllowsTwentyPercentPlusOneHundred) {
  RetryBudget b;
  pfc::BudgetPolicy p = pfc::builtinDefaults().budget;  // 0.2, 10/s, 10 s
  for (int i = 0; i < 1000; ++i) b.recordRequest(kT0, p);
  EXPECT_EQ(acquireUntilRefused(b, kT0, p), 300);
}

TEST(RetryBudgetTest, RetriesAgeOutOfTheSlidingWindow) {
  RetryBudget b;
  pfc::BudgetPolicy p = budget(0, 5, 1 * kS);
  int64_t slice = RetryBudget::sliceUs(p.window_us);
  ASSERT_EQ(slice, 31'250);
  EXPECT_EQ(acquireUntilRefused(b, kT0, p), 5);
  // Still inside the window 31 slices later...
  EXPECT_FALSE(b.tryAcquireRetry(kT0 + 31 * slice + slice - 1, p));
  // ...and gone at the 32nd.
  EXPECT_EQ(acquireUntilRefused(b, kT0 + 32 * slice, p), 5);
}

TEST(RetryBudgetTest, RequestsAgeOutOfTheSlidingWindow) {
  RetryBudget b;
  pfc::BudgetPolicy p = budget(0.5, 0, 10 * kS);
  for (int i = 0; i < 10; ++i) b.recordRequest(kT0, p);
  EXPECT_EQ(b.snapshot(kT0 + 9 * kS, p).requests, 10u);
  EXPECT_EQ(b.snapshot(kT0 + 10 * kS, p).requests, 0u);
  EXPECT_FALSE(b.tryAcquireRetry(kT0 + 10 * kS, p));
}

TEST(RetryBudgetTest, SlicesAreAThirtySecondOfTheWindow) {
  EXPECT_EQ(RetryBudget::sliceUs(10 * kS), 312'500);
  EXPECT_EQ(RetryBudget::sliceUs(1 * kS), 31'250);
  EXPECT_EQ(RetryBudget::sliceUs(3600 * kS), 112'500'000);
  EXPECT_EQ(RetryBudget::sliceUs(33), 2);  // rounded up
  EXPECT_EQ(RetryBudget::sliceUs(1), 1);
  EXPECT_EQ(RetryBudget::sliceUs(0), 312'500);  // no window: the builtin 10 s
}

TEST(RetryBudgetTest, SnapshotReportsTheWindow) {
  RetryBudget b;
  pfc::BudgetPolicy p = budget(0.25, 1, 4 * kS);
  for (int i = 0; i < 8; ++i) b.recordRequest(kT0, p);
  EXPECT_EQ(acquireUntilRefused(b, kT0, p), 6);  // 0.25 * 8 + 1 * 4
  RetryBudget::Snapshot s = b.snapshot(kT0, p);
  EXPECT_EQ(s.requests, 8u);
  EXPECT_EQ(s.retries, 6u);
  EXPECT_DOUBLE_EQ(s.allowed, 6.0);
  EXPECT_EQ(s.refused, 1u);
  EXPECT_EQ(s.window_us, 4 * kS);
  EXPECT_EQ(s.slice_us, 125'000);
}

TEST(RetryBudgetTest, ChangedWindowRestartsTheCount) {
  RetryBudget b;
  pfc::BudgetPolicy p = budget(0, 2, 1 * kS);
  EXPECT_EQ(acquireUntilRefused(b, kT0 + 17, p), 2);
  pfc::BudgetPolicy longer = budget(0, 2, 2 * kS);
  EXPECT_EQ(b.snapshot(kT0 + 17, longer).retries, 0u);
  EXPECT_EQ(acquireUntilRefused(b, kT0 + 17, longer), 4);
}

TEST(RetryBudgetTest, ZeroBudgetRefusesEverything) {
  RetryBudget b;
  pfc::BudgetPolicy p = budget(0, 0, 10 * kS);
  for (int i = 0; i < 3; ++i) b.recordRequest(kT0, p);
  EXPECT_FALSE(b.tryAcquireRetry(kT0, p));
  EXPECT_EQ(b.snapshot(kT0, p).refused, 1u);
}

// Many workers race for the last retries of one slice: the CAS re-checks
// the limit, so exactly the allowed number get through.
TEST(RetryBudgetConcurrencyTest, ExactWithinOneSliceUnderContention) {
  RetryBudget b;
  pfc::BudgetPolicy p = budget(0.2, 0, 10 * kS);
  for (int i = 0; i < 1000; ++i) b.recordRequest(kT0, p);
  constexpr int kThreads = 8, kTries = 500;
  std::atomic<int> admitted{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      while (!go.load()) {
      }
      for (int i = 0; i < kTries; ++i) {
        if (b.tryAcquireRetry(kT0 + 1, p)) admitted.fetch_add(1);
      }
    });
  }
  go.store(true);
  for (auto& t : threads) t.join();
  EXPECT_EQ(admitted.load(), 200);
  RetryBudget::Snapshot s = b.snapshot(kT0 + 1, p);
  EXPECT_EQ(s.retries, 200u);
  EXPECT_EQ(s.refused, uint64_t{kThreads * kTries - 200});
}

// Slice roll-overs race with increments: the (tag, count) word is updated
// in one CAS, so no request is lost.
TEST(RetryBudgetConcurrencyTest, NoRequestLostAcrossSliceRollovers) {
  RetryBudget b;
  pfc::BudgetPolicy p = budget(0.2, 10, 1 * kS);
  int64_t slice = RetryBudget::sliceUs(p.window_us);
  constexpr int kThreads = 8, kPerThread = 40'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) b.recordRequest(kT0 + ((i + t) % 32) * slice, p);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(b.snapshot(kT0 + 31 * slice, p).requests, uint64_t{kThreads} * kPerThread);
}

// Requests and retries from many threads at once: requests only raise the
// limit, so whatever the interleaving, admitted retries never exceed the
// allowance computed from the final count.
TEST(RetryBudgetConcurrencyTest, MixedTrafficNeverExceedsTheFinalAllowance) {
  RetryBudget b;
  pfc::BudgetPolicy p = budget(0.1, 1, 10 * kS);
  constexpr int kThreads = 8, kPerThread = 20'000;
  std::atomic<uint64_t> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        b.recordRequest(kT0, p);
        if (i % 3 == 0 && b.tryAcquireRetry(kT0, p)) admitted.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  RetryBudget::Snapshot s = b.snapshot(kT0, p);
  EXPECT_EQ(s.requests, uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(s.retries, admitted.load());
  EXPECT_LE(static_cast<double>(admitted.load()), s.allowed);
  EXPECT_GE(static_cast<double>(admitted.load()), s.allowed * 0.9);  // and the budget was used
}

TEST(BudgetRegistryTest, OneBudgetPerServiceName) {
  BudgetRegistry r;
  RetryBudget& orders = r.get("orders");
  EXPECT_EQ(&orders, &r.get("orders"));
  EXPECT_NE(&orders, &r.get("payments"));
  EXPECT_NE(&orders, &r.get(""));
  EXPECT_EQ(&r.get(""), &r.get(""));
}

TEST(BudgetRegistryTest, BeyondCapacityNamesShareTheOverflowBudget) {
  BudgetRegistry r;
  std::set<RetryBudget*> seen;
  for (size_t i = 0; i < BudgetRegistry::kSlots; ++i) seen.insert(&r.get("svc-" + std::to_string(i)));
  EXPECT_EQ(seen.size(), BudgetRegistry::kSlots);
  RetryBudget* a = &r.get("one-too-many");
  RetryBudget* b = &r.get("two-too-many");
  EXPECT_EQ(a, b);
  EXPECT_EQ(seen.count(a), 0u);
  EXPECT_EQ(&r.get("svc-7"), &r.get("svc-7"));  // the first ones are still found
}

TEST(BudgetRegistryTest, ConcurrentLookupsOfOneNameAgree) {
  BudgetRegistry r;
  constexpr int kThreads = 8;
  std::vector<RetryBudget*> got(kThreads * 64);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 64; ++i) got[t * 64 + i] = &r.get("svc-" + std::to_string(i));
    });
  }
  for (auto& t : threads) t.join();
  for (int t = 1; t < kThreads; ++t) {
    for (int i = 0; i < 64; ++i) EXPECT_EQ(got[t * 64 + i], got[i]);
  }
}

}  // namespace
}  // namespace mulligan::retry
