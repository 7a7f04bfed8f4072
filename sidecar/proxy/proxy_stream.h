// ProxyStream: one request through the sidecar, from its request head to the
// last byte of its response. It owns the request's deadline, its policy
// snapshot, the capped replay buffer for its body, its retry::RetryState, and
// the current UpstreamAttempt; it asks the engine (retry/) what to do after
// each attempt and does it: retry after a wait, or commit to the response in
// hand. Once a response byte went downstream nothing retries it.
//
// Lifetime: owned by its Http1Session; finished streams are destroyed from the
// loop (never inside their own callbacks).
#pragma once

#include <event2/buffer.h>

#include <cstdint>
#include <memory>
#include <string>

#include "proto-free-config/table_reader.h"
#include "sidecar/event/event_loop.h"
#include "sidecar/net/resolver.h"
#include "sidecar/proxy/access_log.h"
#include "sidecar/proxy/http1_reader.h"
#include "sidecar/proxy/upstream_attempt.h"
#include "sidecar/retry/deadline.h"
#include "sidecar/retry/retry_state.h"
#include "sidecar/stats/route_stats.h"

namespace mulligan::proxy {

class Http1Session;
class Worker;

class ProxyStream : public event::Deletable, private UpstreamAttempt::Owner {
 public:
  ProxyStream(Http1Session* session, MessageHead& head, int64_t start_us);
  ~ProxyStream() override;

  // Finds the destination and starts the first attempt (or answers at once).
  void start();
  // Request body as it arrives from downstream (decoded; framing is ours).
  void onRequestBody(const char* data, size_t len);
  void onRequestTrailers(HeaderList& trailers);
  void onRequestComplete();
  // The downstream output drained: upstream reading may resume.
  void onDownstreamDrained();
  // The downstream connection is gone: stop everything, log what happened.
  void abort(const char* why);

  bool requestComplete() const { return request_complete_; }
  bool finished() const { return state_ == State::kDone; }

 private:
  enum class State {
    kResolving,   // finding the destination address
    kAttempting,  // an attempt is in flight
    kBackoff,     // waiting before the next attempt
    kStreaming,   // committed: the response is flowing downstream
    kDone,        // response complete or abandoned; waiting to be freed
  };

  // UpstreamAttempt::Owner
  void onAttemptFailed(retry::OutcomeKind kind, const std::string& why) override;
  void onAttemptHead(MessageHead& head) override;
  void onAttemptBody(const char* data, size_t len) override;
  void onAttemptTrailers(HeaderList& trailers) override;
  void onAttemptComplete() override;
  void onAttemptAborted(const std::string& why) override;
  void onAttemptReadDone() override;

  void pickDestination();
  void destinationResolved(const net::Address& addr);
  void startAttempt();
  // CONNECT: a plain TCP connection to the target, then a tunnel.
  void startConnectTunnel();
  static void onConnectTunnelEvent(bufferevent* bev, short what, void* arg);
  bufferevent* connect_bev_ = nullptr;
  void retryAfter(int64_t wait_us, const std::string& reason);
  // Considers a retry for `o`; true when one was scheduled.
  bool maybeRetry(const retry::Outcome& o);
  void appendRequestHead(std::string* out);
  void appendBody(const char* data, size_t len);
  void sendToUpstream(evbuffer* framed);
  void sendLocalReply(int status, const char* reason, const std::string& body, const char* timeout_kind);
  void writeResponseHead(const MessageHead& head);
  void finish(bool keep_alive);
  void onDeadline();
  void logAccess();

  Http1Session* session_;
  Worker* worker_;
  State state_ = State::kResolving;
  int64_t start_us_;
  int64_t start_unix_ms_;

  // The request.
  std::string method_;
  std::string path_;        // origin-form
  std::string authority_;   // Host, or the absolute-form authority
  HeaderList headers_;
  int version_minor_;
  bool keep_alive_;
  bool chunked_;
  bool has_length_;
  uint64_t content_length_;
  bool expect_continue_;
  bool upgrade_ = false;     // Upgrade request (WebSocket): forwarded, then tunnelled on 101
  bool connect_ = false;     // CONNECT host:port: we connect and tunnel
  bool request_complete_ = false;
  uint64_t request_bytes_ = 0;
  std::string absolute_host_;  // from an absolute-form target
  uint16_t absolute_port_ = 0;

  // Policy snapshot and engine state.
  std::shared_ptr<const pfc::Table> table_;
  pfc::Match match_;
  const pfc::EffectivePolicy* policy_ = nullptr;
  std::string_view service_name_;
  retry::Deadline deadline_;
  std::unique_ptr<retry::RetryState> retry_;
  retry::RetryBudget* budget_ = nullptr;
  stats::RouteCounters* route_stats_ = nullptr;  // this request's service/route counters (set in start)

  // Body replay: the upstream-framed body bytes, while within max_buffered_body.
  evbuffer* replay_;
  bool replayable_ = true;
  bool attempt_started_ = false;
  bool trailers_sent_ = false;

  net::Address dest_;
  std::unique_ptr<net::Resolver::Request> resolving_;
  std::unique_ptr<UpstreamAttempt> attempt_;
  event::Timer deadline_timer_;
  event::Timer backoff_timer_;

  // Response.
  bool response_started_ = false;
  bool downstream_chunked_ = false;  // we re-chunk the body
  bool downstream_close_ = false;    // close after this response
  bool head_only_ = false;           // HEAD / 204 / 304: no body
  int status_ = 0;
  uint64_t response_bytes_ = 0;
  int64_t upstream_head_us_ = 0;
  bool response_trailers_sent_ = false;

  // What happened, for the access log.
  std::string retry_reasons_;
  std::string_view retry_refused_;
  std::string_view timeout_kind_;
  std::string_view sidecar_error_;
};

}  // namespace mulligan::proxy
