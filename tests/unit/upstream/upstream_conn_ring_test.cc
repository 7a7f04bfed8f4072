// UpstreamConn on the worker's io_uring (net::IoRing): the holder reads what
// the ring delivered through readForParse, bytes it leaves stay in the input,
// EOF reaches it, and bytes a back-pressure pause took in are handed to it
// after the resume even when the peer sends nothing more.
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <string>

#include "sidecar/net/io_ring.h"
#include "sidecar/upstream/upstream_conn.h"

namespace mulligan::proxy {
namespace {

struct Holder : UpstreamConn::User {
  std::string got;  // what it read, fresh bytes and input alike
  int eofs = 0;
  bool reads = true;  // false: hears of bytes and leaves them
  int heard = 0;
  void onConnReadable(UpstreamConn* c) override {
    ++heard;
    if (!reads) return;
    const char* fresh = nullptr;
    net::ReadResult r = c->readForParse(&fresh);
    if (r.status == net::ReadStatus::kData) {
      if (fresh) {
        got.append(fresh, r.bytes);
      } else {  // behind older bytes, or a kick: everything in the input
        evbuffer* in = bufferevent_get_input(c->bev());
        std::string all(evbuffer_get_length(in), '\0');
        evbuffer_remove(in, all.data(), all.size());
        got += all;
      }
    } else if (r.status == net::ReadStatus::kEof) {
      ++eofs;
    }
  }
  void onConnEvent(UpstreamConn*, short) override {}
  void onConnWritten(UpstreamConn*) override {}
};

class UpstreamConnRingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = event_base_new();
    std::string why;
    ring_ = net::IoRing::create(base_, &why);
    if (!ring_) GTEST_SKIP() << "io_uring unavailable here: " << why;
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    evutil_make_socket_nonblocking(sv[0]);
    peer_ = sv[1];
    conn_ = new UpstreamConn(base_, bufferevent_socket_new(base_, sv[0], BEV_OPT_CLOSE_ON_FREE), &holder_,
                             ring_.get());
    conn_->startWatching();
  }
  void TearDown() override {
    delete conn_;
    if (peer_ >= 0) close(peer_);
    ring_.reset();
    event_base_free(base_);
  }
  void runUntil(const std::function<bool()>& done) {
    for (int i = 0; i < 2000 && !done(); ++i) {
      timeval tv{0, 1000};
      event_base_loopexit(base_, &tv);
      event_base_dispatch(base_);
    }
    ASSERT_TRUE(done());
  }
  void spin() {
    for (int i = 0; i < 20; ++i) event_base_loop(base_, EVLOOP_NONBLOCK);
  }
  size_t inputLength() { return evbuffer_get_length(bufferevent_get_input(conn_->bev())); }

  event_base* base_ = nullptr;
  std::unique_ptr<net::IoRing> ring_;
  Holder holder_;
  UpstreamConn* conn_ = nullptr;
  int peer_ = -1;
};

TEST_F(UpstreamConnRingTest, TheHolderReadsWhatArrivedAndHearsTheEof) {
  ASSERT_EQ(write(peer_, "HTTP/1.1 200 OK\r\n", 17), 17);
  runUntil([&] { return holder_.got == "HTTP/1.1 200 OK\r\n"; });
  shutdown(peer_, SHUT_WR);
  runUntil([&] { return holder_.eofs == 1; });
  EXPECT_FALSE(conn_->reading());
}

TEST_F(UpstreamConnRingTest, BytesTheHolderLeavesStayInTheInput) {
  holder_.reads = false;
  ASSERT_EQ(write(peer_, "unread", 6), 6);
  runUntil([&] { return holder_.heard == 1; });
  EXPECT_EQ(inputLength(), 6u);  // where the next holder (the pool's checks) looks
}

TEST_F(UpstreamConnRingTest, BytesTakenInByAPauseReachTheHolderAfterTheResume) {
  ASSERT_EQ(write(peer_, "first", 5), 5);
  runUntil([&] { return holder_.got == "first"; });
  // And then the peer is silent. A local socket has nothing in flight:
  // once write() returns, "last" is in the connection's socket (or already
  // in the ring's completion queue), which is all the pause needs. No wait.
  ASSERT_EQ(write(peer_, "last", 4), 4);
  conn_->pauseReading();  // back-pressure: the receive stops, "last" goes to the input
  EXPECT_EQ(inputLength(), 4u);
  spin();
  EXPECT_EQ(holder_.got, "first");  // paused: not delivered
  conn_->resumeReading();
  runUntil([&] { return holder_.got == "firstlast"; });
  EXPECT_TRUE(conn_->reading());
}

}  // namespace
}  // namespace mulligan::proxy
