// RetryState: wouldRetry() and decide() against DESIGN.md "Retry rules",
// on a fake clock with scripted randomness.
#include "sidecar/retry/retry_state.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/fakes/fake_clock.h"
#include "tests/fakes/fake_random.h"

namespace mulligan::retry {
namespace {

constexpr int64_t kMs = 1000;
constexpr int64_t kS = 1000 * kMs;
constexpr uint64_t kHalf = uint64_t{1} << 63;
constexpr uint64_t kQuarter = uint64_t{1} << 62;
constexpr uint64_t kEighth = uint64_t{1} << 61;
constexpr int kUnavailable = 14;
constexpr int kInternal = 13;

class RetryStateTest : public ::testing::Test {
 protected:
  RetryStateTest() : policy_(pfc::builtinDefaults()) {}

  RetryState make(std::string_view method = "GET", bool grpc = false, bool key = false,
                  std::optional<uint64_t> body = std::nullopt, HeaderValue grpc_timeout = {}) {
    Deadline d = computeDeadline(clock_.nowUs(), policy_, grpc_timeout, nullptr);
    RetryState rs(policy_, RequestFacts{method, grpc, key, body}, d);
    rs.attemptStarted();  // the first attempt is under way
    return rs;
  }
  Decision decide(RetryState& rs, const Outcome& o) { return rs.decide(o, clock_, budget_, rnd_); }
  void onlyCondition(pfc::RetryCondition c) {
    policy_.retry.conditions = pfc::conditionBit(c);
    std::fill(std::begin(policy_.retry.status_bits), std::end(policy_.retry.status_bits), 0);
  }
  static Outcome withRetryAfter(int status, const char* value) {
    Outcome o = Outcome::response(status);
    o.retry_after = value;
    return o;
  }
  static Outcome withGrpcPushback(int grpc_status, const char* value) {
    Outcome o = Outcome::grpcResponse(grpc_status);
    o.grpc_pushback = value;
    return o;
  }

  pfc::EffectivePolicy policy_;
  core::FakeClock clock_;
  core::FakeRandom rnd_{kHalf};
  RetryBudget budget_;
};

// ------------------------------------------------------------ the basics --

TEST_F(RetryStateTest, Gateway503RetriedOnceThenLastResponseReturned) {
  RetryState rs = make();
  Decision d = decide(rs, Outcome::response(503));
  EXPECT_TRUE(d.retry);
  EXPECT_EQ(d.refusal, Refusal::kNone);
  EXPECT_EQ(d.wait_us, 12'500);  // half of backoff_base (25 ms) for retry 1
  EXPECT_FALSE(d.pushback);
  EXPECT_TRUE(d.spent_budget);
  rs.attemptStarted();
  EXPECT_EQ(rs.attempts(), 2u);
  EXPECT_EQ(rs.retries(), 1u);
  d = decide(rs, Outcome::response(503));
  EXPECT_FALSE(d.retry);
  EXPECT_EQ(d.refusal, Refusal::kRetriesExhausted);
  EXPECT_FALSE(isBlockedRetry(d.refusal));  // the policy's own limit: not a "blocked" retry
}

TEST_F(RetryStateTest, SuccessAndClientErrorsAreNotRetriable) {
  RetryState rs = make();
  for (int status : {200, 204, 301, 400, 404, 409, 429, 500}) {
    Decision d = decide(rs, Outcome::response(status));
    EXPECT_FALSE(d.retry) << status;
    EXPECT_EQ(d.refusal, Refusal::kNotRetriable) << status;
  }
  EXPECT_EQ(rnd_.draws(), 0u);
  EXPECT_EQ(budget_.snapshot(clock_.nowUs(), policy_.budget).retries, 0u);
}

TEST_F(RetryStateTest, BackoffDoublesPerRetryWithExactWaitsForScriptedDraws) {
  policy_.retry.num_retries = 4;
  rnd_ = core::FakeRandom{kHalf, kHalf, UINT64_MAX, 0};
  RetryState rs = make();
  const int64_t want[] = {12'500, 25'000, 100 * kMs - 1, 0};  // ceilings 25, 50, 100, 200 ms
  for (int64_t w : want) {
    Decision d = decide(rs, Outcome::reset());
    ASSERT_TRUE(d.retry);
    EXPECT_EQ(d.wait_us, w);
    rs.attemptStarted();
  }
  EXPECT_EQ(decide(rs, Outcome::reset()).refusal, Refusal::kRetriesExhausted);
  EXPECT_EQ(rnd_.draws(), 4u);
}

TEST_F(RetryStateTest, ZeroRetriesMeansNeverRetryAndNothingToBuffer) {
  policy_.retry.num_retries = 0;
  RetryState rs = make();
  EXPECT_FALSE(rs.mayRetry());
  EXPECT_EQ(decide(rs, Outcome::connectFailure()).refusal, Refusal::kRetriesExhausted);
}

// ------------------------------------------------------ retry_on conditions --

struct ConditionCase {
  pfc::RetryCondition condition;
  Outcome outcome;
};

TEST_F(RetryStateTest, EachTransportConditionRetriesOnlyItsOwnOutcome) {
  const ConditionCase cases[] = {
      {pfc::RetryCondition::kConnectFailure, Outcome::connectFailure()},
      {pfc::RetryCondition::kReset, Outcome::reset()},
      {pfc::RetryCondition::kRefusedStream, Outcome::refusedStream()},
      {pfc::RetryCondition::kPerTryTimeout, Outcome::perTryTimeout()},
  };
  for (const ConditionCase& named : cases) {
    onlyCondition(named.condition);
    RetryState rs = make();
    for (const ConditionCase& c : cases) {
      EXPECT_EQ(rs.wouldRetry(c.outcome), &c == &named)
          << pfc::conditionName(named.condition) << " vs " << c.outcome.reason();
    }
    EXPECT_FALSE(rs.wouldRetry(Outcome::response(503)));
  }
}

TEST_F(RetryStateTest, OverflowOfTheSidecarsOwnLimitIsNeverRetried) {
  Outcome overflow;
  overflow.kind = OutcomeKind::kOverflow;
  for (const auto c : {pfc::RetryCondition::kConnectFailure, pfc::RetryCondition::kReset,
                       pfc::RetryCondition::kRefusedStream, pfc::RetryCondition::kPerTryTimeout}) {
    onlyCondition(c);
    EXPECT_FALSE(make().wouldRetry(overflow));
  }
}

TEST_F(RetryStateTest, DefaultsRetryConnectFailureResetRefusedStreamAnd502To504ButNotPerTryTimeout) {
  RetryState rs = make();
  EXPECT_TRUE(rs.wouldRetry(Outcome::connectFailure()));
  EXPECT_TRUE(rs.wouldRetry(Outcome::reset()));
  EXPECT_TRUE(rs.wouldRetry(Outcome::refusedStream()));
  EXPECT_FALSE(rs.wouldRetry(Outcome::perTryTimeout()));
  EXPECT_FALSE(rs.wouldRetry(Outcome::response(500)));
  EXPECT_TRUE(rs.wouldRetry(Outcome::response(502)));
  EXPECT_TRUE(rs.wouldRetry(Outcome::response(503)));
  EXPECT_TRUE(rs.wouldRetry(Outcome::response(504)));
  EXPECT_FALSE(rs.wouldRetry(Outcome::response(505)));
}

TEST_F(RetryStateTest, FiveXxCoversEvery500To599) {
  onlyCondition(pfc::RetryCondition::k5xx);
  RetryState rs = make();
  EXPECT_TRUE(rs.wouldRetry(Outcome::response(500)));
  EXPECT_TRUE(rs.wouldRetry(Outcome::response(599)));
  EXPECT_FALSE(rs.wouldRetry(Outcome::response(499)));
  EXPECT_FALSE(rs.wouldRetry(Outcome::response(600)));
  EXPECT_FALSE(rs.wouldRetry(Outcome::reset()));
}

TEST_F(RetryStateTest, GatewayErrorIs502503504Only) {
  onlyCondition(pfc::RetryCondition::kGatewayError);
  RetryState rs = make();
  EXPECT_FALSE(rs.wouldRetry(Outcome::response(500)));
  EXPECT_TRUE(rs.wouldRetry(Outcome::response(502)));
  EXPECT_TRUE(rs.wouldRetry(Outcome::response(503)));
  EXPECT_TRUE(rs.wouldRetry(Outcome::response(504)));
  EXPECT_FALSE(rs.wouldRetry(Outcome::response(501)));
}

TEST_F(RetryStateTest, Retriable4xxIs409) {
  onlyCondition(pfc::RetryCondition::kRetriable4xx);
  RetryState rs = make();
  EXPECT_TRUE(rs.wouldRetry(Outcome::response(409)));
  EXPECT_FALSE(rs.wouldRetry(Outcome::response(408)));
  EXPECT_FALSE(rs.wouldRetry(Outcome::response(429)));
}

TEST_F(RetryStateTest, IndividuallyNamedStatusCodes) {
  onlyCondition(pfc::RetryCondition::kConnectFailure);
  policy_.retry.addStatus(429);
  policy_.retry.addStatus(418);
  RetryState rs = make();
  EXPECT_TRUE(rs.wouldRetry(Outcome::response(429)));
  EXPECT_TRUE(rs.wouldRetry(Outcome::response(418)));
  EXPECT_FALSE(rs.wouldRetry(Outcome::response(503)));
}

// ---------------------------------------------------------------- gRPC --

TEST_F(RetryStateTest, GrpcCallRetriedOnlyOnNamedGrpcCodes) {
  policy_.retry.grpc_codes = pfc::grpcBit(pfc::GrpcCode::kUnavailable);
  RetryState rs = make("POST", /*grpc=*/true);
  EXPECT_TRUE(rs.wouldRetry(Outcome::grpcResponse(kUnavailable)));
  EXPECT_FALSE(rs.wouldRetry(Outcome::grpcResponse(kInternal)));
  EXPECT_FALSE(rs.wouldRetry(Outcome::grpcResponse(0)));
  Decision d = decide(rs, Outcome::grpcResponse(kUnavailable));
  EXPECT_TRUE(d.retry);
  EXPECT_EQ(d.wait_us, 12'500);
}

TEST_F(RetryStateTest, GrpcCallIgnoresHttpStatusConditions) {
  // 503 is in retry_on, but for a gRPC call only gRPC codes opt in.
  RetryState rs = make("POST", /*grpc=*/true);
  EXPECT_FALSE(rs.wouldRetry(Outcome::grpcResponse(kUnavailable)));
  EXPECT_FALSE(rs.wouldRetry(Outcome::response(503)));
  EXPECT_EQ(decide(rs, Outcome::response(503)).refusal, Refusal::kNotRetriable);
}

TEST_F(RetryStateTest, GrpcCallWithoutGrpcStatusUsesTheStatusGrpcDerivesFromHttp) {
  policy_.retry.grpc_codes = pfc::grpcBit(pfc::GrpcCode::kUnavailable);
  RetryState rs = make("POST", /*grpc=*/true);
  EXPECT_TRUE(rs.wouldRetry(Outcome::response(503)));   // UNAVAILABLE
  EXPECT_TRUE(rs.wouldRetry(Outcome::response(429)));   // UNAVAILABLE
  EXPECT_FALSE(rs.wouldRetry(Outcome::response(500)));  // UNKNOWN
  // 200 without grpc-status: the status comes in trailers, after we commit.
  EXPECT_FALSE(rs.wouldRetry(Outcome::response(200)));
}

TEST_F(RetryStateTest, GrpcOptInMakesTransportFailuresRetriableToo) {
  policy_.retry.grpc_codes = pfc::grpcBit(pfc::GrpcCode::kUnavailable);
  RetryState rs = make("POST", /*grpc=*/true);
  EXPECT_TRUE(decide(rs, Outcome::reset()).retry);
}

TEST_F(RetryStateTest, GrpcCallThatDidNotOptInIsRetriedOnlyWhenItNeverReachedUpstream) {
  RetryState rs = make("POST", /*grpc=*/true);
  EXPECT_EQ(decide(rs, Outcome::reset()).refusal, Refusal::kIdempotency);
  EXPECT_TRUE(decide(rs, Outcome::refusedStream()).retry);
  EXPECT_TRUE(decide(rs, Outcome::connectFailure()).retry);
}

// ------------------------------------------------------------- Connect --

TEST_F(RetryStateTest, ConnectCallRetriedByItsErrorCodeWhateverTheMethod) {
  policy_.retry.grpc_codes = pfc::grpcBit(pfc::GrpcCode::kUnavailable);
  Deadline d = computeDeadline(clock_.nowUs(), policy_, nullptr, nullptr);
  RequestFacts f{"POST", false, false, std::nullopt};
  f.connect = true;
  RetryState rs(policy_, f, d);
  rs.attemptStarted();
  EXPECT_TRUE(rs.connect());
  // The code of the JSON error body stands in grpc_status.
  EXPECT_TRUE(decide(rs, Outcome::grpcResponse(kUnavailable, 503)).retry);
  EXPECT_FALSE(rs.wouldRetry(Outcome::grpcResponse(kInternal, 500)));
  EXPECT_FALSE(rs.wouldRetry(Outcome::response(200)));
}

TEST_F(RetryStateTest, ConnectCallIgnoresHttpStatusConditions) {
  // 503 and 504 are in retry_on (the defaults), gRPC's deadline-exceeded is
  // not: a Connect deadline_exceeded (HTTP 504) is not retried, and without
  // gRPC codes named a Connect call has not opted in at all.
  Deadline d = computeDeadline(clock_.nowUs(), policy_, nullptr, nullptr);
  RequestFacts f{"POST", false, false, std::nullopt};
  f.connect = true;
  RetryState rs(policy_, f, d);
  rs.attemptStarted();
  EXPECT_EQ(decide(rs, Outcome::grpcResponse(kUnavailable, 503)).refusal, Refusal::kNotRetriable);
  policy_.retry.grpc_codes = pfc::grpcBit(pfc::GrpcCode::kUnavailable);
  RetryState opted(policy_, f, d);
  opted.attemptStarted();
  EXPECT_FALSE(opted.wouldRetry(Outcome::grpcResponse(4, 504)));   // deadline_exceeded
  EXPECT_FALSE(opted.wouldRetry(Outcome::grpcResponse(6, 409)));   // already_exists
  EXPECT_TRUE(opted.wouldRetry(Outcome::response(503)));           // no Connect body: as its clients read 503
}

// ---------------------------------------------------- overload signals --

TEST_F(RetryStateTest, OverloadedResponseIsNeverRetriedAndStopsLaterAttempts) {
  RetryState rs = make();
  Outcome o = Outcome::response(503);
  o.overloaded = true;
  EXPECT_TRUE(rs.wouldRetry(o));  // the policy would: the signal refuses it
  EXPECT_FALSE(rs.overloaded());
  Decision d = decide(rs, o);
  EXPECT_FALSE(d.retry);
  EXPECT_EQ(d.refusal, Refusal::kOverloaded);
  EXPECT_TRUE(isBlockedRetry(d.refusal));
  EXPECT_TRUE(rs.overloaded());  // what the hedge decision reads
  // Sticky: a later outcome of the same call is not retried either.
  EXPECT_EQ(decide(rs, Outcome::reset()).refusal, Refusal::kOverloaded);
  EXPECT_EQ(budget_.snapshot(clock_.nowUs(), policy_.budget).retries, 0u);  // no budget spent on it
}

TEST_F(RetryStateTest, OverloadedSuccessIsNotARefusalButStillStopsHedges) {
  RetryState rs = make();
  Outcome o = Outcome::response(200);
  o.overloaded = true;
  EXPECT_EQ(decide(rs, o).refusal, Refusal::kNotRetriable);
  EXPECT_TRUE(rs.overloaded());
}

// --------------------------------------------------------- idempotency --

TEST_F(RetryStateTest, IdempotentMethodsRetriedAfterReset) {
  for (const char* m : {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"}) {
    RetryState rs = make(m);
    EXPECT_TRUE(decide(rs, Outcome::reset()).retry) << m;
    EXPECT_TRUE(isRetryableMethod(m)) << m;
  }
}

TEST_F(RetryStateTest, PostPatchAndOthersNeedTheIdempotencyHeader) {
  for (const char* m : {"POST", "PATCH", "CONNECT", "PROPFIND", "get"}) {
    RetryState rs = make(m);
    Decision d = decide(rs, Outcome::response(503));
    EXPECT_FALSE(d.retry) << m;
    EXPECT_EQ(d.refusal, Refusal::kIdempotency) << m;
    EXPECT_TRUE(isBlockedRetry(d.refusal));
    RetryState keyed = make(m, false, /*key=*/true);
    EXPECT_TRUE(decide(keyed, Outcome::response(503)).retry) << m;
  }
  EXPECT_EQ(budget_.snapshot(clock_.nowUs(), policy_.budget).retries, 5u);  // only the keyed ones
}

TEST_F(RetryStateTest, PostRetriedWhenItProvablyNeverReachedUpstream) {
  RetryState rs = make("POST");
  EXPECT_TRUE(decide(rs, Outcome::connectFailure()).retry);
  EXPECT_TRUE(decide(rs, Outcome::refusedStream()).retry);
  Outcome unsent = Outcome::reset();
  unsent.never_reached = true;
  EXPECT_TRUE(decide(rs, unsent).retry);
  EXPECT_EQ(decide(rs, Outcome::reset()).refusal, Refusal::kIdempotency);
}

// --------------------------------------------------------- body and response --

TEST_F(RetryStateTest, DeclaredBodyLargerThanMaxBufferedBodyIsNotRetried) {
  uint64_t cap = policy_.retry.max_buffered_body;
  RetryState fits = make("PUT", false, false, cap);
  EXPECT_TRUE(fits.mayRetry());
  EXPECT_TRUE(decide(fits, Outcome::reset()).retry);
  RetryState big = make("PUT", false, false, cap + 1);
  EXPECT_FALSE(big.mayRetry());
  Decision d = decide(big, Outcome::reset());
  EXPECT_EQ(d.refusal, Refusal::kBodyTooLarge);
  EXPECT_TRUE(isBlockedRetry(d.refusal));
}

TEST_F(RetryStateTest, StreamedBodyBecomesTooLargeOnceMoreThanTheCapArrived) {
  RetryState rs = make("PUT");  // chunked: no declared size
  rs.addRequestBodyBytes(40 * 1024);
  rs.addRequestBodyBytes(24 * 1024);  // exactly 64 KiB: still replayable
  EXPECT_TRUE(rs.bodyReplayable());
  EXPECT_TRUE(decide(rs, Outcome::reset()).retry);
  rs.addRequestBodyBytes(1);
  EXPECT_FALSE(rs.bodyReplayable());
  EXPECT_EQ(decide(rs, Outcome::reset()).refusal, Refusal::kBodyTooLarge);
}

TEST_F(RetryStateTest, NothingRetriedOnceAResponseHeaderWentDownstream) {
  RetryState rs = make();
  rs.responseStarted();
  EXPECT_TRUE(rs.hasResponseStarted());
  Decision d = decide(rs, Outcome::reset());
  EXPECT_EQ(d.refusal, Refusal::kResponseStarted);
  EXPECT_TRUE(isBlockedRetry(d.refusal));
  EXPECT_EQ(decide(rs, Outcome::response(404)).refusal, Refusal::kNotRetriable);  // not asked for at all
}

// ------------------------------------------------------------ deadline --

TEST_F(RetryStateTest, NoRetryWhenTheWaitLeavesLessThanMinAttemptBudget) {
  policy_.request_timeout_us = 100 * kMs;  // min_attempt_budget 5 ms
  RetryState rs = make();
  clock_.advanceMs(90);               // 10 ms left
  rnd_ = core::FakeRandom{kQuarter};  // 6.25 ms of the 25 ms ceiling: 3.75 ms would be left
  Decision d = decide(rs, Outcome::reset());
  EXPECT_EQ(d.refusal, Refusal::kDeadline);
  EXPECT_TRUE(isBlockedRetry(d.refusal));
  rnd_ = core::FakeRandom{kEighth};  // 3.125 ms: 6.875 ms left
  d = decide(rs, Outcome::reset());
  EXPECT_TRUE(d.retry);
  EXPECT_EQ(d.wait_us, 3125);
}

TEST_F(RetryStateTest, NoRetryWithLessThanMinAttemptBudgetLeftEvenWithoutWaiting) {
  policy_.request_timeout_us = 100 * kMs;
  RetryState rs = make();
  clock_.advance(95 * kMs + 1);
  rnd_ = core::FakeRandom{0};
  EXPECT_EQ(decide(rs, Outcome::reset()).refusal, Refusal::kDeadline);
}

TEST_F(RetryStateTest, InboundGrpcTimeoutShortensTheDeadlineForRetries) {
  policy_.retry.grpc_codes = pfc::grpcBit(pfc::GrpcCode::kUnavailable);
  RetryState rs = make("POST", true, false, std::nullopt, "20m");
  EXPECT_EQ(rs.deadline().source, DeadlineSource::kGrpcTimeout);
  clock_.advanceMs(14);  // 6 ms left; the wait (12.5 ms) does not fit
  EXPECT_EQ(decide(rs, Outcome::grpcResponse(kUnavailable)).refusal, Refusal::kDeadline);
}

TEST_F(RetryStateTest, DeadlineRefusalSpendsNoBudget) {
  policy_.request_timeout_us = 10 * kMs;
  RetryState rs = make();
  clock_.advanceMs(9);
  EXPECT_EQ(decide(rs, Outcome::reset()).refusal, Refusal::kDeadline);
  EXPECT_EQ(budget_.snapshot(clock_.nowUs(), policy_.budget).retries, 0u);
}

TEST_F(RetryStateTest, NoRequestTimeoutMeansTheDeadlineNeverRefuses) {
  policy_.request_timeout_us = 0;
  RetryState rs = make();
  clock_.advance(3600 * kS);
  EXPECT_TRUE(decide(rs, Outcome::reset()).retry);
}

// ------------------------------------------------------------ pushback --

TEST_F(RetryStateTest, RetryAfterOn503ReplacesTheBackoff) {
  RetryState rs = make();
  Decision d = decide(rs, withRetryAfter(503, "2"));
  EXPECT_TRUE(d.retry);
  EXPECT_TRUE(d.pushback);
  EXPECT_EQ(d.wait_us, 2 * kS);
  EXPECT_EQ(rnd_.draws(), 0u);  // no jitter drawn
}

TEST_F(RetryStateTest, RetryAfterOn429WhenRetryOnNames429) {
  policy_.retry.addStatus(429);
  RetryState rs = make();
  Decision d = decide(rs, withRetryAfter(429, "1"));
  EXPECT_TRUE(d.pushback);
  EXPECT_EQ(d.wait_us, 1 * kS);
}

TEST_F(RetryStateTest, RetryAfterAsHttpDateIsRelativeToTheWallClock) {
  clock_.setUnixSeconds(1'700'000'000);  // Tue, 14 Nov 2023 22:13:20 GMT
  RetryState rs = make();
  Decision d = decide(rs, withRetryAfter(503, "Tue, 14 Nov 2023 22:13:23 GMT"));
  EXPECT_TRUE(d.pushback);
  EXPECT_EQ(d.wait_us, 3 * kS);
}

TEST_F(RetryStateTest, RetryAfterIsIgnoredOnOtherStatuses) {
  RetryState rs = make();
  Decision d = decide(rs, withRetryAfter(502, "2"));
  EXPECT_TRUE(d.retry);
  EXPECT_FALSE(d.pushback);
  EXPECT_EQ(d.wait_us, 12'500);
}

TEST_F(RetryStateTest, MalformedRetryAfterFallsBackToTheBackoff) {
  RetryState rs = make();
  Decision d = decide(rs, withRetryAfter(503, "soon"));
  EXPECT_TRUE(d.retry);
  EXPECT_FALSE(d.pushback);
  EXPECT_EQ(d.wait_us, 12'500);
}

TEST_F(RetryStateTest, RetryAfterLongerThanRetryAfterMaxMeansNoRetry) {
  RetryState rs = make();  // retry_after_max 5 s
  EXPECT_TRUE(decide(rs, withRetryAfter(503, "5")).retry);
  Decision d = decide(rs, withRetryAfter(503, "6"));
  EXPECT_EQ(d.refusal, Refusal::kPushbackTooLong);
  EXPECT_TRUE(isBlockedRetry(d.refusal));
}

TEST_F(RetryStateTest, RetryAfterLongerThanTheTimeLeftMeansNoRetry) {
  policy_.request_timeout_us = 1 * kS;
  RetryState rs = make();
  EXPECT_EQ(decide(rs, withRetryAfter(503, "2")).refusal, Refusal::kDeadline);
}

TEST_F(RetryStateTest, RetryAfterOffIgnoresEveryPushback) {
  policy_.retry.retry_after = 0;
  policy_.retry.grpc_codes = pfc::grpcBit(pfc::GrpcCode::kUnavailable);
  RetryState rs = make();
  Decision d = decide(rs, withRetryAfter(503, "60"));
  EXPECT_TRUE(d.retry);
  EXPECT_FALSE(d.pushback);
  EXPECT_EQ(d.wait_us, 12'500);
  RetryState grpc = make("POST", true);
  EXPECT_TRUE(decide(grpc, withGrpcPushback(kUnavailable, "-1")).retry);
}

TEST_F(RetryStateTest, GrpcPushbackReplacesTheBackoff) {
  policy_.retry.grpc_codes = pfc::grpcBit(pfc::GrpcCode::kUnavailable);
  RetryState rs = make("POST", true);
  Decision d = decide(rs, withGrpcPushback(kUnavailable, "250"));
  EXPECT_TRUE(d.retry);
  EXPECT_TRUE(d.pushback);
  EXPECT_EQ(d.wait_us, 250 * kMs);
  EXPECT_EQ(rnd_.draws(), 0u);
}

TEST_F(RetryStateTest, GrpcPushbackNegativeOrMalformedMeansDoNotRetry) {
  policy_.retry.grpc_codes = pfc::grpcBit(pfc::GrpcCode::kUnavailable);
  RetryState rs = make("POST", true);
  for (const char* v : {"-1", "abc", "", "1.5"}) {
    Decision d = decide(rs, withGrpcPushback(kUnavailable, v));
    EXPECT_FALSE(d.retry) << v;
    EXPECT_EQ(d.refusal, Refusal::kPushbackRefused) << v;
  }
}

TEST_F(RetryStateTest, GrpcPushbackLongerThanRetryAfterMaxMeansNoRetry) {
  policy_.retry.grpc_codes = pfc::grpcBit(pfc::GrpcCode::kUnavailable);
  RetryState rs = make("POST", true);
  EXPECT_EQ(decide(rs, withGrpcPushback(kUnavailable, "5001")).refusal, Refusal::kPushbackTooLong);
}

// ---------------------------------------------------------------- budget --

TEST_F(RetryStateTest, SpentBudgetRefusesFurtherRetries) {
  policy_.budget.retry_ratio = 0;
  policy_.budget.min_retries_per_second = 0;
  RetryState rs = make();
  Decision d = decide(rs, Outcome::response(503));
  EXPECT_FALSE(d.retry);
  EXPECT_EQ(d.refusal, Refusal::kBudget);
  EXPECT_TRUE(isBlockedRetry(d.refusal));
  EXPECT_EQ(budget_.snapshot(clock_.nowUs(), policy_.budget).refused, 1u);
}

TEST_F(RetryStateTest, RetriesThatNeverReachedUpstreamSpendNoBudget) {
  policy_.budget.retry_ratio = 0;
  policy_.budget.min_retries_per_second = 0;
  RetryState rs = make();
  for (const Outcome& o : {Outcome::refusedStream(), Outcome::connectFailure()}) {
    Decision d = decide(rs, o);
    EXPECT_TRUE(d.retry) << o.reason();
    EXPECT_FALSE(d.spent_budget) << o.reason();
  }
  RetryBudget::Snapshot s = budget_.snapshot(clock_.nowUs(), policy_.budget);
  EXPECT_EQ(s.retries, 0u);
  EXPECT_EQ(s.refused, 0u);
}

TEST_F(RetryStateTest, AdmittedRetriesAreCountedInTheBudget) {
  RetryState a = make();
  RetryState b = make();
  EXPECT_TRUE(decide(a, Outcome::response(502)).spent_budget);
  EXPECT_TRUE(decide(b, Outcome::reset()).spent_budget);
  EXPECT_EQ(budget_.snapshot(clock_.nowUs(), policy_.budget).retries, 2u);
}

// ---------------------------------------------------------------- names --

TEST(RefusalTest, NamesForLogsAndMetrics) {
  EXPECT_EQ(refusalName(Refusal::kNone), "");
  EXPECT_EQ(refusalName(Refusal::kNotRetriable), "not-retriable");
  EXPECT_EQ(refusalName(Refusal::kResponseStarted), "response-started");
  EXPECT_EQ(refusalName(Refusal::kRetriesExhausted), "retries-exhausted");
  EXPECT_EQ(refusalName(Refusal::kIdempotency), "idempotency");
  EXPECT_EQ(refusalName(Refusal::kBodyTooLarge), "body-too-large");
  EXPECT_EQ(refusalName(Refusal::kPushbackRefused), "pushback-refused");
  EXPECT_EQ(refusalName(Refusal::kPushbackTooLong), "pushback-too-long");
  EXPECT_EQ(refusalName(Refusal::kDeadline), "deadline");
  EXPECT_EQ(refusalName(Refusal::kBudget), "budget");
  EXPECT_EQ(refusalName(Refusal::kOverloaded), "overloaded");
  EXPECT_FALSE(isBlockedRetry(Refusal::kNone));
  EXPECT_FALSE(isBlockedRetry(Refusal::kNotRetriable));
}

}  // namespace
}  // namespace mulligan::retry
