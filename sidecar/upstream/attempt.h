// One try of a call against one upstream address: the Attempt lifecycle
// (this file, once for every transport) and the seam ProxyStream drives.
//
// The lifecycle is the state machine of one try —
//   Connecting -> AwaitingHeaders -> Streaming -> Done
// — with ONE timer re-armed on each transition (h2o's http1client swaps one
// timer's callback per phase): the connect timeout while connecting, the
// header timeout (per-try, set by the owner) while awaiting the response
// head, the read timeout while streaming, nothing once done. When the timer
// fires, the phase says what happened (timerOutcome below), and the attempt
// remembers which timeout ended it (timedOut()). It reports exactly one
// outcome to its owner — a failure before a final response head, or head,
// body, trailers and completion (or an abort mid-response) — and never
// decides retries: that is retry::RetryState's, asked by ProxyStream.
//
// The transports (Http1Attempt on a pooled HTTP/1 connection, Http2Attempt
// on a stream of a pooled nghttp2 session) move bytes: they call the
// protected lifecycle calls (transitionTo, fail, failSoon, headArrived,
// abortResponse, complete, ...) and implement the virtual transport calls.
// Several attempts of one call may be in flight at once (hedging): each
// reports with itself as the first argument, so one Owner tells them apart.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <event2/bufferevent.h>

#include "sidecar/codec/message.h"
#include "sidecar/event/event_loop.h"
#include "sidecar/event/timer_queue.h"
#include "sidecar/net/address.h"
#include "sidecar/retry/attempt_headers.h"
#include "sidecar/retry/outcome.h"
#include "sidecar/retry/timeout_kind.h"

namespace mulligan::proxy {

class Attempt : public event::Deletable {
 public:
  // Who an attempt reports to (ProxyStream). Called on the worker's thread,
  // from the loop (never inline from a call the owner made). Owners never
  // destroy an attempt inside these callbacks (defer it to the loop).
  class Owner {
   public:
    virtual ~Owner() = default;
    // Failure before a final response head: what happened and why, in words.
    virtual void onAttemptFailed(Attempt& a, retry::OutcomeKind kind, const std::string& why) = 0;
    // The final response head. `end_stream`: no body or trailers follow (an
    // HTTP/2 HEADERS frame with END_STREAM: gRPC's trailers-only form).
    virtual void onAttemptHead(Attempt& a, MessageHead& head, bool end_stream) = 0;
    virtual void onAttemptBody(Attempt& a, const char* data, size_t len) = 0;
    virtual void onAttemptTrailers(Attempt& a, HeaderList& trailers) = 0;
    virtual void onAttemptComplete(Attempt& a) = 0;
    // The response body broke off (read timeout, reset, truncation).
    virtual void onAttemptAborted(Attempt& a, const std::string& why) = 0;
    // The end of one burst of response bytes: time to flush downstream.
    virtual void onAttemptReadDone(Attempt& a) = 0;
    // Request body bytes the attempt had queued were sent (flow control).
    virtual void onAttemptRequestDrained(Attempt& /*a*/, size_t /*n*/) {}
  };

  enum class State {
    kConnecting,       // TCP connect in progress (or waiting for a session); connect timer
    kAwaitingHeaders,  // request (being) sent, no final response head yet; header timer
    kStreaming,        // response head delivered, body flowing; read timer
    kDone,             // finished, failed or cancelled; no timer, no more callbacks
  };

  // The policy's timeouts for one try; 0 = none.
  struct Timeouts {
    int64_t connect_us = 0;
    int64_t read_us = 0;
  };

  ~Attempt() override = default;
  Attempt(const Attempt&) = delete;
  Attempt& operator=(const Attempt&) = delete;

  // --- the transport (Http1Attempt, Http2Attempt) ---

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
  // How long the connection may idle in the pool afterwards.
  virtual void setIdleTimeoutUs(int64_t us) = 0;
  // The request was not fully sent when the response started.
  virtual void forbidReuse() = 0;
  // Back-pressure from downstream.
  virtual void pauseReading(bool paused) = 0;
  // The owner walked away (retrying, answering itself, another attempt won,
  // or the client left): no more callbacks; HTTP/2 resets the stream.
  virtual void cancel() = 0;
  // The same for a hedge's loser (another attempt of the call won). HTTP/1:
  // as cancel() (the connection is closed, never pooled: its response is
  // still to come). HTTP/2 overrides it to go through the session's orphan
  // rule (Http2ClientSession::orphan), so that hedging does not send a
  // server one RST_STREAM per hedge and trip its rapid-reset limit.
  virtual void cancelAsLoser() { cancel(); }
  // HTTP/1 Upgrade: hands the connected socket over (HTTP/2: null).
  virtual bufferevent* releaseConnection() = 0;
  // Bytes of request body queued but not yet taken by the upstream.
  virtual size_t requestBacklog() const = 0;
  // It runs on a connection (HTTP/1) or session (HTTP/2) opened earlier.
  virtual bool reused() const = 0;

  // --- the lifecycle ---

  // Header timeout once connected (per-try, capped by the deadline); <0 =
  // none (the call's deadline timer answers instead). Before start().
  void setHeaderTimeoutUs(int64_t us) { header_timeout_us_ = us; }
  int64_t headerTimeoutUs() const { return header_timeout_us_; }
  State state() const { return state_; }
  // When the request went out (monotonic µs; 0 before).
  int64_t sentAtUs() const { return sent_at_us_; }
  const net::Address& destination() const { return dest_; }
  // Which of the attempt's timers ended it (kConnect, kPerTry or kRead),
  // for the per-route timeout counters; none when no timer did.
  std::optional<retry::TimeoutKind> timedOut() const { return timed_out_; }
  bool connectTimedOut() const { return timed_out_ == retry::TimeoutKind::kConnect; }
  bool readTimedOut() const { return timed_out_ == retry::TimeoutKind::kRead; }
  // Which address of the destination's EndpointSet it went to (0: the
  // destination is no name with a set: an IP literal, the original dst).
  uint32_t endpoint() const { return endpoint_; }
  void setEndpoint(uint32_t id) { endpoint_ = id; }
  // retry.fresh_connection for an attempt after the first: start() opens a
  // new connection (HTTP/2: a new session) instead of taking a pooled one,
  // so that a per-connection balancer (kube-proxy's ClusterIP) can pick
  // another pod. Before start().
  void setFreshConnection(bool fresh) { fresh_connection_ = fresh; }
  bool freshConnection() const { return fresh_connection_; }
  // The worker's timer queues (Transports gives them): the phase timer's
  // durations are the policy's (connect, per-try, read timeouts), shared by
  // many attempts, so arming and cancelling it costs no libevent call
  // (event/timer_queue.h). Without them, a plain timer. Before start().
  void useTimerQueues(event::TimerQueues* queues) { timer_.setQueues(queues); }

 protected:
  Attempt(event_base* base, Owner* owner, const net::Address& dest, Timeouts timeouts);

  const Timeouts& timeouts() const { return timeouts_; }
  // Moves to `s` and arms the one timer for the new phase (see State).
  void transitionTo(State s);
  // The request went out now (upstream latency counts from here).
  void markSent(int64_t now_us) { sent_at_us_ = now_us; }
  // Response bytes arrived while streaming: the read timeout starts over.
  void responseActivity() {
    if (state_ == State::kStreaming && timeouts_.read_us > 0) timer_.armUs(timeouts_.read_us);
  }

  // Outcomes (each at most once; they end the attempt and tell the owner,
  // which may cancel or defer-delete it: touch nothing after them).
  // Failure before a final head: onFailed() drops the transport first.
  void fail(retry::OutcomeKind kind, const std::string& why);
  // The same from the loop, never inline: for failures found inside start()
  // (no slot under the connection cap, a connect that failed at once).
  void failSoon(retry::OutcomeKind kind, std::string why);
  // The final head: Streaming, then the owner has it.
  void headArrived(MessageHead& head, bool end_stream) {
    transitionTo(State::kStreaming);
    owner_->onAttemptHead(*this, head, end_stream);
  }
  void bodyArrived(const char* data, size_t len) { owner_->onAttemptBody(*this, data, len); }
  void trailersArrived(HeaderList& trailers) { owner_->onAttemptTrailers(*this, trailers); }
  void readDone() { owner_->onAttemptReadDone(*this); }
  void requestDrained(size_t n) { owner_->onAttemptRequestDrained(*this, n); }
  // The response ended cleanly.
  void complete() {
    transitionTo(State::kDone);
    owner_->onAttemptComplete(*this);
  }
  // The response broke off after its head: onAborted() drops the transport.
  void abortResponse(const std::string& why);

  // Transport hooks, on the failure paths only.
  // Failed before a head: drop the connection or stream, count it.
  virtual void onFailed(retry::OutcomeKind /*kind*/) {}
  // Broke off mid-response.
  virtual void onAborted() {}

 private:
  // The outcome of the phase whose timer fired (kConnecting: connect
  // failure; kAwaitingHeaders: per-try timeout; kStreaming: read timeout).
  void onTimer();
  static void timerFired(void* self);

  Owner* owner_;
  net::Address dest_;
  Timeouts timeouts_;
  int64_t header_timeout_us_ = -1;
  State state_ = State::kConnecting;
  event::QueuedTimer timer_;  // the phase timer (see State)
  int64_t sent_at_us_ = 0;
  std::optional<retry::TimeoutKind> timed_out_;
  // failSoon(): the failure the timer reports from the loop.
  std::optional<retry::OutcomeKind> pending_failure_;
  std::string pending_why_;
  uint32_t endpoint_ = 0;
  bool fresh_connection_ = false;
};

// What a call's attempts are made with: where to, the method (HTTP/1 needs it
// to frame the response), the protocol and the policy's timeouts, which
// endpoint of the destination's set `dest` is, and whether the attempt must
// open a fresh connection (Attempt::setFreshConnection). It refers
// to the caller's address and method (no copy): valid during newAttempt()
// only; the attempt copies what it keeps.
struct AttemptSpec {
  Protocol protocol;  // HTTP/1 downstream -> HTTP/1 upstream; HTTP/2 (and gRPC) -> HTTP/2
  const net::Address& dest;
  const std::string& method;
  Attempt::Timeouts timeouts;
  uint32_t endpoint = 0;          // EndpointSet id; 0 = none
  bool fresh_connection = false;  // never a pooled connection or session
};

// Makes the attempts of a call: the worker's makes Http1Attempt or
// Http2Attempt (upstream/transports.h), a test's makes fakes. One call per
// attempt, on the worker's thread.
class AttemptFactory {
 public:
  virtual ~AttemptFactory() = default;
  virtual std::unique_ptr<Attempt> newAttempt(Attempt::Owner* owner, const AttemptSpec& spec) = 0;
};

// True when `name` is one of the engine's per-attempt fields in `extra`
// (case-insensitive): the inbound field is replaced, not forwarded.
bool replacedByAttemptHeaders(const retry::AttemptHeaders& extra, std::string_view name);

}  // namespace mulligan::proxy
