// ConnPool: the per-destination connection count (the
// --max-upstream-connections cap: every way a connection leaves gives its
// slot back), idle checks, draining, and the lazy idle timer (closes
// idle_timeout after the LAST put, whatever fired while lent out).
#include "sidecar/upstream/conn_pool.h"

#include "sidecar/net/socket_read.h"
#include "sidecar/upstream/upstream_conn.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>

namespace mulligan::proxy {
namespace {

class ConnPoolTest : public ::testing::Test {
 protected:
  void SetUp() override { base_ = event_base_new(); }
  void TearDown() override {
    pool_.reset();
    for (int fd : peers_) ::close(fd);
    event_base_free(base_);
  }
  ConnPool& pool(size_t max_conns) {
    pool_ = std::make_unique<ConnPool>(base_, ConnPool::Limits{.max_connections_per_destination = max_conns});
    return *pool_;
  }
  // A connected connection, watched as Http1Attempt::connected() does; the
  // peer end stays open (or is written to).
  UpstreamConn* connection(int* peer = nullptr) {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    evutil_make_socket_nonblocking(sv[0]);
    peers_.push_back(sv[1]);
    if (peer) *peer = sv[1];
    auto* c = new UpstreamConn(base_, bufferevent_socket_new(base_, sv[0], BEV_OPT_CLOSE_ON_FREE), nullptr);
    c->startWatching();
    return c;
  }
  void runOnce() { event_base_loop(base_, EVLOOP_NONBLOCK); }
  static int64_t nowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  // Runs the loop for `ms` (timers and readiness included).
  void runForMs(int ms) {
    timeval tv{ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(base_, &tv);
    event_base_dispatch(base_);
  }
  // Runs the loop until `done` or `cap_ms`; returns when it stopped (ms).
  int64_t runUntil(const std::function<bool()>& done, int cap_ms) {
    int64_t end = nowMs() + cap_ms;
    while (!done() && nowMs() < end) {
      timeval tv{0, 20'000};  // wakes at least every 20 ms to check the cap
      event_base_loopexit(base_, &tv);
      event_base_loop(base_, EVLOOP_ONCE);
    }
    return nowMs();
  }

  event_base* base_ = nullptr;
  std::unique_ptr<ConnPool> pool_;
  std::vector<int> peers_;
};

TEST_F(ConnPoolTest, ReserveRefusesAtTheCapAndAReleasedSlotIsReusable) {
  ConnPool& p = pool(2);
  ConnPool::Slot a, b, c;
  EXPECT_TRUE(p.reserve("k:1", &a));
  EXPECT_TRUE(p.reserve("k:1", &b));
  EXPECT_FALSE(p.reserve("k:1", &c));
  EXPECT_FALSE(c);
  EXPECT_TRUE(p.reserve("other:1", &c));  // per destination
  EXPECT_EQ(p.openCount("k:1"), 2u);
  a.release();  // e.g. a connect failure
  EXPECT_EQ(p.openCount("k:1"), 1u);
  { ConnPool::Slot d; EXPECT_TRUE(p.reserve("k:1", &d)); }  // destroyed: released
  EXPECT_EQ(p.openCount("k:1"), 1u);
}

TEST_F(ConnPoolTest, IdleConnectionKeepsItsSlotUntilTakenOrClosed) {
  ConnPool& p = pool(1);
  ConnPool::Slot s;
  ASSERT_TRUE(p.reserve("k:1", &s));
  int peer;
  UpstreamConn* conn = connection(&peer);
  p.put(conn, std::move(s), 1'000'000);
  EXPECT_EQ(p.openCount("k:1"), 1u);  // idle still counts
  ConnPool::Slot again;
  EXPECT_FALSE(p.reserve("k:1", &again));
  ConnPool::Slot taken;
  EXPECT_EQ(p.take("k:1", &taken), conn);
  EXPECT_TRUE(taken);
  EXPECT_EQ(p.openCount("k:1"), 1u);
  EXPECT_EQ(p.reused(), 1u);
  p.put(conn, std::move(taken), 1'000'000);
  // The upstream closes the idle connection: dropped, slot back.
  ::shutdown(peer, SHUT_WR);
  for (int i = 0; i < 10 && p.idleCount() != 0; ++i) runOnce();
  EXPECT_EQ(p.idleCount(), 0u);
  EXPECT_EQ(p.openCount("k:1"), 0u);
  EXPECT_EQ(p.closedWhileIdle(), 1u);
}

TEST_F(ConnPoolTest, PutThatCannotKeepTheConnectionReleasesTheSlot) {
  ConnPool& p = pool(1);
  ConnPool::Slot s;
  ASSERT_TRUE(p.reserve("k:1", &s));
  p.put(connection(), std::move(s), 0);  // idle_timeout 0: no pooling
  EXPECT_EQ(p.openCount("k:1"), 0u);
  EXPECT_EQ(p.idleCount(), 0u);
}

TEST_F(ConnPoolTest, DrainingConnectionBecomesIdleAtTheExactEndOfItsBody) {
  ConnPool& p = pool(4);
  ConnPool::Slot s;
  ASSERT_TRUE(p.reserve("k:1", &s));
  int peer;
  UpstreamConn* conn = connection(&peer);
  p.putDraining(conn, std::move(s), 10, 1'000'000);
  ConnPool::Slot t;
  EXPECT_EQ(p.take("k:1", &t), nullptr);  // not lent out while draining
  EXPECT_EQ(p.openCount("k:1"), 1u);
  ASSERT_EQ(::write(peer, "01234", 5), 5);
  for (int i = 0; i < 5; ++i) runOnce();
  EXPECT_EQ(p.idleCount(), 0u);
  ASSERT_EQ(::write(peer, "56789", 5), 5);
  for (int i = 0; i < 10 && p.idleCount() == 0; ++i) runOnce();
  EXPECT_EQ(p.idleCount(), 1u);
  EXPECT_EQ(p.drained(), 1u);
  EXPECT_EQ(p.take("k:1", &t), conn);
  EXPECT_EQ(evbuffer_get_length(bufferevent_get_input(conn->bev())), 0u);  // the body is gone
  EXPECT_EQ(p.openCount("k:1"), 1u);
  delete conn;
  t.release();
  EXPECT_EQ(p.openCount("k:1"), 0u);
}

TEST_F(ConnPoolTest, DrainingConnectionThatSendsMoreThanItsBodyIsClosed) {
  ConnPool& p = pool(4);
  ConnPool::Slot s;
  ASSERT_TRUE(p.reserve("k:1", &s));
  int peer;
  p.putDraining(connection(&peer), std::move(s), 4, 1'000'000);
  ASSERT_EQ(::write(peer, "0123HTTP", 8), 8);
  for (int i = 0; i < 10 && p.openCount("k:1") != 0; ++i) runOnce();
  EXPECT_EQ(p.openCount("k:1"), 0u);
  EXPECT_EQ(p.idleCount(), 0u);
}

TEST_F(ConnPoolTest, DrainRefusedWhenTheRestIsTooLarge) {
  ConnPool& p = pool(4);
  ConnPool::Slot s;
  ASSERT_TRUE(p.reserve("k:1", &s));
  p.putDraining(connection(), std::move(s), ConnPool::kMaxDrainBytes + 1, 1'000'000);
  EXPECT_EQ(p.openCount("k:1"), 0u);
}

TEST_F(ConnPoolTest, DrainCountsBytesAlreadyBufferedAndTheUpstreamClosingEndsIt) {
  ConnPool& p = pool(4);
  ConnPool::Slot s;
  ASSERT_TRUE(p.reserve("k:1", &s));
  int peer;
  UpstreamConn* conn = connection(&peer);
  // Read by the attempt before it walked away: part of the body.
  net::takeInput(conn->bev());
  ASSERT_EQ(evbuffer_add(bufferevent_get_input(conn->bev()), "abc", 3), 0);
  p.putDraining(conn, std::move(s), 8, 1'000'000);
  EXPECT_EQ(p.openCount("k:1"), 1u);
  ASSERT_EQ(::write(peer, "de", 2), 2);
  for (int i = 0; i < 5; ++i) runOnce();
  EXPECT_EQ(p.openCount("k:1"), 1u);  // 3 bytes still to come
  ::shutdown(peer, SHUT_WR);          // ... but the upstream gives up
  runUntil([&] { return p.openCount("k:1") == 0; }, 2000);
  EXPECT_EQ(p.openCount("k:1"), 0u);
  EXPECT_EQ(p.idleCount(), 0u);
  EXPECT_EQ(p.drained(), 0u);
}

TEST_F(ConnPoolTest, IdleConnectionThatReceivesAByteIsDropped) {
  ConnPool& p = pool(4);
  ConnPool::Slot s;
  ASSERT_TRUE(p.reserve("k:1", &s));
  int peer;
  p.put(connection(&peer), std::move(s), 10'000'000);
  ASSERT_EQ(::write(peer, "H", 1), 1);  // e.g. the start of a 408
  runUntil([&] { return p.idleCount() == 0; }, 2000);
  EXPECT_EQ(p.idleCount(), 0u);
  EXPECT_EQ(p.openCount("k:1"), 0u);
  EXPECT_EQ(p.closedWhileIdle(), 1u);
  ConnPool::Slot t;
  EXPECT_EQ(p.take("k:1", &t), nullptr);
}

TEST_F(ConnPoolTest, PutWithUnreadInputClosesTheConnection) {
  ConnPool& p = pool(4);
  ConnPool::Slot s;
  ASSERT_TRUE(p.reserve("k:1", &s));
  UpstreamConn* conn = connection();
  net::takeInput(conn->bev());
  ASSERT_EQ(evbuffer_add(bufferevent_get_input(conn->bev()), "x", 1), 0);
  p.put(conn, std::move(s), 10'000'000);
  EXPECT_EQ(p.idleCount(), 0u);
  EXPECT_EQ(p.openCount("k:1"), 0u);
}

// The holder switch: readiness on a lent connection goes to its new User,
// not to the pool (which would drop it), with no re-registration.
class RecordingUser : public UpstreamConn::User {
 public:
  void onConnReadable(UpstreamConn* c) override {
    ++readable;
    c->pauseReading();  // level-triggered: once is enough for the test
  }
  void onConnEvent(UpstreamConn*, short) override { ++events; }
  void onConnWritten(UpstreamConn*) override {}
  int readable = 0;
  int events = 0;
};

TEST_F(ConnPoolTest, ReadinessOfALentConnectionGoesToItsHolder) {
  ConnPool& p = pool(4);
  ConnPool::Slot s;
  ASSERT_TRUE(p.reserve("k:1", &s));
  int peer;
  UpstreamConn* conn = connection(&peer);
  p.put(conn, std::move(s), 10'000'000);
  ConnPool::Slot t;
  ASSERT_EQ(p.take("k:1", &t), conn);
  EXPECT_TRUE(conn->reading());  // still added: nothing to do per request
  RecordingUser user;
  conn->setUser(&user);
  ASSERT_EQ(::write(peer, "HTTP/1.1 200 OK\r\n", 17), 17);
  runUntil([&] { return user.readable != 0; }, 2000);
  EXPECT_EQ(user.readable, 1);
  EXPECT_EQ(p.openCount("k:1"), 1u);
  EXPECT_EQ(p.closedWhileIdle(), 0u);
  delete conn;
  t.release();
  EXPECT_EQ(p.openCount("k:1"), 0u);
}

// The idle timer is lazy: armed once, it is not re-armed by every put, yet
// the connection closes idle_timeout after its LAST put, not its first.
TEST_F(ConnPoolTest, TakenAndPutBackSeveralTimesClosesIdleTimeoutAfterTheLastPut) {
  ConnPool& p = pool(4);
  constexpr int kTimeoutMs = 100;
  ConnPool::Slot s;
  ASSERT_TRUE(p.reserve("k:1", &s));
  UpstreamConn* conn = connection();
  int64_t first_put = nowMs();
  p.put(conn, std::move(s), kTimeoutMs * 1000);
  int64_t last_put = first_put;
  // Lent and returned past the first put's expiry: the timer armed by the
  // first put fires while the connection is idle but not expired.
  while (last_put - first_put < kTimeoutMs * 3 / 2) {
    runForMs(kTimeoutMs * 2 / 5);
    ConnPool::Slot t;
    ASSERT_EQ(p.take("k:1", &t), conn) << "closed " << nowMs() - last_put << " ms after a put";
    last_put = nowMs();
    p.put(conn, std::move(t), kTimeoutMs * 1000);
  }
  int64_t closed_at = runUntil([&] { return p.idleCount() == 0; }, 5000);
  EXPECT_EQ(p.idleCount(), 0u);
  EXPECT_EQ(p.openCount("k:1"), 0u);
  EXPECT_EQ(p.closedWhileIdle(), 1u);
  EXPECT_GE(closed_at - last_put, kTimeoutMs - 1);  // never early (1 ms of slack)
}

TEST_F(ConnPoolTest, TimerThatFiresWhileLentOutDoesNotDropAndTimesOutAfterReturn) {
  ConnPool& p = pool(4);
  constexpr int kTimeoutMs = 50;
  ConnPool::Slot s;
  ASSERT_TRUE(p.reserve("k:1", &s));
  UpstreamConn* conn = connection();
  p.put(conn, std::move(s), kTimeoutMs * 1000);
  ConnPool::Slot t;
  ASSERT_EQ(p.take("k:1", &t), conn);
  RecordingUser user;
  conn->setUser(&user);
  runForMs(kTimeoutMs * 3);  // the idle timer fires while lent out
  EXPECT_EQ(p.openCount("k:1"), 1u);
  EXPECT_EQ(p.closedWhileIdle(), 0u);
  EXPECT_EQ(user.readable + user.events, 0);
  int64_t put_at = nowMs();
  p.put(conn, std::move(t), kTimeoutMs * 1000);  // still usable (ASan would see a freed one)
  EXPECT_EQ(p.idleCount(), 1u);
  int64_t closed_at = runUntil([&] { return p.idleCount() == 0; }, 5000);
  EXPECT_EQ(p.idleCount(), 0u);
  EXPECT_EQ(p.openCount("k:1"), 0u);
  EXPECT_EQ(p.closedWhileIdle(), 1u);
  EXPECT_GE(closed_at - put_at, kTimeoutMs - 1);
}

TEST_F(ConnPoolTest, AShorterIdleTimeoutOnALaterPutTakesEffect) {
  ConnPool& p = pool(4);
  ConnPool::Slot s;
  ASSERT_TRUE(p.reserve("k:1", &s));
  UpstreamConn* conn = connection();
  p.put(conn, std::move(s), 60'000'000);  // the timer is armed for a minute
  ConnPool::Slot t;
  ASSERT_EQ(p.take("k:1", &t), conn);
  p.put(conn, std::move(t), 20'000);  // the policy now says 20 ms
  runUntil([&] { return p.idleCount() == 0; }, 5000);
  EXPECT_EQ(p.idleCount(), 0u);
  EXPECT_EQ(p.openCount("k:1"), 0u);
}

TEST_F(ConnPoolTest, DrainedConnectionIdlesForItsIdleTimeoutThenCloses) {
  ConnPool& p = pool(4);
  ConnPool::Slot s;
  ASSERT_TRUE(p.reserve("k:1", &s));
  int peer;
  p.putDraining(connection(&peer), std::move(s), 2, 30'000);
  ASSERT_EQ(::write(peer, "ok", 2), 2);
  runUntil([&] { return p.idleCount() == 1; }, 2000);
  ASSERT_EQ(p.idleCount(), 1u);
  EXPECT_EQ(p.drained(), 1u);
  runUntil([&] { return p.idleCount() == 0; }, 5000);
  EXPECT_EQ(p.idleCount(), 0u);
  EXPECT_EQ(p.openCount("k:1"), 0u);
}

TEST_F(ConnPoolTest, DetachHandsTheBuffereventOverWithItsUnreadBytes) {
  int peer;
  UpstreamConn* conn = connection(&peer);
  ASSERT_EQ(::write(peer, "rest", 4), 4);
  ASSERT_EQ(net::readSome(conn->bev()).status, net::ReadStatus::kData);
  bufferevent* bev = conn->detach();
  delete conn;  // does not close what it handed over
  EXPECT_EQ(evbuffer_get_length(bufferevent_get_input(bev)), 4u);
  EXPECT_GE(::write(peer, "x", 1), 1);  // the socket is still open
  bufferevent_free(bev);
}

}  // namespace
}  // namespace mulligan::proxy
