// UpstreamAttempt: one try of one request against one upstream address, over
// HTTP/1.1. A state machine — Connecting -> AwaitingHeaders -> Streaming ->
// Done — with one timer re-armed on each transition (connect timeout, then
// the attempt's header timeout, then the read timeout). It reports exactly one
// outcome to its owner (failure, or head then body then completion) and never
// decides retries: that is the owner's job (ProxyStream + retry::RetryState).
//
// The owner writes the request bytes (already framed) with send(); the
// attempt queues them until the connection is up. A connection comes from the
// worker's pool when one is idle, else a new connect. On completion the
// connection goes back to the pool if the response left it reusable.
#pragma once

#include <event2/bufferevent.h>

#include <cstdint>
#include <memory>
#include <string>

#include "sidecar/event/event_loop.h"
#include "sidecar/net/address.h"
#include "sidecar/proxy/http1_reader.h"
#include "sidecar/retry/retry_state.h"

namespace mulligan::proxy {

class Worker;

class UpstreamAttempt : public event::Deletable, private Http1Reader::Handler {
 public:
  class Owner {
   public:
    virtual ~Owner() = default;
    // Failure before a final response head: what happened and why, in words.
    virtual void onAttemptFailed(retry::OutcomeKind kind, const std::string& why) = 0;
    virtual void onAttemptHead(MessageHead& head) = 0;
    virtual void onAttemptBody(const char* data, size_t len) = 0;
    virtual void onAttemptTrailers(HeaderList& trailers) = 0;
    virtual void onAttemptComplete() = 0;
    // The response body broke off (read timeout, reset, truncation).
    virtual void onAttemptAborted(const std::string& why) = 0;
    // The end of one burst of response bytes: time to flush downstream.
    virtual void onAttemptReadDone() = 0;
  };

  enum class State {
    kConnecting,       // TCP connect in progress (or taking a pooled one)
    kAwaitingHeaders,  // request (being) sent, no final response head yet
    kStreaming,        // response head delivered, body flowing
    kDone,             // finished or failed; no more callbacks
  };

  UpstreamAttempt(Worker* worker, Owner* owner, const net::Address& dest, const std::string& method,
                  int64_t connect_timeout_us, int64_t read_timeout_us);
  ~UpstreamAttempt() override;
  UpstreamAttempt(const UpstreamAttempt&) = delete;
  UpstreamAttempt& operator=(const UpstreamAttempt&) = delete;

  void start();
  // Appends request bytes (moves them out of `buf`).
  void send(evbuffer* buf);
  void send(const char* data, size_t len);
  // Writes what send() staged (optimistically, see Http1Session::flush).
  void flush();
  // How long to wait for the final response head once connected
  // (per-try timeout capped by the deadline); <0 = no limit.
  void setHeaderTimeoutUs(int64_t us) { header_timeout_us_ = us; }
  // How long the connection may idle in the pool afterwards (the policy's
  // idle_timeout); 0 = do not pool it.
  void setIdleTimeoutUs(int64_t us) { idle_timeout_us_ = us; }
  // The request was not fully sent (the upstream answered early): the
  // connection's framing is unknown, so it must not be reused.
  void forbidReuse() { reusable_ = false; forbid_reuse_ = true; }
  // Back-pressure from downstream.
  void pauseReading(bool paused);
  // The owner walked away (retrying, or answering itself): no more callbacks,
  // and the connection is not reused.
  void cancel();
  // For Upgrade: hands the connected socket over (the attempt is then done).
  bufferevent* releaseConnection();

  State state() const { return state_; }
  bool reused() const { return reused_; }
  // Which timer ended this attempt, for the per-route timeout counters.
  bool connectTimedOut() const { return connect_timed_out_; }
  bool readTimedOut() const { return read_timed_out_; }
  const net::Address& destination() const { return dest_; }
  int64_t sentAtUs() const { return sent_at_us_; }

 private:
  static void onConnectEvent(bufferevent* bev, short what, void* arg);
  static void onRead(bufferevent* bev, void* arg);
  static void onEvent(bufferevent* bev, short what, void* arg);
  void transitionTo(State s);
  void connected();
  void fail(retry::OutcomeKind kind, const std::string& why);
  void onTimer();
  void readInput();

  // Http1Reader::Handler
  void onHead(MessageHead& head) override;
  void onBody(const char* data, size_t len) override;
  void onTrailers(HeaderList& trailers) override;
  void onComplete() override;

  Worker* worker_;
  Owner* owner_;
  net::Address dest_;
  std::string pool_key_;
  std::string method_;
  int64_t connect_timeout_us_;
  int64_t read_timeout_us_;
  int64_t header_timeout_us_ = -1;
  int64_t idle_timeout_us_ = 0;
  bool forbid_reuse_ = false;
  bool connect_failed_now_ = false;  // bufferevent_socket_connect failed at once
  State state_ = State::kConnecting;
  bufferevent* bev_ = nullptr;
  evbuffer* pending_;  // request bytes queued before the connection is up
  event::Timer timer_;
  Http1Reader reader_;
  bool reused_ = false;
  bool connect_timed_out_ = false;
  bool read_timed_out_ = false;
  bool complete_ = false;     // the response ended cleanly
  bool reusable_ = false;     // and the connection may carry another request
  bool got_bytes_ = false;    // any response byte seen
  int64_t sent_at_us_ = 0;
  std::unique_ptr<MessageHead> pending_upgrade_;  // a 101 waiting for its bytes to be consumed
};

}  // namespace mulligan::proxy
