#include "sidecar/downstream/http2_server.h"

#include <malloc.h>
#include <netinet/in.h>

#include <charconv>
#include <string>
#include <utility>
#include <vector>

#include "sidecar/core/logging.h"
#include "sidecar/downstream/connection.h"
#include "sidecar/codec/header_stock.h"
#include "sidecar/codec/http2/http2_memory.h"
#include "sidecar/stream/proxy_stream.h"
#include "sidecar/downstream/downstream_context.h"

namespace mulligan::proxy {
namespace {

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

}  // namespace

// ====================================================== Http2ServerStream ==

Http2ServerStream::Http2ServerStream(Http2ServerSession* session, int32_t id)
    : session_(session), id_(id) {
  streamOpenedOnThread();
  // The request's fields go into kept storage (the ProxyStream gives it back).
  head_.headers = HeaderStock::local().takeList();
}

Http2ServerStream::~Http2ServerStream() {
  if (proxy_) proxy_->abort("HTTP/2 stream closed");
  proxy_.reset();
  HeaderStock& stock = HeaderStock::local();
  stock.give(std::move(trailers_));
  stock.give(std::move(resp_head_));  // if its frame never went out: nghttp2 is done with it (see resp_head_)
  streamClosedOnThread();  // last: may trim the heap
}

DownstreamContext& Http2ServerStream::worker() { return session_->worker(); }
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
  const auto& cfg = worker().downstreamLimits();
  header_bytes_ += name.size() + value.size() + 32;
  if (header_bytes_ > cfg.max_header_bytes || ++header_count_ > cfg.max_headers) too_large_ = true;
  if (too_large_) return;
  if (name == ":method") {
    head_.method = std::string(value);
  } else if (name == ":scheme") {
    head_.scheme = std::string(value);
  } else if (name == ":authority") {
    // Path and authority into kept buffers (the ProxyStream gives them back):
    // a gRPC path ("/package.Service/Method") is past std::string's inline
    // 15 bytes, a malloc a call otherwise.
    head_.authority.clear();
    HeaderStock::append(head_.authority, value.data(), value.size());
  } else if (name == ":path") {
    head_.path.clear();
    HeaderStock::append(head_.path, value.data(), value.size());
  } else if (!name.empty() && name[0] == ':') {
    // :protocol (extended CONNECT) and others: not proxied.
  } else {
    if (name == "content-length") {
      head_.has_content_length = true;
      head_.content_length = validatedContentLength(value);
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
  head_.from_http2 = true;  // (nghttp2 checked its names and fields)
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

void Http2ServerStream::onHeadSent() {
  // Packed and handed out: nghttp2 no longer reads the fields. (A later
  // HEADERS frame, the trailers, finds the list given back already.)
  HeaderStock::local().give(std::move(resp_head_));
}

void Http2ServerStream::submitHead(int status, const HeaderList& headers, bool end_stream) {
  if (closed_ || head_submitted_) return;
  head_submitted_ = true;
  // A head of our own making (a local reply, trailers-only): copied into
  // resp_head_, names lower-cased here (nghttp2 lower-cases only what it
  // copies), connection-specific fields left out.
  resp_head_ = HeaderStock::local().takeList();
  HopByHopFilter hop(headers);
  static thread_local std::string scratch;
  for (const auto& [k, v] : headers) {
    // RFC 9113 §8.2.2: no connection-specific fields in HTTP/2.
    if (hop.drops(k)) continue;
    resp_head_.emplace_back(lowered(k, scratch), v);
  }
  submitRespHead(status, false, end_stream);
}

void Http2ServerStream::submitRespHead(int status, bool filter, bool end_stream) {
  // resp_head_ and status_text_ go to nghttp2 in place (no copy: about a
  // thousand instructions and a block a response less, issue 18), read
  // when it packs the HEADERS frame.
  char* end = std::to_chars(status_text_, status_text_ + sizeof status_text_, status).ptr;
  constexpr uint8_t kInPlace = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE;
  static thread_local std::vector<nghttp2_nv> nv;
  nv.clear();
  nghttp2_nv st = makeNv(":status", std::string_view(status_text_, static_cast<size_t>(end - status_text_)));
  st.flags = kInPlace;
  nv.push_back(st);
  auto add = [](std::string_view k, std::string_view v) {
    nghttp2_nv f = makeNv(k, v);
    f.flags = kInPlace;
    nv.push_back(f);
  };
  if (filter) {
    // RFC 9113 §8.2.2: no connection-specific fields in HTTP/2.
    HopByHopFilter hop(resp_head_);
    for (const auto& [k, v] : resp_head_) {
      if (!hop.drops(k)) add(k, v);
    }
  } else {
    // Filtered already, or checked by nghttp2 (MessageHead::from_http2): no
    // Connection field, no connection-specific one. What the sidecar drops
    // beyond RFC 9113 §8.2.2 (isHopByHop: Trailer, Expect, ...) it still drops.
    for (const auto& [k, v] : resp_head_) {
      if (!isHopByHop(k)) add(k, v);
    }
  }
  nghttp2_data_provider prd = Http2Session::dataProvider();
  int rv = nghttp2_submit_response(session_->session(), id_, nv.data(), nv.size(), end_stream ? nullptr : &prd);
  if (rv != 0) LOG_DEBUG("HTTP/2 stream %d: cannot submit response: %s", id_, nghttp2_strerror(rv));
  if (end_stream) out_ended_ = true;
  session_->scheduleFlush();
}

void Http2ServerStream::writeHead(const MessageHead& head, bool end_stream) {
  submitHead(head.status, head.headers, end_stream);
}

void Http2ServerStream::writeHeadTaking(MessageHead& head, bool end_stream) {
  if (closed_ || head_submitted_) return;
  head_submitted_ = true;
  // The upstream's fields themselves become resp_head_: no copy (issue 18:
  // about 70 instructions a field). Names lower-cased in place (an HTTP/1
  // upstream's may not be); connection-specific ones are left out of what
  // nghttp2 is given. A head that came over HTTP/2 has neither (nghttp2
  // checked it: MessageHead::from_http2): about 500 instructions a response
  // less for a head of seven fields.
  resp_head_ = std::move(head.headers);
  if (!head.from_http2) resp_head_.lowerNames();
  submitRespHead(head.status, !head.from_http2, end_stream);
}

void Http2ServerStream::writeBody(const char* data, size_t len) {
  if (closed_ || out_ended_ || len == 0) return;
  out_.add(data, len);
  if (congested()) was_congested_ = true;
  nghttp2_session_resume_data(session_->session(), id_);
}

void Http2ServerStream::writeTrailers(const HeaderList& trailers) {
  if (closed_ || out_ended_) return;
  // Kept storage (gRPC: every call has trailers), names lower-cased.
  if (trailers_.capacity() == 0) trailers_ = HeaderStock::local().takeList();
  static thread_local std::string scratch;
  for (const auto& [k, v] : trailers) {
    if (!isHopByHop(k)) trailers_.emplace_back(lowered(k, scratch), v);
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
    if (!r.overloaded.empty()) {
      h.emplace_back("x-mulligan-overloaded", std::string(r.overloaded));
      h.emplace_back("x-envoy-overloaded", "true");
    }
    submitHead(200, h, true);
    return;
  }
  h.emplace_back("content-type", r.content_type.empty() ? std::string("text/plain") : std::string(r.content_type));
  if (!r.timeoutHeader().empty()) h.emplace_back("x-mulligan-timeout", std::string(r.timeoutHeader()));
  if (!r.overloaded.empty()) {
    // x-envoy-overloaded too (DESIGN.md "Overload signals").
    h.emplace_back("x-mulligan-overloaded", std::string(r.overloaded));
    h.emplace_back("x-envoy-overloaded", "true");
  }
  h.emplace_back("content-length", std::to_string(r.body.size()));
  bool empty = r.body.empty() || head_.method == "HEAD";
  submitHead(r.status, h, empty);
  if (!empty) {
    out_.add(r.body.data(), r.body.size());
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
  ssize_t n = readStreamBody(out_, out_ended_, !trailers_.empty(), buf, len, flags, submit_trailers);
  if (n == NGHTTP2_ERR_DEFERRED) return n;
  if (was_congested_ && out_.length() < kLowWater) {
    was_congested_ = false;
    if (proxy_) proxy_->onDownstreamDrained();
  }
  return n;
}

// ===================================================== Http2ServerSession ==

Http2ServerSession::Http2ServerSession(Connection* conn, bufferevent* bev)
    : Http2Session(conn->worker().base(), Role::kServer),
      conn_(conn),
      linger_(conn->worker().base(), [this] { closeNow(); }) {
  bev_ = bev;
  ++t_sessions;
}

Http2ServerSession::~Http2ServerSession() {
  // Aborts unfinished calls. (No nghttp2 callback runs from here on: the
  // user data left on its streams is never read.)
  while (Http2ServerStream* s = streams_.pop_front()) delete s;
  // Freed here rather than by ~Http2Session: before the trim below.
  if (session_) nghttp2_session_del(std::exchange(session_, nullptr));
  closeSocket();
  sessionClosedOnThread();  // last: may trim the heap
}

DownstreamContext& Http2ServerSession::worker() { return conn_->worker(); }

void Http2ServerSession::start() {
  // TCP_NODELAY came from the listener (Worker::listen).
  // Request bodies get credit back only as the upstream takes them
  // (Http2ServerStream::onData): the windows bound what the app can make
  // the sidecar hold.
  startSession(static_cast<uint32_t>(worker().downstreamLimits().max_header_bytes), kMaxConcurrentStreams);
  // The idle timeout (DESIGN.md: keep-alive connections, both sides)
  // counts silence from the app, from the preface on, however quickly the
  // preface came (onConnectionEvent: only with nothing in flight).
  setReadTimeoutUs(worker().downstreamIdleTimeoutUs());
  startIo();
  processInput();  // the sniffed preface, waiting in the bufferevent's input
}

void Http2ServerSession::drain() {
  if (closed_ || draining_) return;
  draining_ = true;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_),
                        NGHTTP2_NO_ERROR, nullptr, 0);
  scheduleFlush();
}

void Http2ServerSession::processInput() {
  if (going_away_) {
    // Read and dropped, so that the close is a FIN after the GOAWAY, not a
    // reset that could discard it (unread input makes close() send RST).
    discardInput();
    return;
  }
  if (int rv = receive(); rv != 0) {
    LOG_DEBUG("HTTP/2 error from %s: %s", conn_->peer().toString().c_str(), nghttp2_strerror(rv));
    goAway(offenceOf(rv), rv);
    return;
  }
  flush();
}

void Http2ServerSession::goAway(Http2Offence o, int) {
  if (closed_) return;
  noteGoAway(o, offenceErrorCode(o));
  // nghttp2 may have queued its own GOAWAY for an error it found (with the
  // code it chose): then this adds nothing.
  nghttp2_session_terminate_session(session_, offenceErrorCode(o));
  // The calls on this connection are over: their upstream streams are
  // cancelled now, not when the socket finally closes.
  for (Http2ServerStream* s = streams_.front(); s; s = streams_.next(s)) s->onClosed(NGHTTP2_CANCEL);
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

void Http2ServerSession::flush() {
  if (closed_ || !session_) return;
  if (sendAndWrite() != 0) {
    closeNow();
    return;
  }
  if (!outputEmpty()) return;
  if (finished() || (draining_ && streams_.empty())) closeNow();
}

void Http2ServerSession::onConnectionEvent(short what) {
  if ((what & BEV_EVENT_TIMEOUT) && !streams_.empty()) {
    // The idle timeout counts silence with nothing in flight only: again
    // from now (the policy's, now).
    setReadTimeoutUs(worker().downstreamIdleTimeoutUs());
    return;
  }
  closeNow();
}

void Http2ServerSession::closeNow() {
  if (closed_) return;
  closed_ = true;
  stopIo();
  linger_.cancel();
  for (Http2ServerStream* s = streams_.front(); s; s = streams_.next(s)) s->onClosed(NGHTTP2_CANCEL);
  conn_->close();
}

Http2ServerStream* Http2ServerSession::streamFor(int32_t id) {
  // Set in onBeginHeaders, cleared in onStreamClose: null for a stream we
  // refused or never had, and for any id nghttp2 has closed.
  return session_ ? static_cast<Http2ServerStream*>(nghttp2_session_get_stream_user_data(session_, id)) : nullptr;
}

int Http2ServerSession::onBeginFrame(const nghttp2_frame_hd& hd) {
  // (The flood guard passed it: Http2Session.)
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
  if (frame->hd.type == NGHTTP2_HEADERS) {
    if (Http2ServerStream* s = streamFor(frame->hd.stream_id)) s->onHeadSent();
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
  // nghttp2 opened the stream before this callback (RFC 9113 §5.1: idle ->
  // open), so its user data can be set now.
  auto* s = new Http2ServerStream(this, id);
  streams_.push_back(s);
  if (nghttp2_session_set_stream_user_data(session_, id, s) != 0) {
    streams_.remove(s);
    delete s;
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
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
  Http2ServerStream* s = streamFor(stream_id);
  if (!s) return 0;
  s->onClosed(error_code);
  nghttp2_session_set_stream_user_data(session_, stream_id, nullptr);
  streams_.remove(s);
  // Inside nghttp2's callback: free the stream (and its call) from the loop.
  worker().deferDelete(std::unique_ptr<Http2ServerStream>(s));
  if (draining_ && streams_.empty()) scheduleFlush();
  return 0;
}

ssize_t Http2ServerSession::readData(int32_t stream_id, uint8_t* buf, size_t len, uint32_t* flags) {
  Http2ServerStream* s = streamFor(stream_id);
  if (!s) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  bool trailers = false;
  ssize_t n = s->readResponse(buf, len, flags, &trailers);
  if (trailers) submitTrailers(stream_id, s->responseTrailers());
  return n;
}

}  // namespace mulligan::proxy
