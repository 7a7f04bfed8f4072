// The headers each upstream attempt carries (DESIGN.md "Deadlines", "Retry rules").
#include "sidecar/retry/attempt_headers.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "sidecar/retry/retry_state.h"

namespace mulligan::retry {
namespace {

constexpr int64_t kMs = 1000;
constexpr int64_t kS = 1000 * kMs;
constexpr int64_t kStart = 50 * kS;

pfc::EffectivePolicy policy(int64_t request_timeout_us, int64_t per_try_us = 0) {
  pfc::EffectivePolicy p = pfc::builtinDefaults();
  p.request_timeout_us = request_timeout_us;
  p.retry.per_try_timeout_us = per_try_us;
  return p;
}

std::vector<std::string> lines(const AttemptHeaders& h) {
  std::vector<std::string> out;
  for (HeaderField f : h) out.push_back(std::string(f.name) + ": " + std::string(f.value));
  return out;
}

using ::testing::ElementsAre;

TEST(AttemptHeadersTest, FirstHttpAttemptCarriesCountBudgetAndExpectedTimeout) {
  pfc::EffectivePolicy p = policy(15 * kS);
  Deadline d = computeDeadline(kStart, p, nullptr, nullptr);
  EXPECT_THAT(
      lines(attemptHeaders(d, p, kStart, 1, false)),
      ElementsAre("x-envoy-attempt-count: 1", "x-timeout-budget: 15000", "x-envoy-expected-rq-timeout-ms: 15000"));
}

TEST(AttemptHeadersTest, GrpcRetryCarriesPreviousAttemptsAndRewrittenGrpcTimeout) {
  pfc::EffectivePolicy p = policy(15 * kS);
  Deadline d = computeDeadline(kStart, p, "2S", nullptr);
  AttemptHeaders h = attemptHeaders(d, p, kStart + 500 * kMs + 1, 3, true);
  EXPECT_THAT(lines(h),
              ElementsAre("x-envoy-attempt-count: 3", "grpc-previous-rpc-attempts: 2", "grpc-timeout: 1499999u",
                          "x-timeout-budget: 1500", "x-envoy-expected-rq-timeout-ms: 1500"));
}

TEST(AttemptHeadersTest, ConnectCallCarriesConnectTimeoutMsRoundedUp) {
  pfc::EffectivePolicy p = policy(15 * kS);
  Deadline d = computeDeadline(kStart, p, nullptr, nullptr, "2000");
  AttemptHeaders h = attemptHeaders(d, p, kStart + 500 * kMs + 1, 2, false, true);
  EXPECT_THAT(lines(h), ElementsAre("x-envoy-attempt-count: 2", "x-timeout-budget: 1500", "connect-timeout-ms: 1500",
                                    "x-envoy-expected-rq-timeout-ms: 1500"));
  // Never 0: a sliver left is 1 ms.
  EXPECT_EQ(attemptHeaders(d, p, kStart + 2 * kS - 10, 1, false, true).find(kConnectTimeoutHeader), "1");
  // Not a Connect call, or propagate off: none.
  EXPECT_FALSE(attemptHeaders(d, p, kStart, 1, false, false).find(kConnectTimeoutHeader));
  p.deadline.propagate = false;
  EXPECT_FALSE(attemptHeaders(d, p, kStart, 1, false, true).find(kConnectTimeoutHeader));
}

TEST(AttemptHeadersTest, FirstGrpcAttemptHasNoPreviousAttemptsHeader) {
  pfc::EffectivePolicy p = policy(15 * kS);
  Deadline d = computeDeadline(kStart, p, nullptr, nullptr);
  AttemptHeaders h = attemptHeaders(d, p, kStart, 1, true);
  EXPECT_FALSE(h.find(kGrpcPreviousAttemptsHeader));
  EXPECT_EQ(h.find(kGrpcTimeoutHeader), "15000000u");
}

TEST(AttemptHeadersTest, GrpcTimeoutSubtractsTheOffsetButTheOthersDoNot) {
  pfc::EffectivePolicy p = policy(1 * kS);
  p.deadline.grpc_timeout_offset_us = 100 * kMs;
  Deadline d = computeDeadline(kStart, p, nullptr, nullptr);
  AttemptHeaders h = attemptHeaders(d, p, kStart, 1, true);
  EXPECT_EQ(h.find(kGrpcTimeoutHeader), "900000u");
  EXPECT_EQ(h.find(kTimeoutBudgetHeader), "1000");
  EXPECT_EQ(h.find(kExpectedRqTimeoutHeader), "1000");
}

TEST(AttemptHeadersTest, NeverSendsZeroEvenWhenNothingIsLeft) {
  pfc::EffectivePolicy p = policy(1 * kS);
  p.deadline.grpc_timeout_offset_us = 2 * kS;
  Deadline d = computeDeadline(kStart, p, nullptr, nullptr);
  AttemptHeaders h = attemptHeaders(d, p, kStart + 1 * kS + 7, 2, true);  // 7 us past
  EXPECT_EQ(h.find(kGrpcTimeoutHeader), "1000u");
  EXPECT_EQ(h.find(kTimeoutBudgetHeader), "1");
  EXPECT_EQ(h.find(kExpectedRqTimeoutHeader), "1");
}

TEST(AttemptHeadersTest, MillisecondsAreRoundedUp) {
  pfc::EffectivePolicy p = policy(1 * kS);
  Deadline d = computeDeadline(kStart, p, nullptr, nullptr);
  AttemptHeaders h = attemptHeaders(d, p, kStart + 765'433, 1, false);  // 234.567 ms left
  EXPECT_EQ(h.find(kTimeoutBudgetHeader), "235");
  EXPECT_EQ(h.find(kExpectedRqTimeoutHeader), "235");
}

TEST(AttemptHeadersTest, ExpectedRqTimeoutIsTheSmallerOfPerTryAndWhatIsLeft) {
  pfc::EffectivePolicy p = policy(1 * kS, 200 * kMs);
  Deadline d = computeDeadline(kStart, p, nullptr, nullptr);
  AttemptHeaders h = attemptHeaders(d, p, kStart, 1, false);
  EXPECT_EQ(h.find(kTimeoutBudgetHeader), "1000");
  EXPECT_EQ(h.find(kExpectedRqTimeoutHeader), "200");
  h = attemptHeaders(d, p, kStart + 900 * kMs, 2, false);
  EXPECT_EQ(h.find(kExpectedRqTimeoutHeader), "100");
}

// addNumber writes one digit without a conversion and the expected timeout
// copies the budget's digits when they are the same number: every width and
// both sides of each shortcut give what formatting the number gives.
TEST(AttemptHeadersTest, NumbersOfEveryWidthAroundTheShortcuts) {
  for (uint32_t n : {1u, 2u, 9u, 10u, 11u, 99u, 100u, 12345u}) {
    pfc::EffectivePolicy p = policy(15 * kS);
    Deadline d = computeDeadline(kStart, p, nullptr, nullptr);
    AttemptHeaders h = attemptHeaders(d, p, kStart, n, true);
    EXPECT_EQ(h.find(kAttemptCountHeader), std::to_string(n));
    if (n > 1) {
      EXPECT_EQ(h.find(kGrpcPreviousAttemptsHeader), std::to_string(n - 1));
    }
  }
  for (int64_t left_us : {int64_t{1}, 999 * kMs, 1000 * kMs, 9 * kMs, 9 * kMs + 1, 10 * kMs, 123'456'789 * kMs}) {
    for (int64_t per_try_us : {int64_t{0}, left_us, left_us - 1, left_us + 1, 5 * kMs}) {
      pfc::EffectivePolicy p = policy(left_us, per_try_us > 0 ? per_try_us : 0);
      Deadline d = computeDeadline(kStart, p, nullptr, nullptr);
      AttemptHeaders h = attemptHeaders(d, p, kStart, 1, false);
      int64_t expected = per_try_us > 0 && per_try_us < left_us ? per_try_us : left_us;
      EXPECT_EQ(h.find(kTimeoutBudgetHeader), std::to_string(ceilMs(left_us))) << left_us << " " << per_try_us;
      EXPECT_EQ(h.find(kExpectedRqTimeoutHeader), std::to_string(ceilMs(expected))) << left_us << " " << per_try_us;
    }
  }
}

TEST(AttemptHeadersTest, PerTryTimeoutAloneSetsOnlyTheExpectedTimeout) {
  pfc::EffectivePolicy p = policy(0, 300 * kMs);
  Deadline d = computeDeadline(kStart, p, nullptr, nullptr);
  EXPECT_THAT(lines(attemptHeaders(d, p, kStart, 1, true)),
              ElementsAre("x-envoy-attempt-count: 1", "x-envoy-expected-rq-timeout-ms: 300"));
}

TEST(AttemptHeadersTest, NoDeadlineAtAllSetsNoTimingHeader) {
  pfc::EffectivePolicy p = policy(0);
  Deadline d = computeDeadline(kStart, p, nullptr, nullptr);
  EXPECT_THAT(lines(attemptHeaders(d, p, kStart, 2, true)),
              ElementsAre("x-envoy-attempt-count: 2", "grpc-previous-rpc-attempts: 1"));
}

TEST(AttemptHeadersTest, PropagateOffSetsOnlyTheAttemptCounters) {
  pfc::EffectivePolicy p = policy(1 * kS, 100 * kMs);
  p.deadline.propagate = 0;
  Deadline d = computeDeadline(kStart, p, "500m", nullptr);
  EXPECT_THAT(lines(attemptHeaders(d, p, kStart, 2, true)),
              ElementsAre("x-envoy-attempt-count: 2", "grpc-previous-rpc-attempts: 1"));
}

TEST(AttemptHeadersTest, BuiltFromARetryStateUsesItsAttemptCountAndProtocol) {
  pfc::EffectivePolicy p = policy(2 * kS);
  p.retry.grpc_codes = pfc::grpcBit(pfc::GrpcCode::kUnavailable);
  Deadline d = computeDeadline(kStart, p, nullptr, nullptr);
  RetryState rs(p, RequestFacts{"POST", true, false, std::nullopt}, d);
  rs.attemptStarted();
  rs.attemptStarted();
  AttemptHeaders h = attemptHeaders(rs, kStart + 1 * kS);
  EXPECT_EQ(h.find(kAttemptCountHeader), "2");
  EXPECT_EQ(h.find(kGrpcPreviousAttemptsHeader), "1");
  EXPECT_EQ(h.find(kGrpcTimeoutHeader), "1000000u");
}

TEST(AttemptHeadersTest, CopiesOwnTheirValues) {
  pfc::EffectivePolicy p = policy(15 * kS);
  Deadline d = computeDeadline(kStart, p, nullptr, nullptr);
  auto original = std::make_unique<AttemptHeaders>(attemptHeaders(d, p, kStart, 4, false));
  AttemptHeaders copy = *original;
  original.reset();
  EXPECT_EQ(copy.size(), 3u);
  EXPECT_EQ(copy[0].name, "x-envoy-attempt-count");
  EXPECT_EQ(copy[0].value, "4");
  EXPECT_EQ(copy.find(kTimeoutBudgetHeader), "15000");
}

TEST(AttemptHeadersTest, LargestValuesFit) {
  AttemptHeaders h;
  h.addNumber(kTimeoutBudgetHeader, INT64_MAX);
  h.addNumber(kAttemptCountHeader, 0);
  EXPECT_EQ(h.find(kTimeoutBudgetHeader), "9223372036854775807");
  EXPECT_EQ(h.find(kAttemptCountHeader), "0");
  EXPECT_FALSE(h.find("x-other"));
}

}  // namespace
}  // namespace mulligan::retry
