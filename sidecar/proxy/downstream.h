// The two seams of ProxyStream, the one orchestration of a call (STYLE.md
// "One request, one attempt"): what it needs from the downstream side (the
// app's connection: Http1Session, or one stream of an Http2ServerSession)
// and from the upstream side (one try: Http1Attempt, or Http2Attempt, a
// stream on a pooled nghttp2 client session). ProxyStream holds the retry,
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
#include "sidecar/proxy/http1_reader.h"
#include "sidecar/retry/attempt_headers.h"
#include "sidecar/retry/outcome.h"

namespace mulligan::proxy {

class Worker;

enum class Protocol : uint8_t {
  kHttp1,  // HTTP/1.x on both sides
  kHttp2,  // HTTP/2 cleartext (prior knowledge) on both sides
};

// A request head, protocol-neutral. HTTP/2 pseudo-headers map to it
// (:method, :scheme, :authority, :path); HTTP/1 fills it from the request
// line and Host. `headers` are the regular fields as received (no
// pseudo-headers); each upstream codec drops what is hop-by-hop for it.
struct RequestHead {
  std::string method;
  std::string scheme = "http";
  std::string authority;  // Host / :authority (or the absolute-form / CONNECT authority)
  std::string path;       // origin-form (CONNECT: the authority-form target)
  HeaderList headers;
  // The body: declared length if any; `body_follows` false when the head
  // ended the request (no body at all).
  bool has_content_length = false;
  uint64_t content_length = 0;
  bool body_follows = false;
  // HTTP/1 only.
  int version_minor = 1;
  bool keep_alive = true;
  bool chunked = false;       // Transfer-Encoding: chunked (re-chunked upstream)
  bool upgrade = false;       // Upgrade request (WebSocket): forwarded, tunnelled on 101
  std::string absolute_host;  // absolute-form / CONNECT target host ("" = none)
  uint16_t absolute_port = 0;
};

// A response the sidecar makes itself (DESIGN.md "Deadlines": 502/503/504,
// or for gRPC a trailers-only response with grpc-status).
struct LocalReply {
  int status = 502;
  std::string_view reason = "Bad Gateway";
  std::string body;                  // HTTP: the text body
  std::string_view timeout_kind;     // x-mulligan-timeout: "request" / "per-try" / ""
  std::string_view overloaded;       // x-mulligan-overloaded: which limit ("upstream-connections") / ""
  bool grpc = false;                 // answer in gRPC form
  int grpc_status = 14;              // gRPC form: grpc-status
  std::string grpc_message;          // gRPC form: grpc-message (percent-encoded by the writer)
  bool request_complete = true;      // false: the request body was not all read (HTTP/1 closes)
};

// The app side of one call. Called only by the ProxyStream it carries, on the
// worker's thread. The "final" calls (responseComplete, responseAborted,
// localReply, upgradeToTunnel) may schedule the ProxyStream's destruction
// (deferred, never inline): ProxyStream calls them last.
class Downstream {
 public:
  virtual ~Downstream() = default;
  virtual Worker& worker() = 0;
  virtual Protocol protocol() const = 0;
  // Where iptables meant the connection to go, if it was redirected.
  virtual const std::optional<net::Address>& originalDst() const = 0;

  // The response head (1xx excluded). `end_stream`: nothing follows (a
  // trailers-only gRPC response, or a response without a body).
  virtual void writeHead(const MessageHead& head, bool end_stream) = 0;
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

// One try of a call against one upstream address. A state machine that
// reports exactly one outcome to its owner (a failure before response
// headers, or head, body, trailers and completion) and never decides
// retries. Owners never destroy an attempt inside its callbacks.
class Attempt : public event::Deletable {
 public:
  class Owner {
   public:
    virtual ~Owner() = default;
    // Failure before a final response head: what happened and why, in words.
    virtual void onAttemptFailed(retry::OutcomeKind kind, const std::string& why) = 0;
    // The final response head. `end_stream`: no body or trailers follow (an
    // HTTP/2 HEADERS frame with END_STREAM: gRPC's trailers-only form).
    virtual void onAttemptHead(MessageHead& head, bool end_stream) = 0;
    virtual void onAttemptBody(const char* data, size_t len) = 0;
    virtual void onAttemptTrailers(HeaderList& trailers) = 0;
    virtual void onAttemptComplete() = 0;
    // The response body broke off (read timeout, reset, truncation).
    virtual void onAttemptAborted(const std::string& why) = 0;
    // The end of one burst of response bytes: time to flush downstream.
    virtual void onAttemptReadDone() = 0;
    // Request body bytes the attempt had queued were sent (flow control).
    virtual void onAttemptRequestDrained(size_t /*n*/) {}
  };

  enum class State {
    kConnecting,       // TCP connect in progress (or waiting for a session)
    kAwaitingHeaders,  // request (being) sent, no final response head yet
    kStreaming,        // response head delivered, body flowing
    kDone,             // finished or failed; no more callbacks
  };

  // The request head and the engine's per-attempt headers (which REPLACE
  // inbound fields of the same names). Sent when the connection is up.
  virtual void sendHead(const RequestHead& head, const retry::AttemptHeaders& extra) = 0;
  // Request body bytes (decoded; the attempt frames them).
  virtual void sendBody(const char* data, size_t len) = 0;
  // The request body ended, with trailers or none.
  virtual void endRequest(const HeaderList* trailers) = 0;
  // Starts connecting (or takes a pooled connection / session).
  virtual void start() = 0;
  // Writes what was staged.
  virtual void flush() = 0;
  // Header timeout once connected (per-try, capped by the deadline); <0 = none.
  virtual void setHeaderTimeoutUs(int64_t us) = 0;
  // How long the connection may idle in the pool afterwards.
  virtual void setIdleTimeoutUs(int64_t us) = 0;
  // The request was not fully sent when the response started.
  virtual void forbidReuse() = 0;
  // Back-pressure from downstream.
  virtual void pauseReading(bool paused) = 0;
  // The owner walked away (retrying, answering itself, or the client left):
  // no more callbacks; HTTP/2 resets the stream with CANCEL.
  virtual void cancel() = 0;
  // HTTP/1 Upgrade: hands the connected socket over (HTTP/2: null).
  virtual bufferevent* releaseConnection() = 0;
  // Bytes of request body queued but not yet taken by the upstream.
  virtual size_t requestBacklog() const = 0;

  virtual State state() const = 0;
  virtual int64_t sentAtUs() const = 0;
  // It runs on a connection (HTTP/1) or session (HTTP/2) opened earlier.
  virtual bool reused() const = 0;
  // Which timer ended it, for the per-route timeout counters.
  virtual bool connectTimedOut() const = 0;
  virtual bool readTimedOut() const = 0;
};

// The one timer of an attempt, re-armed on each transition (STYLE.md "One
// request, one attempt"): the header timeout while awaiting the response
// head (<0: none), the read timeout while streaming (0: none), nothing else.
void armAttemptTimer(event::Timer& timer, Attempt::State s, int64_t header_timeout_us, int64_t read_timeout_us);

// Helpers shared by the codecs.
// RFC 9110 §7.6.1 connection-specific fields (and the ones Connection names),
// which no proxy forwards, in either protocol.
bool isHopByHop(std::string_view name);
bool namedInConnection(const HeaderList& headers, std::string_view name);
// Both rules for one header list, with its Connection tokens parsed once
// (not once per field: a per-request cost on the hot path). Holds views into
// `headers`, which must outlive it and stay unchanged.
class HopByHopFilter {
 public:
  explicit HopByHopFilter(const HeaderList& headers);
  // True when the field `name` must not be forwarded.
  bool drops(std::string_view name) const;

 private:
  static constexpr size_t kMaxTokens = 8;
  const HeaderList* headers_;
  std::string_view tokens_[kMaxTokens];
  size_t count_ = 0;
  bool overflow_ = false;  // more tokens than kMaxTokens: ask namedInConnection
};
// content-type application/grpc, application/grpc+proto, application/grpc;...
// True when `name` is one of the engine's per-attempt fields in `extra`
// (case-insensitive): the inbound field is replaced, not forwarded.
bool replacedByAttemptHeaders(const retry::AttemptHeaders& extra, std::string_view name);
bool isGrpcContentType(std::optional<std::string_view> content_type);
// grpc-status as a peer sends it: "0".."16" (one or two digits); anything
// else (absent, empty, signs, spaces, > 16) is retry::kNoGrpcStatus.
int parseGrpcStatus(std::optional<std::string_view> value);
// gRPC grpc-message: percent-encoding of bytes outside 0x20..0x7E and '%'
// (gRPC "PROTOCOL-HTTP2.md", Responses).
std::string percentEncodeGrpcMessage(std::string_view s);

}  // namespace mulligan::proxy
