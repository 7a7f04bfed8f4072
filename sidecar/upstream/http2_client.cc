#include "sidecar/upstream/http2_client.h"

#include <event2/buffer.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <algorithm>
#include <cstring>

#include "sidecar/codec/header_stock.h"
#include "sidecar/core/logging.h"
#include "sidecar/upstream/http2_attempt.h"
#include "sidecar/upstream/upstream_context.h"

namespace mulligan::proxy {
// ===================================================== Http2ClientSession ==

Http2ClientSession::Http2ClientSession(Http2Pool* pool, UpstreamContext* worker, const net::Address& dest,
                                       int64_t connect_timeout_us)
    : Http2Session(worker->base(), Role::kClient),
      pool_(pool),
      worker_(worker),
      dest_(dest),
      connect_timeout_us_(connect_timeout_us),
      timer_(worker->base(), [this] {
        if (state_ == State::kConnecting || state_ == State::kHandshaking) {
          closeWith("connect to " + dest_.toString() + " timed out", true);
        } else if (streams_.empty() && waiting_.empty() && orphans_.empty()) {
          closeWith("idle", false);
        }
      }),
      orphan_timer_(worker->base(), [this] { onOrphanTimer(); }) {}

Http2ClientSession::~Http2ClientSession() {
  timer_.cancel();
  // Only at worker teardown can attempts still be attached: no callbacks then.
  while (Http2Attempt* a = streams_.pop_front()) a->forgetSession();
  for (Http2Attempt* a : waiting_) a->forgetSession();
}

bool Http2ClientSession::connect() {
  worker_->counters().upstream_connects.add();
  bev_ = bufferevent_socket_new(worker_->base(), -1, BEV_OPT_CLOSE_ON_FREE);
  bufferevent_setcb(bev_, nullptr, nullptr, &Http2ClientSession::onConnectEvent, this);
  if (connect_timeout_us_ > 0) timer_.armUs(connect_timeout_us_);
  if (bufferevent_socket_connect(bev_, dest_.sa(), static_cast<int>(dest_.len)) != 0) {
    worker_->counters().upstream_connect_failures.add();
    state_ = State::kClosed;
    stopIo();
    return false;
  }
  return true;
}

bool Http2ClientSession::canTakeStream() const {
  switch (state_) {
    case State::kConnecting:
    case State::kHandshaking:
      return waiting_.size() < kAssumedPeerMaxStreams;
    case State::kReady: {
      uint32_t max = nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
      // Near the end of the stream id space the connection must be replaced.
      if (nghttp2_session_get_next_stream_id(session_) > (1u << 30)) return false;
      return streams_.size() + orphans_.size() + waiting_.size() < max;
    }
    case State::kClosing:
    case State::kClosed:
      return false;
  }
  return false;
}

void Http2ClientSession::onConnectEvent(bufferevent*, short what, void* arg) {
  auto* s = static_cast<Http2ClientSession*>(arg);
  if (what & BEV_EVENT_CONNECTED) {
    s->connected();
    return;
  }
  s->worker_->counters().upstream_connect_failures.add();
  int err = EVUTIL_SOCKET_ERROR();
  s->closeWith("connect to " + s->dest_.toString() + " failed: " + evutil_socket_error_to_string(err), true);
}

void Http2ClientSession::connected() {
  timer_.cancel();
  int one = 1;
  setsockopt(bufferevent_getfd(bev_), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  startSession(static_cast<uint32_t>(worker_->upstreamLimits().max_header_bytes));
  state_ = State::kHandshaking;
  startIo();
  // The connect timeout also bounds the wait for the peer's SETTINGS.
  if (connect_timeout_us_ > 0) timer_.armUs(connect_timeout_us_);
  flush();
}

void Http2ClientSession::handshakeDone() {
  timer_.cancel();
  state_ = State::kReady;
  uint32_t max = nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  std::vector<Http2Attempt*> waiting;
  waiting.swap(waiting_);
  for (Http2Attempt* a : waiting) {
    if (streams_.size() < max) {
      submit(a);
      continue;
    }
    // Beyond this peer's limit: another connection takes it.
    Http2ClientSession* other = pool_->sessionFor(dest_, connect_timeout_us_);
    if (!other || other == this) {
      a->onSessionLost("no HTTP/2 session to " + dest_.toString() + " can take the stream", true, false);
      continue;
    }
    a->rehome(other);
    other->attach(a);
  }
  scheduleFlush();
  maybeIdle();
}

void Http2ClientSession::attach(Http2Attempt* a) {
  if (state_ == State::kReady) timer_.cancel();  // the idle timer
  if (state_ == State::kConnecting || state_ == State::kHandshaking) {
    waiting_.push_back(a);
    return;
  }
  submit(a);
  scheduleFlush();
}

void Http2ClientSession::submit(Http2Attempt* a) {
  nghttp2_data_provider prd = dataProvider();
  const HeaderList& fields = a->requestFields();
  // In place, no copy (issue 18: about 500 instructions a request): the
  // fields move to queued_heads_ below, where they stay until nghttp2 has
  // packed the HEADERS frame or dropped it (headDone), whatever becomes of
  // the attempt meanwhile.
  int32_t id = nghttp2_submit_request(session_, nullptr, nvOfInPlace(fields), fields.size(),
                                      a->hasBody() ? &prd : nullptr, a);
  if (id < 0) {
    a->onSessionLost(std::string("cannot submit a stream: ") + nghttp2_strerror(id), false, false);
    return;
  }
  queued_heads_.push_back(QueuedHead{id, a->takeRequestFields()});
  streams_.push_back(a);
  a->submitted(id);
}

void Http2ClientSession::headDone(int32_t stream_id) {
  // Request HEADERS leave nghttp2's queue in submit order (its ob_syn is a
  // FIFO), so the one done is nearly always the first still queued.
  for (size_t i = queued_first_; i < queued_heads_.size(); ++i) {
    if (queued_heads_[i].stream_id != stream_id) continue;
    queued_heads_[i].stream_id = 0;
    HeaderStock::local().give(std::move(queued_heads_[i].fields));
    while (queued_first_ < queued_heads_.size() && queued_heads_[queued_first_].stream_id == 0) ++queued_first_;
    if (queued_first_ == queued_heads_.size()) {
      queued_heads_.clear();  // (keeps its capacity)
      queued_first_ = 0;
    }
    return;
  }
}

void Http2ClientSession::detach(Http2Attempt* a, bool reset) {
  waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), a), waiting_.end());
  int32_t id = a->streamId();
  if (a->linked()) {
    // (An attempt is linked only in the list of the session it is attached to.)
    unlink(a);
    if (reset && session_ && state_ != State::kClosed) {
      nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
      scheduleFlush();
    }
  }
  maybeIdle();
}

void Http2ClientSession::orphan(Http2Attempt* a) {
  int32_t id = a->streamId();
  detach(a, false);
  if (id <= 0 || !session_ || state_ == State::kClosed) return;
  orphans_.emplace_back(id, event::monotonicNowUs() + kOrphanGraceUs);
  if (!orphan_timer_.armed()) orphan_timer_.armUs(kOrphanGraceUs);
}

bool Http2ClientSession::isOrphan(int32_t stream_id) const {
  for (const auto& [id, deadline] : orphans_) {
    if (id == stream_id) return true;
  }
  return false;
}

void Http2ClientSession::dropOrphan(int32_t stream_id) {
  for (size_t i = 0; i < orphans_.size(); ++i) {
    if (orphans_[i].first == stream_id) {
      orphans_.erase(orphans_.begin() + static_cast<std::ptrdiff_t>(i));
      return;
    }
  }
}

void Http2ClientSession::onOrphanTimer() {
  // Orphans are added in time order: the expired ones lead the vector.
  int64_t now = event::monotonicNowUs();
  size_t n = 0;
  while (n < orphans_.size() && orphans_[n].second <= now) {
    if (session_ && state_ != State::kClosed) {
      nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, orphans_[n].first, NGHTTP2_CANCEL);
    }
    ++n;
  }
  orphans_.erase(orphans_.begin(), orphans_.begin() + static_cast<std::ptrdiff_t>(n));
  if (n > 0) scheduleFlush();
  if (!orphans_.empty()) orphan_timer_.armUs(orphans_.front().second - now);
  maybeIdle();
}

void Http2ClientSession::maybeIdle() {
  if (!streams_.empty() || !waiting_.empty() || !orphans_.empty() || state_ == State::kClosed) return;
  if (state_ == State::kConnecting || state_ == State::kHandshaking) {
    // Every call that wanted this connection went away before it was
    // ready (their clients closed or cancelled): nothing would use it.
    closeWith("no call is waiting for it any more", false);
    return;
  }
  if (state_ == State::kClosing) {
    scheduleFlush();  // flush() ends the session once nothing is left to say
    return;
  }
  if (state_ == State::kReady) timer_.armUs(idle_timeout_us_ > 0 ? idle_timeout_us_ : 0);
}

void Http2ClientSession::resumeData(int32_t stream_id) {
  if (!session_ || state_ == State::kClosed) return;
  nghttp2_session_resume_data(session_, stream_id);
  scheduleFlush();
}

void Http2ClientSession::consume(int32_t stream_id, size_t n) {
  if (!session_ || state_ == State::kClosed || n == 0) return;
  nghttp2_session_consume(session_, stream_id, n);
  scheduleFlush();
}

void Http2ClientSession::flush() {
  if (!session_ || state_ == State::kClosed || state_ == State::kConnecting) return;
  if (int rv = sendAndWrite(); rv != 0) {
    closeWith(std::string("HTTP/2 error: ") + nghttp2_strerror(rv), false);
    return;
  }
  if (!outputEmpty()) return;
  if (state_ == State::kClosing && streams_.empty() && waiting_.empty()) {
    closeWith("going away", false);
    return;
  }
  if (finished()) closeWith("session ended", false);
}

void Http2ClientSession::onInput() {
  if (int rv = receive(); rv != 0) {
    goAway(offenceOf(rv), nghttp2_strerror(rv));
    return;
  }
  // Attempts flush downstream at the end of each burst. One attempt's
  // onReadDone may end others (a hedge's losers), so they are found again
  // by stream id, through nghttp2's user data that unlink() clears: a
  // pointer to an attempt that went meanwhile is never read. Stream ids are
  // never reused within a session. The id list is this thread's, kept
  // between bursts (a nested burst, should one ever run, takes a new one).
  static thread_local std::vector<int32_t> kept_ids;
  std::vector<int32_t> ids = std::move(kept_ids);
  ids.clear();
  for (Http2Attempt* a = streams_.front(); a; a = streams_.next(a)) ids.push_back(a->streamId());
  for (int32_t id : ids) {
    if (Http2Attempt* a = attemptFor(id)) a->onReadDone();
  }
  kept_ids = std::move(ids);
  flush();
}

void Http2ClientSession::onConnectionEvent(short what) {
  closeWith(dest_.toString() + ((what & BEV_EVENT_EOF) ? " closed the connection" : " reset the connection"), false);
}

void Http2ClientSession::closeWith(const std::string& why, bool connect_failed) {
  if (state_ == State::kClosed) return;
  LOG_DEBUG("HTTP/2 session to %s ends: %s", dest_.toString().c_str(), why.c_str());
  // Streams still waiting for the handshake never left: a connect failure.
  connect_failed = connect_failed || state_ == State::kConnecting || state_ == State::kHandshaking;
  state_ = State::kClosed;
  stopIo();
  timer_.cancel();
  // Tell every attempt (they may detach, or start new attempts: the waiting
  // ones on a copy; each submitted one leaves the list before it is told,
  // and one that detached meanwhile is gone from it, never told twice).
  auto waiting = std::move(waiting_);
  waiting_.clear();
  orphans_.clear();
  orphan_timer_.cancel();
  while (Http2Attempt* a = streams_.front()) {
    unlink(a);
    a->onSessionLost(why, false, true);
  }
  for (Http2Attempt* a : waiting) a->onSessionLost(why, connect_failed, false);
  pool_->remove(this);  // frees us from the loop
}

Http2Attempt* Http2ClientSession::attemptFor(int32_t stream_id) {
  return session_ ? static_cast<Http2Attempt*>(nghttp2_session_get_stream_user_data(session_, stream_id)) : nullptr;
}

void Http2ClientSession::unlink(Http2Attempt* a) {
  streams_.remove(a);
  // The stream may be open, still queued (its HEADERS not sent: nghttp2
  // sets the queued request's user data, which the stream gets when it
  // opens), or already closed (then nothing is left to clear).
  if (session_) nghttp2_session_set_stream_user_data(session_, a->streamId(), nullptr);
}

int Http2ClientSession::onFrameSend(const nghttp2_frame* frame) {
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    headDone(frame->hd.stream_id);  // packed: nghttp2 reads the fields no more
    return 0;
  }
  if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR) {
    // A connection error nghttp2 answered by itself: counted as ours are.
    noteGoAway(offence().value_or(Http2Offence::kProtocol), frame->goaway.error_code);
  }
  return 0;
}

int Http2ClientSession::onFrameNotSend(const nghttp2_frame* frame, int) {
  // A request reset while queued (nghttp2 cancels its HEADERS), or one the
  // session could no longer open: dropped, never to be packed.
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) headDone(frame->hd.stream_id);
  return 0;
}

void Http2ClientSession::noteGoAway(Http2Offence o, uint32_t code) {
  if (goaway_noted_) return;
  goaway_noted_ = true;
  worker_->counters().http2_goaways[static_cast<size_t>(Http2Side::kUpstream)][static_cast<size_t>(o)].add();
  noteOffence(Http2Side::kUpstream, o, code, dest_.toString().c_str(), event::monotonicNowUs());
}

void Http2ClientSession::goAway(Http2Offence o, const char* what) {
  if (state_ == State::kClosed) return;
  noteGoAway(o, offenceErrorCode(o));
  // No-op when nghttp2 queued its own GOAWAY already.
  nghttp2_session_terminate_session(session_, offenceErrorCode(o));
  send(SIZE_MAX);  // all of it: the GOAWAY is last
  // The session ends now (its streams are retried or fail as for any lost
  // connection); the socket lives on until the GOAWAY is written.
  lingerClose(releaseBev(), kGoawayLingerUs);
  closeWith(std::string("HTTP/2 connection error from upstream (") + std::string(offenceName(o)) + "): " + what,
            false);
}

int Http2ClientSession::onHeader(const nghttp2_frame* frame, std::string_view name, std::string_view value) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  if (Http2Attempt* a = attemptFor(frame->hd.stream_id)) a->onHeader(name, value);
  return 0;
}

int Http2ClientSession::onFrameRecv(const nghttp2_frame* frame) {
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
      if (Http2Attempt* a = attemptFor(frame->hd.stream_id)) a->onHeadersEnd(frame->hd.flags & NGHTTP2_FLAG_END_STREAM);
      break;
    case NGHTTP2_DATA:
      if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
        if (Http2Attempt* a = attemptFor(frame->hd.stream_id)) a->onRemoteEnd();
      }
      break;
    case NGHTTP2_SETTINGS:
      if (state_ == State::kHandshaking && !(frame->hd.flags & NGHTTP2_FLAG_ACK)) handshakeDone();
      break;
    case NGHTTP2_GOAWAY:
      // No new streams here; the ones beyond last_stream_id are closed by
      // nghttp2 with REFUSED_STREAM (retried as `refused-stream`).
      LOG_DEBUG("GOAWAY from %s (last stream %d, error %u)", dest_.toString().c_str(), frame->goaway.last_stream_id,
                frame->goaway.error_code);
      if (state_ == State::kReady || state_ == State::kHandshaking) state_ = State::kClosing;
      if (!waiting_.empty()) {
        // Never submitted here: refused, so retried elsewhere at no cost.
        std::vector<Http2Attempt*> waiting;
        waiting.swap(waiting_);
        for (Http2Attempt* a : waiting) a->onSessionLost("GOAWAY from " + dest_.toString(), false, false);
      }
      maybeIdle();
      break;
    default:
      break;
  }
  return 0;
}

int Http2ClientSession::onDataChunk(int32_t stream_id, const uint8_t* data, size_t len) {
  if (Http2Attempt* a = attemptFor(stream_id)) {
    a->onData(data, len);
  } else if (isOrphan(stream_id)) {
    // Left to finish: discarded, with window credit for the stream and the
    // connection (the stream is still open).
    nghttp2_session_consume(session_, stream_id, len);
  } else {
    // A stream we walked away from: its bytes still count against the
    // connection window.
    nghttp2_session_consume_connection(session_, len);
  }
  return 0;
}

int Http2ClientSession::onStreamClose(int32_t stream_id, uint32_t error_code) {
  Http2Attempt* a = attemptFor(stream_id);
  if (!a) {
    if (isOrphan(stream_id)) {
      dropOrphan(stream_id);
      maybeIdle();
    }
    return 0;
  }
  unlink(a);
  a->onStreamClose(error_code);
  maybeIdle();
  return 0;
}

ssize_t Http2ClientSession::readData(int32_t stream_id, uint8_t* buf, size_t len, uint32_t* flags) {
  Http2Attempt* a = attemptFor(stream_id);
  if (!a) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // resets the stream
  bool trailers = false;
  ssize_t n = a->readBody(buf, len, flags, &trailers);
  if (trailers) submitTrailers(stream_id, a->requestTrailers());
  return n;
}

// ============================================================== Http2Pool ==

Http2Pool::~Http2Pool() = default;

size_t Http2Pool::AddressHash::operator()(const net::Address& a) const {
  // What Address::operator== compares: family, port, address (and the
  // IPv6 scope), mixed FNV-1a style.
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  };
  if (a.family() == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&a.storage);
    mix(&in->sin_addr, sizeof in->sin_addr);
    mix(&in->sin_port, sizeof in->sin_port);
  } else if (a.family() == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a.storage);
    mix(&in6->sin6_addr, sizeof in6->sin6_addr);
    mix(&in6->sin6_port, sizeof in6->sin6_port);
    mix(&in6->sin6_scope_id, sizeof in6->sin6_scope_id);
  } else {
    mix(&a.storage, a.len);
  }
  return static_cast<size_t>(h);
}

Http2ClientSession* Http2Pool::sessionFor(const net::Address& dest, int64_t connect_timeout_us, bool* reused,
                                          bool* overflow, bool fresh) {
  if (reused) *reused = false;
  if (overflow) *overflow = false;
  auto& list = sessions_[dest];
  // The cap counts calls, not only connections: HTTP/2 multiplexes, so a
  // call beyond it would otherwise wait (holding its client, its memory)
  // on a session that cannot take it yet, as Envoy's max_requests circuit
  // breaker also refuses.
  size_t cap = worker_->upstreamLimits().max_upstream_connections;
  size_t load = 0;
  for (auto& s : list) load += s->load();
  if (cap != 0 && load >= cap) {
    if (overflow) *overflow = true;
    return nullptr;
  }
  // A fresh session per retry would pile up idle sessions until their idle
  // timeout; past kMaxFreshSessions to one destination a retry shares one.
  if (fresh && list.size() >= kMaxFreshSessions) fresh = false;
  for (auto& s : list) {
    if (!fresh && s->canTakeStream()) {
      worker_->counters().upstream_reused.add();
      if (reused) *reused = true;
      return s.get();
    }
  }
  if (cap != 0 && list.size() >= cap) {
    if (overflow) *overflow = true;
    return nullptr;
  }
  auto s = std::make_unique<Http2ClientSession>(this, worker_, dest, connect_timeout_us);
  if (!s->connect()) {
    worker_->deferDelete(std::move(s));
    return nullptr;
  }
  list.push_back(std::move(s));
  return list.back().get();
}

void Http2Pool::remove(Http2ClientSession* s) {
  for (auto mit = sessions_.begin(); mit != sessions_.end(); ++mit) {
    auto& list = mit->second;
    for (auto it = list.begin(); it != list.end(); ++it) {
      if (it->get() == s) {
        worker_->deferDelete(std::move(*it));
        list.erase(it);
        if (list.empty()) sessions_.erase(mit);  // destinations come and go (proxy requests)
        return;
      }
    }
  }
}

size_t Http2Pool::sessionCount() const {
  size_t n = 0;
  for (const auto& [k, list] : sessions_) n += list.size();
  return n;
}

}  // namespace mulligan::proxy
