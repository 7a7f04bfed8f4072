#include "sidecar/downstream/http2_server.h"

#include <malloc.h>
#include <netinet/in.h>

#include <string>
#include <vector>

#include "sidecar/core/logging.h"
#include "sidecar/downstream/connection.h"
#include "sidecar/codec/header_stock.h"
#include "sidecar/stream/proxy_stream.h"
#include "sidecar/worker/worker.h"

namespace mulligan::proxy {
namespace {

constexpr size_t kOutputHighWater = 64 * 1024;  // stop producing frames above this
// Receive windows for request bodies. Credit returns only as the upstream
// takes the bytes (Http2ServerStream::onData), so these bound what one
// stream and one connection can make the sidecar hold.
constexpr uint32_t kStreamWindow = 256 * 1024;
constexpr int32_t kConnectionWindow = 4 * 1024 * 1024;

// Request streams and sessions open on this thread (see
// kMaxStreamsPerWorker).
thread_local size_t t_open_streams = 0;
thread_local size_t t_sessions = 0;
// A storm (half the worker's stream limit open at once) happened and its
// memory has not been given back yet: once its streams are gone, and once
// its connections are gone.
thread_local bool t_trim_streams = false;
thread_local bool t_trim_sessions = false;

// After a storm the worker is quiet again: give the freed memory back.
// glibc keeps it otherwise: what a storm leaves in use at the top of the
// heap (a buffer, a pooled block) pins everything below it, and RSS stays
// at the storm's peak for good (issue 15 measured 518 MiB that never came
// back). malloc_trim returns every free page, not only the top; it costs a
// walk of the heap, so it runs twice per storm, never per stream.
constexpr size_t kStormStreams = Http2ServerSession::kMaxStreamsPerWorker / 2;
constexpr size_t kQuietStreams = Http2ServerSession::kMaxStreamsPerWorker / 64;
constexpr size_t kQuietSessions = 16;

void trimHeap() {
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}

void streamOpenedOnThread() {
  if (++t_open_streams >= kStormStreams) t_trim_streams = t_trim_sessions = true;
}

void streamClosedOnThread() {
  --t_open_streams;
  if (t_trim_streams && t_open_streams <= kQuietStreams) {
    t_trim_streams = false;
    trimHeap();
  }
}

void sessionClosedOnThread() {
  --t_sessions;
  if (t_trim_sessions && t_open_streams <= kQuietStreams && t_sessions <= kQuietSessions) {
    t_trim_sessions = false;
    trimHeap();
  }
}

Http2ServerSession* sessionOf(void* ud) { return static_cast<Http2ServerSession*>(ud); }

// --- nghttp2 trampolines ---
int onBeginFrameCb(nghttp2_session*, const nghttp2_frame_hd* hd, void* ud) { return sessionOf(ud)->onBeginFrame(*hd); }
int onFrameSendCb(nghttp2_session*, const nghttp2_frame* frame, void* ud) { return sessionOf(ud)->onFrameSend(frame); }
int onBeginHeadersCb(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
  return sessionOf(ud)->onBeginHeaders(frame);
}
int onHeaderCb(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
               const uint8_t* value, size_t valuelen, uint8_t, void* ud) {
  return sessionOf(ud)->onHeader(frame, {reinterpret_cast<const char*>(name), namelen},
                                 {reinterpret_cast<const char*>(value), valuelen});
}
int onFrameRecvCb(nghttp2_session*, const nghttp2_frame* frame, void* ud) { return sessionOf(ud)->onFrameRecv(frame); }
int onDataChunkCb(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data, size_t len, void* ud) {
  return sessionOf(ud)->onDataChunk(stream_id, data, len);
}
int onStreamCloseCb(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* ud) {
  return sessionOf(ud)->onStreamClose(stream_id, error_code);
}
ssize_t readResponseCb(nghttp2_session*, int32_t stream_id, uint8_t* buf, size_t len, uint32_t* flags,
                       nghttp2_data_source*, void* ud) {
  return sessionOf(ud)->readResponse(stream_id, buf, len, flags);
}

nghttp2_session_callbacks* serverCallbacks() {
  static nghttp2_session_callbacks* cbs = [] {
    nghttp2_session_callbacks* c;
    nghttp2_session_callbacks_new(&c);
    nghttp2_session_callbacks_set_on_begin_frame_callback(c, onBeginFrameCb);
    nghttp2_session_callbacks_set_on_frame_send_callback(c, onFrameSendCb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(c, onBeginHeadersCb);
    nghttp2_session_callbacks_set_on_header_callback(c, onHeaderCb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(c, onFrameRecvCb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c, onDataChunkCb);
    nghttp2_session_callbacks_set_on_stream_close_callback(c, onStreamCloseCb);
    return c;
  }();
  return cbs;
}

nghttp2_option* serverOptions() {
  static nghttp2_option* opt = [] {
    nghttp2_option* o;
    nghttp2_option_new(&o);
    nghttp2_option_set_no_auto_window_update(o, 1);
    applyNghttp2Limits(o);
    return o;
  }();
  return opt;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  return out;
}

// Name/value pairs for nghttp2 (which copies them on submit).
struct NvList {
  std::vector<std::string> storage;
  std::vector<nghttp2_nv> nv;
  void add(std::string name, std::string value) {
    storage.push_back(std::move(name));
    storage.push_back(std::move(value));
  }
  const nghttp2_nv* build() {
    nv.clear();
    for (size_t i = 0; i + 1 < storage.size(); i += 2) {
      nv.push_back(nghttp2_nv{reinterpret_cast<uint8_t*>(storage[i].data()),
                              reinterpret_cast<uint8_t*>(storage[i + 1].data()), storage[i].size(),
                              storage[i + 1].size(), NGHTTP2_NV_FLAG_NONE});
    }
    return nv.data();
  }
};

}  // namespace

// ====================================================== Http2ServerStream ==

Http2ServerStream::Http2ServerStream(Http2ServerSession* session, int32_t id)
    : session_(session), id_(id), out_(evbuffer_new()) {
  streamOpenedOnThread();
  // The request's fields go into kept storage (the ProxyStream gives it back).
  head_.headers = HeaderStock::local().takeList();
}

Http2ServerStream::~Http2ServerStream() {
  if (proxy_) proxy_->abort("HTTP/2 stream closed");
  proxy_.reset();
  evbuffer_free(out_);
  streamClosedOnThread();  // last: may trim the heap
}

Worker& Http2ServerStream::worker() { return session_->worker(); }
StreamContext& Http2ServerStream::streamContext() { return worker().streamContext(); }

const std::optional<net::Address>& Http2ServerStream::originalDst() const {
  return session_->connection().originalDst();
}

void Http2ServerStream::onHeader(std::string_view name, std::string_view value) {
  if (in_trailers_) {
    if (!name.empty() && name[0] != ':') req_trailers_.emplace_back(name, value);
    return;
  }
  // RFC 7541 §4.1 size accounting (name + value + 32), against our
  // SETTINGS_MAX_HEADER_LIST_SIZE.
  const auto& cfg = worker().shared().config;
  header_bytes_ += name.size() + value.size() + 32;
  if (header_bytes_ > cfg.max_header_bytes || ++header_count_ > cfg.max_headers) too_large_ = true;
  if (too_large_) return;
  if (name == ":method") {
    head_.method = std::string(value);
  } else if (name == ":scheme") {
    head_.scheme = std::string(value);
  } else if (name == ":authority") {
    head_.authority = std::string(value);
  } else if (name == ":path") {
    head_.path = std::string(value);
  } else if (!name.empty() && name[0] == ':') {
    // :protocol (extended CONNECT) and others: not proxied.
  } else {
    if (name == "content-length") {
      uint64_t n = 0;
      for (char c : value) n = n * 10 + static_cast<uint64_t>(c - '0');  // nghttp2 validated it
      head_.has_content_length = true;
      head_.content_length = n;
    }
    head_.headers.emplace_back(name, value);
  }
}

void Http2ServerStream::onHeadersEnd(bool end_stream) {
  if (proxy_ || in_trailers_ || closed_) {
    // Trailers (a second HEADERS, which must end the stream).
    if (proxy_) proxy_->onRequestTrailers(req_trailers_);
    if (end_stream) onRemoteEnd();
    return;
  }
  in_trailers_ = true;  // any later HEADERS frame carries trailers
  request_ended_ = end_stream;
  if (too_large_) {
    worker().counters().bad_requests.add();
    HeaderList h{{"content-type", "text/plain"}, {"content-length", "0"}};
    submitHead(431, h, true);
    return;
  }
  if (head_.method == "CONNECT") {
    // Extended CONNECT / tunnels over HTTP/2 are not proxied.
    HeaderList h{{"content-length", "0"}};
    submitHead(501, h, true);
    return;
  }
  if (head_.authority.empty()) {
    if (auto host = findHeader(head_.headers, "host")) head_.authority = *host;
  }
  head_.version_minor = 1;
  head_.body_follows = !end_stream;
  proxy_ = std::make_unique<ProxyStream>(this, std::move(head_), event::monotonicNowUs());
  proxy_->start();
}

void Http2ServerStream::onData(const uint8_t* data, size_t len) {
  if (proxy_ && !proxy_->finished()) {
    proxy_->onRequestBody(reinterpret_cast<const char*>(data), len);
    if (proxy_ && proxy_->requestBacklog() >= kRequestBacklogLimit) {
      held_ += len;  // no credit until the upstream takes what it has
      return;
    }
  }
  nghttp2_session_consume(session_->session(), id_, len);
}

void Http2ServerStream::requestBodyConsumed() {
  if (held_ == 0 || closed_) return;
  if (proxy_ && !proxy_->finished() && proxy_->requestBacklog() >= kRequestBacklogLimit) return;
  nghttp2_session_consume(session_->session(), id_, held_);
  held_ = 0;
  session_->scheduleFlush();
}

void Http2ServerStream::onRemoteEnd() {
  if (request_ended_) return;
  request_ended_ = true;
  if (proxy_) proxy_->onRequestComplete();
}

void Http2ServerStream::onClosed(uint32_t error_code) {
  closed_ = true;
  if (proxy_ && !proxy_->finished()) {
    proxy_->abort(error_code == NGHTTP2_NO_ERROR ? "HTTP/2 stream closed" : "HTTP/2 stream reset by the client");
  }
  if (held_ > 0) nghttp2_session_consume_connection(session_->session(), held_);
  held_ = 0;
}

void Http2ServerStream::submitHead(int status, const HeaderList& headers, bool end_stream) {
  if (closed_ || head_submitted_) return;
  head_submitted_ = true;
  NvList nv;
  nv.add(":status", std::to_string(status));
  HopByHopFilter hop(headers);
  for (const auto& [k, v] : headers) {
    // RFC 9113 §8.2.2: no connection-specific fields in HTTP/2.
    if (hop.drops(k)) continue;
    nv.add(lower(k), std::string(v));
  }
  const nghttp2_nv* p = nv.build();
  nghttp2_data_provider prd;
  prd.source.ptr = nullptr;
  prd.read_callback = readResponseCb;
  int rv = nghttp2_submit_response(session_->session(), id_, p, nv.nv.size(), end_stream ? nullptr : &prd);
  if (rv != 0) LOG_DEBUG("HTTP/2 stream %d: cannot submit response: %s", id_, nghttp2_strerror(rv));
  if (end_stream) out_ended_ = true;
  session_->scheduleFlush();
}

void Http2ServerStream::writeHead(const MessageHead& head, bool end_stream) {
  submitHead(head.status, head.headers, end_stream);
}

void Http2ServerStream::writeBody(const char* data, size_t len) {
  if (closed_ || out_ended_ || len == 0) return;
  evbuffer_add(out_, data, len);
  if (congested()) was_congested_ = true;
  nghttp2_session_resume_data(session_->session(), id_);
}

void Http2ServerStream::writeTrailers(const HeaderList& trailers) {
  if (closed_ || out_ended_) return;
  for (const auto& [k, v] : trailers) {
    if (!isHopByHop(k)) trailers_.emplace_back(lower(k), v);
  }
  if (!head_submitted_) {
    // Nothing was sent yet: trailers alone make a trailers-only response.
    HeaderList h{{"content-type", "application/grpc"}};
    for (const auto& t : trailers_) h.push_back(t);
    trailers_.clear();
    submitHead(200, h, true);
  }
}

void Http2ServerStream::responseComplete() {
  if (closed_ || out_ended_) return;
  out_ended_ = true;
  nghttp2_session_resume_data(session_->session(), id_);
  session_->scheduleFlush();
}

void Http2ServerStream::responseAborted() {
  if (closed_) return;
  nghttp2_submit_rst_stream(session_->session(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_INTERNAL_ERROR);
  session_->scheduleFlush();
}

void Http2ServerStream::localReply(const LocalReply& r) {
  HeaderList h;
  if (r.grpc) {
    // gRPC "PROTOCOL-HTTP2.md": Trailers-Only, HTTP status 200.
    h.emplace_back("content-type", "application/grpc");
    h.emplace_back("grpc-status", std::to_string(r.grpc_status));
    if (!r.grpc_message.empty()) h.emplace_back("grpc-message", percentEncodeGrpcMessage(r.grpc_message));
    if (!r.timeoutHeader().empty()) h.emplace_back("x-mulligan-timeout", std::string(r.timeoutHeader()));
    if (!r.overloaded.empty()) h.emplace_back("x-mulligan-overloaded", std::string(r.overloaded));
    submitHead(200, h, true);
    return;
  }
  h.emplace_back("content-type", "text/plain");
  if (!r.timeoutHeader().empty()) h.emplace_back("x-mulligan-timeout", std::string(r.timeoutHeader()));
  if (!r.overloaded.empty()) h.emplace_back("x-mulligan-overloaded", std::string(r.overloaded));
  h.emplace_back("content-length", std::to_string(r.body.size()));
  bool empty = r.body.empty() || head_.method == "HEAD";
  submitHead(r.status, h, empty);
  if (!empty) {
    evbuffer_add(out_, r.body.data(), r.body.size());
    out_ended_ = true;
    nghttp2_session_resume_data(session_->session(), id_);
  }
}

void Http2ServerStream::upgradeToTunnel(bufferevent* upstream) {
  if (upstream) bufferevent_free(upstream);
  responseAborted();
}

void Http2ServerStream::flush() { session_->scheduleFlush(); }

ssize_t Http2ServerStream::readResponse(uint8_t* buf, size_t len, uint32_t* flags, bool* submit_trailers) {
  int n = evbuffer_remove(out_, buf, len);
  if (n < 0) n = 0;
  if (evbuffer_get_length(out_) == 0 && out_ended_) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!trailers_.empty()) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      *submit_trailers = true;
    }
  } else if (n == 0) {
    return NGHTTP2_ERR_DEFERRED;
  }
  if (was_congested_ && evbuffer_get_length(out_) < kLowWater) {
    was_congested_ = false;
    if (proxy_) proxy_->onDownstreamDrained();
  }
  return n;
}

// ===================================================== Http2ServerSession ==

Http2ServerSession::Http2ServerSession(Connection* conn, bufferevent* bev)
    : conn_(conn), bev_(bev), linger_(conn->worker().base(), [this] { closeNow(); }) {
  ++t_sessions;
  flush_ev_.reset(event_new(conn->worker().base(), -1, 0, &Http2ServerSession::onFlushEvent, this));
}

Http2ServerSession::~Http2ServerSession() {
  streams_.clear();  // aborts unfinished calls
  if (session_) nghttp2_session_del(session_);
  if (bev_) bufferevent_free(bev_);
  sessionClosedOnThread();  // last: may trim the heap
}

Worker& Http2ServerSession::worker() { return conn_->worker(); }

void Http2ServerSession::start() {
  // TCP_NODELAY came from the listener (Worker::listen).
  nghttp2_session_server_new2(&session_, serverCallbacks(), this, serverOptions());
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, kMaxConcurrentStreams},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<uint32_t>(worker().shared().config.max_header_bytes)},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kStreamWindow},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  // Many streams upload at once: the connection window is several streams'.
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
  bufferevent_setcb(bev_, &Http2ServerSession::onRead, &Http2ServerSession::onWrite, &Http2ServerSession::onEvent,
                    this);
  bufferevent_enable(bev_, EV_READ | EV_WRITE);
  processInput();
}

void Http2ServerSession::drain() {
  if (closed_ || draining_) return;
  draining_ = true;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_),
                        NGHTTP2_NO_ERROR, nullptr, 0);
  scheduleFlush();
}

void Http2ServerSession::onRead(bufferevent*, void* arg) {
  event::ClockScope now;  // the streams these frames start share one clock read
  static_cast<Http2ServerSession*>(arg)->processInput();
}

void Http2ServerSession::processInput() {
  evbuffer* in = bufferevent_get_input(bev_);
  if (going_away_) {
    // Read and dropped, so that the close is a FIN after the GOAWAY, not a
    // reset that could discard it (unread input makes close() send RST).
    evbuffer_drain(in, evbuffer_get_length(in));
    return;
  }
  while (!closed_ && evbuffer_get_length(in) > 0) {
    evbuffer_iovec vec;
    if (evbuffer_peek(in, -1, nullptr, &vec, 1) < 1) break;
    ssize_t n = nghttp2_session_mem_recv(session_, static_cast<const uint8_t*>(vec.iov_base), vec.iov_len);
    if (n < 0) {
      LOG_DEBUG("HTTP/2 error from %s: %s", conn_->peer().toString().c_str(), nghttp2_strerror(static_cast<int>(n)));
      goAway(offence_ ? *offence_ : offenceOfNghttp2Error(static_cast<int>(n)), static_cast<int>(n));
      return;
    }
    evbuffer_drain(in, static_cast<size_t>(n));
  }
  flush();
}

int Http2ServerSession::offend(Http2Offence o) {
  if (!offence_) offence_ = o;
  return NGHTTP2_ERR_CALLBACK_FAILURE;
}

void Http2ServerSession::goAway(Http2Offence o, int) {
  if (closed_) return;
  noteGoAway(o, offenceErrorCode(o));
  // nghttp2 may have queued its own GOAWAY for an error it found (with the
  // code it chose): then this adds nothing.
  nghttp2_session_terminate_session(session_, offenceErrorCode(o));
  // The calls on this connection are over: their upstream streams are
  // cancelled now, not when the socket finally closes.
  for (auto& [id, st] : streams_) st->onClosed(NGHTTP2_CANCEL);
  processInput();  // drops what is left
  flush();         // closes once the GOAWAY is out
}

void Http2ServerSession::noteGoAway(Http2Offence o, uint32_t code) {
  if (going_away_) return;
  going_away_ = true;
  if (o == Http2Offence::kProtocol) worker().counters().bad_requests.add();
  worker().counters().http2_goaways[static_cast<size_t>(Http2Side::kDownstream)][static_cast<size_t>(o)].add();
  noteOffence(Http2Side::kDownstream, o, code, conn_->peer().toString().c_str(), event::monotonicNowUs());
  linger_.armUs(kGoawayLingerUs);
}

void Http2ServerSession::scheduleFlush() {
  if (closed_ || !flush_ev_) return;
  if (!event_pending(flush_ev_.get(), EV_TIMEOUT, nullptr)) event_active(flush_ev_.get(), EV_TIMEOUT, 0);
}

void Http2ServerSession::onFlushEvent(evutil_socket_t, short, void* arg) {
  static_cast<Http2ServerSession*>(arg)->flush();
}

void Http2ServerSession::flush() {
  if (closed_ || !session_) return;
  evbuffer* out = bufferevent_get_output(bev_);
  while (evbuffer_get_length(out) < kOutputHighWater) {
    const uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) {
      closeNow();
      return;
    }
    if (n == 0) break;
    evbuffer_add(out, data, static_cast<size_t>(n));
  }
  if (evbuffer_get_length(out) != 0) return;
  if ((!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) ||
      (draining_ && streams_.empty())) {
    closeNow();
  }
}

void Http2ServerSession::onWrite(bufferevent*, void* arg) { static_cast<Http2ServerSession*>(arg)->flush(); }

void Http2ServerSession::onEvent(bufferevent*, short what, void* arg) {
  auto* s = static_cast<Http2ServerSession*>(arg);
  if ((what & BEV_EVENT_TIMEOUT) && !s->streams_.empty()) {
    // The idle timeout counts silence with nothing in flight only.
    bufferevent_enable(s->bev_, EV_READ);
    return;
  }
  s->closeNow();
}

void Http2ServerSession::closeNow() {
  if (closed_) return;
  closed_ = true;
  linger_.cancel();
  for (auto& [id, st] : streams_) st->onClosed(NGHTTP2_CANCEL);
  bufferevent_disable(bev_, EV_READ | EV_WRITE);
  conn_->close();
}

Http2ServerStream* Http2ServerSession::streamFor(int32_t id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

int Http2ServerSession::onBeginFrame(const nghttp2_frame_hd& hd) {
  if (guard_.onFrameHeader(hd, event::monotonicNowUs())) return offend(guard_.offence());
  if (hd.type == NGHTTP2_HEADERS && (hd.stream_id & 1)) {
    // RFC 9113 §5.1.1: a new stream's id must exceed every id the client
    // used before ("MUST ... PROTOCOL_ERROR"). A HEADERS frame on a lower
    // id is legal only as trailers on a stream still open, or on one we
    // reset and the client had not heard of yet (§5.4.2). nghttp2 forgets
    // closed streams and ignores such a frame; we answer it.
    if (hd.stream_id > highest_stream_id_) {
      highest_stream_id_ = hd.stream_id;
    } else if (!nghttp2_session_find_stream(session_, hd.stream_id) && !wasReset(hd.stream_id)) {
      return offend(Http2Offence::kStreamId);
    }
  }
  return 0;
}

int Http2ServerSession::onFrameSend(const nghttp2_frame* frame) {
  if (frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) {
    guard_.onDataSent();
  } else if (frame->hd.type == NGHTTP2_RST_STREAM) {
    reset_ids_[reset_next_] = frame->hd.stream_id;
    reset_next_ = (reset_next_ + 1) % reset_ids_.size();
  } else if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR) {
    // A connection error nghttp2 answered by itself (a bad header block,
    // a frame on a closed stream, ...): counted and closed as ours are.
    noteGoAway(Http2Offence::kProtocol, frame->goaway.error_code);
  }
  return 0;
}

bool Http2ServerSession::wasReset(int32_t id) const {
  for (int32_t r : reset_ids_) {
    if (r == id) return true;
  }
  return false;
}

size_t Http2ServerSession::openStreams() { return t_open_streams; }

int Http2ServerSession::onBeginHeaders(const nghttp2_frame* frame) {
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  int32_t id = frame->hd.stream_id;
  if (t_open_streams >= kMaxStreamsPerWorker) {
    // The header block is still decoded (HPACK state), into nothing.
    worker().counters().http2_streams_refused.add();
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
    return 0;
  }
  streams_[id] = std::make_unique<Http2ServerStream>(this, id);
  return 0;
}

int Http2ServerSession::onHeader(const nghttp2_frame* frame, std::string_view name, std::string_view value) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  if (Http2ServerStream* s = streamFor(frame->hd.stream_id)) s->onHeader(name, value);
  return 0;
}

int Http2ServerSession::onFrameRecv(const nghttp2_frame* frame) {
  Http2ServerStream* s = streamFor(frame->hd.stream_id);
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
      if (s) s->onHeadersEnd(frame->hd.flags & NGHTTP2_FLAG_END_STREAM);
      break;
    case NGHTTP2_DATA:
      if (s && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) s->onRemoteEnd();
      break;
    default:
      break;
  }
  return 0;
}

int Http2ServerSession::onDataChunk(int32_t stream_id, const uint8_t* data, size_t len) {
  if (Http2ServerStream* s = streamFor(stream_id)) {
    s->onData(data, len);
  } else {
    nghttp2_session_consume_connection(session_, len);
  }
  return 0;
}

int Http2ServerSession::onStreamClose(int32_t stream_id, uint32_t error_code) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return 0;
  it->second->onClosed(error_code);
  // Inside nghttp2's callback: free the stream (and its call) from the loop.
  worker().deferDelete(std::move(it->second));
  streams_.erase(it);
  if (draining_ && streams_.empty()) scheduleFlush();
  return 0;
}

ssize_t Http2ServerSession::readResponse(int32_t stream_id, uint8_t* buf, size_t len, uint32_t* flags) {
  Http2ServerStream* s = streamFor(stream_id);
  if (!s) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  bool trailers = false;
  ssize_t n = s->readResponse(buf, len, flags, &trailers);
  if (trailers) {
    NvList nv;
    for (const auto& [k, v] : s->responseTrailers()) nv.add(std::string(k), std::string(v));
    const nghttp2_nv* p = nv.build();
    nghttp2_submit_trailer(session_, stream_id, p, nv.nv.size());
  }
  return n;
}

}  // namespace mulligan::proxy
