// One try of a call against one upstream address: the interface ProxyStream
// drives (Http1Attempt on a pooled HTTP/1 connection, Http2Attempt on a
// stream of a pooled nghttp2 client session), and what they share.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <event2/bufferevent.h>

#include "sidecar/codec/message.h"
#include "sidecar/event/event_loop.h"
#include "sidecar/retry/attempt_headers.h"
#include "sidecar/retry/outcome.h"

namespace mulligan::proxy {

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

// True when `name` is one of the engine's per-attempt fields in `extra`
// (case-insensitive): the inbound field is replaced, not forwarded.
bool replacedByAttemptHeaders(const retry::AttemptHeaders& extra, std::string_view name);

}  // namespace mulligan::proxy
