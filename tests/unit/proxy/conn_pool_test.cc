// ConnPool's per-destination connection count (the --max-upstream-connections
// cap): every way a connection leaves gives its slot back.
#include "sidecar/proxy/conn_pool.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

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
  // A connected bufferevent; the peer end stays open (or is written to).
  bufferevent* connection(int* peer = nullptr) {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    evutil_make_socket_nonblocking(sv[0]);
    peers_.push_back(sv[1]);
    if (peer) *peer = sv[1];
    return bufferevent_socket_new(base_, sv[0], BEV_OPT_CLOSE_ON_FREE);
  }
  void runOnce() { event_base_loop(base_, EVLOOP_NONBLOCK); }

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
  bufferevent* bev = connection(&peer);
  p.put("k:1", bev, std::move(s), 1'000'000);
  EXPECT_EQ(p.openCount("k:1"), 1u);  // idle still counts
  ConnPool::Slot again;
  EXPECT_FALSE(p.reserve("k:1", &again));
  ConnPool::Slot taken;
  EXPECT_EQ(p.take("k:1", &taken), bev);
  EXPECT_TRUE(taken);
  EXPECT_EQ(p.openCount("k:1"), 1u);
  p.put("k:1", bev, std::move(taken), 1'000'000);
  // The upstream closes the idle connection: dropped, slot back.
  ::shutdown(peer, SHUT_WR);
  for (int i = 0; i < 10 && p.idleCount() != 0; ++i) runOnce();
  EXPECT_EQ(p.idleCount(), 0u);
  EXPECT_EQ(p.openCount("k:1"), 0u);
}

TEST_F(ConnPoolTest, PutThatCannotKeepTheConnectionReleasesTheSlot) {
  ConnPool& p = pool(1);
  ConnPool::Slot s;
  ASSERT_TRUE(p.reserve("k:1", &s));
  p.put("k:1", connection(), std::move(s), 0);  // idle_timeout 0: no pooling
  EXPECT_EQ(p.openCount("k:1"), 0u);
}

TEST_F(ConnPoolTest, DrainingConnectionBecomesIdleAtTheExactEndOfItsBody) {
  ConnPool& p = pool(4);
  ConnPool::Slot s;
  ASSERT_TRUE(p.reserve("k:1", &s));
  int peer;
  bufferevent* bev = connection(&peer);
  p.putDraining("k:1", bev, std::move(s), 10, 1'000'000);
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
  EXPECT_EQ(p.take("k:1", &t), bev);
  EXPECT_EQ(p.openCount("k:1"), 1u);
  bufferevent_free(bev);
  t.release();
  EXPECT_EQ(p.openCount("k:1"), 0u);
}

TEST_F(ConnPoolTest, DrainingConnectionThatSendsMoreThanItsBodyIsClosed) {
  ConnPool& p = pool(4);
  ConnPool::Slot s;
  ASSERT_TRUE(p.reserve("k:1", &s));
  int peer;
  p.putDraining("k:1", connection(&peer), std::move(s), 4, 1'000'000);
  ASSERT_EQ(::write(peer, "0123HTTP", 8), 8);
  for (int i = 0; i < 10 && p.openCount("k:1") != 0; ++i) runOnce();
  EXPECT_EQ(p.openCount("k:1"), 0u);
  EXPECT_EQ(p.idleCount(), 0u);
}

TEST_F(ConnPoolTest, DrainRefusedWhenTheRestIsTooLarge) {
  ConnPool& p = pool(4);
  ConnPool::Slot s;
  ASSERT_TRUE(p.reserve("k:1", &s));
  p.putDraining("k:1", connection(), std::move(s), ConnPool::kMaxDrainBytes + 1, 1'000'000);
  EXPECT_EQ(p.openCount("k:1"), 0u);
}

}  // namespace
}  // namespace mulligan::proxy
