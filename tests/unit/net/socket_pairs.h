// What the net tests share: connected loopback TCP pairs, a bounded wait
// for bytes, and a fixture owning a libevent loop and the sockets a test
// made.
#pragma once

#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/util.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

namespace mulligan::net {

// Waiting on conditions, not for a while: each wait ends as soon as what it
// waits for happened, and gives up only after 5 s (a failure, never a hang),
// so that a loaded machine makes the tests slower, not flaky.
inline constexpr int kWaitMs = 5000;

// A connected TCP pair on loopback: [0] (non-blocking) is the one under test, [1] the peer.
inline void tcpPair(int out[2]) {
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

// Exactly `n` bytes from `fd`, waiting for each; fewer when one wait takes 5 s.
inline std::string recvExactly(int fd, size_t n) {
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

}  // namespace mulligan::net
