#include "sidecar/upstream/http1_attempt.h"

#include <event2/buffer.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstring>

#include "sidecar/net/socket_read.h"
#include "sidecar/codec/http1/head_format.h"
#include "sidecar/codec/header_stock.h"
#include "sidecar/upstream/upstream_context.h"

namespace mulligan::proxy {
namespace {

// The pool's key for an upstream address: family, port and address bytes.
// For IPv4 it fits std::string's inline buffer (no allocation per attempt,
// unlike the printable "1.2.3.4:80", which also costs an inet_ntop).
std::string poolKey(const net::Address& a) {
  std::string k(1, static_cast<char>(a.family()));
  if (a.family() == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(a.sa());
    k.append(reinterpret_cast<const char*>(&sin->sin_port), sizeof sin->sin_port);
    k.append(reinterpret_cast<const char*>(&sin->sin_addr), sizeof sin->sin_addr);
  } else {
    k.append(reinterpret_cast<const char*>(a.sa()), a.len);
  }
  return k;
}

// Empty evbuffers for pending_, kept per thread: every attempt with a
// request body needs one, and evbuffer_new/evbuffer_free are a calloc and a free per request
// (STYLE.md "Hot path"). A buffer is only kept empty and without callbacks
// (pending_ never gets any), so a taken one is as good as a new one.
class PendingBufferStock {
 public:
  static constexpr size_t kMax = 64;
  static PendingBufferStock& local() {
    static thread_local PendingBufferStock stock;
    return stock;
  }
  evbuffer* take() {
    if (count_ == 0) return evbuffer_new();
    return bufs_[--count_];
  }
  void give(evbuffer* b) {
    if (count_ == kMax) {
      evbuffer_free(b);
      return;
    }
    evbuffer_drain(b, evbuffer_get_length(b));
    bufs_[count_++] = b;
  }
  ~PendingBufferStock() {
    while (count_ > 0) evbuffer_free(bufs_[--count_]);
  }

 private:
  evbuffer* bufs_[kMax];
  size_t count_ = 0;
};

}  // namespace

Http1Attempt::Http1Attempt(UpstreamContext* worker, Owner* owner, const net::Address& dest, const std::string& method,
                           Timeouts timeouts)
    : Attempt(worker->base(), owner, dest, timeouts),
      worker_(worker),
      pool_key_(poolKey(dest)),
      // (All the method matters for: no copy of it is kept per attempt.)
      head_request_(method == "HEAD") {
  sends_ = worker->sendBatch();
}

evbuffer* Http1Attempt::pending() {
  if (!pending_) pending_ = PendingBufferStock::local().take();
  return pending_;
}

void Http1Attempt::takeConnection(UpstreamConn* c) {
  conn_ = c;
  c->setUser(this);
  // Whatever the last response on this connection left in the parser (one
  // cut off by a cancel and drained by the pool, an error after it), this
  // one is read by a parser as new: a reset, not a resume.
  Http1Reader& r = c->reader();
  r.reset(this);
  if (head_request_) r.expectResponseTo("HEAD");
}

Http1Attempt::~Http1Attempt() {
  if (sends_) sends_->forget(this);
  if (conn_) {
    // The pool takes the connection as it is (its read event still added
    // unless paused; the pool resumes it), or it closes here.
    if (complete_ && reusable_) {
      worker_->pool().put(conn_, std::move(slot_), idle_timeout_us_);
    } else if (drain_on_cancel_ && reusable_ && head_out_.empty() && pendingLength() == 0 &&
               evbuffer_get_length(bufferevent_get_output(conn_->bev())) == 0) {
      // Cancelled after a reusable head (a retried 503): keep the connection
      // if the response ends soon. Done here, after the last parse, so that
      // what the reader consumed after the cancel is counted.
      if (response_ended_) {
        worker_->pool().put(conn_, std::move(slot_), idle_timeout_us_);
      } else if (has_content_length_ && content_length_ > body_seen_) {
        // Unparsed input is body too (content-length framing): the pool
        // discards it first, and closes on anything beyond the body.
        worker_->pool().putDraining(conn_, std::move(slot_), content_length_ - body_seen_, idle_timeout_us_);
      } else {
        delete conn_;
      }
    } else {
      delete conn_;
    }
    conn_ = nullptr;
  }
  if (pending_) PendingBufferStock::local().give(pending_);
  HeaderStock::local().giveString(std::move(head_out_));
}

void Http1Attempt::start() {
  worker_->counters().attempts.add();
  // retry.fresh_connection: a retry or hedge opens a new connection rather
  // than take a pooled one — unless the destination is at its connection
  // cap, where a pooled one is better than the overflow answer.
  bool fresh = freshConnection() && worker_->pool().reserve(pool_key_, &slot_);
  if (UpstreamConn* pooled = fresh ? nullptr : worker_->pool().take(pool_key_, &slot_)) {
    takeConnection(pooled);
    reused_ = true;
    worker_->counters().upstream_reused.add();
    connected();
    return;
  }
  if (!fresh && !worker_->pool().reserve(pool_key_, &slot_)) {
    // No queue for a slot: a waiting call would hold its client, its
    // deadline and its memory for a connection that is busy because the
    // upstream is slow, and a queue needs its own bound and timeout that
    // would just answer 503 later. Envoy's circuit breaker fails at once
    // too; the client (or its retry layer) decides.
    worker_->counters().upstream_overflow.add();
    failSoon(retry::OutcomeKind::kOverflow, "max upstream connections to " + destination().toString() + " reached");
    return;
  }
  worker_->counters().upstream_connects.add();
  // One UpstreamConn per TCP connection: its callbacks, write watermark and
  // (once connected) read event are set up here once, for every request the
  // connection will carry.
  takeConnection(new UpstreamConn(worker_->base(), bufferevent_socket_new(worker_->base(), -1, BEV_OPT_CLOSE_ON_FREE),
                                  this, worker_->ioRing()));
  bufferevent_setwatermark(conn_->bev(), EV_WRITE, kRequestLowWater, 0);
  transitionTo(State::kConnecting);  // the connect timeout
  const net::Address& dest = destination();
  if (bufferevent_socket_connect(conn_->bev(), dest.sa(), static_cast<int>(dest.len)) != 0) {
    // Immediate failure (e.g. no route); report from the loop, never inline.
    failSoon(retry::OutcomeKind::kConnectFailure, "connect to " + dest.toString() + " failed");
  }
}

void Http1Attempt::onConnEvent(UpstreamConn*, short what) {
  if (state() != State::kConnecting) {
    onClosed(what & BEV_EVENT_EOF);  // write-side errors (reads are ours: onConnReadable)
    return;
  }
  if (what & BEV_EVENT_CONNECTED) {
    connected();
    return;
  }
  int err = EVUTIL_SOCKET_ERROR();
  fail(retry::OutcomeKind::kConnectFailure,
       "connect to " + destination().toString() + " failed: " + evutil_socket_error_to_string(err));
}

void Http1Attempt::connected() {
  bufferevent* bev = conn_->bev();
  if (!reused_) {
    // Once per TCP connection; a pooled one has all this already (and its
    // read event is still added: nothing to do per request).
    int one = 1;
    setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    bufferevent_enable(bev, EV_WRITE);
    conn_->startWatching();
  } else {
    // No-ops unless the connection came back from a cancelled attempt
    // (cancel() stopped its writes) or a back-pressure pause: the pool
    // keeps it reading.
    conn_->resumeWriting();
    conn_->resumeReading();
  }
  transitionTo(State::kAwaitingHeaders);  // the header timeout
  markSent(event::monotonicNowUs());
  flush();
  // What waited for the connection is (mostly) written now: the app may
  // send more (an optimistic write that took it all brings no onWritten).
  requestDrained(0);
}

void Http1Attempt::flush() {
  if (!conn_ || state() == State::kConnecting || state() == State::kDone) return;
  if (sends_ && !head_out_.empty() && pendingLength() == 0 &&
      evbuffer_get_length(bufferevent_get_output(conn_->bev())) == 0) {
    // A request with no body yet (most): sent with the other sockets' at
    // the end of the iteration, if it is still all there is (bytesToSend).
    sends_->sendSoon(this);
    return;
  }
  flushNow();
}

bool Http1Attempt::bytesToSend(int* fd, const char** data, size_t* len) {
  if (!conn_ || state() == State::kConnecting || state() == State::kDone || head_out_.empty() ||
      pendingLength() != 0 || evbuffer_get_length(bufferevent_get_output(conn_->bev())) != 0) {
    flushNow();  // a body came after the head, or the attempt ended: the usual way
    return false;
  }
  *fd = conn_->fd();
  *data = head_out_.data();
  *len = head_out_.size();
  return true;
}

void Http1Attempt::wrote(long result) {
  // As flushNow's send: what the socket did not take (all of it after an
  // error, which the bufferevent's own write then meets and reports).
  size_t sent = result > 0 ? static_cast<size_t>(result) : 0;
  if (sent < head_out_.size() && conn_) {
    evbuffer_add(bufferevent_get_output(conn_->bev()), head_out_.data() + sent, head_out_.size() - sent);
  }
  head_out_.clear();
}

void Http1Attempt::flushNow() {
  if (sends_) sends_->forget(this);  // sent here instead
  if (!conn_ || state() == State::kConnecting || state() == State::kDone) return;
  if (head_out_.empty() && pendingLength() == 0) return;
  bufferevent* bev = conn_->bev();
  evbuffer* queued = bufferevent_get_output(bev);
  if (!head_out_.empty()) {
    if (evbuffer_get_length(queued) == 0 && pendingLength() == 0) {
      // A request with no body yet (most): one send() from the string, no
      // evbuffer chain. A failed send queues it all: the bufferevent's own
      // write then meets the error and reports it (onConnEvent).
      ssize_t n = ::send(conn_->fd(), head_out_.data(), head_out_.size(), MSG_NOSIGNAL);
      size_t sent = n > 0 ? static_cast<size_t>(n) : 0;
      if (sent < head_out_.size()) evbuffer_add(queued, head_out_.data() + sent, head_out_.size() - sent);
      head_out_.clear();
      return;
    }
    // The head goes before the body bytes already in pending_.
    evbuffer_prepend(pending(), head_out_.data(), head_out_.size());
    head_out_.clear();
  }
  if (evbuffer_get_length(queued) == 0) evbuffer_write(pending_, conn_->fd());
  if (evbuffer_get_length(pending_) != 0) evbuffer_add_buffer(queued, pending_);
}

void Http1Attempt::sendHead(const RequestHead& head, const retry::AttemptHeaders& extra) {
  // Formatted with HeadFormat (memcpy through a cursor, the length set once)
  // straight into head_out_, which starts from a kept buffer of the thread's
  // HeaderStock (and gives it back when the attempt goes): no per-request
  // allocation, no copy. kTypicalHead is HeadFormat's first growth step.
  constexpr size_t kTypicalHead = 256;
  HeaderStock::reserve(head_out_, kTypicalHead);
  {
    HeadFormat f(head_out_);
    f.add(head.method).add(" ").add(head.path).add(" HTTP/1.1\r\n");
    // Host is the request's authority, first (RFC 9110 §7.2): for an
    // absolute-form request the target's authority replaces the Host the
    // client sent (RFC 9112 §3.2.2: what we routed by is what the upstream
    // reads), and a Host the Connection field names still goes.
    if (!head.authority.empty()) f.field("host", head.authority);
    HopByHopFilter hop(head.headers);
    for (const auto& [k, v] : head.headers) {
      if (hop.drops(k) || iequals(k, "content-length") || iequals(k, "host") || replacedByAttemptHeaders(extra, k)) {
        continue;
      }
      f.field(k, v);
    }
    if (head.upgrade) {
      // A WebSocket-style upgrade keeps its handshake fields (hop-by-hop
      // otherwise): the upstream must see them to answer 101.
      if (auto u = findHeader(head.headers, "upgrade")) f.field("upgrade", *u);
      f.add("connection: upgrade\r\n");
    }
    // x-envoy-attempt-count and the deadline headers, from the engine.
    for (retry::HeaderField h : extra) f.field(h.name, h.value);
    if (head.has_content_length) {
      f.field("content-length", head.content_length);
    } else if (head.body_follows) {
      // RFC 9112 §6.1: a body of unknown length goes chunked.
      chunked_ = true;
      f.add("transfer-encoding: chunked\r\n");
    }
    f.add("\r\n");
  }  // HeadFormat sets the length
  if (state() == State::kDone) head_out_.clear();  // nothing is sent any more
}

void Http1Attempt::sendBody(const char* data, size_t len) {
  if (len == 0) return;
  if (!chunked_) {
    send(data, len);
    return;
  }
  char size[24];
  int n = snprintf(size, sizeof size, "%zx\r\n", len);
  send(size, static_cast<size_t>(n));
  send(data, len);
  send("\r\n", 2);
}

void Http1Attempt::endRequest(const HeaderList* trailers) {
  if (!chunked_) return;
  std::string out = "0\r\n";
  if (trailers) {
    for (const auto& [k, v] : *trailers) {
      if (notATrailer(k)) continue;
      out.append(k).append(": ").append(v).append("\r\n");
    }
  }
  out.append("\r\n");
  send(out.data(), out.size());
}

void Http1Attempt::send(const char* data, size_t len) {
  if (state() == State::kDone || len == 0) return;
  evbuffer_add(pending(), data, len);
}

void Http1Attempt::onFailed(retry::OutcomeKind kind) {
  if (kind == retry::OutcomeKind::kConnectFailure) worker_->counters().upstream_connect_failures.add();
  // The socket is of no further use: close it now, so that its slot under
  // the connection cap is free before the owner's retry starts. (libevent
  // holds a reference while it runs our callback, so freeing here is safe.)
  delete conn_;  // safe inside its own callbacks (upstream_conn.h)
  conn_ = nullptr;
  slot_.release();
  reusable_ = false;
}

void Http1Attempt::startReading() {
  if (conn_) conn_->resumeReading();
}

void Http1Attempt::stopReading() {
  if (conn_) conn_->pauseReading();
}

void Http1Attempt::onConnReadable(UpstreamConn*) {
  if (state() == State::kDone) {
    // Nothing more is ours to read; the pool resumes reading if it takes
    // the connection back.
    stopReading();
    return;
  }
  // One clock read for what this response burst does (the owner's upstream
  // latency and access log, the pool's idle expiry), as the downstream
  // session's reads do (event::ClockScope).
  event::ClockScope now;
  const char* fresh = nullptr;
  net::ReadResult r = conn_->readForParse(&fresh);
  switch (r.status) {
    case net::ReadStatus::kData:
      readInput(fresh, fresh ? r.bytes : 0);
      // Owners never destroy an attempt inside its callbacks: we are alive.
      releaseToPoolIfDone();
      readDone();
      return;
    case net::ReadStatus::kAgain:
      return;
    case net::ReadStatus::kEof:
      onClosed(true);
      return;
    case net::ReadStatus::kError:
      onClosed(false);
      return;
  }
}

// The owner frees a finished attempt later in this loop iteration (deferred
// deletion), and the destructor would pool the connection only then; a call
// that starts meanwhile — a new downstream connection's request, parsed
// right at accept — would find the pool empty and open another connection.
// So a complete response on a reusable connection gives it back as soon as
// the parser is off the stack. The same conditions as the destructor's.
void Http1Attempt::releaseToPoolIfDone() {
  if (!conn_ || state() != State::kDone || !complete_ || !reusable_) return;
  // A holder switch: the read event stays added (see the header).
  worker_->pool().put(conn_, std::move(slot_), idle_timeout_us_);
  conn_ = nullptr;
}

void Http1Attempt::readInput(const char* fresh, size_t fresh_len) {
  evbuffer* in = bufferevent_get_input(conn_->bev());
  if (fresh_len != 0 && state() != State::kAwaitingHeaders && state() != State::kStreaming) {
    evbuffer_add(in, fresh, fresh_len);  // not ours to parse: leave it where the next owner looks
    return;
  }
  while (state() == State::kAwaitingHeaders || state() == State::kStreaming) {
    // Parse chain by chain: body pieces point into libevent's memory (or
    // the fresh read) and are consumed by the owner within the callback.
    const char* data;
    size_t len;
    bool from_fresh;
    if (!net::nextToParse(fresh, &fresh_len, in, &data, &len, &from_fresh)) return;
    got_bytes_ = true;
    responseActivity();
    auto res = conn_->reader().feed(data, len);
    // Owners never destroy an attempt inside its callback, so `in` is still
    // ours. What the parser left of fresh bytes goes where unread bytes
    // belong (an upgrade's tunnel, the pool's checks, the next round).
    if (from_fresh) {
      if (res.consumed < len) evbuffer_add(in, data + res.consumed, len - res.consumed);
    } else {
      evbuffer_drain(in, res.consumed);
    }
    // A framing error in what followed a completed (or cancelled) response
    // leaves the connection's framing unknown: never pooled again.
    if (res.error != Http1Reader::Error::kNone) reusable_ = false;
    if (state() == State::kDone) {
      // Completed (or cancelled) inside the feed. Bytes after a complete
      // response on an HTTP/1 connection make it unusable. (After a cancel
      // the destructor counts the rest of a body; see drain_on_cancel_.)
      if (evbuffer_get_length(in) != 0 && (response_ended_ || !drain_on_cancel_)) reusable_ = false;
      return;
    }
    if (res.error != Http1Reader::Error::kNone) {
      if (state() == State::kAwaitingHeaders) {
        fail(retry::OutcomeKind::kReset, "malformed response from " + destination().toString() + ": " + res.why);
      } else {
        abortResponse("malformed response body from " + destination().toString() + ": " + res.why);
      }
      return;
    }
    if (pending_upgrade_) {
      std::unique_ptr<MessageHead> head = std::move(pending_upgrade_);
      reusable_ = false;
      headArrived(*head, false);  // the owner takes the connection for a tunnel
      return;
    }
    if (res.paused) {
      // A complete response: anything after it on an HTTP/1 connection we
      // did not ask for makes the connection unusable.
      if (evbuffer_get_length(in) != 0) reusable_ = false;
      return;
    }
  }
}

size_t Http1Attempt::requestBacklog() const {
  size_t n = head_out_.size() + pendingLength();
  if (conn_ && state() != State::kConnecting) n += evbuffer_get_length(bufferevent_get_output(conn_->bev()));
  return n;
}

void Http1Attempt::onConnWritten(UpstreamConn*) {
  // Only the owner's bookkeeping runs here (it may resume reading the app);
  // nothing is destroyed inside this callback.
  if (state() != State::kDone) requestDrained(0);
}

void Http1Attempt::onClosed(bool eof) {
  // Level-triggered: an EOF or error would be reported again and again.
  stopReading();
  // A reset loses the response: reusing this connection is out of the question.
  reusable_ = false;
  if (state() == State::kDone || !conn_) return;
  readInput();  // bytes still waiting (e.g. behind a pause)
  if (state() == State::kDone) return;
  if (state() == State::kAwaitingHeaders) {
    std::string how = eof ? "closed the connection" : "reset the connection";
    fail(retry::OutcomeKind::kReset,
         destination().toString() + " " + how + " before response headers" + (reused_ ? " (pooled connection)" : ""));
    return;
  }
  if (state() == State::kStreaming) {
    if (eof && conn_->reader().finishOnEof()) {
      // A close-delimited body ended; onComplete() already ran.
      return;
    }
    abortResponse(destination().toString() + " closed the connection mid-response");
  }
}

void Http1Attempt::onHead(MessageHead& head) {
  if (head.status >= 100 && head.status < 200 && head.status != 101) return;  // interim: wait for the final one
  final_head_ = true;
  has_content_length_ = head.has_content_length;
  content_length_ = head.content_length;
  if (head.status == 101) {
    // Report it after the head's bytes are consumed (readInput), so that what
    // follows in the buffer is exactly the tunnel's first bytes.
    pending_upgrade_ = std::make_unique<MessageHead>(std::move(head));
    return;
  }
  reusable_ = head.keep_alive && !head.needs_eof && !forbid_reuse_;
  headArrived(head, false);
}

void Http1Attempt::onBody(const char* data, size_t len) {
  body_seen_ += len;
  if (state() != State::kStreaming) return;
  bodyArrived(data, len);
}

void Http1Attempt::onTrailers(HeaderList& trailers) {
  if (state() != State::kStreaming) return;
  trailersArrived(trailers);
}

void Http1Attempt::onComplete() {
  if (final_head_) response_ended_ = true;
  if (state() != State::kStreaming) return;  // an interim response ended (or cancelled)
  complete_ = true;
  complete();
}

void Http1Attempt::pauseReading(bool paused) {
  if (!conn_ || state() == State::kDone) return;
  if (paused) {
    stopReading();
  } else {
    startReading();
  }
}

void Http1Attempt::cancel() {
  // After a head that left the connection reusable, the destructor may still
  // pool it once the (small) rest of the response is read; otherwise the
  // connection's framing is lost.
  drain_on_cancel_ = state() == State::kStreaming && reusable_ && !forbid_reuse_ && !pending_upgrade_;
  if (!drain_on_cancel_) forbidReuse();
  if (state() == State::kDone) return;
  transitionTo(State::kDone);
  stopReading();
  if (conn_) conn_->stopWriting();  // its bufferevent's read side is never on
}

bufferevent* Http1Attempt::releaseConnection() {
  bufferevent* b = nullptr;
  if (conn_) {
    // The read event goes before the tunnel reads through the bufferevent.
    b = conn_->detach();
    delete conn_;  // may be inside its callback: safe (upstream_conn.h)
    conn_ = nullptr;
  }
  slot_.release();  // a tunnel is no longer a pooled HTTP/1 connection
  transitionTo(State::kDone);
  return b;
}

}  // namespace mulligan::proxy
