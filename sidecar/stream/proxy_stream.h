// ProxyStream: one call through the sidecar, from its request head to the
// last byte of its response, whatever the protocol. It owns the call's
// deadline, its policy snapshot, the capped replay buffer for its body, its
// retry::RetryState, and its attempts in flight (one; several when hedging:
// AttemptsInFlight); it asks the engine (retry/)
// what to do after each attempt and does it: retry after a wait, or commit
// to the response in hand. Once a response byte went downstream nothing
// retries it.
//
// Hedging (DESIGN.md "Hedging"; the decision is retry/hedge.h's): when the
// first attempt of a round (the first try, or a retry after its backoff)
// starts, the hedge timer is armed for the policy's delay (fixed, or a
// quantile of the route's recent latency: RouteCounters::latency_estimate).
// When it fires with no response head in hand, another attempt starts (if
// retry::decideHedge allows), and the timer is armed again while fewer than
// max_attempts are out. The first head that is not a retry_on condition
// wins: the others are cancelled as losers (Attempt::cancelAsLoser: HTTP/1
// closes the connection, HTTP/2 leaves the stream to the session's orphan
// rule). A retry_on head while another attempt is out is dropped and the
// others awaited; the last attempt's outcome goes through the ordinary
// retry rules.
//
// It is the ONE orchestration of a call: HTTP/1 and HTTP/2 differ only behind
// its two seams (downstream.h): the Downstream it answers (Http1Session, or an
// Http2ServerSession stream) and the Attempts it starts (Http1Attempt or
// Http2Attempt, picked by Downstream::protocol()).
//
// gRPC calls (content-type application/grpc*) are recognised here: their
// grpc-status counts as the outcome (RetryState) — from a trailers-only
// response, or from trailers that follow headers with no message (the
// headers are held back until a message flows: a call is retried only while
// no response message has gone downstream) — their deadline also bounds
// the response body (expiry after headers: the upstream stream is cancelled
// and the client gets trailers with grpc-status 4), and the sidecar's own
// failures answer in gRPC form (DESIGN.md "Deadlines": 4 or 14, never a bare
// HTTP 502).
//
// What it uses of the worker goes through its StreamContext (the
// Downstream's): the clock, timers, policy, counters, budgets and the
// AttemptFactory — so tests drive it with fakes (tests/unit/stream/).
//
// Lifetime: owned by its Downstream; destroyed from the loop (never inside
// its own callbacks).
#pragma once

#include <event2/buffer.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proto-free-config/table_reader.h"
#include "sidecar/core/recycled.h"
#include "sidecar/codec/connect_rpc.h"
#include "sidecar/codec/fields.h"
#include "sidecar/event/event_loop.h"
#include "sidecar/net/resolver.h"
#include "sidecar/retry/deadline.h"
#include "sidecar/retry/hedge.h"
#include "sidecar/retry/retry_state.h"
#include "sidecar/stats/route_stats.h"
#include "sidecar/stream/access_log.h"
#include "sidecar/stream/attempts_in_flight.h"
#include "sidecar/stream/downstream.h"
#include "sidecar/stream/stream_context.h"

namespace mulligan::proxy {

// Recycled: one is made per request; its memory is reused from a per-thread
// list instead of malloc/free each time (core/recycled.h).
class ProxyStream : public event::Deletable, private Attempt::Owner, public core::Recycled<ProxyStream> {
 public:
  // The request head is filled in place through request() before start()
  // (no move of its fields at all), or moved in: `head` is moved from.
  ProxyStream(Downstream* downstream, int64_t start_us);
  ProxyStream(Downstream* downstream, RequestHead&& head, int64_t start_us);
  RequestHead& request() { return req_; }
  ~ProxyStream() override;

  // Finds the destination and starts the first attempt (or answers at once).
  void start();
  // Request body as it arrives from downstream (decoded; framing is the codecs').
  void onRequestBody(const char* data, size_t len);
  void onRequestTrailers(HeaderList& trailers);
  void onRequestComplete();
  // The downstream output drained: upstream reading may resume.
  void onDownstreamDrained();
  // The downstream is gone (connection closed, stream reset): stop
  // everything, log what happened. No Downstream call follows.
  void abort(const char* why);

  bool requestComplete() const { return request_complete_; }
  bool finished() const { return state_ == State::kDone; }
  bool grpc() const { return grpc_; }
  // Request body bytes accepted but not yet taken by the upstream (the
  // downstream holds back flow-control credit while this is large).
  size_t requestBacklog() const;

 private:
  // The sidecar's own gRPC answers (DESIGN.md "Deadlines").
  static constexpr int kGrpcDeadlineExceeded = 4;
  static constexpr int kGrpcUnavailable = 14;

  enum class State {
    kResolving,   // finding the destination address
    kAttempting,  // an attempt is in flight
    kBackoff,     // waiting before the next attempt
    kStreaming,   // committed: the response is flowing downstream
    kDone,        // response complete or abandoned; waiting to be freed
  };

  // Attempt::Owner
  void onAttemptFailed(Attempt& a, retry::OutcomeKind kind, const std::string& why) override;
  void onAttemptHead(Attempt& a, MessageHead& head, bool end_stream) override;
  void onAttemptBody(Attempt& a, const char* data, size_t len) override;
  void onAttemptTrailers(Attempt& a, HeaderList& trailers) override;
  void onAttemptComplete(Attempt& a) override;
  void onAttemptAborted(Attempt& a, const std::string& why) override;
  void onAttemptReadDone(Attempt& a) override;
  void onAttemptRequestDrained(Attempt& a, size_t n) override;

  void pickDestination();
  // The endpoint set's answer for a name: the loop check, then the first attempt.
  void endpointsResolved(const net::Resolver::Answer* answer, const char* error);
  // The name did not resolve (`error`: why, or null): 502.
  void dnsFailed(const char* error);
  // What an attempt's outcome says about its address (outlier ejection).
  void reportEndpoint(const Attempt& a, retry::OutcomeKind kind, int status = 0);
  void destinationResolved(const net::Address& addr);
  // `hedge`: started by the hedge timer while others are still out.
  void startAttempt(bool hedge = false);
  // The first attempt of a round started: the hedge timer, if the policy
  // hedges and the call may be repeated.
  void armHedgeTimer();
  void onHedgeTimer();
  // Takes `a` out of the attempts in flight, cancels it (no more callbacks;
  // `loser`: another attempt's head won, Attempt::cancelAsLoser) and frees
  // it from the loop.
  void retireAttempt(Attempt& a, bool loser = false);
  // All of them (a retry, a reply of our own, the client left); all but
  // `keep` (a response head won).
  void retireAttempts(const Attempt* keep = nullptr);
  // CONNECT: a plain TCP connection to the target, then a tunnel.
  void startConnectTunnel();
  // A CONNECT's connect failed: the name's next address, if one is left,
  // else 502.
  void connectTunnelFailed();
  void abandonTunnelConnect();
  static void onConnectTunnelEvent(bufferevent* bev, short what, void* arg);
  void retryAfter(int64_t wait_us, std::string_view reason);
  // Considers a retry for `o`; true when one was scheduled.
  bool maybeRetry(const retry::Outcome& o);
  // A reply of our own: HTTP `status` or, for gRPC, `grpc_status`.
  // A timeout's reply goes through sendTimeoutReply, which sets timeout_.
  void sendLocalReply(int status, std::string_view reason, std::string body, int grpc_status,
                      std::string_view overloaded = {});
  // The sidecar's 504 (gRPC: DEADLINE_EXCEEDED) for a timeout of `kind`.
  void sendTimeoutReply(retry::TimeoutKind kind);
  // Commits to `head`: from now on it is the client's response.
  void commitHead(MessageHead& head, bool end_stream);
  void commitHeldHead();
  // Connect calls (proxy_stream_connect.cc): whether to hold this response
  // head until its error code is read; the held body as it comes and when it
  // ends (true: a retry was scheduled); letting the held response through;
  // a local reply in Connect form.
  bool holdsConnectResponse(const MessageHead& head, bool end_stream) const;
  void onConnectHeldBody(const char* data, size_t len);
  bool connectHoldEnded();
  bool decideConnectHold();
  void releaseConnectHold();
  void connectForm(LocalReply& r, int grpc_status, std::string_view message);
  // Connect streaming, response under way: ends it with an end-of-stream
  // deadline_exceeded; false when that cannot be done cleanly (mid-message).
  bool endConnectStreamAtDeadline();
  void finish();
  // The response broke off after it was committed (final).
  void endAborted();
  void onDeadline();
  static void deadlineFired(void* self);
  static void backoffFired(void* self);
  static void hedgeFired(void* self);
  int64_t now() const { return ctx_.clock().nowUs(); }
  CallTimer& backoffTimer();
  CallTimer& hedgeTimer();
  // All three: the call ended.
  void cancelTimers();
  void logAccess();

  Downstream* down_;
  StreamContext& ctx_;
  State state_ = State::kResolving;
  int64_t start_us_;

  // The request.
  RequestHead req_;
  bool grpc_ = false;
  bool connect_ = false;     // CONNECT host:port: we connect and tunnel
  ConnectKind connect_rpc_ = ConnectKind::kNone;  // a Connect call (connectrpc.com), not CONNECT
  bool request_complete_ = false;
  uint64_t request_bytes_ = 0;
  std::optional<HeaderList> request_trailers_;

  // Policy snapshot and engine state.
  std::shared_ptr<const pfc::Table> table_;
  pfc::Match match_;
  const pfc::EffectivePolicy* policy_ = nullptr;
  std::string_view service_name_;
  retry::Deadline deadline_;
  std::optional<retry::RetryState> retry_;  // set in start(); embedded: no allocation
  retry::RetryBudget* budget_ = nullptr;
  stats::RouteCounters* route_stats_ = nullptr;  // this request's service/route counters (set in start)

  // Body replay: the (decoded) request body, while within max_buffered_body.
  // Made with the first body byte: most calls have no body.
  evbuffer* replay_ = nullptr;
  bool replayable_ = true;
  bool attempt_started_ = false;

  net::Address dest_;
  std::unique_ptr<net::Resolver::Request> resolving_;
  // A destination name's addresses (upstream/endpoints.h): each attempt
  // picks one, avoiding the ones in tried_; null: dest_ is the only one.
  // Held (pinned) for the call: the worker's registry may forget sets.
  EndpointSetRef endpoints_;
  TriedEndpoints tried_;
  AttemptsInFlight attempts_;
  // The attempt whose response head arrived (held or committed): the one
  // the client's response comes from. Null before.
  Attempt* responding_ = nullptr;
  bufferevent* connect_bev_ = nullptr;
  // A CONNECT to a name: its addresses (port set) and the next to try when
  // a connect fails. No bytes have gone either way before the tunnel is up,
  // so another address is as safe as the first (as a client connecting to
  // a name tries each). Empty: dest_ is the only one.
  std::vector<net::Address> connect_addrs_;
  size_t connect_next_ = 0;
  CallTimer deadline_timer_;  // a policy deadline goes through the worker's queue
  // Made when first armed: most calls never wait to retry or hedge, and
  // then never construct, cancel or destroy them (backoffTimer(),
  // hedgeTimer(); cancelTimers()).
  std::optional<CallTimer> backoff_timer_;
  std::optional<CallTimer> hedge_timer_;
  int64_t hedge_delay_us_ = 0;  // this round's hedge delay

  // Response.
  // gRPC with gRPC codes in retry_on: response headers are held back until
  // the first response message or the trailers, so that headers followed by
  // trailers with a retriable grpc-status (no message) can still be retried.
  std::unique_ptr<MessageHead> held_head_;
  // Connect with gRPC codes in retry_on: the held head's first body bytes,
  // until they say whether the response is a retriable Connect error.
  std::optional<ConnectErrorReader> connect_hold_;
  // Connect streaming: where the response's envelopes are, for the
  // end-of-stream message a deadline after the head writes.
  ConnectEnvelopeTracker connect_frames_;
  bool response_started_ = false;
  int status_ = 0;
  int grpc_status_ = -1;  // what the client got, for the access log
  uint64_t response_bytes_ = 0;
  int64_t upstream_head_us_ = 0;
  // The attempt whose head won (N of its x-envoy-attempt-count; 0: none),
  // and whether it was a hedge.
  uint32_t winner_ = 0;
  bool winner_hedge_ = false;

  // What happened, for the access log.
  std::string retry_reasons_;
  std::string_view retry_refused_;
  std::optional<retry::TimeoutKind> timeout_;  // which timeout ended the call
  std::string_view sidecar_error_;
};

}  // namespace mulligan::proxy
