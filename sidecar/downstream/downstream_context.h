// DownstreamContext: what the app's side — Connection, Http1Session,
// Http2ServerSession, Tunnel — needs from the worker that accepted the
// connection, on top of what their sockets need (UpstreamContext: the loop,
// the io ring, the counters): the ProxyStreams' StreamContext, the limits on
// request heads and idle connections, whether the worker drains, and where a
// connection reports its end. The seam that keeps downstream/
// from knowing the Worker (worker/ is above it); Worker derives from it.
//
// Data are inline loads; the three calls into the worker are virtual — at
// most once per request or per connection, never per byte. One worker thread.
#pragma once

#include <cstddef>
#include <cstdint>

#include "sidecar/stream/stream_context.h"
#include "sidecar/upstream/upstream_context.h"

namespace mulligan::proxy {

class Connection;

class DownstreamContext : public UpstreamContext {
 public:
  // From the command line (worker/shared_state.h Config).
  struct Limits {
    size_t max_header_bytes = 64 * 1024;  // a request head's bytes (64 KiB, fixed)
    size_t max_headers = 100;             // a request head's fields (100, fixed)
    // From a connection's accept (or a later request's first byte) to the
    // end of its request head; 0 = none (--request-header-timeout).
    int64_t request_header_timeout_us = 10'000'000;
    int64_t idle_timeout_us = 60'000'000;  // when no policy gives one
  };
  const Limits& downstreamLimits() const { return downstream_limits_; }

  // How long a downstream connection may sit idle (no request in flight, no
  // bytes): the policy's [defaults] idle_timeout, else Limits::idle_timeout_us.
  int64_t downstreamIdleTimeoutUs();

  // What the calls (ProxyStream) on this worker use of it.
  virtual StreamContext& streamContext() = 0;
  // The worker stops accepting and closes connections once idle.
  virtual bool draining() const = 0;
  // Connections report their end; the worker destroys them from the loop.
  virtual void connectionClosed(Connection* c) = 0;
  // From ~Connection: its sockets are closed (the bound on connections
  // counts until here, not until connectionClosed()).
  virtual void connectionFreed() = 0;

 protected:
  DownstreamContext() = default;
  ~DownstreamContext() = default;

  Limits downstream_limits_;  // filled by the derived owner (Worker)
};

}  // namespace mulligan::proxy
