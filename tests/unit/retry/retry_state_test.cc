#include "sidecar/retry/retry_state.h"

#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <thread>
#include <vector>

namespace mulligan::retry {
namespace {

constexpr int64_t kMs = 1000;
constexpr int64_t kS = 1000 * kMs;
constexpr int64_t kUnixNow = 1'800'000'000;

// Scripted randomness: returns the queued values in order, then 0.5.
class FakeRandom : public Random {
 public:
  explicit FakeRandom(std::deque<double> v = {}) : values_(std::move(v)) {}
  double uniform() override {
    if (values_.empty()) return 0.5;
    double v = values_.front();
    values_.pop_front();
    return v;
  }

 private:
  std::deque<double> values_;
};

Outcome response(int status, const std::string* retry_after = nullptr) {
  Outcome o;
  o.kind = OutcomeKind::kResponse;
  o.status = status;
  o.retry_after = retry_after;
  return o;
}

Outcome failure(OutcomeKind k) {
  Outcome o;
  o.kind = k;
  return o;
}

class RetryStateTest : public ::testing::Test {
 protected:
  RetryStateTest() : policy_(pfc::builtinDefaults()) {
    policy_.retry.num_retries = 2;
    policy_.request_timeout_us = 10 * kS;
  }
  Decision decide(RetryState& s, const Outcome& o, int64_t now = 0, bool started = false, bool replayable = true) {
    Deadline d = computeDeadline(0, policy_, nullptr, nullptr);
    return s.decide(o, now, kUnixNow, d, started, replayable, budget_, random_);
  }
  RetryState state(const char* method = "GET", bool key = false, bool grpc = false) {
    RetryState s(&policy_, method, grpc, key);
    s.attemptStarted();
    return s;
  }

  pfc::EffectivePolicy policy_;
  RetryBudget budget_;
  FakeRandom random_;
};

TEST_F(RetryStateTest, Gateway503RetriedThenLastResponseReturnedWhenRetriesRunOut) {
  RetryState s = state();
  EXPECT_TRUE(decide(s, response(503)).retry);
  s.attemptStarted();
  EXPECT_TRUE(decide(s, response(503)).retry);
  s.attemptStarted();
  Decision d = decide(s, response(503));
  EXPECT_FALSE(d.retry);
  EXPECT_EQ(d.refusal, Refusal::kRetriesExhausted);
}

TEST_F(RetryStateTest, EachConditionIsMatchedOnlyWhenNamed) {
  policy_.retry.conditions = 0;
  std::memset(policy_.retry.status_bits, 0, sizeof policy_.retry.status_bits);
  RetryState s = state();
  for (OutcomeKind k : {OutcomeKind::kConnectFailure, OutcomeKind::kReset, OutcomeKind::kRefusedStream,
                        OutcomeKind::kPerTryTimeout}) {
    EXPECT_FALSE(s.wouldRetry(failure(k)));
  }
  EXPECT_FALSE(s.wouldRetry(response(503)));
  policy_.retry.conditions = pfc::conditionBit(pfc::RetryCondition::kConnectFailure) |
                             pfc::conditionBit(pfc::RetryCondition::kReset) |
                             pfc::conditionBit(pfc::RetryCondition::kRefusedStream) |
                             pfc::conditionBit(pfc::RetryCondition::kPerTryTimeout);
  for (OutcomeKind k : {OutcomeKind::kConnectFailure, OutcomeKind::kReset, OutcomeKind::kRefusedStream,
                        OutcomeKind::kPerTryTimeout}) {
    EXPECT_TRUE(s.wouldRetry(failure(k))) << outcomeName(k);
  }
  policy_.retry.conditions = pfc::conditionBit(pfc::RetryCondition::k5xx);
  EXPECT_TRUE(s.wouldRetry(response(500)));
  EXPECT_TRUE(s.wouldRetry(response(599)));
  EXPECT_FALSE(s.wouldRetry(response(429)));
  policy_.retry.conditions = pfc::conditionBit(pfc::RetryCondition::kGatewayError);
  EXPECT_TRUE(s.wouldRetry(response(502)));
  EXPECT_FALSE(s.wouldRetry(response(500)));
  policy_.retry.conditions = pfc::conditionBit(pfc::RetryCondition::kRetriable4xx);
  EXPECT_TRUE(s.wouldRetry(response(409)));
  policy_.retry.conditions = 0;
  policy_.retry.addStatus(429);
  EXPECT_TRUE(s.wouldRetry(response(429)));
  EXPECT_FALSE(s.wouldRetry(response(200)));
}

TEST_F(RetryStateTest, PostIsRetriedOnlyWithKeyOrWhenItNeverReachedTheUpstream) {
  RetryState post = state("POST");
  Decision d = decide(post, response(503));
  EXPECT_FALSE(d.retry);
  EXPECT_EQ(d.refusal, Refusal::kIdempotency);
  EXPECT_EQ(decide(post, failure(OutcomeKind::kReset)).refusal, Refusal::kIdempotency);
  EXPECT_TRUE(decide(post, failure(OutcomeKind::kConnectFailure)).retry);
  EXPECT_TRUE(decide(post, failure(OutcomeKind::kRefusedStream)).retry);
  RetryState keyed = state("POST", /*key=*/true);
  EXPECT_TRUE(decide(keyed, response(503)).retry);
  for (const char* m : {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"}) {
    RetryState s = state(m);
    EXPECT_TRUE(decide(s, response(503)).retry) << m;
  }
  RetryState patch = state("PATCH");
  EXPECT_EQ(decide(patch, response(503)).refusal, Refusal::kIdempotency);
}

TEST_F(RetryStateTest, NothingRetriesOnceTheResponseStartedOrTheBodyCannotBeReplayed) {
  RetryState s = state();
  EXPECT_EQ(decide(s, response(503), 0, /*started=*/true).refusal, Refusal::kResponseStarted);
  EXPECT_EQ(decide(s, response(503), 0, false, /*replayable=*/false).refusal, Refusal::kBodyTooLarge);
}

TEST_F(RetryStateTest, BackoffIsFullJitterWithExactValuesForScriptedRandomness) {
  pfc::RetryPolicy r = policy_.retry;
  r.backoff_base_us = 25 * kMs;
  r.backoff_max_us = 250 * kMs;
  EXPECT_EQ(backoffUs(r, 1, 0.5), 12'500);
  EXPECT_EQ(backoffUs(r, 2, 0.5), 25'000);
  EXPECT_EQ(backoffUs(r, 3, 0.5), 50'000);
  EXPECT_EQ(backoffUs(r, 5, 0.999), 249'750);   // capped at max
  EXPECT_EQ(backoffUs(r, 60, 0.5), 125'000);    // no overflow however many retries
  EXPECT_EQ(backoffUs(r, 1, 0.0), 0);
  RetryState s = state();
  random_ = FakeRandom({0.25});
  EXPECT_EQ(decide(s, response(503)).wait_us, 6'250);
}

TEST_F(RetryStateTest, RetryAfterIsHonouredOrRefusesWhenTooLongOrPastTheDeadline) {
  std::string two = "2", big = "60";
  RetryState s = state();
  Decision d = decide(s, response(503, &two));
  EXPECT_TRUE(d.retry);
  EXPECT_EQ(d.wait_us, 2 * kS);
  EXPECT_EQ(decide(s, response(503, &big)).refusal, Refusal::kPushback);  // > retry_after_max 5s
  policy_.request_timeout_us = 1 * kS;
  EXPECT_EQ(decide(s, response(503, &two)).refusal, Refusal::kDeadline);
  policy_.request_timeout_us = 10 * kS;
  policy_.retry.retry_after = 0;  // off: plain backoff
  EXPECT_LT(decide(s, response(503, &big)).wait_us, 250 * kMs);
  EXPECT_EQ(parseRetryAfterUs("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 - 3), 3 * kS);
  EXPECT_EQ(parseRetryAfterUs("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 + 10), 0);
  EXPECT_FALSE(parseRetryAfterUs("soon", 0));
  EXPECT_FALSE(parseRetryAfterUs("-1", 0));
}

TEST_F(RetryStateTest, NoAttemptWithLessThanMinAttemptBudgetLeft) {
  policy_.request_timeout_us = 100 * kMs;
  policy_.deadline.min_attempt_budget_us = 5 * kMs;
  random_ = FakeRandom({0.0});
  RetryState s = state();
  EXPECT_TRUE(decide(s, response(503), 90 * kMs).retry);
  random_ = FakeRandom({0.0});
  EXPECT_EQ(decide(s, response(503), 96 * kMs).refusal, Refusal::kDeadline);
}

TEST_F(RetryStateTest, GrpcCallsRetryOnlyOnNamedGrpcCodesAndHonourPushback) {
  policy_.retry.grpc_codes = pfc::grpcBit(pfc::GrpcCode::kUnavailable);
  RetryState s = state("POST", false, /*grpc=*/true);
  Outcome o = response(200);
  o.grpc_status = 14;
  EXPECT_TRUE(decide(s, o).retry);
  o.grpc_status = 13;
  EXPECT_EQ(decide(s, o).refusal, Refusal::kNotRetriable);
  EXPECT_FALSE(s.wouldRetry(response(503)));  // HTTP status names do not opt gRPC in
  o.grpc_status = 14;
  std::string pushback = "150", negative = "-1";
  o.grpc_pushback = &pushback;
  EXPECT_EQ(decide(s, o).wait_us, 150 * kMs);
  o.grpc_pushback = &negative;
  EXPECT_EQ(decide(s, o).refusal, Refusal::kPushback);
  EXPECT_EQ(o.label(), "unavailable");
}

TEST(RetryBudgetTest, AllowsRatioOfRequestsPlusPerSecondFloorOverTheWindow) {
  pfc::BudgetPolicy p{0.2, 1, 0, 10 * kS};
  RetryBudget b;
  int64_t now = 1000 * kS;
  for (int i = 0; i < 100; ++i) b.recordRequest(now);
  int allowed = 0;
  while (b.tryAcquireRetry(now, p) && allowed < 1000) ++allowed;
  EXPECT_EQ(allowed, 30);  // 0.2 * 100 + 1/s * 10 s
  auto snap = b.snapshot(now, p);
  EXPECT_EQ(snap.requests, 100u);
  EXPECT_EQ(snap.retries, 30u);
  // Eleven seconds later the window has slid past all of it.
  EXPECT_TRUE(b.tryAcquireRetry(now + 11 * kS, p));
  EXPECT_EQ(b.snapshot(now + 11 * kS, p).requests, 0u);
}

TEST(RetryBudgetTest, RefusedStreamsAndConnectFailuresDoNotSpendBudget) {
  pfc::EffectivePolicy policy = pfc::builtinDefaults();
  policy.budget = pfc::BudgetPolicy{0.0, 0, 0, 10 * kS};  // nothing allowed
  RetryBudget b;
  FakeRandom rnd;
  RetryState s(&policy, "GET", false, false);
  s.attemptStarted();
  Deadline d = computeDeadline(0, policy, nullptr, nullptr);
  EXPECT_EQ(s.decide(response(503), 0, kUnixNow, d, false, true, b, rnd).refusal, Refusal::kBudget);
  EXPECT_TRUE(s.decide(failure(OutcomeKind::kConnectFailure), 0, kUnixNow, d, false, true, b, rnd).retry);
  EXPECT_TRUE(s.decide(failure(OutcomeKind::kRefusedStream), 0, kUnixNow, d, false, true, b, rnd).retry);
}

TEST(RetryBudgetTest, SharedByThreadsWithinTheDocumentedOvershoot) {
  pfc::BudgetPolicy p{0.1, 0, 0, 10 * kS};
  RetryBudget b;
  int64_t now = 5000 * kS;
  for (int i = 0; i < 1000; ++i) b.recordRequest(now);
  std::atomic<int> granted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) granted += b.tryAcquireRetry(now, p) ? 1 : 0;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_GE(granted.load(), 100);
  EXPECT_LE(granted.load(), 100 + 3);  // at most (threads - 1) over
}

TEST(BudgetRegistryTest, OneBudgetPerServiceName) {
  BudgetRegistry reg;
  EXPECT_EQ(&reg.get("orders"), &reg.get("orders"));
  EXPECT_NE(&reg.get("orders"), &reg.get("payments"));
  EXPECT_EQ(&reg.get(""), &reg.get(""));
}

}  // namespace
}  // namespace mulligan::retry
