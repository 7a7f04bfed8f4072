// net::IoRing's receiving: bytes in order, EOF and resets reported once,
// stop() hands over what had arrived, detach() drops a reader for good, the
// pool running dry loses nothing, and one sweep never starves the rest of
// the loop. Its sending is in send_batch_test.cc, with AioSendBatch's.
#include "sidecar/net/io_ring.h"

#include <event2/event.h>
#include <gtest/gtest.h>
#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <vector>

#include "socket_pairs.h"

namespace mulligan::net {
namespace {

// Until everything `sender` wrote has reached its peer's kernel: TCP's
// send queue holds a byte until the peer acknowledges it, so an empty one
// means the bytes sit in the peer's socket, or already in the ring that
// receives from it. Checked every millisecond, 5 s at most.
bool waitUntilDelivered(int sender) {
  for (int waited = 0; waited < kWaitMs; ++waited) {
    int unacked = 0;
    if (ioctl(sender, SIOCOUTQ, &unacked) != 0) return false;
    if (unacked == 0) return true;
    poll(nullptr, 0, 1);
  }
  return false;
}

struct Recorder : IoRing::Reader {
  std::string got;
  int ends = 0;
  int end_result = 1;
  std::function<void(const char*, size_t)> on_data;  // extra action per delivery
  void onRecvData(const char* data, size_t len) override {
    got.append(data, len);
    if (on_data) on_data(data, len);
  }
  void onRecvEnd(int result) override {
    ++ends;
    end_result = result;
  }
};

class IoRingTest : public LoopTest<::testing::Test> {
 protected:
  void SetUp() override {
    LoopTest::SetUp();
    std::string why;
    ring_ = IoRing::create(base_, &why);
    if (!ring_) GTEST_SKIP() << "io_uring unavailable here: " << why;
  }
  void TearDown() override {
    ring_.reset();
    LoopTest::TearDown();
  }
  // Runs the loop until `done` or 5 s (a hang fails, not blocks, the test).
  void runUntil(const std::function<bool()>& done) {
    for (int i = 0; i < 5000 && !done(); ++i) {
      timeval tv{0, 1000};
      event_base_loopexit(base_, &tv);
      event_base_dispatch(base_);
    }
    ASSERT_TRUE(done());
  }

  std::unique_ptr<IoRing> ring_;
};

TEST_F(IoRingTest, BytesArriveInOrderAndEofEndsTheReceiveOnce) {
  int s[2];
  pair(s);
  Recorder r;
  IoRing::Slot slot = ring_->attach(&r, s[0]);
  ring_->start(slot);
  ring_->start(slot);  // idempotent
  EXPECT_EQ(ring_->armedCount(), 1u);
  ASSERT_EQ(write(s[1], "hello ", 6), 6);
  runUntil([&] { return r.got == "hello "; });
  ASSERT_EQ(write(s[1], "world", 5), 5);
  shutdown(s[1], SHUT_WR);
  runUntil([&] { return r.ends == 1; });
  EXPECT_EQ(r.got, "hello world");
  EXPECT_EQ(r.end_result, 0);
  EXPECT_FALSE(ring_->receiving(slot));
  EXPECT_EQ(ring_->armedCount(), 0u);
  ring_->detach(slot);
}

TEST_F(IoRingTest, AResetIsAnErrorEnd) {
  int s[2];
  pair(s);
  Recorder r;
  IoRing::Slot slot = ring_->attach(&r, s[0]);
  ring_->start(slot);
  linger l{1, 0};  // close with a reset
  setsockopt(s[1], SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(s[1]);
  fds_.pop_back();
  runUntil([&] { return r.ends == 1; });
  EXPECT_EQ(r.end_result, -ECONNRESET);
  ring_->detach(slot);
}

TEST_F(IoRingTest, StopHandsOverWhatArrivedAndNothingAfter) {
  int s[2];
  pair(s);
  Recorder r;
  IoRing::Slot slot = ring_->attach(&r, s[0]);
  ring_->start(slot);
  runUntil([&] { return true; });  // the receive is armed in the kernel
  ASSERT_EQ(write(s[1], "before", 6), 6);
  ASSERT_TRUE(waitUntilDelivered(s[1]));  // received by the kernel, not yet collected by the loop
  ring_->stop(slot);
  EXPECT_EQ(r.got, "before");  // handed over inside stop()
  EXPECT_EQ(ring_->armedCount(), 0u);
  ASSERT_EQ(write(s[1], "after", 5), 5);
  for (int i = 0; i < 20; ++i) event_base_loop(base_, EVLOOP_NONBLOCK);
  EXPECT_EQ(r.got, "before");  // stopped: "after" waits in the socket
  char buf[16];
  EXPECT_EQ(read(s[0], buf, sizeof buf), 5);  // readable another way now
  ring_->start(slot);
  ASSERT_EQ(write(s[1], "again", 5), 5);
  runUntil([&] { return r.got == "beforeagain"; });
  EXPECT_EQ(r.ends, 0);
  ring_->detach(slot);
}

TEST_F(IoRingTest, ADetachedReaderHearsNothingAndItsSlotStartsClean) {
  int s[2], t[2];
  pair(s);
  pair(t);
  Recorder gone, next;
  IoRing::Slot slot = ring_->attach(&gone, s[0]);
  ring_->start(slot);
  runUntil([&] { return true; });
  ASSERT_EQ(write(s[1], "stale", 5), 5);
  ring_->detach(slot);
  IoRing::Slot reused = ring_->attach(&next, t[0]);
  EXPECT_EQ(reused, slot);  // slots are reused; completions of the old arm are stale
  ring_->start(reused);
  ASSERT_EQ(write(t[1], "fresh", 5), 5);
  runUntil([&] { return next.got == "fresh"; });
  for (int i = 0; i < 20; ++i) event_base_loop(base_, EVLOOP_NONBLOCK);
  EXPECT_EQ(gone.got, "");
  EXPECT_EQ(next.got, "fresh");
  ring_->detach(reused);
}

TEST_F(IoRingTest, MoreThanThePoolHoldsArrivesWholeAndInOrder) {
  int s[2];
  pair(s);
  Recorder r;
  IoRing::Slot slot = ring_->attach(&r, s[0]);
  ring_->start(slot);
  // Several times the pool (kBuffers * kBufferSize) while the loop does not
  // run: the receive runs out of buffers (ENOBUFS) and is armed again.
  std::string sent;
  for (size_t i = 0; sent.size() < 3u * IoRing::kBuffers * IoRing::kBufferSize; ++i) {
    sent += std::to_string(i) + ",";
  }
  size_t off = 0;
  runUntil([&] {
    while (off < sent.size()) {
      ssize_t n = send(s[1], sent.data() + off, sent.size() - off, MSG_DONTWAIT);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    return r.got.size() == sent.size();
  });
  EXPECT_TRUE(r.got == sent);
  EXPECT_EQ(r.ends, 0);
  EXPECT_TRUE(ring_->receiving(slot));
  ring_->detach(slot);
}

TEST_F(IoRingTest, MoreArmsInOneIterationThanTheQueueHoldsAllReceive) {
  // 1,100 receives started before the loop runs: the 1,024-entry
  // submission queue fills, is handed to the kernel, and the rest follow.
  constexpr int kSockets = 1100;
  std::vector<Recorder> readers(kSockets);
  std::vector<int> peers;
  for (int i = 0; i < kSockets; ++i) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) GTEST_SKIP() << "out of descriptors";
    fds_.push_back(sv[0]);
    fds_.push_back(sv[1]);
    peers.push_back(sv[1]);
    ring_->start(ring_->attach(&readers[i], sv[0]));
  }
  EXPECT_EQ(ring_->armedCount(), static_cast<size_t>(kSockets));
  for (int fd : peers) ASSERT_EQ(write(fd, "x", 1), 1);
  runUntil([&] {
    for (const Recorder& r : readers) {
      if (r.got != "x") return false;
    }
    return true;
  });
  for (const Recorder& r : readers) EXPECT_EQ(r.ends, 0);
}

TEST_F(IoRingTest, OneSweepLeavesTheLoopItsTurn) {
  // Two readers that answer each other: every delivery makes another one
  // at once. A sweep that chased new completions would never return; a
  // timer must still fire.
  // (They give up after kLimit bounces, so that a starving ring fails
  // this test rather than hangs it.)
  int a[2], b[2];
  pair(a);
  pair(b);
  Recorder ra, rb;
  constexpr long kLimit = 1'000'000;
  long bounces = 0;
  ra.on_data = [&](const char*, size_t) {
    if (++bounces < kLimit) (void)!write(b[1], "x", 1);
  };
  rb.on_data = [&](const char*, size_t) {
    if (++bounces < kLimit) (void)!write(a[1], "x", 1);
  };
  IoRing::Slot sa = ring_->attach(&ra, a[0]);
  IoRing::Slot sb = ring_->attach(&rb, b[0]);
  ring_->start(sa);
  ring_->start(sb);
  struct Fired {
    long* bounces;
    long at = -1;  // bounces when the timer fired
  } fired{&bounces};
  event* timer = evtimer_new(
      base_,
      [](evutil_socket_t, short, void* arg) {
        auto* f = static_cast<Fired*>(arg);
        f->at = *f->bounces;
      },
      &fired);
  timeval tv{0, 50'000};
  evtimer_add(timer, &tv);
  ASSERT_EQ(write(a[1], "x", 1), 1);
  runUntil([&] { return fired.at >= 0; });
  EXPECT_GT(fired.at, 0);       // the ping-pong ran
  EXPECT_LT(fired.at, kLimit);  // and the timer fired while it still did
  event_free(timer);
  ring_->detach(sa);
  ring_->detach(sb);
}

}  // namespace
}  // namespace mulligan::net
