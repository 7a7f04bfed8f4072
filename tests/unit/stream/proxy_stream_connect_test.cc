// ProxyStream and Connect calls (DESIGN.md "Connect") and overload signals
// ("Overload signals"), driven by fake attempts and a fake downstream on a
// fake clock: what is held, what is retried, and the replies in Connect form.
#include <gtest/gtest.h>

#include "sidecar/codec/connect_rpc.h"
#include "sidecar/stream/proxy_stream.h"
#include "tests/fakes/fake_stream.h"

namespace mulligan::proxy {
namespace {

constexpr int64_t kMs = 1000;

std::string envelope(uint8_t flags, const std::string& payload) {
  std::string out(1, static_cast<char>(flags));
  auto n = static_cast<uint32_t>(payload.size());
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>(n >> shift & 0xff);
  return out + payload;
}

class ConnectStreamTest : public ::testing::Test {
 protected:
  ConnectStreamTest() : policy_(pfc::builtinDefaults()) {
    policy_.retry.grpc_codes = pfc::grpcBit(pfc::GrpcCode::kUnavailable);  // opted in
    policy_.retry.backoff_base_us = 1 * kMs;
    policy_.retry.backoff_max_us = 1 * kMs;
    policy_.retry.num_retries = 2;
  }

  ProxyStream& start(bool streaming, HeaderList extra = {}) {
    ctx_.setPolicy(policy_);
    down_ = std::make_unique<FakeDownstream>(ctx_, Protocol::kHttp2, *net::Address::parseNumeric("10.0.0.7:8080"));
    RequestHead head;
    head.method = "POST";
    head.authority = "svc";
    head.path = "/pkg.Svc/Call";
    if (streaming) {
      head.headers.emplace_back("content-type", "application/connect+proto");
    } else {
      head.headers.emplace_back("content-type", "application/json");
      head.headers.emplace_back("connect-protocol-version", "1");
    }
    for (const auto& [k, v] : extra) head.headers.emplace_back(k, v);
    stream_ = std::make_unique<ProxyStream>(down_.get(), std::move(head), ctx_.fake_clock.nowUs());
    stream_->start();
    return *stream_;
  }
  FakeAttempt& attempt(size_t i) { return ctx_.attempt(i); }
  size_t attempts() const { return ctx_.attempts_made.size(); }
  uint64_t refusals(retry::Refusal r) const { return ctx_.route.refusals[static_cast<size_t>(r)].get(); }
  static HeaderList json() { return {{"content-type", "application/json"}}; }

  pfc::EffectivePolicy policy_;
  FakeStreamContext ctx_;
  std::unique_ptr<FakeDownstream> down_;
  std::unique_ptr<ProxyStream> stream_;
};

TEST_F(ConnectStreamTest, UnaryUnavailableBodyIsHeldThenRetried) {
  start(false);
  attempt(0).respond(503, json());
  attempt(0).respondBody(R"({"code":"unav)");
  EXPECT_FALSE(down_->head);  // held: the code is in the body
  attempt(0).respondBody(R"(ailable"})");
  attempt(0).respondEnd();
  EXPECT_FALSE(down_->head);
  ctx_.advance(1 * kMs);
  ASSERT_EQ(attempts(), 2u);
  EXPECT_EQ(attempt(1).header("x-envoy-attempt-count"), "2");
  attempt(1).respond(200, json());
  attempt(1).respondBody("\"hi\"");
  attempt(1).respondEnd();
  ASSERT_TRUE(down_->head);
  EXPECT_EQ(down_->head->status, 200);
  EXPECT_EQ(down_->body, "\"hi\"");  // nothing of the first attempt's error
  EXPECT_TRUE(down_->completed);
}

TEST_F(ConnectStreamTest, UnaryErrorNotInRetryOnGoesThroughWhole) {
  start(false);
  attempt(0).respond(500, json());
  attempt(0).respondBody(R"({"code":"internal","message":"boom"})");
  attempt(0).respondEnd();
  ASSERT_TRUE(down_->head);
  EXPECT_EQ(down_->head->status, 500);
  EXPECT_EQ(down_->body, R"({"code":"internal","message":"boom"})");
  EXPECT_TRUE(down_->completed);
  ctx_.advance(10 * kMs);
  EXPECT_EQ(attempts(), 1u);
}

TEST_F(ConnectStreamTest, UnaryDeadlineExceededIs504ButNotRetriedBy504) {
  // 504 is in the default retry_on; for a Connect call the code decides.
  start(false);
  attempt(0).respond(504, json());
  attempt(0).respondBody(R"({"code":"deadline_exceeded"})");
  attempt(0).respondEnd();
  ASSERT_TRUE(down_->head);
  EXPECT_EQ(down_->head->status, 504);
  EXPECT_EQ(attempts(), 1u);
}

TEST_F(ConnectStreamTest, UnaryErrorBodyLargerThanTheCapIsCommittedUnread) {
  policy_.retry.max_buffered_body = 16;
  start(false);
  attempt(0).respond(503, json());
  attempt(0).respondBody(R"({"code":"unavailable",)");
  ASSERT_TRUE(down_->head);  // past the cap: let through
  attempt(0).respondBody(R"("message":"x"})");
  attempt(0).respondEnd();
  EXPECT_EQ(down_->body, R"({"code":"unavailable","message":"x"})");
  EXPECT_EQ(attempts(), 1u);
}

TEST_F(ConnectStreamTest, UnaryNotOptedInIsNeverHeld) {
  policy_.retry.grpc_codes = 0;
  start(false);
  attempt(0).respond(503, json());
  ASSERT_TRUE(down_->head);
  EXPECT_EQ(down_->head->status, 503);  // no retry by the HTTP 503 entry either
  EXPECT_EQ(attempts(), 1u);
}

TEST_F(ConnectStreamTest, StreamingEndOfStreamErrorBeforeAnyMessageRetried) {
  start(true);
  attempt(0).respond(200, {{"content-type", "application/connect+proto"}});
  std::string err = envelope(kConnectFlagEndStream, R"({"error":{"code":"unavailable"}})");
  attempt(0).respondBody(err.substr(0, 3));
  attempt(0).respondBody(err.substr(3));
  EXPECT_FALSE(down_->head);
  EXPECT_TRUE(attempt(0).cancelled);  // decided at the message, not at the end
  ctx_.advance(1 * kMs);
  ASSERT_EQ(attempts(), 2u);
  attempt(1).respond(200, {{"content-type", "application/connect+proto"}});
  std::string msg = envelope(0, "m1");
  attempt(1).respondBody(msg);
  ASSERT_TRUE(down_->head);  // a message: committed at once
  EXPECT_EQ(down_->body, msg);
  std::string end = envelope(kConnectFlagEndStream, "{}");
  attempt(1).respondBody(end);
  attempt(1).respondEnd();
  EXPECT_EQ(down_->body, msg + end);
  EXPECT_TRUE(down_->completed);
}

TEST_F(ConnectStreamTest, ConnectTimeoutMsJoinsTheDeadlineAndIsRewritten) {
  policy_.request_timeout_us = 10'000 * kMs;
  start(false, {{"connect-timeout-ms", "250"}});
  EXPECT_EQ(attempt(0).header("connect-timeout-ms"), "250");
  ctx_.advance(100 * kMs);
  EXPECT_EQ(attempt(0).header("x-timeout-budget"), "250");
  attempt(0).respond(503, json());
  attempt(0).respondBody(R"({"code":"unavailable"})");
  attempt(0).respondEnd();
  ctx_.advance(1 * kMs);
  ASSERT_EQ(attempts(), 2u);
  // Built at 101 ms (the fake clock moves, then fires the backoff timer):
  // 149 ms left.
  EXPECT_EQ(attempt(1).header("connect-timeout-ms"), "149");
}

TEST_F(ConnectStreamTest, UnaryDeadlineAnswers504WithConnectJson) {
  policy_.request_timeout_us = 300 * kMs;
  start(false);
  ctx_.advance(300 * kMs);
  ASSERT_TRUE(down_->reply);
  EXPECT_EQ(down_->reply->status, 504);
  EXPECT_EQ(down_->reply->content_type, "application/json");
  EXPECT_EQ(down_->reply->body, R"({"code":"deadline_exceeded","message":"upstream request timeout"})");
  EXPECT_FALSE(down_->reply->grpc);
}

TEST_F(ConnectStreamTest, StreamingDeadlineAnswers200WithEndOfStreamError) {
  policy_.request_timeout_us = 300 * kMs;
  start(true);
  ctx_.advance(300 * kMs);
  ASSERT_TRUE(down_->reply);
  EXPECT_EQ(down_->reply->status, 200);
  EXPECT_EQ(down_->reply->content_type, "application/connect+proto");
  EXPECT_EQ(down_->reply->body,
            envelope(kConnectFlagEndStream,
                     R"({"error":{"code":"deadline_exceeded","message":"upstream request timeout"}})"));
}

TEST_F(ConnectStreamTest, StreamingDeadlineAfterAMessageEndsTheStreamBetweenMessages) {
  policy_.request_timeout_us = 300 * kMs;
  start(true);
  attempt(0).respond(200, {{"content-type", "application/connect+proto"}});
  std::string msg = envelope(0, "m1");
  attempt(0).respondBody(msg);
  ctx_.advance(300 * kMs);
  EXPECT_TRUE(attempt(0).cancelled);
  EXPECT_EQ(down_->body, msg + envelope(kConnectFlagEndStream,
                                        R"({"error":{"code":"deadline_exceeded","message":"upstream request timeout"}})"));
  EXPECT_TRUE(down_->completed);
}

TEST_F(ConnectStreamTest, StreamingDeadlineMidMessageAbortsInstead) {
  policy_.request_timeout_us = 300 * kMs;
  start(true);
  attempt(0).respond(200, {{"content-type", "application/connect+proto"}});
  attempt(0).respondBody(envelope(0, "m1").substr(0, 6));
  ctx_.advance(300 * kMs);
  EXPECT_TRUE(down_->aborted);  // an end-of-stream message here would corrupt the message
}

TEST_F(ConnectStreamTest, OwnFailureAnswers503UnavailableInConnectForm) {
  policy_.retry.num_retries = 0;
  start(false);
  attempt(0).failWith(retry::OutcomeKind::kConnectFailure);
  ASSERT_TRUE(down_->reply);
  EXPECT_EQ(down_->reply->status, 503);
  EXPECT_EQ(parseConnectErrorBody(down_->reply->body), 14);
}

TEST_F(ConnectStreamTest, OwnOverflowCarriesTheOverloadedSignalInConnectForm) {
  start(true);
  attempt(0).failWith(retry::OutcomeKind::kOverflow);
  ASSERT_TRUE(down_->reply);
  EXPECT_EQ(down_->reply->status, 200);
  EXPECT_EQ(down_->reply->overloaded, "upstream-connections");
}

// ---------------------------------------------------- overload signals --

TEST_F(ConnectStreamTest, OverloadedUpstreamIsNotRetriedAndTheRefusalCounted) {
  pfc::EffectivePolicy p = pfc::builtinDefaults();  // 503 in retry_on
  policy_ = p;
  ctx_.setPolicy(policy_);
  down_ = std::make_unique<FakeDownstream>(ctx_, Protocol::kHttp1, *net::Address::parseNumeric("10.0.0.7:8080"));
  RequestHead head;
  head.method = "GET";
  head.authority = "svc";
  head.path = "/";
  stream_ = std::make_unique<ProxyStream>(down_.get(), std::move(head), ctx_.fake_clock.nowUs());
  stream_->start();
  attempt(0).respond(503, {{"x-envoy-overloaded", "true"}});
  attempt(0).respondEnd();
  ctx_.advance(1000 * kMs);
  EXPECT_EQ(attempts(), 1u);
  ASSERT_TRUE(down_->head);
  EXPECT_EQ(down_->head->status, 503);
  EXPECT_EQ(refusals(retry::Refusal::kOverloaded), 1u);
}

}  // namespace
}  // namespace mulligan::proxy
