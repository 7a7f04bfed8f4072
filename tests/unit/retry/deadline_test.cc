// The call's deadline and per-attempt timeouts (DESIGN.md "Deadlines").
#include "sidecar/retry/deadline.h"

#include <gtest/gtest.h>

#include <string>

namespace mulligan::retry {
namespace {

constexpr int64_t kMs = 1000;
constexpr int64_t kS = 1000 * kMs;
constexpr int64_t kStart = 7 * kS;

pfc::EffectivePolicy policy(int64_t request_timeout_us, int64_t per_try_us = 0) {
  pfc::EffectivePolicy p = pfc::builtinDefaults();
  p.request_timeout_us = request_timeout_us;
  p.retry.per_try_timeout_us = per_try_us;
  return p;
}

TEST(DeadlineTest, RequestTimeoutCountsFromWhenHeadersArrived) {
  Deadline d = computeDeadline(kStart, policy(500 * kMs), nullptr, nullptr);
  EXPECT_EQ(d.start_us, kStart);
  EXPECT_EQ(d.deadline_us, kStart + 500 * kMs);
  EXPECT_EQ(d.source, DeadlineSource::kRequestTimeout);
  EXPECT_EQ(d.budgetUs(), 500 * kMs);
  EXPECT_EQ(d.remaining(kStart + 200 * kMs), 300 * kMs);
  EXPECT_FALSE(d.expired(kStart + 499 * kMs));
  EXPECT_TRUE(d.expired(kStart + 500 * kMs));
  EXPECT_EQ(d.remaining(kStart + 600 * kMs), -100 * kMs);
}

TEST(DeadlineTest, ZeroRequestTimeoutAndNothingInboundMeansNoDeadline) {
  Deadline d = computeDeadline(kStart, policy(0), nullptr, nullptr);
  EXPECT_TRUE(d.none());
  EXPECT_EQ(d.source, DeadlineSource::kNone);
  EXPECT_EQ(d.remaining(kStart + 100 * kS), kNoDeadline);
  EXPECT_EQ(d.budgetUs(), -1);
  EXPECT_FALSE(d.expired(INT64_MAX - 1));
}

TEST(DeadlineTest, EarliestOfRequestTimeoutGrpcTimeoutAndTimeoutBudget) {
  Deadline d = computeDeadline(kStart, policy(500 * kMs), "300m", "200");
  EXPECT_EQ(d.deadline_us, kStart + 200 * kMs);
  EXPECT_EQ(d.source, DeadlineSource::kTimeoutBudget);
  EXPECT_TRUE(d.fromInbound());
  d = computeDeadline(kStart, policy(500 * kMs), "300m", "400");
  EXPECT_EQ(d.deadline_us, kStart + 300 * kMs);
  EXPECT_EQ(d.source, DeadlineSource::kGrpcTimeout);
  d = computeDeadline(kStart, policy(100 * kMs), "300m", "400");
  EXPECT_EQ(d.deadline_us, kStart + 100 * kMs);
  EXPECT_EQ(d.source, DeadlineSource::kRequestTimeout);
  EXPECT_FALSE(d.fromInbound());
}

TEST(DeadlineTest, InboundNeverExtendsThePolicy) {
  Deadline d = computeDeadline(kStart, policy(500 * kMs), "9S", "9000");
  EXPECT_EQ(d.deadline_us, kStart + 500 * kMs);
  EXPECT_EQ(d.source, DeadlineSource::kRequestTimeout);
}

TEST(DeadlineTest, InboundAloneSetsADeadlineWhenThePolicyHasNone) {
  EXPECT_EQ(computeDeadline(kStart, policy(0), "2S", nullptr).deadline_us, kStart + 2 * kS);
  EXPECT_EQ(computeDeadline(kStart, policy(0), nullptr, "750").deadline_us, kStart + 750 * kMs);
}

TEST(DeadlineTest, AcceptInboundOffIgnoresBothHeaders) {
  pfc::EffectivePolicy p = policy(500 * kMs);
  p.deadline.accept_inbound = 0;
  Deadline d = computeDeadline(kStart, p, "100m", "100");
  EXPECT_EQ(d.deadline_us, kStart + 500 * kMs);
  p.request_timeout_us = 0;
  EXPECT_TRUE(computeDeadline(kStart, p, "100m", "100").none());
}

TEST(DeadlineTest, MalformedInboundValuesAreIgnored) {
  for (const char* bad_grpc : {"5s", "", "1.5S", "123456789m", "0m"}) {
    EXPECT_EQ(computeDeadline(kStart, policy(500 * kMs), bad_grpc, nullptr).deadline_us, kStart + 500 * kMs)
        << bad_grpc;
  }
  for (const char* bad_budget : {"12ms", "-5", "", "1.5", "0", "0x10"}) {
    EXPECT_EQ(computeDeadline(kStart, policy(500 * kMs), nullptr, bad_budget).deadline_us, kStart + 500 * kMs)
        << bad_budget;
  }
}

TEST(DeadlineTest, TiesGoToTheRequestTimeout) {
  Deadline d = computeDeadline(kStart, policy(300 * kMs), "300m", "300");
  EXPECT_EQ(d.source, DeadlineSource::kRequestTimeout);
}

TEST(DeadlineTest, StdStringPointersFromAHeaderLookupWork) {
  std::string grpc = "40m";
  const std::string* missing = nullptr;
  Deadline d = computeDeadline(kStart, policy(500 * kMs), &grpc, missing);
  EXPECT_EQ(d.deadline_us, kStart + 40 * kMs);
}

TEST(DeadlineTest, HugeInboundValuesDoNotOverflow) {
  Deadline d = computeDeadline(INT64_MAX - kS, policy(0), "99999999H", nullptr);
  EXPECT_FALSE(d.none());
  EXPECT_EQ(d.deadline_us, kNoDeadline - 1);
}

TEST(TimeoutBudgetTest, ParsesDecimalMilliseconds) {
  EXPECT_EQ(parseTimeoutBudgetMs("250"), 250);
  EXPECT_EQ(parseTimeoutBudgetMs(" 250\t"), 250);
  EXPECT_EQ(parseTimeoutBudgetMs("0007"), 7);
  EXPECT_EQ(parseTimeoutBudgetMs("99999999999999999999999"), kMaxTimeoutBudgetMs);
  EXPECT_FALSE(parseTimeoutBudgetMs("0"));
  EXPECT_FALSE(parseTimeoutBudgetMs("2.5"));
  EXPECT_FALSE(parseTimeoutBudgetMs("+5"));
  EXPECT_FALSE(parseTimeoutBudgetMs("5 5"));
}

TEST(CeilMsTest, RoundsUpAndNeverReturnsZero) {
  EXPECT_EQ(ceilMs(-5), 1);
  EXPECT_EQ(ceilMs(0), 1);
  EXPECT_EQ(ceilMs(1), 1);
  EXPECT_EQ(ceilMs(1000), 1);
  EXPECT_EQ(ceilMs(1001), 2);
  EXPECT_EQ(ceilMs(1999), 2);
  EXPECT_EQ(ceilMs(2000), 2);
  EXPECT_EQ(ceilMs(kNoDeadline), 9'223'372'036'854'776);
}

TEST(AttemptTimeoutTest, PerTryShorterThanWhatIsLeftFiresAsPerTry) {
  Deadline d = computeDeadline(kStart, policy(1 * kS, 200 * kMs), nullptr, nullptr);
  AttemptTimeout t = attemptTimeout(d, policy(1 * kS, 200 * kMs), kStart + 100 * kMs);
  EXPECT_EQ(t.us, 200 * kMs);
  EXPECT_EQ(t.kind, TimeoutKind::kPerTry);
}

TEST(AttemptTimeoutTest, PerTryAtOrAboveWhatIsLeftIsWhatIsLeftAndFiresAsRequest) {
  pfc::EffectivePolicy p = policy(1 * kS, 200 * kMs);
  Deadline d = computeDeadline(kStart, p, nullptr, nullptr);
  AttemptTimeout t = attemptTimeout(d, p, kStart + 850 * kMs);  // 150 ms left
  EXPECT_EQ(t.us, 150 * kMs);
  EXPECT_EQ(t.kind, TimeoutKind::kRequest);
  t = attemptTimeout(d, p, kStart + 800 * kMs);  // exactly 200 ms left: the call ends
  EXPECT_EQ(t.us, 200 * kMs);
  EXPECT_EQ(t.kind, TimeoutKind::kRequest);
}

TEST(AttemptTimeoutTest, WithoutPerTryTheRequestDeadlineBounds) {
  pfc::EffectivePolicy p = policy(1 * kS);
  Deadline d = computeDeadline(kStart, p, nullptr, nullptr);
  AttemptTimeout t = attemptTimeout(d, p, kStart + 300 * kMs);
  EXPECT_EQ(t.us, 700 * kMs);
  EXPECT_EQ(t.kind, TimeoutKind::kRequest);
  t = attemptTimeout(d, p, kStart + 2 * kS);  // already past: 0, not negative
  EXPECT_EQ(t.us, 0);
  EXPECT_EQ(t.kind, TimeoutKind::kRequest);
}

TEST(AttemptTimeoutTest, NoDeadlineLeavesOnlyThePerTryTimeout) {
  pfc::EffectivePolicy p = policy(0, 300 * kMs);
  Deadline none = computeDeadline(kStart, p, nullptr, nullptr);
  AttemptTimeout t = attemptTimeout(none, p, kStart);
  EXPECT_EQ(t.us, 300 * kMs);
  EXPECT_EQ(t.kind, TimeoutKind::kPerTry);
  p.retry.per_try_timeout_us = 0;
  t = attemptTimeout(none, p, kStart);
  EXPECT_EQ(t.us, kNoDeadline);
  EXPECT_FALSE(t.kind.has_value());
}

TEST(EnoughTimeForAttemptTest, MinAttemptBudgetIsInclusive) {
  pfc::EffectivePolicy p = policy(100 * kMs);  // min_attempt_budget 5 ms
  Deadline d = computeDeadline(kStart, p, nullptr, nullptr);
  EXPECT_TRUE(enoughTimeForAttempt(d, p, kStart + 95 * kMs));
  EXPECT_FALSE(enoughTimeForAttempt(d, p, kStart + 95 * kMs + 1));
}

TEST(EnoughTimeForAttemptTest, TheWaitComesOutOfWhatIsLeft) {
  pfc::EffectivePolicy p = policy(100 * kMs);
  Deadline d = computeDeadline(kStart, p, nullptr, nullptr);
  EXPECT_TRUE(enoughTimeForAttempt(d, p, kStart, 95 * kMs));
  EXPECT_FALSE(enoughTimeForAttempt(d, p, kStart, 96 * kMs));
  p.deadline.min_attempt_budget_us = 0;
  EXPECT_TRUE(enoughTimeForAttempt(d, p, kStart, 100 * kMs - 1));
  EXPECT_FALSE(enoughTimeForAttempt(d, p, kStart, 100 * kMs));  // nothing left after the wait
}

TEST(EnoughTimeForAttemptTest, AlwaysWithoutADeadline) {
  pfc::EffectivePolicy p = policy(0);
  Deadline d = computeDeadline(kStart, p, nullptr, nullptr);
  EXPECT_TRUE(enoughTimeForAttempt(d, p, INT64_MAX / 2, INT64_MAX / 2));
}

TEST(DeadlineNamesTest, TimeoutKindsAndSources) {
  EXPECT_EQ(timeoutKindName(TimeoutKind::kRequest), "request");
  EXPECT_EQ(timeoutKindName(TimeoutKind::kPerTry), "per-try");
  EXPECT_EQ(timeoutKindName(TimeoutKind::kConnect), "connect");
  EXPECT_EQ(timeoutKindName(TimeoutKind::kRead), "read");
  EXPECT_EQ(timeoutMessage(TimeoutKind::kRequest), "upstream request timeout");
  EXPECT_EQ(timeoutMessage(TimeoutKind::kPerTry), "upstream per-try timeout");
  EXPECT_EQ(deadlineSourceName(DeadlineSource::kNone), "none");
  EXPECT_EQ(deadlineSourceName(DeadlineSource::kRequestTimeout), "request-timeout");
  EXPECT_EQ(deadlineSourceName(DeadlineSource::kGrpcTimeout), "grpc-timeout");
  EXPECT_EQ(deadlineSourceName(DeadlineSource::kTimeoutBudget), "x-timeout-budget");
}

TEST(DeadlineTest, ConnectTimeoutMsJoinsTheDeadlineAsGrpcTimeoutDoes) {
  Deadline d = computeDeadline(kStart, policy(500 * kMs), nullptr, nullptr, "250");
  EXPECT_EQ(d.deadline_us, kStart + 250 * kMs);
  EXPECT_EQ(d.source, DeadlineSource::kConnectTimeout);
  EXPECT_TRUE(d.fromInbound());
  EXPECT_EQ(deadlineSourceName(d.source), "connect-timeout-ms");
  // Only shortens; the earliest wins.
  d = computeDeadline(kStart, policy(500 * kMs), nullptr, nullptr, "900");
  EXPECT_EQ(d.source, DeadlineSource::kRequestTimeout);
  d = computeDeadline(kStart, policy(500 * kMs), nullptr, "100", "250");
  EXPECT_EQ(d.source, DeadlineSource::kTimeoutBudget);
  // accept_inbound off: ignored.
  pfc::EffectivePolicy p = policy(500 * kMs);
  p.deadline.accept_inbound = false;
  EXPECT_EQ(computeDeadline(kStart, p, nullptr, nullptr, "250").source, DeadlineSource::kRequestTimeout);
}

TEST(DeadlineTest, ConnectTimeoutMsIsAtMostTenDigitsPositive) {
  EXPECT_EQ(parseConnectTimeoutMs("1"), 1);
  EXPECT_EQ(parseConnectTimeoutMs(" 9999999999 "), 9999999999);
  EXPECT_FALSE(parseConnectTimeoutMs("10000000000"));  // 11 digits
  EXPECT_FALSE(parseConnectTimeoutMs("0"));
  EXPECT_FALSE(parseConnectTimeoutMs("-5"));
  EXPECT_FALSE(parseConnectTimeoutMs("5s"));
  EXPECT_FALSE(parseConnectTimeoutMs(""));
}

}  // namespace
}  // namespace mulligan::retry
