#include "agent/admin_client.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace mulligan::agent {
namespace {

using Clock = std::chrono::steady_clock;

bool splitHostPort(const std::string& addr, std::string* host, std::string* port) {
  size_t colon = addr.rfind(':');
  if (colon == std::string::npos || colon + 1 == addr.size()) return false;
  *host = addr.substr(0, colon);
  *port = addr.substr(colon + 1);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') *host = host->substr(1, host->size() - 2);
  return !host->empty();
}

int msLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// Waits for `events` on fd until the deadline: true when ready.
bool waitFor(int fd, short events, Clock::time_point deadline) {
  pollfd p{fd, events, 0};
  for (;;) {
    int n = ::poll(&p, 1, msLeft(deadline));
    if (n > 0) return true;
    if (n == 0 || errno != EINTR) return false;
  }
}

}  // namespace

std::optional<HttpReply> httpGet(const std::string& addr, const std::string& path, int timeout_ms,
                                 std::string* error) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  std::string host, port;
  if (!splitHostPort(addr, &host, &port)) {
    *error = addr + ": not HOST:PORT";
    return std::nullopt;
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    *error = addr + ": " + ::gai_strerror(rc);
    return std::nullopt;
  }
  int fd = -1;
  std::string why = "no address";
  for (addrinfo* ai = res; ai && fd < 0; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
    if (errno == EINPROGRESS && waitFor(fd, POLLOUT, deadline)) {
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err == 0) break;
      why = std::strerror(err);
    } else {
      why = errno == EINPROGRESS ? "connect timed out" : std::strerror(errno);
    }
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  if (fd < 0) {
    *error = addr + ": " + why;
    return std::nullopt;
  }
  // HTTP/1.0 with Connection: close, so the body ends at EOF (RFC 9112
  // section 6.3) and no chunked decoding is needed.
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n";
  size_t sent = 0;
  while (sent < req.size()) {
    ssize_t n = ::send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR) && waitFor(fd, POLLOUT, deadline)) {
      continue;
    } else {
      *error = addr + ": send failed: " + (n < 0 ? std::strerror(errno) : "timed out");
      ::close(fd);
      return std::nullopt;
    }
  }
  std::string raw;
  char buf[16384];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      raw.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) break;
    if ((errno == EAGAIN || errno == EINTR) && waitFor(fd, POLLIN, deadline)) continue;
    *error = addr + ": " + (errno == EAGAIN ? std::string("timed out reading ") + path : std::strerror(errno));
    ::close(fd);
    return std::nullopt;
  }
  ::close(fd);
  size_t head_end = raw.find("\r\n\r\n");
  if (raw.compare(0, 5, "HTTP/") != 0 || head_end == std::string::npos || raw.size() < 12) {
    *error = addr + ": not an HTTP answer to GET " + path;
    return std::nullopt;
  }
  HttpReply reply;
  reply.status = std::atoi(raw.c_str() + raw.find(' ') + 1);
  reply.body = raw.substr(head_end + 4);
  return reply;
}

}  // namespace mulligan::agent
