// Http1Attempt: the HTTP/1.1 transport of one try of one request against one
// upstream address. Its state, its one timer and its outcomes are the
// Attempt lifecycle's (attempt.h); this class moves bytes and reports what
// the connection did (connected, head, body, closed) to it. It never
// decides retries: that is the owner's job (ProxyStream + retry::RetryState).
//
// The owner hands over the request head and body; the attempt frames them
// for HTTP/1.1 (request line, Host, content-length or chunked) and queues
// them until the connection is up. A connection comes from the
// worker's pool when one is idle, else a new connect — unless the
// destination already has the pool's max_connections_per_destination open:
// then the attempt fails with OutcomeKind::kOverflow (from the loop, never
// inline) without touching the network. On completion the connection goes
// back to the pool if the response left it reusable. When the owner cancels
// after the response head (a retried 503), a keep-alive response whose
// content-length rest is small (ConnPool::kMaxDrainBytes) is drained by the
// pool and the connection reused, instead of a close and a new connect.
//
// I/O: the connection is an UpstreamConn (upstream_conn.h), made at connect
// and kept with the TCP connection through the pool, with its response
// parser (reset when an attempt takes the connection). Its bufferevent is used
// for connect and writes only. Reads go through the connection's one
// persistent read event (added once, still added when the pool lends the
// connection to us, left added when we give it back) and net::readForParse
// (one readv per readiness, no FIONREAD ioctl) into the bufferevent's input
// buffer, so that whoever takes the connection next (the pool, a tunnel)
// finds unread bytes where a bufferevent user expects them. Taking a pooled
// connection and giving it back is a holder switch: no event added or
// deleted, no bufferevent callback or enable change, no epoll_ctl.
#pragma once

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include <cstdint>
#include <memory>
#include <string>

#include "sidecar/core/recycled.h"
#include "sidecar/event/event_loop.h"
#include "sidecar/net/address.h"
#include "sidecar/net/send_batch.h"
#include "sidecar/upstream/conn_pool.h"
#include "sidecar/codec/fields.h"
#include "sidecar/upstream/attempt.h"
#include "sidecar/codec/http1/http1_reader.h"
#include "sidecar/upstream/upstream_conn.h"
#include "sidecar/retry/retry_state.h"

namespace mulligan::proxy {

class UpstreamContext;

// Recycled: one is made per try; its memory is reused from a per-thread list
// instead of malloc/free each time (core/recycled.h).
class Http1Attempt : public Attempt,
                     private Http1Reader::Handler,
                     private UpstreamConn::User,
                     private net::SendBatch::Writer,
                     public core::Recycled<Http1Attempt> {
 public:
  Http1Attempt(UpstreamContext* worker, Owner* owner, const net::Address& dest, const std::string& method,
               Timeouts timeouts);
  ~Http1Attempt() override;
  Http1Attempt(const Http1Attempt&) = delete;
  Http1Attempt& operator=(const Http1Attempt&) = delete;

  // Attempt
  void sendHead(const RequestHead& head, const retry::AttemptHeaders& extra) override;
  void sendBody(const char* data, size_t len) override;
  void endRequest(const HeaderList* trailers) override;
  void start() override;
  // Writes what send() staged (optimistically, see Http1Session::flush;
  // a lone request head goes in the worker's send batch when it has one).
  void flush() override;
  // 0 = do not pool the connection.
  void setIdleTimeoutUs(int64_t us) override { idle_timeout_us_ = us; }
  // The connection's framing is unknown (request not fully sent): no reuse.
  void forbidReuse() override { reusable_ = false; forbid_reuse_ = true; }
  void pauseReading(bool paused) override;
  void cancel() override;
  bufferevent* releaseConnection() override;
  // Request bytes not yet taken by the upstream socket (staged, and queued in
  // the bufferevent). The session stops reading the app above a limit and
  // resumes on onAttemptRequestDrained(), so a slow upstream slows the
  // upload instead of growing our memory.
  size_t requestBacklog() const override;
  // onAttemptRequestDrained() fires when the queued request bytes fall to this.
  static constexpr size_t kRequestLowWater = 64 << 10;
  bool reused() const override { return reused_; }

 private:
  // net::SendBatch::Writer: the batched send of head_out_.
  bool bytesToSend(int* fd, const char** data, size_t* len) override;
  void wrote(long result) override;
  void flushNow();
  // UpstreamConn::User
  void onConnReadable(UpstreamConn* c) override;
  // Connect done or failed (kConnecting), else a write-side EOF or error.
  void onConnEvent(UpstreamConn* c, short what) override;
  // The bufferevent wrote its queue down to the low watermark.
  void onConnWritten(UpstreamConn* c) override;
  // The upstream closed (EOF) or the socket failed.
  void onClosed(bool eof);
  void startReading();
  void stopReading();
  void releaseToPoolIfDone();
  void connected();
  // Attempt: a failure before the head closes the connection now.
  void onFailed(retry::OutcomeKind kind) override;
  // Parses what is buffered: first `fresh` (bytes just read into the
  // thread's read buffer, when the input evbuffer was empty), whose unparsed
  // rest goes to the input evbuffer, then the input evbuffer.
  void readInput(const char* fresh = nullptr, size_t fresh_len = 0);

  // Http1Reader::Handler
  void onHead(MessageHead& head) override;
  void onBody(const char* data, size_t len) override;
  void onTrailers(HeaderList& trailers) override;
  void onComplete() override;

  // Appends framed request bytes.
  void send(const char* data, size_t len);
  // Makes `c` (new, or lent by the pool) ours: its events and its response
  // parser, reset for this request's response (see UpstreamConn::reader).
  void takeConnection(UpstreamConn* c);

  UpstreamContext* worker_;
  bool chunked_ = false;  // the request body is sent chunked
  std::string pool_key_;
  int64_t idle_timeout_us_ = 0;
  bool forbid_reuse_ = false;
  // The connection while we hold it (connecting, or lent by the pool);
  // null once given back, handed to a tunnel, or closed.
  UpstreamConn* conn_ = nullptr;
  // The request head until flush(): sent with one send() when no body waits
  // behind it (no evbuffer chain per request), else put ahead of pending_.
  // Its buffer comes from, and goes back to, the thread's HeaderStock.
  std::string head_out_;
  net::SendBatch* sends_ = nullptr;  // the worker's (null: send(2) at once)
  // Request body bytes queued before flush(); taken from the thread's stock
  // with the first of them (most requests have no body): pending().
  evbuffer* pending_ = nullptr;
  evbuffer* pending();
  size_t pendingLength() const { return pending_ ? evbuffer_get_length(pending_) : 0; }
  bool head_request_;  // a HEAD: the response has no body (the reader is told)
  ConnPool::Slot slot_;       // our claim on the destination's connection cap
  bool drain_on_cancel_ = false;  // cancelled after a reusable head: try to drain
  bool final_head_ = false;   // the final (non-1xx) response head was parsed
  bool response_ended_ = false;  // the final response ended (even after cancel)
  uint64_t content_length_ = 0;  // of the final response, when it has one
  bool has_content_length_ = false;
  uint64_t body_seen_ = 0;    // response body bytes parsed (even after cancel)
  bool reused_ = false;
  bool complete_ = false;     // the response ended cleanly
  bool reusable_ = false;     // and the connection may carry another request
  bool got_bytes_ = false;    // any response byte seen
  std::unique_ptr<MessageHead> pending_upgrade_;  // a 101 waiting for its bytes to be consumed
};

}  // namespace mulligan::proxy
