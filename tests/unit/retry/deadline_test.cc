#include "sidecar/retry/deadline.h"

#include <gtest/gtest.h>

namespace mulligan::retry {
namespace {

constexpr int64_t kMs = 1000;
constexpr int64_t kS = 1000 * kMs;

TEST(GrpcTimeoutTest, ParsesEveryUnit) {
  EXPECT_EQ(parseGrpcTimeout("2H"), 2 * 3600 * kS);
  EXPECT_EQ(parseGrpcTimeout("3M"), 3 * 60 * kS);
  EXPECT_EQ(parseGrpcTimeout("5S"), 5 * kS);
  EXPECT_EQ(parseGrpcTimeout("250m"), 250 * kMs);
  EXPECT_EQ(parseGrpcTimeout("7u"), 7);
  EXPECT_EQ(parseGrpcTimeout("1500n"), 2);  // nanoseconds round up to whole µs
  EXPECT_EQ(parseGrpcTimeout("99999999S"), 99999999 * kS);
}

TEST(GrpcTimeoutTest, RejectsMalformedValues) {
  for (const char* bad : {"", "S", "5", "5s", "5 S", "-5S", "123456789S", "1.5S", "5SS", "0x5S"}) {
    EXPECT_FALSE(parseGrpcTimeout(bad).has_value()) << bad;
  }
}

TEST(GrpcTimeoutTest, FormatRoundsUpNeverBelowOneMillisecondAndFitsEightDigits) {
  EXPECT_EQ(formatGrpcTimeout(0), "1000u");  // never 0: at least 1 ms
  EXPECT_EQ(formatGrpcTimeout(-5), "1000u");
  EXPECT_EQ(formatGrpcTimeout(1500), "1500u");
  EXPECT_EQ(formatGrpcTimeout(99'999'999), "99999999u");
  EXPECT_EQ(formatGrpcTimeout(100'000'001), "100001m");  // coarser unit, rounded up
  EXPECT_EQ(formatGrpcTimeout(int64_t{200'000} * kS), "200000S");
  EXPECT_EQ(formatGrpcTimeout(int64_t{100'000'000} * kS + 1), "1666667M");
  for (int64_t us : {int64_t{1}, int64_t{999}, int64_t{123'456'789}, int64_t{99'999'999'999}}) {
    auto back = parseGrpcTimeout(formatGrpcTimeout(us));
    ASSERT_TRUE(back);
    EXPECT_GE(*back, std::max<int64_t>(us, 1000)) << us;  // never shortens the deadline
  }
}

pfc::EffectivePolicy policy(int64_t request_timeout_us, int64_t per_try_us = 0) {
  pfc::EffectivePolicy p = pfc::builtinDefaults();
  p.request_timeout_us = request_timeout_us;
  p.retry.per_try_timeout_us = per_try_us;
  return p;
}

TEST(DeadlineTest, EarliestOfRequestTimeoutGrpcTimeoutAndBudget) {
  std::string grpc = "300m", budget = "200";
  Deadline d = computeDeadline(1000, policy(500 * kMs), nullptr, nullptr);
  EXPECT_EQ(d.deadline_us, 1000 + 500 * kMs);
  EXPECT_FALSE(d.from_inbound);
  d = computeDeadline(1000, policy(500 * kMs), &grpc, nullptr);
  EXPECT_EQ(d.deadline_us, 1000 + 300 * kMs);
  EXPECT_TRUE(d.from_inbound);
  d = computeDeadline(1000, policy(500 * kMs), &grpc, &budget);
  EXPECT_EQ(d.deadline_us, 1000 + 200 * kMs);
  // A longer inbound value never extends the policy's timeout.
  std::string long_budget = "9000";
  d = computeDeadline(0, policy(500 * kMs), nullptr, &long_budget);
  EXPECT_EQ(d.deadline_us, 500 * kMs);
  // request_timeout = 0 means none; inbound alone sets it.
  d = computeDeadline(0, policy(0), nullptr, nullptr);
  EXPECT_TRUE(d.none());
  d = computeDeadline(0, policy(0), nullptr, &budget);
  EXPECT_EQ(d.deadline_us, 200 * kMs);
}

TEST(DeadlineTest, InboundIgnoredWhenNotAcceptedOrMalformed) {
  pfc::EffectivePolicy p = policy(500 * kMs);
  p.deadline.accept_inbound = 0;
  std::string budget = "100";
  EXPECT_EQ(computeDeadline(0, p, nullptr, &budget).deadline_us, 500 * kMs);
  std::string bad_grpc = "100", bad_budget = "-5";
  EXPECT_EQ(computeDeadline(0, policy(500 * kMs), &bad_grpc, &bad_budget).deadline_us, 500 * kMs);
}

TEST(DeadlineTest, AttemptTimeoutIsPerTryCappedByWhatIsLeft) {
  Deadline d = computeDeadline(0, policy(1 * kS), nullptr, nullptr);
  EXPECT_EQ(attemptTimeoutUs(d, policy(1 * kS, 300 * kMs), 0), 300 * kMs);
  EXPECT_EQ(attemptTimeoutUs(d, policy(1 * kS, 300 * kMs), 800 * kMs), 200 * kMs);
  EXPECT_EQ(attemptTimeoutUs(d, policy(1 * kS, 0), 100 * kMs), 900 * kMs);
  Deadline none = computeDeadline(0, policy(0), nullptr, nullptr);
  EXPECT_EQ(attemptTimeoutUs(none, policy(0, 0), 5), kNoDeadline);
}

TEST(DeadlineTest, HeadersCarryWhatIsLeftRoundedUpAndNeverZero) {
  pfc::EffectivePolicy p = policy(1 * kS, 300 * kMs);
  p.deadline.grpc_timeout_offset_us = 20 * kMs;
  Deadline d = computeDeadline(0, p, nullptr, nullptr);
  AttemptDeadlineHeaders h = attemptDeadlineHeaders(d, p, 400'500, true);  // 599.5 ms left
  EXPECT_EQ(h.timeout_budget, "600");
  EXPECT_EQ(h.expected_rq_timeout, "300");
  EXPECT_EQ(h.grpc_timeout, "579500u");  // minus the offset
  h = attemptDeadlineHeaders(d, p, 1 * kS - 10, false);  // 10 µs left
  EXPECT_EQ(h.timeout_budget, "1");
  EXPECT_EQ(h.expected_rq_timeout, "1");
  EXPECT_EQ(h.grpc_timeout, "");  // not a gRPC call
  p.deadline.propagate = 0;
  h = attemptDeadlineHeaders(d, p, 0, true);
  EXPECT_EQ(h.timeout_budget, "");
  EXPECT_EQ(h.expected_rq_timeout, "");
  EXPECT_EQ(h.grpc_timeout, "");
}

}  // namespace
}  // namespace mulligan::retry
