// The send batches (net::SendBatch), each test on both: IoRing's and
// net::AioSendBatch's (the epoll path's). Queued writers go together at the
// end of the iteration, a full socket takes part, forgotten or declining
// writers send nothing, errors reach the writer, more writers than one
// submit carries all send, and a writer gone between two submits sends
// nothing.
#include "sidecar/net/send_batch.h"

#include <event2/event.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sidecar/net/aio_send_batch.h"
#include "sidecar/net/io_ring.h"
#include "socket_pairs.h"

namespace mulligan::net {
namespace {

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

// AioSendBatch's own: it submits kEntries at a time (io_uring submits the
// whole iteration at once).
class AioSubmitsTest : public SendBatchTest {};
INSTANTIATE_TEST_SUITE_P(Aio, AioSubmitsTest, ::testing::Values("aio"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

TEST_P(AioSubmitsTest, AWriterGoneWhileAnEarlierSubmitIsHandedOverSendsNothing) {
  // Each submit's results are handed over before the next; a writer that
  // goes meanwhile (its destructor calls forget) must not be submitted: its
  // bytes and socket may be gone.
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


TEST(AioSendBatchTest, TakesAContextOnlyWhileTheNodeHasOverHalfItsAioEventsFree) {
  // fs.aio-max-nr is the node's, shared with every pod's applications.
  EXPECT_TRUE(AioSendBatch::nodeHasRoom(0, 65536));
  EXPECT_TRUE(AioSendBatch::nodeHasRoom(32768 - AioSendBatch::kEntries, 65536));
  EXPECT_FALSE(AioSendBatch::nodeHasRoom(32768 - AioSendBatch::kEntries + 1, 65536));
  EXPECT_FALSE(AioSendBatch::nodeHasRoom(65536, 65536));
  EXPECT_TRUE(AioSendBatch::nodeHasRoom(-1, -1));  // /proc unreadable: io_setup's own limit decides
}

}  // namespace
}  // namespace mulligan::net
