// net::readSome / readInto: one read per call, and the four outcomes a hot
// socket's read event must tell apart.
#include "sidecar/net/socket_read.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace mulligan::net {
namespace {

class SocketReadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv_), 0);
    evutil_make_socket_nonblocking(sv_[0]);
  }
  void TearDown() override {
    if (sv_[0] >= 0) ::close(sv_[0]);
    if (sv_[1] >= 0) ::close(sv_[1]);
  }
  int sv_[2] = {-1, -1};
};

TEST_F(SocketReadTest, DataIsAppendedAfterWhatTheBufferHeld) {
  evbuffer* buf = evbuffer_new();
  evbuffer_add(buf, "old|", 4);
  ASSERT_EQ(::write(sv_[1], "new bytes", 9), 9);
  ReadResult r = readSome(sv_[0], buf);
  EXPECT_EQ(r.status, ReadStatus::kData);
  EXPECT_EQ(r.bytes, 9u);
  std::string got(evbuffer_get_length(buf), '\0');
  evbuffer_copyout(buf, got.data(), got.size());
  EXPECT_EQ(got, "old|new bytes");
  evbuffer_free(buf);
}

TEST_F(SocketReadTest, AtMostMaxBytesPerCall) {
  std::string big(10000, 'x');
  ASSERT_EQ(::write(sv_[1], big.data(), big.size()), static_cast<ssize_t>(big.size()));
  evbuffer* buf = evbuffer_new();
  EXPECT_EQ(readSome(sv_[0], buf, 4096).bytes, 4096u);
  EXPECT_EQ(readSome(sv_[0], buf).bytes, 10000u - 4096u);
  EXPECT_EQ(evbuffer_get_length(buf), 10000u);
  evbuffer_free(buf);
}

TEST_F(SocketReadTest, NothingWaitingIsAgainAndPeerCloseIsEof) {
  evbuffer* buf = evbuffer_new();
  EXPECT_EQ(readSome(sv_[0], buf).status, ReadStatus::kAgain);
  char data[8];
  EXPECT_EQ(readInto(sv_[0], data, sizeof data).status, ReadStatus::kAgain);
  ::shutdown(sv_[1], SHUT_WR);
  EXPECT_EQ(readSome(sv_[0], buf).status, ReadStatus::kEof);
  EXPECT_EQ(readInto(sv_[0], data, sizeof data).status, ReadStatus::kEof);
  EXPECT_EQ(evbuffer_get_length(buf), 0u);
  evbuffer_free(buf);
}

TEST_F(SocketReadTest, ReadIntoPlainMemory) {
  ASSERT_EQ(::write(sv_[1], "abc", 3), 3);
  char data[8];
  ReadResult r = readInto(sv_[0], data, sizeof data);
  EXPECT_EQ(r.status, ReadStatus::kData);
  EXPECT_EQ(std::string(data, r.bytes), "abc");
}

TEST_F(SocketReadTest, BuffereventsFrozenInputIsReadAndLeftOpenForTheCallersUnparsedBytes) {
  event_base* base = event_base_new();
  bufferevent* bev = bufferevent_socket_new(base, sv_[0], 0);
  ASSERT_EQ(::write(sv_[1], "hello", 5), 5);
  ReadResult r = readSome(bev);
  EXPECT_EQ(r.status, ReadStatus::kData);
  EXPECT_EQ(evbuffer_get_length(bufferevent_get_input(bev)), 5u);
  EXPECT_EQ(evbuffer_add(bufferevent_get_input(bev), "x", 1), 0);
  EXPECT_EQ(evbuffer_get_length(bufferevent_get_input(bev)), 6u);
  bufferevent_free(bev);
  event_base_free(base);
}

// A fresh read (into the thread's buffer) leaves the input empty; the rest
// the parser does not take must still fit behind it. libevent's freeze on a
// new socket bufferevent's input would make that evbuffer_add fail.
TEST_F(SocketReadTest, AfterAFreshReadTheUnparsedRestCanBeKeptInTheInput) {
  event_base* base = event_base_new();
  bufferevent* bev = bufferevent_socket_new(base, sv_[0], 0);
  ASSERT_EQ(::write(sv_[1], "GET /a\nGET /b\n", 14), 14);
  const char* fresh = nullptr;
  ReadResult r = readForParse(bev, sv_[0], &fresh);
  ASSERT_EQ(r.status, ReadStatus::kData);
  ASSERT_NE(fresh, nullptr);
  EXPECT_EQ(evbuffer_add(bufferevent_get_input(bev), fresh + 7, r.bytes - 7), 0);
  EXPECT_EQ(evbuffer_get_length(bufferevent_get_input(bev)), 7u);
  bufferevent_free(bev);
  event_base_free(base);
}

}  // namespace
}  // namespace mulligan::net
