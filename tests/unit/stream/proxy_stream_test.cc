// ProxyStream driven by fake attempts and a fake downstream on a fake clock
// (as Envoy's router_test drives its router): what the engine decides after
// each outcome, and what the client gets.
#include "sidecar/stream/proxy_stream.h"

#include <gtest/gtest.h>

#include "tests/fakes/fake_stream.h"

namespace mulligan::proxy {
namespace {

using retry::OutcomeKind;
constexpr int64_t kMs = 1000;
constexpr int64_t kS = 1000 * kMs;

class ProxyStreamTest : public ::testing::Test {
 protected:
  ProxyStreamTest() : policy_(pfc::builtinDefaults()) {
    policy_.retry.conditions |= pfc::conditionBit(pfc::RetryCondition::kPerTryTimeout);
  }

  // Starts a GET (or a gRPC call) with the policy as it is now.
  ProxyStream& start(Protocol p = Protocol::kHttp1, bool grpc = false, HeaderList extra_headers = {},
                     std::string method = {}) {
    ctx_.setPolicy(policy_);
    down_ = std::make_unique<FakeDownstream>(ctx_, p, *net::Address::parseNumeric("10.0.0.7:8080"));
    RequestHead head;
    head.method = !method.empty() ? method : grpc ? "POST" : "GET";
    head.authority = "svc";
    head.path = grpc ? "/pkg.Svc/Call" : "/";
    if (grpc) head.headers.emplace_back("content-type", "application/grpc");
    for (const auto& [k, v] : extra_headers) head.headers.emplace_back(k, v);
    stream_ = std::make_unique<ProxyStream>(down_.get(), std::move(head), ctx_.fake_clock.nowUs());
    stream_->start();
    return *stream_;
  }
  FakeAttempt& attempt(size_t i) { return ctx_.attempt(i); }
  size_t attempts() const { return ctx_.attempts_made.size(); }
  uint64_t refusals(retry::Refusal r) const { return ctx_.route.refusals[static_cast<size_t>(r)].get(); }

  pfc::EffectivePolicy policy_;
  FakeStreamContext ctx_;
  std::unique_ptr<FakeDownstream> down_;
  std::unique_ptr<ProxyStream> stream_;
};

// ------------------------------------------------ a retry after each outcome --

class RetryAfterOutcomeTest : public ProxyStreamTest, public ::testing::WithParamInterface<OutcomeKind> {};

TEST_P(RetryAfterOutcomeTest, SecondAttemptAfterTheBackoffAnswersTheClient) {
  policy_.retry.per_try_timeout_us = 100 * kMs;
  start();
  ASSERT_EQ(attempts(), 1u);
  EXPECT_EQ(attempt(0).header("x-envoy-attempt-count"), "1");
  attempt(0).failWith(GetParam());
  EXPECT_EQ(attempts(), 1u);  // waiting: the backoff
  EXPECT_TRUE(attempt(0).cancelled);
  ctx_.advance(25 * kMs);     // at most backoff_base for retry 1
  ASSERT_EQ(attempts(), 2u);
  EXPECT_EQ(attempt(1).header("x-envoy-attempt-count"), "2");
  attempt(1).respond(200);
  attempt(1).respondBody("ok");
  attempt(1).respondEnd();
  ASSERT_TRUE(down_->head);
  EXPECT_EQ(down_->head->status, 200);
  EXPECT_EQ(down_->body, "ok");
  EXPECT_TRUE(down_->completed);
  EXPECT_EQ(ctx_.worker_counters.retries.get(), 1u);
}

INSTANTIATE_TEST_SUITE_P(EachRetriableKind, RetryAfterOutcomeTest,
                         ::testing::Values(OutcomeKind::kConnectFailure, OutcomeKind::kReset,
                                           OutcomeKind::kRefusedStream, OutcomeKind::kPerTryTimeout),
                         [](const auto& info) {
                           std::string n(retry::outcomeKindName(info.param));
                           n.erase(std::remove(n.begin(), n.end(), '-'), n.end());
                           return n;
                         });

TEST_F(ProxyStreamTest, Gateway503RetriedThenTheLast503GoesToTheClient) {
  start();
  attempt(0).respond(503);
  ctx_.advance(25 * kMs);
  ASSERT_EQ(attempts(), 2u);
  attempt(1).respond(503);  // num_retries = 1: this one is the answer
  attempt(1).respondEnd();
  ASSERT_TRUE(down_->head);
  EXPECT_EQ(down_->head->status, 503);
  EXPECT_TRUE(down_->completed);
  EXPECT_EQ(refusals(retry::Refusal::kRetriesExhausted), 1u);
}

TEST_F(ProxyStreamTest, OverflowIsAnswered503AtOnceAndNeverRetried) {
  start();
  attempt(0).failWith(OutcomeKind::kOverflow);
  ASSERT_TRUE(down_->reply);
  EXPECT_EQ(down_->reply->status, 503);
  EXPECT_EQ(down_->reply->overloaded, "upstream-connections");
  ctx_.advance(1 * kS);
  EXPECT_EQ(attempts(), 1u);
}

// --------------------------------------------------------- the backoff timer --

TEST_F(ProxyStreamTest, BackoffWaitIsTheJitteredDrawExactly) {
  ctx_.rnd = core::FakeRandom{uint64_t{1} << 63};  // half of the 25 ms ceiling
  start();
  attempt(0).failWith(OutcomeKind::kConnectFailure);
  EXPECT_TRUE(ctx_.timerDueIn(12'500));
  ctx_.advance(12'499);
  EXPECT_EQ(attempts(), 1u);  // not a microsecond early
  ctx_.advance(1);
  EXPECT_EQ(attempts(), 2u);
}

TEST_F(ProxyStreamTest, DeadlinePassedDuringTheBackoffAnswers504InsteadOfAttempting) {
  policy_.request_timeout_us = 100 * kMs;
  ctx_.rnd = core::FakeRandom{UINT64_MAX};  // the longest wait: ~25 ms
  start();
  ctx_.advance(60 * kMs);
  attempt(0).failWith(OutcomeKind::kReset);  // 40 ms left: the engine allows the retry
  ctx_.advance(45 * kMs);                    // the loop stalled past the deadline
  EXPECT_EQ(attempts(), 1u);
  ASSERT_TRUE(down_->reply);
  EXPECT_EQ(down_->reply->status, 504);
  EXPECT_EQ(down_->reply->timeout, retry::TimeoutKind::kRequest);
}

TEST_F(ProxyStreamTest, LessThanMinAttemptBudgetAfterTheWaitRefusesTheRetry) {
  policy_.request_timeout_us = 100 * kMs;
  policy_.deadline.min_attempt_budget_us = 30 * kMs;
  ctx_.rnd = core::FakeRandom{UINT64_MAX};  // ~25 ms wait: 15 ms would be left
  start();
  ctx_.advance(60 * kMs);
  attempt(0).failWith(OutcomeKind::kConnectFailure);
  EXPECT_EQ(refusals(retry::Refusal::kDeadline), 1u);
  ASSERT_TRUE(down_->reply);
  EXPECT_EQ(down_->reply->status, 502);
  EXPECT_FALSE(down_->reply->timeout);
  ctx_.advance(50 * kMs);
  EXPECT_EQ(attempts(), 1u);
}

TEST_F(ProxyStreamTest, RetryAfterReplacesTheBackoffAndDrawsNothing) {
  start();
  attempt(0).respond(503, {{"retry-after", "2"}});
  EXPECT_TRUE(ctx_.timerDueIn(2 * kS));
  EXPECT_EQ(ctx_.rnd.draws(), 0u);
  ctx_.advance(2 * kS - 1);
  EXPECT_EQ(attempts(), 1u);
  ctx_.advance(1);
  EXPECT_EQ(attempts(), 2u);
}

TEST_F(ProxyStreamTest, BudgetRefusalHandsTheClientThe503) {
  policy_.budget.retry_ratio = 0;
  policy_.budget.min_retries_per_second = 0;
  start();
  attempt(0).respond(503);
  attempt(0).respondEnd();
  EXPECT_EQ(refusals(retry::Refusal::kBudget), 1u);
  ASSERT_TRUE(down_->head);
  EXPECT_EQ(down_->head->status, 503);
  EXPECT_TRUE(down_->completed);
  EXPECT_EQ(attempts(), 1u);
}

TEST_F(ProxyStreamTest, EveryCallCountsTowardsTheBudgetThatAllowsItsRetry) {
  policy_.budget.retry_ratio = 1.0;  // one retry per call in the window, no floor
  policy_.budget.min_retries_per_second = 0;
  start();
  attempt(0).respond(503);
  EXPECT_EQ(refusals(retry::Refusal::kBudget), 0u);
  ctx_.advance(25 * kMs);
  EXPECT_EQ(attempts(), 2u);
}

// ----------------------------------------------------- the deadline headers --

TEST_F(ProxyStreamTest, TimeoutBudgetHeaderRoundsUp) {
  policy_.request_timeout_us = 100 * kMs + 300;
  start();
  EXPECT_EQ(attempt(0).header("x-timeout-budget"), "101");
}

TEST_F(ProxyStreamTest, TheFirstOfRepeatedDeadlineFieldsCountsWhateverItsCase) {
  // The call's start reads its fields in one pass (findStartFields): the
  // first of each name, case-insensitively, as findHeader() does.
  policy_.request_timeout_us = 10 * kS;
  start(Protocol::kHttp1, false, {{"accept", "*/*"}, {"X-Timeout-Budget", "300"}, {"x-timeout-budget", "200"}});
  EXPECT_EQ(attempt(0).header("x-timeout-budget"), "300");
}

TEST_F(ProxyStreamTest, AGrpcCallsContentTypeAndTimeoutAreFoundAmongOtherFields) {
  policy_.request_timeout_us = 10 * kS;
  start(Protocol::kHttp2, /*grpc=*/true, {{"te", "trailers"}, {"Grpc-Timeout", "250m"}, {"grpc-timeout", "5S"}});
  EXPECT_EQ(attempt(0).header("x-timeout-budget"), "250");
  EXPECT_FALSE(attempt(0).header("grpc-timeout").empty());
}

TEST_F(ProxyStreamTest, TimeoutBudgetHeaderIsNeverZero) {
  policy_.request_timeout_us = 100 * kMs;
  policy_.deadline.min_attempt_budget_us = 0;
  policy_.retry.backoff_base_us = 1;  // draw 0: no wait
  start();
  ctx_.advance(100 * kMs - 300);
  attempt(0).failWith(OutcomeKind::kConnectFailure);
  ctx_.advance(0);
  ASSERT_EQ(attempts(), 2u);
  EXPECT_EQ(attempt(1).header("x-timeout-budget"), "1");  // 0.3 ms left
}

TEST_F(ProxyStreamTest, PerTryTimeoutShorterThanTheDeadlineArmsTheAttemptsTimer) {
  policy_.request_timeout_us = 1 * kS;
  policy_.retry.per_try_timeout_us = 200 * kMs;
  start();
  EXPECT_EQ(attempt(0).headerTimeoutUs(), 200 * kMs);
  ctx_.advance(900 * kMs);
  attempt(0).failWith(OutcomeKind::kPerTryTimeout);
  ctx_.advance(25 * kMs);
  ASSERT_EQ(attempts(), 2u);
  EXPECT_EQ(attempt(1).headerTimeoutUs(), -1);  // the deadline (75 ms) comes first: its timer answers
}

// ---------------------------------------------------------- local replies --

TEST_F(ProxyStreamTest, Http1PerTryTimeoutExhaustedIs504WithItsKind) {
  policy_.retry.num_retries = 0;
  start(Protocol::kHttp1);
  attempt(0).failWith(OutcomeKind::kPerTryTimeout);
  ASSERT_TRUE(down_->reply);
  EXPECT_EQ(down_->reply->status, 504);
  EXPECT_EQ(down_->reply->timeoutHeader(), "per-try");
  EXPECT_EQ(down_->reply->body, "upstream request timeout");
  EXPECT_FALSE(down_->reply->grpc);
}

TEST_F(ProxyStreamTest, Http2DeadlineIs504Request) {
  policy_.request_timeout_us = 50 * kMs;
  start(Protocol::kHttp2);
  EXPECT_EQ(attempt(0).protocol, Protocol::kHttp2);
  ctx_.advance(50 * kMs);
  ASSERT_TRUE(down_->reply);
  EXPECT_EQ(down_->reply->status, 504);
  EXPECT_EQ(down_->reply->timeoutHeader(), "request");
  EXPECT_TRUE(attempt(0).cancelled);
  EXPECT_EQ(ctx_.route.timeouts[static_cast<size_t>(retry::TimeoutKind::kRequest)].get(), 1u);
}

TEST_F(ProxyStreamTest, Http1ConnectFailureExhaustedIs502) {
  policy_.retry.num_retries = 0;
  start(Protocol::kHttp1);
  attempt(0).failWith(OutcomeKind::kConnectFailure);
  ASSERT_TRUE(down_->reply);
  EXPECT_EQ(down_->reply->status, 502);
  EXPECT_FALSE(down_->reply->timeout);
}

TEST_F(ProxyStreamTest, GrpcPerTryTimeoutIsDeadlineExceededTrailersOnly) {
  policy_.retry.num_retries = 0;
  start(Protocol::kHttp2, /*grpc=*/true);
  attempt(0).failWith(OutcomeKind::kPerTryTimeout);
  ASSERT_TRUE(down_->reply);
  EXPECT_TRUE(down_->reply->grpc);
  EXPECT_EQ(down_->reply->status, 200);
  EXPECT_EQ(down_->reply->grpc_status, 4);
  EXPECT_EQ(down_->reply->grpc_message, "upstream per-try timeout");
  EXPECT_EQ(down_->reply->timeoutHeader(), "per-try");
}

TEST_F(ProxyStreamTest, GrpcConnectFailureIsUnavailable) {
  policy_.retry.num_retries = 0;
  start(Protocol::kHttp2, /*grpc=*/true);
  attempt(0).failWith(OutcomeKind::kConnectFailure);
  ASSERT_TRUE(down_->reply);
  EXPECT_EQ(down_->reply->grpc_status, 14);
  EXPECT_FALSE(down_->reply->timeout);
}

TEST_F(ProxyStreamTest, GrpcDeadlineAfterHeadersEndsWithDeadlineExceededTrailers) {
  policy_.request_timeout_us = 50 * kMs;
  start(Protocol::kHttp2, /*grpc=*/true);
  attempt(0).respond(200, {{"content-type", "application/grpc"}});
  attempt(0).respondBody("message");
  ctx_.advance(50 * kMs);
  ASSERT_TRUE(down_->trailers);
  EXPECT_EQ(findHeader(*down_->trailers, "grpc-status"), "4");
  EXPECT_TRUE(down_->completed);
  EXPECT_TRUE(attempt(0).cancelled);
}

TEST_F(ProxyStreamTest, GrpcUnavailableInTrailersAfterHeldHeadersIsRetried) {
  policy_.retry.grpc_codes = pfc::grpcBit(pfc::GrpcCode::kUnavailable);
  start(Protocol::kHttp2, /*grpc=*/true);
  attempt(0).respond(200, {{"content-type", "application/grpc"}});
  EXPECT_FALSE(down_->head);  // held: no message yet
  attempt(0).respondTrailers({{"grpc-status", "14"}});
  ctx_.advance(25 * kMs);
  ASSERT_EQ(attempts(), 2u);
  EXPECT_EQ(attempt(1).header("grpc-previous-rpc-attempts"), "1");
}

// ---------------------------------------------------------------- hedging --

class HedgeTest : public ProxyStreamTest {
 protected:
  HedgeTest() {
    policy_.hedge.delay_us = 50 * kMs;
    policy_.hedge.max_attempts = 2;
    policy_.hedge.max_extra_load = 0.05;
    // The route's recent requests, so that max_extra_load allows hedges
    // (5 of these 100).
    for (int i = 0; i < 100; ++i) ctx_.route.hedge_load.recordRequest(ctx_.fake_clock.nowUs());
  }
  uint64_t hedgeRefusals(retry::HedgeRefusal r) const {
    return ctx_.route.hedge_refusals[static_cast<size_t>(r)].get();
  }
};

TEST_F(HedgeTest, HedgeStartsExactlyAtTheDelayNotAMicrosecondBefore) {
  start();
  ASSERT_EQ(attempts(), 1u);
  EXPECT_TRUE(ctx_.timerDueIn(50 * kMs));
  ctx_.advance(50 * kMs - 1);
  EXPECT_EQ(attempts(), 1u);
  ctx_.advance(1);
  ASSERT_EQ(attempts(), 2u);
  EXPECT_TRUE(attempt(1).started);
  EXPECT_FALSE(attempt(0).cancelled);  // both in flight
  EXPECT_EQ(attempt(1).header("x-envoy-attempt-count"), "2");
  EXPECT_EQ(ctx_.route.hedges.get(), 1u);
}

TEST_F(HedgeTest, NoHedgeForPostWithoutIdempotencyKey) {
  start(Protocol::kHttp1, false, {}, "POST");
  EXPECT_EQ(ctx_.timersArmed(), 1u);  // the deadline only
  ctx_.advance(1 * kS);
  EXPECT_EQ(attempts(), 1u);
  EXPECT_EQ(ctx_.route.hedges.get(), 0u);
}

TEST_F(HedgeTest, PostWithIdempotencyKeyIsHedged) {
  start(Protocol::kHttp1, false, {{"idempotency-key", "k1"}}, "POST");
  ctx_.advance(50 * kMs);
  EXPECT_EQ(attempts(), 2u);
}

TEST_F(HedgeTest, NoHedgeWhileTheRequestBodyIsStillArriving) {
  ctx_.setPolicy(policy_);
  down_ = std::make_unique<FakeDownstream>(ctx_, Protocol::kHttp1, *net::Address::parseNumeric("10.0.0.7:8080"));
  RequestHead head;
  head.method = "PUT";
  head.authority = "svc";
  head.path = "/";
  head.body_follows = true;
  stream_ = std::make_unique<ProxyStream>(down_.get(), std::move(head), ctx_.fake_clock.nowUs());
  stream_->start();
  stream_->onRequestBody("abc", 3);
  ctx_.advance(50 * kMs);
  EXPECT_EQ(attempts(), 1u);
  EXPECT_EQ(hedgeRefusals(retry::HedgeRefusal::kBody), 1u);
}

TEST_F(HedgeTest, HedgeReplaysTheWholeBody) {
  ctx_.setPolicy(policy_);
  down_ = std::make_unique<FakeDownstream>(ctx_, Protocol::kHttp1, *net::Address::parseNumeric("10.0.0.7:8080"));
  RequestHead head;
  head.method = "PUT";
  head.authority = "svc";
  head.path = "/";
  head.body_follows = true;
  stream_ = std::make_unique<ProxyStream>(down_.get(), std::move(head), ctx_.fake_clock.nowUs());
  stream_->start();
  stream_->onRequestBody("abc", 3);
  stream_->onRequestBody("def", 3);
  stream_->onRequestComplete();
  ctx_.advance(50 * kMs);
  ASSERT_EQ(attempts(), 2u);
  EXPECT_EQ(attempt(1).body, "abcdef");
  EXPECT_TRUE(attempt(1).ended);
}

TEST_F(HedgeTest, BudgetRefusesTheHedge) {
  policy_.budget.retry_ratio = 0;
  policy_.budget.min_retries_per_second = 0;
  start();
  ctx_.advance(50 * kMs);
  EXPECT_EQ(attempts(), 1u);
  EXPECT_EQ(hedgeRefusals(retry::HedgeRefusal::kBudget), 1u);
}

TEST_F(HedgeTest, MaxExtraLoadRefusesTheHedge) {
  for (int i = 0; i < 5; ++i) ctx_.route.hedge_load.recordHedge(ctx_.fake_clock.nowUs());  // 5 of 100 used
  start();  // 101 requests: 0.05 * 101 < 6
  ctx_.advance(50 * kMs);
  EXPECT_EQ(attempts(), 1u);
  EXPECT_EQ(hedgeRefusals(retry::HedgeRefusal::kExtraLoad), 1u);
}

TEST_F(HedgeTest, MaxAttemptsBoundsTheAttemptsInFlight) {
  policy_.hedge.max_attempts = 3;
  start();
  ctx_.advance(50 * kMs);
  EXPECT_EQ(attempts(), 2u);
  ctx_.advance(50 * kMs);
  EXPECT_EQ(attempts(), 3u);
  EXPECT_EQ(attempt(2).header("x-envoy-attempt-count"), "3");
  EXPECT_EQ(ctx_.timersArmed(), 1u);  // the deadline only: no fourth
  ctx_.advance(500 * kMs);
  EXPECT_EQ(attempts(), 3u);
}

TEST_F(HedgeTest, FiveAttemptsInFlightAtMost) {
  policy_.hedge.max_attempts = pfc::kMaxHedgeAttempts;
  start();
  for (int i = 0; i < 10; ++i) ctx_.advance(50 * kMs);  // each hedge one delay after the one before
  EXPECT_EQ(attempts(), pfc::kMaxHedgeAttempts);
  for (size_t i = 0; i < attempts(); ++i) EXPECT_FALSE(attempt(i).cancelled);
}

TEST_F(HedgeTest, TheHedgesAnswerWinsAndTheFirstAttemptIsCancelledAsLoser) {
  start();
  ctx_.advance(50 * kMs);
  ASSERT_EQ(attempts(), 2u);
  attempt(1).respond(200);
  EXPECT_TRUE(attempt(0).cancelled);
  EXPECT_TRUE(attempt(0).cancelled_as_loser);
  EXPECT_FALSE(attempt(1).cancelled);
  attempt(1).respondBody("fast");
  attempt(1).respondEnd();
  ASSERT_TRUE(down_->head);
  EXPECT_EQ(down_->head->status, 200);
  EXPECT_EQ(down_->body, "fast");
  EXPECT_TRUE(down_->completed);
  EXPECT_EQ(ctx_.route.hedge_wins.get(), 1u);
  // The loser's wait (50 ms) went into the estimate as well as the winner's (0).
  EXPECT_EQ(ctx_.route.latency_estimate.samples(ctx_.fake_clock.nowUs()), 2u);
}

TEST_F(HedgeTest, TheFirstAttemptWinningIsNoHedgeWin) {
  start();
  ctx_.advance(50 * kMs);
  attempt(0).respond(200);
  EXPECT_TRUE(attempt(1).cancelled_as_loser);
  attempt(0).respondEnd();
  EXPECT_TRUE(down_->completed);
  EXPECT_EQ(ctx_.route.hedge_wins.get(), 0u);
  EXPECT_EQ(ctx_.route.hedges.get(), 1u);
}

TEST_F(HedgeTest, NoHedgeOnceAHeadArrived) {
  start();
  ctx_.advance(10 * kMs);
  attempt(0).respond(200);
  ctx_.advance(1 * kS);
  EXPECT_EQ(attempts(), 1u);
}

TEST_F(HedgeTest, ARetryOnResponseWhileAnotherIsOutIsAwaitedNotRetried) {
  start();
  ctx_.advance(50 * kMs);
  ASSERT_EQ(attempts(), 2u);
  attempt(0).respond(503);
  EXPECT_TRUE(attempt(0).cancelled);
  EXPECT_FALSE(down_->head);
  EXPECT_EQ(ctx_.worker_counters.retries.get(), 0u);
  ctx_.advance(1 * kS);  // no backoff, no retry: the hedge is awaited
  EXPECT_EQ(attempts(), 2u);
  attempt(1).respond(200);
  attempt(1).respondEnd();
  ASSERT_TRUE(down_->head);
  EXPECT_EQ(down_->head->status, 200);
}

TEST_F(HedgeTest, WhenTheLastAttemptFailsTheOrdinaryRetryRulesApply) {
  start();
  ctx_.advance(50 * kMs);
  attempt(0).failWith(OutcomeKind::kReset);
  EXPECT_EQ(ctx_.worker_counters.retries.get(), 0u);  // the hedge is still out
  attempt(1).respond(503);
  // The hedge did not use up num_retries (1): the 503 is retried.
  EXPECT_EQ(ctx_.worker_counters.retries.get(), 1u);
  ctx_.advance(25 * kMs);
  ASSERT_EQ(attempts(), 3u);
  EXPECT_EQ(attempt(2).header("x-envoy-attempt-count"), "3");
  attempt(2).respond(200);
  attempt(2).respondEnd();
  EXPECT_EQ(down_->head->status, 200);
}

TEST_F(HedgeTest, DeadlineLeavingLessThanMinAttemptBudgetRefusesTheHedge) {
  policy_.request_timeout_us = 60 * kMs;
  policy_.deadline.min_attempt_budget_us = 20 * kMs;
  start();
  ctx_.advance(50 * kMs);
  EXPECT_EQ(attempts(), 1u);
  EXPECT_EQ(hedgeRefusals(retry::HedgeRefusal::kDeadline), 1u);
}

TEST_F(HedgeTest, AQuantileDelayWaitsForSamples) {
  policy_.hedge.delay_us = 0;
  policy_.hedge.delay_quantile_permille = 900;
  start();
  EXPECT_EQ(ctx_.timersArmed(), 1u);  // the deadline only: no estimate yet
  attempt(0).respond(200);
  attempt(0).respondEnd();
  for (int i = 0; i < 100; ++i) ctx_.route.latency_estimate.record(3, ctx_.fake_clock.nowUs());
  start();
  EXPECT_TRUE(ctx_.timerDueIn(3));
  ctx_.advance(3);
  EXPECT_EQ(attempts(), 3u);  // the first call's one, this call's two
}

TEST_F(HedgeTest, GrpcHedgeCarriesPreviousAttemptsAndHeldHeadStillRetries) {
  policy_.retry.grpc_codes = pfc::grpcBit(pfc::GrpcCode::kUnavailable);
  start(Protocol::kHttp2, /*grpc=*/true);
  ctx_.advance(50 * kMs);
  ASSERT_EQ(attempts(), 2u);
  EXPECT_EQ(attempt(1).header("grpc-previous-rpc-attempts"), "1");
  // The hedge's headers come first and are held (no message yet); the first
  // attempt is cancelled as the loser.
  attempt(1).respond(200, {{"content-type", "application/grpc"}});
  EXPECT_FALSE(down_->head);
  EXPECT_TRUE(attempt(0).cancelled_as_loser);
  // Its trailers say UNAVAILABLE: retried by the ordinary rules.
  attempt(1).respondTrailers({{"grpc-status", "14"}});
  ctx_.advance(25 * kMs);
  ASSERT_EQ(attempts(), 3u);
  EXPECT_EQ(attempt(2).header("grpc-previous-rpc-attempts"), "2");
  attempt(2).respond(200, {{"content-type", "application/grpc"}, {"grpc-status", "0"}}, /*end_stream=*/true);
  ASSERT_TRUE(down_->head);
  EXPECT_EQ(findHeader(down_->head->headers, "grpc-status"), "0");
}

TEST_F(HedgeTest, GrpcWithoutRetryCodesIsNotHedged) {
  start(Protocol::kHttp2, /*grpc=*/true);
  ctx_.advance(1 * kS);
  EXPECT_EQ(attempts(), 1u);
}

}  // namespace
}  // namespace mulligan::proxy
