// mulligan-bench-floor: the cheapest possible proxy, as a yardstick.
//
// Each accepted connection gets its own connection to the upstream, and bytes
// are copied both ways as they come: one read and one write per message in
// each direction, one epoll_wait per batch of ready sockets, no parsing, no
// policy, no buffering beyond one read. For HTTP/1.1 keep-alive that is the
// floor every epoll-driven L7 proxy sits on (read the request, write it
// upstream, read the response, write it back: four system calls), so
// scripts/bench runs it as target "floor" to show how much of a proxy's cost
// is that floor — what no user-space work can win back on this machine.
// Mulligan goes below it by not making those calls one by one: with io_uring
// (sidecar/net/io_ring.h) a loop iteration's receives and sends cost one
// system call for all its sockets. Not a proxy anyone should deploy: no
// timeouts, a slow reader stalls its pair, no HTTP at all.
//
// usage: mulligan-bench-floor --listen HOST:PORT --upstream HOST:PORT
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

bool parseHostPort(const std::string& s, sockaddr_in* out) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos) return false;
  std::memset(out, 0, sizeof *out);
  out->sin_family = AF_INET;
  out->sin_port = htons(static_cast<uint16_t>(std::atoi(s.c_str() + colon + 1)));
  return inet_pton(AF_INET, s.substr(0, colon).c_str(), &out->sin_addr) == 1;
}

void noDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Writes all of `len` (the messages here are small: a short spin on EAGAIN
// is acceptable in a yardstick, never in the product).
bool writeAll(int fd, const char* p, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n > 0) {
      p += n;
      len -= static_cast<size_t>(n);
    } else if (n < 0 && errno == EAGAIN) {
      continue;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  sockaddr_in listen_addr{}, upstream{};
  bool have_listen = false, have_upstream = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--listen") have_listen = parseHostPort(argv[i + 1], &listen_addr);
    if (flag == "--upstream") have_upstream = parseHostPort(argv[i + 1], &upstream);
  }
  if (!have_listen || !have_upstream) {
    std::fprintf(stderr, "usage: mulligan-bench-floor --listen HOST:PORT --upstream HOST:PORT (IPv4)\n");
    return 2;
  }
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(lfd, reinterpret_cast<sockaddr*>(&listen_addr), sizeof listen_addr) != 0 || listen(lfd, 1024) != 0) {
    std::perror("mulligan-bench-floor: listen");
    return 1;
  }
  int ep = epoll_create1(0);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = lfd;
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  std::vector<int> peer;  // peer[fd] = the other end of fd's pair, -1 if none
  std::vector<epoll_event> events(256);
  std::vector<char> buf(64 << 10);
  for (;;) {
    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), -1);
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == lfd) {
        int c;
        while ((c = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK)) >= 0) {
          int u = socket(AF_INET, SOCK_STREAM, 0);  // blocking connect: loopback, a yardstick
          if (connect(u, reinterpret_cast<sockaddr*>(&upstream), sizeof upstream) != 0) {
            close(u);
            close(c);
            continue;
          }
          fcntl(u, F_SETFL, O_NONBLOCK);
          noDelay(c);
          noDelay(u);
          size_t need = static_cast<size_t>(std::max(c, u)) + 1;
          if (peer.size() < need) peer.resize(need, -1);
          peer[c] = u;
          peer[u] = c;
          for (int s : {c, u}) {
            epoll_event e{};
            e.events = EPOLLIN;
            e.data.fd = s;
            epoll_ctl(ep, EPOLL_CTL_ADD, s, &e);
          }
        }
        continue;
      }
      if (static_cast<size_t>(fd) >= peer.size() || peer[fd] < 0) continue;  // closed earlier in this batch
      ssize_t got = read(fd, buf.data(), buf.size());
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (got <= 0 || !writeAll(peer[fd], buf.data(), static_cast<size_t>(got))) {
        int other = peer[fd];
        peer[fd] = peer[other] = -1;
        close(fd);  // closing removes both from the epoll set
        close(other);
      }
    }
  }
}
