// Fuzz target: the sidecar's HTTP/2 server session (sidecar/downstream/
// http2_server.h) fed raw frames, through the same path an app's h2c
// connection takes: a Connection on one end of a socketpair sniffs the
// preface and hands the socket to an Http2ServerSession on a Worker's event
// loop, which this harness turns by hand (no thread).
//
// The input is what the client sends after the connection preface (which
// the harness writes, so no effort goes into finding it): frames, cut in two
// writes with loop turns in between, then the client's end of the socket is
// shut for writing and, a few turns later, the connection is destroyed the
// way the worker destroys one (deferred, on the loop). Everything the
// sidecar writes back is read and dropped.
//
// Requests get as far as ProxyStream, which answers 502 "no destination":
// the socket is not an iptables-redirected one, no policy table exists, and
// HTTP/2 has no absolute-form target. So nothing ever leaves the process,
// and request heads, bodies, trailers, resets, flow control and the local
// reply's response path all run.
//
// Input: one byte saying where to cut (cut = byte * size / 256), then frames.
// MULLIGAN_FUZZ_DEBUG=1 in the environment turns the debug log on.
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "sidecar/core/logging.h"
#include "sidecar/net/address.h"
#include "sidecar/downstream/connection.h"
#include "sidecar/worker/shared_state.h"
#include "sidecar/worker/worker.h"
#include "tests/fuzz/fuzz_target.h"

using namespace mulligan;

namespace {

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr size_t kMaxInput = 256 * 1024;

// One worker for the whole run, never destroyed (as a sidecar's live as
// long as the process): its loop is turned by this thread only.
struct Harness {
  proxy::SharedState shared;
  std::unique_ptr<proxy::Worker> worker;
  net::Address peer;

  Harness() {
    // MULLIGAN_FUZZ_DEBUG=1 shows the sidecar's debug log (for a reproducer).
    const char* debug = std::getenv("MULLIGAN_FUZZ_DEBUG");
    g_log_level.store(static_cast<int>(debug && *debug == '1' ? LogLevel::kDebug : LogLevel::kError));
    shared.config.shm = "mulligan-fuzz-no-policy-" + std::to_string(getpid());
    shared.config.access_log = nullptr;
    shared.config.io_uring = false;
    worker = std::make_unique<proxy::Worker>(0, &shared);
    peer = *net::Address::parseNumeric("127.0.0.1:40000");
  }
};

Harness& harness() {
  static Harness* h = new Harness;
  return *h;
}

size_t g_bytes_back = 0;  // what the sidecar wrote back for this input

// Reads and drops what the sidecar wrote back.
void drain(int fd) {
  char buf[16384];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) g_bytes_back += static_cast<size_t>(n);
}

void turn(Harness& h, int client, int times) {
  for (int i = 0; i < times; ++i) {
    event_base_loop(h.worker->base(), EVLOOP_NONBLOCK);
    drain(client);
  }
}

// Writes all of `p` (the socket is non-blocking: the loop takes its share
// when the buffer is full).
void sendAll(Harness& h, int client, const char* p, size_t n) {
  int stuck = 0;
  while (n > 0) {
    ssize_t w = ::send(client, p, n, MSG_NOSIGNAL);
    if (w > 0) {
      p += w;
      n -= static_cast<size_t>(w);
      stuck = 0;
      continue;
    }
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return;  // the sidecar closed: fine
    if (++stuck > 64) return;  // the sidecar stopped reading (flow control, closed): fine
    turn(h, client, 1);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > kMaxInput) return 0;
  Harness& h = harness();
  int fds[2];
  FUZZ_CHECK(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0, "socketpair: %s",
             std::strerror(errno));
  int client = fds[1];
  g_bytes_back = 0;
  const char* frames = reinterpret_cast<const char*>(data + 1);
  size_t n = size - 1;
  size_t cut = static_cast<size_t>(data[0]) * n / 256;

  // The preface and the first part are there before the sidecar reads, as
  // they usually are for a real client (Connection::readFirstBytes).
  sendAll(h, client, kPreface.data(), kPreface.size());
  sendAll(h, client, frames, cut);
  auto* conn = new proxy::Connection(h.worker.get(), fds[0], h.peer);
  conn->start();
  turn(h, client, 2);
  sendAll(h, client, frames + cut, n - cut);
  turn(h, client, 3);
  ::shutdown(client, SHUT_WR);
  turn(h, client, 3);
  // As Worker::connectionClosed does: destroyed from the loop, after what
  // the session deferred itself.
  h.worker->deferDelete(std::unique_ptr<mulligan::event::Deletable>(conn));
  turn(h, client, 3);
  ::close(client);
  if (logEnabled(LogLevel::kDebug)) {
    LOG_DEBUG("fuzz input of %zu bytes: %zu bytes back, %llu requests so far", size, g_bytes_back,
              static_cast<unsigned long long>(h.worker->counters().requests.get()));
  }
  return 0;
}
