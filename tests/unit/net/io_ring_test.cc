// net::IoRing. Receiving: bytes in order, EOF and resets reported once,
// stop() hands over what had arrived, detach() drops a reader for good, the
// pool running dry loses nothing, and one sweep never starves the rest of
// the loop. Sending, for both send batches (net::SendBatch: IoRing's and
// net::AioSendBatch's): queued writers go together at the end of the
// iteration, a full socket takes part, forgotten or declining writers send
// nothing, errors reach the writer, more writers than one submit carries
// all send.
#include "sidecar/net/io_ring.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <gtest/gtest.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <functional>
#include <string>
#include <vector>

#include "sidecar/net/aio_send_batch.h"

namespace mulligan::net {
namespace {

// A connected TCP pair on loopback: [0] is read through the ring, [1] is the peer.
void tcpPair(int out[2]) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(l, 4), 0);
  socklen_t len = sizeof a;
  getsockname(l, reinterpret_cast<sockaddr*>(&a), &len);
  out[1] = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(connect(out[1], reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  out[0] = accept(l, nullptr, nullptr);
  ASSERT_GE(out[0], 0);
  evutil_make_socket_nonblocking(out[0]);
  close(l);
}

// Waiting on conditions, not for a while: each wait ends as soon as what it
// waits for happened, and gives up only after 5 s (a failure, never a hang),
// so that a loaded machine makes the tests slower, not flaky.
constexpr int kWaitMs = 5000;

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

// Exactly `n` bytes from `fd`, waiting for each; fewer when one wait takes 5 s.
std::string recvExactly(int fd, size_t n) {
  std::string got;
  char buf[65536];
  while (got.size() < n) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, kWaitMs) != 1) break;
    ssize_t r = recv(fd, buf, std::min(sizeof buf, n - got.size()), MSG_DONTWAIT);
    if (r <= 0) break;
    got.append(buf, static_cast<size_t>(r));
  }
  return got;
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

// A loop and the socket pairs a test made (closed after the test).
template <typename Base>
class LoopTest : public Base {
 protected:
  void SetUp() override { base_ = event_base_new(); }
  void TearDown() override {
    for (int fd : fds_) close(fd);
    event_base_free(base_);
  }
  void pair(int out[2]) {
    tcpPair(out);
    fds_.push_back(out[0]);
    fds_.push_back(out[1]);
  }
  event_base* base_ = nullptr;
  std::vector<int> fds_;
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

// The sends' tests, run on each batch: "io_uring" (IoRing) and "aio"
// (AioSendBatch, the epoll path's).
class SendBatchTest : public LoopTest<::testing::TestWithParam<std::string>> {
 protected:
  void SetUp() override {
    LoopTest::SetUp();
    std::string why;
    if (GetParam() == "io_uring") {
      ring_ = IoRing::create(base_, &why);
      batch_ = ring_.get();
    } else {
      aio_ = AioSendBatch::create(base_, &why);
      batch_ = aio_.get();
    }
    if (!batch_) GTEST_SKIP() << GetParam() << " unavailable here: " << why;
  }
  void TearDown() override {
    ring_.reset();
    aio_.reset();
    LoopTest::TearDown();
  }
  std::unique_ptr<IoRing> ring_;
  std::unique_ptr<AioSendBatch> aio_;
  SendBatch* batch_ = nullptr;
};

INSTANTIATE_TEST_SUITE_P(Batches, SendBatchTest, ::testing::Values("io_uring", "aio"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

struct Sender : SendBatch::Writer {
  int fd = -1;
  std::string bytes;
  bool decline = false;
  int asked = 0;
  std::vector<long> results;
  std::function<void()> on_wrote;  // extra action when told its result
  bool bytesToSend(int* out_fd, const char** data, size_t* len) override {
    ++asked;
    if (decline) return false;
    *out_fd = fd;
    *data = bytes.data();
    *len = bytes.size();
    return true;
  }
  void wrote(long result) override {
    results.push_back(result);
    if (on_wrote) on_wrote();
  }
};

// Socket pairs for `senders` (as many), each sender writing "answer <i>" to
// its pair's [0], all queued in `batch` in order.
void queueWriters(SendBatch* batch, std::vector<std::array<int, 2>>& pairs, std::vector<Sender>& senders,
                  const std::function<void(int*)>& make_pair) {
  for (size_t i = 0; i < senders.size(); ++i) {
    make_pair(pairs[i].data());
    if (::testing::Test::HasFatalFailure()) return;
    senders[i].fd = pairs[i][0];
    senders[i].bytes = "answer " + std::to_string(i);
    batch->sendSoon(&senders[i]);
  }
}

// Everything waiting in `fd` now (non-blocking).
std::string drain(int fd) {
  std::string got;
  char buf[65536];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n <= 0) return got;
    got.append(buf, static_cast<size_t>(n));
  }
}

// What socket `from` had sent to its peer `to` before this call: a marker
// sent behind it (TCP keeps the order) bounds it, and everything that
// arrives before the marker is the answer. Proves that nothing was sent
// without waiting "long enough".
std::string sentBefore(int from, int to) {
  static const std::string kMarker = "<marker>";
  EXPECT_EQ(send(from, kMarker.data(), kMarker.size(), MSG_NOSIGNAL), static_cast<ssize_t>(kMarker.size()));
  std::string got;
  while (got.size() < kMarker.size() || got.compare(got.size() - kMarker.size(), kMarker.size(), kMarker) != 0) {
    std::string more = recvExactly(to, 1);
    if (more.empty()) {
      ADD_FAILURE() << "the marker never arrived";
      return got;
    }
    got += more;
  }
  return got.substr(0, got.size() - kMarker.size());
}

TEST_P(SendBatchTest, QueuedWritersSendTogetherAtTheEndOfTheIteration) {
  int s[2], t[2];
  pair(s);
  pair(t);
  Sender a, b;
  a.fd = s[0];
  a.bytes = "response one";
  b.fd = t[0];
  b.bytes = "response two";
  batch_->sendSoon(&a);
  batch_->sendSoon(&b);
  EXPECT_EQ(drain(s[1]), "");  // nothing before the loop runs
  event_base_loop(base_, EVLOOP_NONBLOCK);
  EXPECT_EQ(a.asked, 1);
  EXPECT_EQ(b.asked, 1);
  ASSERT_EQ(a.results.size(), 1u);  // handed over in the same iteration
  EXPECT_EQ(a.results[0], 12);
  ASSERT_EQ(b.results.size(), 1u);
  EXPECT_EQ(b.results[0], 12);
  EXPECT_EQ(recvExactly(s[1], 12), "response one");
  EXPECT_EQ(recvExactly(t[1], 12), "response two");
  EXPECT_EQ(drain(s[1]), "");  // and nothing else: the sends completed in the submit
  EXPECT_EQ(drain(t[1]), "");
  if (aio_) {
    EXPECT_EQ(aio_->sends(), 2u);
    EXPECT_EQ(aio_->submits(), 1u);  // both in one system call
  }
}

TEST_P(SendBatchTest, AFullSocketTakesPartAndSaysHowMuch) {
  int s[2];
  pair(s);
  int small = 4096;
  setsockopt(s[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  setsockopt(s[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  Sender a;
  a.fd = s[0];
  for (int i = 0; a.bytes.size() < (4u << 20); ++i) a.bytes += std::to_string(i) + ";";
  batch_->sendSoon(&a);
  event_base_loop(base_, EVLOOP_NONBLOCK);
  ASSERT_EQ(a.results.size(), 1u);  // never left waiting for room
  long took = a.results[0];
  EXPECT_LT(took, static_cast<long>(a.bytes.size()));
  EXPECT_TRUE(took > 0 || took == -EAGAIN) << took;
  // Exactly what it said it took, nothing more: the send completed in the
  // submit, so once those bytes are read nothing of it is left in flight.
  size_t n = took > 0 ? static_cast<size_t>(took) : 0;
  EXPECT_TRUE(recvExactly(s[1], n) == a.bytes.substr(0, n));
  EXPECT_EQ(drain(s[1]), "");
}

TEST_P(SendBatchTest, ASocketWithNoRoomTakesNothingAndTheSendDoesNotWait) {
  int s[2];
  pair(s);
  std::string chunk(65536, 'f');
  while (send(s[0], chunk.data(), chunk.size(), MSG_DONTWAIT) > 0) {
  }
  Sender a;
  a.fd = s[0];
  a.bytes = "later";
  batch_->sendSoon(&a);
  event_base_loop(base_, EVLOOP_NONBLOCK);
  ASSERT_EQ(a.results.size(), 1u);  // not parked in the kernel until there is room
  EXPECT_EQ(a.results[0], -EAGAIN);
}

TEST_P(SendBatchTest, ForgottenOrDecliningWritersSendNothing) {
  int s[2], t[2];
  pair(s);
  pair(t);
  Sender gone, declines;
  gone.fd = s[0];
  gone.bytes = "never";
  declines.fd = t[0];
  declines.bytes = "never either";
  declines.decline = true;
  batch_->sendSoon(&gone);
  batch_->sendSoon(&declines);
  batch_->forget(&gone);
  event_base_loop(base_, EVLOOP_NONBLOCK);
  EXPECT_EQ(gone.asked, 0);
  EXPECT_EQ(declines.asked, 1);
  EXPECT_TRUE(gone.results.empty());
  EXPECT_TRUE(declines.results.empty());
  EXPECT_EQ(sentBefore(s[0], s[1]), "");
  EXPECT_EQ(sentBefore(t[0], t[1]), "");
}

TEST_P(SendBatchTest, ASendToAResetPeerReportsTheError) {
  int s[2];
  pair(s);
  linger l{1, 0};
  setsockopt(s[1], SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(s[1]);
  fds_.pop_back();
  pollfd p{s[0], POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, kWaitMs), 1);  // the reset has arrived
  ASSERT_TRUE(p.revents & (POLLERR | POLLHUP)) << p.revents;
  Sender a;
  a.fd = s[0];
  a.bytes = "to nobody";
  batch_->sendSoon(&a);
  event_base_loop(base_, EVLOOP_NONBLOCK);
  ASSERT_EQ(a.results.size(), 1u);
  EXPECT_TRUE(a.results[0] == -ECONNRESET || a.results[0] == -EPIPE) << a.results[0];
}

TEST_P(SendBatchTest, MoreWritersThanOneSubmitCarriesAllSendInOrder) {
  // AioSendBatch submits at most kEntries at a time; IoRing's queue holds
  // 256 entries.
  constexpr size_t kWriters = 300;
  std::vector<std::array<int, 2>> pairs(kWriters);
  std::vector<Sender> senders(kWriters);
  queueWriters(batch_, pairs, senders, [this](int* p) { pair(p); });
  if (HasFatalFailure()) return;
  event_base_loop(base_, EVLOOP_NONBLOCK);
  for (size_t i = 0; i < kWriters; ++i) {
    ASSERT_EQ(senders[i].results.size(), 1u) << i;
    EXPECT_EQ(senders[i].results[0], static_cast<long>(senders[i].bytes.size())) << i;
    EXPECT_EQ(recvExactly(pairs[i][1], senders[i].bytes.size()), senders[i].bytes) << i;
  }
  if (aio_) {
    EXPECT_EQ(aio_->sends(), kWriters);
    EXPECT_EQ(aio_->submits(), (kWriters + AioSendBatch::kEntries - 1) / AioSendBatch::kEntries);
  }
}

TEST_P(SendBatchTest, AWriterGoneWhileAnEarlierSubmitIsHandedOverSendsNothing) {
  // AioSendBatch submits kEntries at a time and hands each submit's results
  // over before the next; a writer that goes meanwhile (its destructor
  // calls forget) must not be submitted: its bytes and socket may be gone.
  if (!aio_) GTEST_SKIP() << "io_uring submits the whole iteration at once";
  constexpr size_t kWriters = AioSendBatch::kEntries + 8;
  std::vector<std::array<int, 2>> pairs(kWriters);
  std::vector<Sender> senders(kWriters);
  queueWriters(batch_, pairs, senders, [this](int* p) { pair(p); });
  if (HasFatalFailure()) return;
  Sender& gone = senders[kWriters - 1];  // in the second submit
  senders[0].on_wrote = [&] { batch_->forget(&gone); };
  event_base_loop(base_, EVLOOP_NONBLOCK);
  EXPECT_EQ(gone.asked, 1);
  EXPECT_TRUE(gone.results.empty());
  EXPECT_EQ(sentBefore(gone.fd, pairs[kWriters - 1][1]), "");
  for (size_t i = 0; i + 1 < kWriters; ++i) {
    ASSERT_EQ(senders[i].results.size(), 1u) << i;
    EXPECT_EQ(recvExactly(pairs[i][1], senders[i].bytes.size()), senders[i].bytes) << i;
  }
}

}  // namespace
}  // namespace mulligan::net
