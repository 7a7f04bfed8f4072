#include "sidecar/downstream/connection.h"

#include <event2/buffer.h>

#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <string_view>

#include "sidecar/core/logging.h"
#include "sidecar/net/socket_read.h"
#include "sidecar/downstream/http1_session.h"
#include "sidecar/downstream/http2_server.h"
#include "sidecar/downstream/tunnel.h"
#include "sidecar/downstream/downstream_context.h"

namespace mulligan::proxy {
namespace {

constexpr std::string_view kH2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
// A redirected connection that says nothing for this long is a protocol in
// which the server speaks first (SMTP, MySQL...): relay it as opaque TCP.
constexpr int64_t kSniffTimeoutUs = 200'000;

// Enough to tell: the request line's method (at most 24 bytes) and a space,
// or the HTTP/2 preface's first bytes — or, for a method that is not all
// capitals, the whole request line (see sniffBytes).
constexpr size_t kSniffBytes = 1024;

}  // namespace

Connection::Connection(DownstreamContext* worker, evutil_socket_t fd, const net::Address& peer)
    : worker_(worker),
      peer_(peer),
      accepted_us_(event::monotonicNowUs()),
      original_dst_(net::originalDestination(fd, peer.family())) {
  bev_ = bufferevent_socket_new(worker->base(), fd, BEV_OPT_CLOSE_ON_FREE);
}

// An HTTP/1 request line starts with a method token (RFC 9110 §9: tchar+,
// in practice upper-case letters) followed by a space.
Connection::Sniffed Connection::sniffBytes(const unsigned char* p, size_t n) {
  size_t h2 = std::min(n, kH2Preface.size());
  if (std::memcmp(p, kH2Preface.data(), h2) == 0) return h2 == kH2Preface.size() ? Sniffed::kHttp2 : Sniffed::kNeedMore;
  bool capitals = true;
  for (size_t i = 0; i < n && i <= 24; ++i) {
    unsigned char c = p[i];
    if (c == ' ') {
      if (i == 0) return Sniffed::kOpaque;
      if (capitals) return Sniffed::kHttp1;
      // Any token is a method ("get" is one; Http1Reader forwards it as it
      // is), but a lower-case word and a space also start text protocols
      // (memcached's "get key"): HTTP/1 only when the line ends in an HTTP
      // version, else opaque, as before.
      std::string_view line(reinterpret_cast<const char*>(p), n);
      size_t eol = line.find('\n');
      if (eol == std::string_view::npos) return n >= kSniffBytes ? Sniffed::kOpaque : Sniffed::kNeedMore;
      return line.substr(0, eol).find(" HTTP/1.") != std::string_view::npos ? Sniffed::kHttp1 : Sniffed::kOpaque;
    }
    if (c >= 'A' && c <= 'Z') continue;
    if (c == '-' || c == '_') continue;
    // RFC 9110 §5.6.2 tchar.
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
          std::string_view("!#$%&'*+.^`|~").find(static_cast<char>(c)) != std::string_view::npos)) {
      return Sniffed::kOpaque;
    }
    capitals = false;
  }
  return n > 24 ? Sniffed::kOpaque : Sniffed::kNeedMore;
}

Connection::~Connection() {
  http1_.reset();
  http2_.reset();
  tunnel_.reset();
  if (upstream_bev_) bufferevent_free(upstream_bev_);
  if (bev_) bufferevent_free(bev_);
  worker_->connectionFreed();  // its descriptors are closed now
}

void Connection::start() {
  if (!readFirstBytes()) waitForFirstBytes();
}

// A client sends its first bytes right after its handshake, so by the time
// the listener's readiness has been handled they are usually waiting: one
// read now, before the socket is registered with epoll at all, saves the
// registration, a loop iteration and libevent's FIONREAD for most
// connections. The bytes go to the thread's read buffer so that an HTTP/1
// request is parsed from there, without an evbuffer copy.
bool Connection::readFirstBytes() {
  char* buf = net::threadReadBuffer();
  net::ReadResult r = net::readInto(bufferevent_getfd(bev_), buf, net::kReadChunk);
  switch (r.status) {
    case net::ReadStatus::kAgain:
      return false;
    case net::ReadStatus::kEof:
    case net::ReadStatus::kError:
      close();  // nothing was said: nothing to relay
      return true;
    case net::ReadStatus::kData:
      break;
  }
  Sniffed kind = sniffBytes(reinterpret_cast<const unsigned char*>(buf), std::min(r.bytes, kSniffBytes));
  if (kind == Sniffed::kHttp1) {
    startHttp1(buf, r.bytes);
    return true;
  }
  // The other protocols (and the wait for more bytes) read from the input.
  net::takeInput(bev_);
  evbuffer_add(bufferevent_get_input(bev_), buf, r.bytes);
  if (kind == Sniffed::kNeedMore) return false;
  handOn(kind);
  return true;
}

void Connection::waitForFirstBytes() {
  bufferevent_setcb(bev_, &Connection::onSniffRead, nullptr, &Connection::onSniffEvent, this);
  // A client that connects and says nothing (or too little to tell) is
  // closed after the request-header timeout, counted from accept (nginx's
  // client_header_timeout, HAProxy's timeout http-request do the same for
  // a new connection), or the idle timeout when that is shorter.
  int64_t wait = worker_->downstreamIdleTimeoutUs();
  int64_t header = worker_->downstreamLimits().request_header_timeout_us;
  // (A redirected connection still silent at kSniffTimeoutUs is relayed as
  // opaque TCP: a shorter header timeout must not close it first.)
  if (header > 0 && (wait <= 0 || header <= wait) && (!original_dst_ || header > kSniffTimeoutUs)) {
    wait = std::max<int64_t>(accepted_us_ + header - event::monotonicNowUs(), 1);
    header_timeout_armed_ = true;
  }
  timeval tv{static_cast<time_t>(wait / 1000000), static_cast<suseconds_t>(wait % 1000000)};
  bufferevent_set_timeouts(bev_, &tv, nullptr);
  bufferevent_enable(bev_, EV_READ);
  if (original_dst_) {
    sniff_timer_.reset(evtimer_new(worker_->base(), &Connection::onSniffTimeout, this));
    timeval tv{0, kSniffTimeoutUs};
    evtimer_add(sniff_timer_.get(), &tv);
  }
}

void Connection::onSniffRead(bufferevent*, void* arg) { static_cast<Connection*>(arg)->sniff(); }

void Connection::onSniffEvent(bufferevent*, short what, void* arg) {
  auto* c = static_cast<Connection*>(arg);
  if ((what & BEV_EVENT_TIMEOUT) && c->header_timeout_armed_) {
    c->onHeaderTimeout();
    return;
  }
  // EOF, error or the idle timeout before we knew the protocol: nothing to relay.
  c->close();
}

void Connection::onHeaderTimeout() {
  worker_->counters().request_header_timeouts.add();
  evbuffer* in = bufferevent_get_input(bev_);
  size_t n = std::min(evbuffer_get_length(in), kSniffBytes);
  const unsigned char* p = evbuffer_pullup(in, static_cast<ev_ssize_t>(n));
  // Still undecided means: a prefix of the HTTP/2 preface, or of an HTTP/1
  // method. A begun HTTP/1 request is told why (RFC 9110 §15.5.9);
  // anything else is just closed.
  bool http1_begun = n > 0 && std::memcmp(p, kH2Preface.data(), std::min(n, kH2Preface.size())) != 0;
  LOG_DEBUG("connection from %s: request header timeout after %zu bytes", peer_.toString().c_str(),
            evbuffer_get_length(in));
  if (http1_begun) {
    static const char k408[] =
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\nconnection: close\r\n"
        "content-length: 23\r\n\r\nrequest header timeout\n";
    evutil_socket_t fd = bufferevent_getfd(bev_);
    // Small enough for any socket buffer: one send, then our FIN behind it.
    ssize_t sent = ::send(fd, k408, sizeof k408 - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)sent;
    ::shutdown(fd, SHUT_WR);
  }
  close();
}

void Connection::onSniffTimeout(evutil_socket_t, short, void* arg) {
  auto* c = static_cast<Connection*>(arg);
  if (c->state_ == State::kSniffing) c->startTunnel();
}

void Connection::sniff() {
  evbuffer* in = bufferevent_get_input(bev_);
  size_t n = std::min(evbuffer_get_length(in), kSniffBytes);
  unsigned char* p = evbuffer_pullup(in, static_cast<ev_ssize_t>(n));
  handOn(sniffBytes(p, n));
}

void Connection::handOn(Sniffed kind) {
  switch (kind) {
    case Sniffed::kNeedMore:
      return;
    case Sniffed::kHttp1:
      startHttp1(nullptr, 0);
      return;
    case Sniffed::kHttp2:
      sniff_timer_.reset();
      // The preface is here: the session counts its silence with the idle
      // timeout (it reads the socket itself: Http2Session), whichever path
      // the preface came by; the bufferevent's timeouts go with its reads.
      bufferevent_set_timeouts(bev_, nullptr, nullptr);
      header_timeout_armed_ = false;
      state_ = State::kHttp2;
      http2_ = std::make_unique<Http2ServerSession>(this, bev_);
      bev_ = nullptr;  // the session owns it now
      http2_->start();
      return;
    case Sniffed::kOpaque:
      startTunnel();
      return;
  }
}

void Connection::startHttp1(const char* fresh, size_t fresh_len) {
  sniff_timer_.reset();
  state_ = State::kHttp1;
  http1_ = std::make_unique<Http1Session>(this, bev_);
  bev_ = nullptr;  // the session owns it now
  http1_->start(fresh, fresh_len);
}

void Connection::startTunnel() {
  sniff_timer_.reset();
  if (!original_dst_) {
    LOG_DEBUG("non-HTTP connection from %s without an original destination; closing", peer_.toString().c_str());
    close();
    return;
  }
  state_ = State::kTunnel;
  bufferevent_set_timeouts(bev_, nullptr, nullptr);  // tunnels live as long as their peers
  bufferevent_disable(bev_, EV_READ);  // hold bytes until upstream is up
  upstream_bev_ = bufferevent_socket_new(worker_->base(), -1, BEV_OPT_CLOSE_ON_FREE);
  bufferevent_setcb(upstream_bev_, nullptr, nullptr, &Connection::onUpstreamConnected, this);
  worker_->counters().upstream_connects.add();
  if (bufferevent_socket_connect(upstream_bev_, original_dst_->sa(), static_cast<int>(original_dst_->len)) != 0) {
    worker_->counters().upstream_connect_failures.add();
    close();
  }
}

void Connection::onUpstreamConnected(bufferevent*, short what, void* arg) {
  auto* c = static_cast<Connection*>(arg);
  if (!(what & BEV_EVENT_CONNECTED)) {
    c->worker_->counters().upstream_connect_failures.add();
    LOG_DEBUG("opaque TCP to %s failed", c->original_dst_->toString().c_str());
    c->close();  // the app sees its connection closed, as if refused
    return;
  }
  c->worker_->counters().tunnels.add();
  bufferevent* down = c->bev_;
  bufferevent* up = c->upstream_bev_;
  c->bev_ = nullptr;
  c->upstream_bev_ = nullptr;
  c->tunnel_ = std::make_unique<Tunnel>(down, up, [c](const Tunnel::Totals&) { c->close(); });
}

void Connection::adoptTunnel(bufferevent* downstream, bufferevent* upstream) {
  state_ = State::kTunnel;
  worker_->counters().tunnels.add();
  // The session is inside its own callback: free it from the loop.
  if (http1_) worker_->deferDelete(std::move(http1_));
  tunnel_ = std::make_unique<Tunnel>(downstream, upstream, [this](const Tunnel::Totals&) { close(); });
}

void Connection::drain() {
  switch (state_) {
    case State::kSniffing:
      close();
      break;
    case State::kHttp1:
      http1_->drain();
      break;
    case State::kHttp2:
      http2_->drain();
      break;
    case State::kTunnel:
    case State::kClosed:
      break;  // tunnels run until their peers close (or the drain deadline)
  }
}

void Connection::close() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  sniff_timer_.reset();
  if (bev_) bufferevent_disable(bev_, EV_READ | EV_WRITE);
  worker_->connectionClosed(this);
}

}  // namespace mulligan::proxy
