// A downstream connection accepted by a worker. It starts by sniffing the
// first bytes (DESIGN.md "Where a request goes"): the HTTP/2 preface, an
// HTTP/1 request line, or anything else — which is relayed untouched to the
// original destination as opaque TCP. The worker owns it; it reports its own
// end with DownstreamContext::connectionClosed() (the worker) and is destroyed later, from the loop.
#pragma once

#include <event2/bufferevent.h>

#include <memory>
#include <optional>

#include "sidecar/event/event_loop.h"
#include "sidecar/net/address.h"

namespace mulligan::proxy {

class DownstreamContext;
class Tunnel;
class Http1Session;
class Http2ServerSession;

class Connection : public event::Deletable {
 public:
  Connection(DownstreamContext* worker, evutil_socket_t fd, const net::Address& peer);
  ~Connection() override;

  // Begins sniffing with one read: the first bytes are usually there already,
  // and then the session takes over at once (inside this call). Otherwise
  // everything happens from loop callbacks. May close the connection.
  void start();
  // Draining: close now if idle between requests; otherwise after the
  // current response.
  void drain();

  DownstreamContext& worker() { return *worker_; }
  const net::Address& peer() const { return peer_; }
  // When the worker accepted it (monotonicNowUs): the first request head's
  // --request-header-timeout counts from here.
  int64_t acceptedUs() const { return accepted_us_; }
  // Where iptables meant this connection to go, if it was redirected.
  const std::optional<net::Address>& originalDst() const { return original_dst_; }
  // Ends the connection (idempotent): the worker frees it from the loop.
  void close();
  // An upgraded HTTP/1 connection becomes a tunnel (the session is done).
  void adoptTunnel(bufferevent* downstream, bufferevent* upstream);

 private:
  enum class State {
    kSniffing,  // waiting for enough bytes to tell the protocol
    kHttp1,     // an Http1Session owns the socket
    kHttp2,     // an Http2ServerSession owns the socket (h2c, prior knowledge)
    kTunnel,    // relayed as opaque TCP
    kClosed,    // reported to the worker; waiting to be freed
  };

  // What the first bytes say (DESIGN.md "Where a request goes").
  enum class Sniffed {
    kNeedMore,  // too few bytes to tell yet
    kHttp1,     // an HTTP/1 request line
    kHttp2,     // the HTTP/2 preface (h2c, prior knowledge)
    kOpaque,    // anything else: relayed as opaque TCP
  };
  static Sniffed sniffBytes(const unsigned char* p, size_t n);

  // One read right after accept, before any epoll registration. True when
  // the connection was handed on (or closed); false when it must wait.
  bool readFirstBytes();
  // The slow path: sniff through the bufferevent's read side, bounded by
  // the request-header timeout from accept (else the idle timeout) and, for
  // a redirected connection, kSniffTimeoutUs.
  void waitForFirstBytes();
  static void onSniffRead(bufferevent* bev, void* arg);
  static void onSniffEvent(bufferevent* bev, short what, void* arg);
  static void onSniffTimeout(evutil_socket_t, short, void* arg);
  // The request-header timeout passed before the protocol was known: 408
  // if the bytes so far begin an HTTP/1 request, else just close.
  void onHeaderTimeout();
  void sniff();
  // Gives the socket to the session (or tunnel) for `kind`; the sniffed
  // bytes wait in the bufferevent's input.
  void handOn(Sniffed kind);
  // `fresh`: sniffed bytes not in the input yet (the thread's read buffer).
  void startHttp1(const char* fresh, size_t fresh_len);
  void startTunnel();
  static void onUpstreamConnected(bufferevent* bev, short what, void* arg);

  DownstreamContext* worker_;
  net::Address peer_;
  int64_t accepted_us_;
  bool header_timeout_armed_ = false;  // the read timeout waiting for bytes is --request-header-timeout
  std::optional<net::Address> original_dst_;
  State state_ = State::kSniffing;
  bufferevent* bev_ = nullptr;           // downstream socket, until handed on
  bufferevent* upstream_bev_ = nullptr;  // tunnel: connecting upstream
  event::EventPtr sniff_timer_;
  std::unique_ptr<Tunnel> tunnel_;
  std::unique_ptr<Http1Session> http1_;
  std::unique_ptr<Http2ServerSession> http2_;
};

}  // namespace mulligan::proxy
