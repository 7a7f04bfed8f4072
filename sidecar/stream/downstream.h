// The downstream seam of ProxyStream, the one orchestration of a call
// (STYLE.md "One request, one attempt"): what it needs from the app's side
// (Http1Session, or one stream of an Http2ServerSession). Its upstream seam
// is Attempt (sidecar/upstream/attempt.h). ProxyStream holds the retry,
// deadline and gRPC rules; framing (chunking, content-length, connection:
// close, 100-continue, pseudo-headers, flow control) lives behind these
// interfaces, with the protocol that needs it.
//
// Protocol pairing: HTTP/1 downstream calls go to HTTP/1 upstreams, HTTP/2
// (h2c, gRPC) to HTTP/2 upstreams; Downstream::protocol() says which.
#pragma once

#include <event2/bufferevent.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "sidecar/event/event_loop.h"
#include "sidecar/net/address.h"
#include "sidecar/codec/message.h"
#include "sidecar/retry/timeout_kind.h"
#include "sidecar/upstream/attempt.h"

namespace mulligan::proxy {

class StreamContext;

// A response the sidecar makes itself (DESIGN.md "Deadlines": 502/503/504,
// or for gRPC a trailers-only response with grpc-status).
struct LocalReply {
  int status = 502;
  std::string_view reason = "Bad Gateway";
  std::string body;                  // HTTP: the body (text/plain unless content_type says)
  std::string_view content_type;     // "" = text/plain (Connect form: its JSON or streaming type)
  std::optional<retry::TimeoutKind> timeout;  // a timeout answered: which (x-mulligan-timeout)
  std::string_view overloaded;       // x-mulligan-overloaded: which limit ("upstream-connections") / "";
                                     // such a reply also says x-envoy-overloaded: true (DESIGN.md)
  bool grpc = false;                 // answer in gRPC form
  int grpc_status = 14;              // gRPC form: grpc-status
  std::string grpc_message;          // gRPC form: grpc-message (percent-encoded by the writer)
  bool request_complete = true;      // false: the request body was not all read (HTTP/1 closes)

  // The x-mulligan-timeout value: the kind's name; "" when no timeout answered.
  std::string_view timeoutHeader() const { return timeout ? retry::timeoutKindName(*timeout) : std::string_view(); }
};

// The app side of one call. Called only by the ProxyStream it carries, on the
// worker's thread. The "final" calls (responseComplete, responseAborted,
// localReply, upgradeToTunnel) may schedule the ProxyStream's destruction
// (deferred, never inline): ProxyStream calls them last.
class Downstream {
 public:
  virtual ~Downstream() = default;
  // What the call uses of the worker it runs on.
  virtual StreamContext& streamContext() = 0;
  virtual Protocol protocol() const = 0;
  // Where iptables meant the connection to go, if it was redirected.
  virtual const std::optional<net::Address>& originalDst() const = 0;

  // The response head (1xx excluded). `end_stream`: nothing follows (a
  // trailers-only gRPC response, or a response without a body).
  virtual void writeHead(const MessageHead& head, bool end_stream) = 0;
  // As writeHead, from a head its caller is done with: the downstream may
  // take head.headers (leaving it empty) instead of copying the fields.
  virtual void writeHeadTaking(MessageHead& head, bool end_stream) { writeHead(head, end_stream); }
  virtual void writeBody(const char* data, size_t len) = 0;
  // Response trailers; the response ends with responseComplete().
  virtual void writeTrailers(const HeaderList& trailers) = 0;
  // Ends the response (final). HTTP/1 decides whether the connection stays.
  virtual void responseComplete() = 0;
  // The response cannot be completed (final): HTTP/1 closes the
  // connection, HTTP/2 resets the stream.
  virtual void responseAborted() = 0;
  // A whole response of our own (final).
  virtual void localReply(const LocalReply& reply) = 0;
  // After a 101 / CONNECT 2xx (HTTP/1 only; final).
  virtual void upgradeToTunnel(bufferevent* upstream) = 0;

  // Back-pressure: too much response data waits to be written; ProxyStream
  // pauses the upstream until onDownstreamDrained().
  virtual bool congested() const = 0;
  // The end of a burst of writes: send what is staged.
  virtual void flush() = 0;
  // The upstream took request body bytes it had held back (HTTP/2 window
  // credit is returned to the app only as far as the upstream took them).
  // (ProxyStream::requestBacklog() went down.)
  virtual void requestBodyConsumed() {}
};

}  // namespace mulligan::proxy
