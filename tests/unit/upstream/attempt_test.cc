// The attempt helpers: which inbound fields the engine's per-attempt
// headers replace.
#include "sidecar/upstream/attempt.h"

#include <gtest/gtest.h>

namespace mulligan::proxy {
namespace {

TEST(AttemptHeaderReplacementTest, InboundFieldsOfTheEngineNamesAreReplacedCaseInsensitively) {
  retry::AttemptHeaders extra;
  extra.addNumber(retry::kAttemptCountHeader, 2);
  extra.add(retry::kGrpcTimeoutHeader, "300000u");
  EXPECT_TRUE(replacedByAttemptHeaders(extra, "Grpc-Timeout"));
  EXPECT_TRUE(replacedByAttemptHeaders(extra, "x-envoy-attempt-count"));
  EXPECT_FALSE(replacedByAttemptHeaders(extra, "x-timeout-budget"));  // not set: passes through
}

}  // namespace
}  // namespace mulligan::proxy

// ------------------------------------------------ the attempt lifecycle --
// A FakeAttempt on a real loop: each phase's timer, when it fires, ends the
// attempt with the phase's outcome, once, from the loop — the same whether
// the phase timer is a plain libevent timer or goes through the worker's
// timer queues (Transports gives every attempt its worker's: the param).

#include <event2/event.h>

#include "sidecar/event/timer_queue.h"

#include "tests/fakes/fake_attempt.h"

namespace mulligan::proxy {
namespace {

struct Recorder : Attempt::Owner {
  std::vector<retry::OutcomeKind> failures;
  int heads = 0, aborts = 0, completes = 0;
  void onAttemptFailed(Attempt&, retry::OutcomeKind k, const std::string&) override { failures.push_back(k); }
  void onAttemptHead(Attempt&, MessageHead&, bool) override { ++heads; }
  void onAttemptBody(Attempt&, const char*, size_t) override {}
  void onAttemptTrailers(Attempt&, HeaderList&) override {}
  void onAttemptComplete(Attempt&) override { ++completes; }
  void onAttemptAborted(Attempt&, const std::string&) override { ++aborts; }
  void onAttemptReadDone(Attempt&) override {}
};

// A transport that is still connecting after start().
class Connecting final : public Attempt {
 public:
  Connecting(event_base* b, Owner* o, Timeouts t) : Attempt(b, o, *net::Address::parseNumeric("10.0.0.1:80"), t) {}
  void sendHead(const RequestHead&, const retry::AttemptHeaders&) override {}
  void sendBody(const char*, size_t) override {}
  void endRequest(const HeaderList*) override {}
  void start() override { transitionTo(State::kConnecting); }
  void flush() override {}
  void setIdleTimeoutUs(int64_t) override {}
  void forbidReuse() override {}
  void pauseReading(bool) override {}
  void cancel() override {}
  bufferevent* releaseConnection() override { return nullptr; }
  size_t requestBacklog() const override { return 0; }
  bool reused() const override { return false; }
  void connected() { transitionTo(State::kAwaitingHeaders); }
  void failAtOnce() { failSoon(retry::OutcomeKind::kConnectFailure, "at once"); }
};

class AttemptLifecycleTest : public ::testing::TestWithParam<bool> {
 protected:
  AttemptLifecycleTest() : base_(event_base_new()), queues_(std::make_unique<event::TimerQueues>(base_)) {}
  ~AttemptLifecycleTest() override {
    queues_.reset();  // its events live on the base
    event_base_free(base_);
  }
  // Until the attempt reported (a queue's libevent timer may wake a little
  // before its head is due, on libevent's coarse clock: it then re-arms).
  void runUntilOutcome() {
    while (owner_.failures.empty() && owner_.aborts == 0) event_base_loop(base_, EVLOOP_ONCE);
  }
  // The attempt's phase timer: through the queues (param true) or plain.
  template <typename A>
  A& queued(A& a) {
    a.useTimerQueues(GetParam() ? queues_.get() : nullptr);
    return a;
  }
  size_t expectedQueues(size_t n) const { return GetParam() ? n : 0; }
  event_base* base_;
  std::unique_ptr<event::TimerQueues> queues_;
  Recorder owner_;
};

INSTANTIATE_TEST_SUITE_P(PlainOrQueued, AttemptLifecycleTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Queued" : "Plain"; });

TEST_P(AttemptLifecycleTest, ConnectTimerIsAConnectFailureThatSaysItTimedOut) {
  Connecting a(base_, &owner_, {/*connect_us=*/1, /*read_us=*/0});
  queued(a);
  a.start();
  EXPECT_EQ(queues_->queueCount(), expectedQueues(1));  // the connect timeout's
  runUntilOutcome();
  ASSERT_EQ(owner_.failures, std::vector<retry::OutcomeKind>{retry::OutcomeKind::kConnectFailure});
  EXPECT_TRUE(a.connectTimedOut());
  EXPECT_EQ(a.timedOut(), retry::TimeoutKind::kConnect);
  EXPECT_EQ(a.state(), Attempt::State::kDone);
}

TEST_P(AttemptLifecycleTest, HeaderTimerIsAPerTryTimeout) {
  Connecting a(base_, &owner_, {/*connect_us=*/60'000'000, /*read_us=*/0});
  queued(a);
  a.setHeaderTimeoutUs(1);
  a.start();
  a.connected();  // the connect timer gives way to the header timer
  EXPECT_EQ(queues_->queueCount(), expectedQueues(2));
  runUntilOutcome();
  ASSERT_EQ(owner_.failures, std::vector<retry::OutcomeKind>{retry::OutcomeKind::kPerTryTimeout});
  EXPECT_EQ(a.timedOut(), retry::TimeoutKind::kPerTry);
  EXPECT_FALSE(a.connectTimedOut());
}

TEST_P(AttemptLifecycleTest, ReadTimerAbortsTheResponseMidway) {
  const net::Address dest = *net::Address::parseNumeric("10.0.0.1:80");
  const std::string method = "GET";  // AttemptSpec refers to both: they must outlive it
  AttemptSpec spec{Protocol::kHttp1, dest, method, {0, /*read_us=*/1}};
  FakeAttempt a(base_, &owner_, spec);
  queued(a);
  a.start();
  a.respond(200);
  EXPECT_EQ(owner_.heads, 1);
  runUntilOutcome();
  EXPECT_EQ(owner_.aborts, 1);
  EXPECT_TRUE(a.readTimedOut());
  EXPECT_TRUE(owner_.failures.empty());
}

TEST_P(AttemptLifecycleTest, NoHeaderTimeoutMeansNoTimerWhileAwaitingHeaders) {
  Connecting a(base_, &owner_, {0, 0});
  queued(a);
  a.start();
  a.connected();  // header timeout -1: the call's deadline answers instead
  EXPECT_EQ(event_base_loop(base_, EVLOOP_NONBLOCK), 1);  // nothing pending
  EXPECT_TRUE(owner_.failures.empty());
}

TEST_P(AttemptLifecycleTest, FailSoonReportsFromTheLoopNeverInline) {
  Connecting a(base_, &owner_, {0, 0});
  queued(a);
  a.failAtOnce();
  EXPECT_TRUE(owner_.failures.empty());
  runUntilOutcome();
  ASSERT_EQ(owner_.failures, std::vector<retry::OutcomeKind>{retry::OutcomeKind::kConnectFailure});
  EXPECT_FALSE(a.connectTimedOut());
}

TEST_P(AttemptLifecycleTest, OneOutcomeOnly) {
  const net::Address dest = *net::Address::parseNumeric("10.0.0.1:80");
  const std::string method = "GET";
  AttemptSpec spec{Protocol::kHttp2, dest, method, {0, 0}};
  FakeAttempt a(base_, &owner_, spec);
  queued(a);
  a.start();
  a.failWith(retry::OutcomeKind::kReset);
  a.failWith(retry::OutcomeKind::kReset);
  a.breakOff();
  EXPECT_EQ(owner_.failures.size(), 1u);
  EXPECT_EQ(owner_.aborts, 0);
}

}  // namespace
}  // namespace mulligan::proxy
