// Http1Session's request side: reading the app (epoll or io_uring), parsing
// and handing each request to a new ProxyStream, back-pressure on input,
// the idle and request-header timeouts, and how the connection ends
// (lingering close, tunnels). The response side is http1_session_write.cc.
#include "sidecar/downstream/http1_session.h"

#include <event2/buffer.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "sidecar/core/logging.h"
#include "sidecar/event/event_loop.h"
#include "sidecar/net/socket_read.h"
#include "sidecar/downstream/connection.h"
#include "sidecar/codec/header_stock.h"
#include "sidecar/stream/proxy_stream.h"
#include "sidecar/downstream/downstream_context.h"

namespace mulligan::proxy {

Http1Session::Http1Session(Connection* conn, bufferevent* bev)
    : conn_(conn),
      bev_(bev),
      fd_(bufferevent_getfd(bev)),
      staged_(evbuffer_new()),
      reader_(Http1Reader::Mode::kRequest, this,
              Http1Reader::Limits{conn->worker().downstreamLimits().max_header_bytes,
                                  conn->worker().downstreamLimits().max_headers}),
      abort_watch_(conn->worker().base(), [this] { onAbortWatch(); }),
      idle_timer_(conn->worker().base(), [this] { onIdleTimer(); }),
      head_timer_(conn->worker().base(), [this] { onHeadTimeout(); }) {
  event_assign(&read_ev_, conn->worker().base(), fd_, EV_READ | EV_PERSIST,
               &Http1Session::onReadable, this);
  ring_ = conn->worker().ioRing();
  if (ring_) slot_ = ring_->attach(this, fd_);
  sends_ = conn->worker().sendBatch();
}

Http1Session::~Http1Session() {
  if (sends_) sends_->forget(this);
  event_del(&read_ev_);  // added (epoll, lingering) or activated (kick: see updateInputHold)
  // Before the socket closes (bufferevent_free): detaching cancels the receive.
  if (ring_) ring_->detach(slot_);
  if (stream_) stream_->abort("connection closed");
  stream_.reset();
  if (bev_) bufferevent_free(bev_);
  evbuffer_free(staged_);
}

DownstreamContext& Http1Session::worker() { return conn_->worker(); }
StreamContext& Http1Session::streamContext() { return worker().streamContext(); }

namespace {

// EV_WRITE goes on for the bufferevent only when bytes are queued in its
// output, i.e. when flush() could not write everything at once: enabling it
// up front would register the socket for EPOLLOUT (an epoll_ctl), wake the
// loop with nothing to write, and unregister it (another). Runs on every
// change to the output until it has done its job; `arg` is the bufferevent,
// which a tunnel may inherit (where EV_WRITE is already on: it just leaves).
void enableWriteWhenQueued(evbuffer* out, const evbuffer_cb_info* info, void* arg) {
  auto* bev = static_cast<bufferevent*>(arg);
  if (info->n_added == 0) return;
  if (!(bufferevent_get_enabled(bev) & EV_WRITE)) bufferevent_enable(bev, EV_WRITE);
  evbuffer_remove_cb(out, &enableWriteWhenQueued, arg);  // safe inside the callback (libevent saves `next`)
}

}  // namespace

void Http1Session::start(const char* fresh, size_t fresh_len) {
  event::ClockScope now;  // one clock read for whatever this request starts
  // TCP_NODELAY came from the listener (Worker::listen).
  bufferevent_setcb(bev_, nullptr, &Http1Session::onWrite, &Http1Session::onEvent, this);
  bufferevent_setwatermark(bev_, EV_WRITE, kLowWater, 0);
  evbuffer_add_cb(bufferevent_get_output(bev_), &enableWriteWhenQueued, bev_);
  net::takeInput(bev_);  // unparsed bytes stay in the input
  if (bufferevent_get_enabled(bev_) & EV_READ) {
    // Sniffing registered the socket: ours goes on before the sniffing read
    // side goes off, so that without a ring its epoll interest never drops
    // to zero and libevent makes no epoll_ctl for the hand-over (with one,
    // the receive is the ring's and epoll lets the socket go).
    startReadingIdle();
    bufferevent_disable(bev_, EV_READ);
  }
  // The idle timeout counts silence from the app (as the sniffing did).
  processInput(fresh, fresh_len);
  if (closed_ || reading_) return;  // closed, lingering, or reading already
  if (inputHeld()) {
    input_held_ = true;  // updateInputHold() starts reading once the upstream caught up
    return;
  }
  if (waiting_for_response_ && !keep_alive_) {
    abort_watch_.armUs(kAbortWatchDelayUs);  // see abort_watch_
    return;
  }
  // A call in flight, the rest of a request, the next one: in every state
  // the session reads the app (its EOF aborts a call in flight).
  startReadingIdle();
}

void Http1Session::onAbortWatch() {
  // Closed (or a tunnel now), lingering, or holding input back: nothing to
  // start. Otherwise the call (or the flush of its answer) still runs.
  if (closed_ || reading_ || input_held_ || !bev_) return;
  startReadingIdle();
}

void Http1Session::startReadingIdle() {
  if (lingering_) return;
  if (!reading_) {
    reading_ = true;
    if (ring_) {
      ring_->start(slot_);
    } else {
      event_add(&read_ev_, nullptr);
    }
  }
  idle_us_ = worker().downstreamIdleTimeoutUs();  // the policy's, now
  if (idle_us_ > 0) {
    idle_timer_.setDue(event::monotonicNowUs() + idle_us_);
  } else {
    idle_timer_.cancel();
  }
}

void Http1Session::onIdleTimer() {
  // Not reading (closed, lingering, holding input back): startReadingIdle
  // sets it again when reading starts.
  if (closed_ || lingering_ || !reading_) return;
  // While a request is in flight the silence is ours to wait out: count
  // again. Between requests it closes the connection.
  if (stream_ && !closing_) {
    idle_timer_.setDue(event::monotonicNowUs() + idle_us_);
    return;
  }
  closeNow();
}

void Http1Session::stopReading() {
  if (!reading_) return;
  bool by_ring = readingByRing();
  reading_ = false;  // first: bytes the ring hands over while stopping are kept, not parsed
  if (by_ring) ring_->stop(slot_);
  event_del(&read_ev_);  // the epoll read, or a pending kick (see updateInputHold)
}

void Http1Session::onRecvData(const char* data, size_t len) {
  if (!reading_) {
    // Handed over by stopReading(): whoever reads next (this session again,
    // a tunnel, lingering) finds them first in the input.
    net::takeInput(bev_);
    evbuffer_add(bufferevent_get_input(bev_), data, len);
    return;
  }
  onAppBytes(data, len);
}

void Http1Session::onRecvEnd(int result) {
  reading_ = false;
  if (result == 0) {
    onPeerEof();
  } else {
    closeNow();
  }
}

void Http1Session::onReadable(evutil_socket_t, short what, void* arg) {
  static_cast<Http1Session*>(arg)->onReadable(what);
}

void Http1Session::onReadable(short what) {
  if (closed_ || !bev_) return;  // a kick that outlived the connection's end
  if (what & EV_TIMEOUT) {
    onLingerTimeout();
    return;
  }
  if (readingByRing()) {
    // Not a readiness (the ring receives): updateInputHold's kick to parse
    // what waits in the input.
    onAppBytes(nullptr, 0);
    return;
  }
  const char* fresh = nullptr;
  net::ReadResult r = net::readForParse(bev_, fd_, &fresh);
  switch (r.status) {
    case net::ReadStatus::kData:
      if (fresh) {
        onAppBytes(fresh, r.bytes);
      } else {
        onAppBytes(nullptr, 0);  // appended behind older bytes in the input
      }
      return;
    case net::ReadStatus::kAgain:
      return;
    case net::ReadStatus::kEof:
      onPeerEof();
      return;
    case net::ReadStatus::kError:
      closeNow();
      return;
  }
}

void Http1Session::onAppBytes(const char* data, size_t len) {
  event::ClockScope now;  // one clock read for whatever these bytes start
  if (idle_us_ > 0) idle_timer_.setDue(event::monotonicNowUs() + idle_us_);  // heard from the app
  if (len != 0) {
    net::takeInput(bev_);
    evbuffer* in = bufferevent_get_input(bev_);
    if (evbuffer_get_length(in) != 0) {  // older bytes first
      evbuffer_add(in, data, len);
      len = 0;
    }
  }
  processInput(data, len);
}

void Http1Session::processInput(const char* fresh, size_t fresh_len) {
  evbuffer* in = bufferevent_get_input(bev_);
  if (lingering_) {
    evbuffer_drain(in, evbuffer_get_length(in));
    return;
  }
  while (!closed_ && !closing_ && !waiting_for_response_) {
    const char* data;
    size_t len;
    bool from_fresh;
    if (!net::nextToParse(fresh, &fresh_len, in, &data, &len, &from_fresh)) break;
    auto res = reader_.feed(data, len);
    // What the parser left of fresh bytes (a pipelined request, the start
    // of a tunnel) goes where unread bytes belong, whatever happened.
    if (from_fresh && res.consumed < len) evbuffer_add(in, data + res.consumed, len - res.consumed);
    if (res.error != Http1Reader::Error::kNone) {
      // Nothing of these bytes goes on (parsed_ is dropped); what went
      // before them is the stream's to abort (rejectRequest).
      parsed_.head = nullptr;
      parsed_.body.clear();
      parsed_.trailers = nullptr;
      parsed_.complete = false;
      if (!from_fresh) evbuffer_drain(in, res.consumed);
      if (res.error == Http1Reader::Error::kHeadersTooLarge) {
        rejectRequest(431, "Request Header Fields Too Large", res.why);
      } else {
        rejectRequest(400, "Bad Request", res.why);
      }
      return;
    }
    deliverParsed();  // before the drain: body pieces point into `data`
    if (closed_) return;
    if (!from_fresh) evbuffer_drain(in, res.consumed);
    if (res.paused) {
      awaiting_head_ = true;  // a message ended: the next bytes begin a head
    } else if (awaiting_head_ && !reader_.idle() && !head_timer_.armed()) {
      armHeadTimer();  // a head begun and not finished
    }
    if (res.paused) {
      if (finished_early_) {
        finished_early_ = false;  // its response is already out
        reader_.resume();
        continue;
      }
      waiting_for_response_ = true;
    }
  }
  if (fresh_len != 0 && !closed_) evbuffer_add(in, fresh, fresh_len);  // not parsed now: keep, in order
  if (peer_eof_ && !stream_ && !closing_) {
    closeNow();
    return;
  }
  updateInputHold();
}

bool Http1Session::inputHeld() const {
  // A request body larger than we will hold stays in the app's socket (and
  // the app's TCP window closes) until the upstream takes what is queued; a
  // client pipelining ahead of its responses waits the same way.
  if (stream_ && stream_->requestBacklog() >= kInputHighWater) return true;
  return waiting_for_response_ && evbuffer_get_length(bufferevent_get_input(bev_)) >= kInputHighWater;
}

void Http1Session::updateInputHold() {
  if (closed_ || closing_ || lingering_ || !bev_) return;
  bool hold = inputHeld();
  if (hold && !input_held_ && reading_) {
    input_held_ = true;
    stopReading();
  } else if (!hold && input_held_) {
    input_held_ = false;
    startReadingIdle();
    // Bytes the ring had received when reading stopped wait in the input,
    // and the app may send nothing more: parse them from the loop (not
    // here, inside the callback of whoever took the backlog).
    if (readingByRing() && evbuffer_get_length(bufferevent_get_input(bev_)) != 0) {
      event_active(&read_ev_, EV_READ, 0);
    }
  }
}

namespace {

// The protocol-neutral head of an HTTP/1 request. Absolute-form (a proxy
// request: curl -x, HTTP_PROXY) and CONNECT's authority-form name the
// destination; the upstream gets origin-form. Fills `r`, a fresh head (in
// the new ProxyStream: no copy or move of it afterwards); takes the fields
// and the target out of `head`. `host_field`: where the Host field is among
// them (Http1Reader::hostField).
void requestHeadFromHttp1(MessageHead& head, size_t host_field, RequestHead& r) {
  r.method = std::move(head.method);
  r.headers = std::move(head.headers);
  r.version_minor = head.version_minor;
  r.keep_alive = head.keep_alive;
  r.chunked = head.chunked;
  r.has_content_length = head.has_content_length;
  r.content_length = head.content_length;
  r.body_follows = head.chunked || (head.has_content_length && head.content_length > 0);
  bool connect = std::string_view(r.method) == "CONNECT";  // (a view: sizes first, no strlen)
  r.upgrade = head.upgrade && !connect;
  std::string& target = head.target;
  if (connect) {
    // Authority-form (RFC 9110 §9.3.6): "host:port" names the destination.
    r.authority = target;
    r.path = target;
    std::string_view h;
    uint16_t port = 0;
    if (net::splitHostPort(target, &h, &port)) {
      r.absolute_host = std::string(h);
      r.absolute_port = port;
    }
  } else if (target.size() >= 7 && iequals(std::string_view(target).substr(0, 7), "http://")) {
    // (The reader checked the authority: not empty, no userinfo.)
    size_t host_end = target.find_first_of("/?", 7);
    std::string authority = target.substr(7, host_end == std::string::npos ? std::string::npos : host_end - 7);
    r.path = host_end == std::string::npos ? "/" : target.substr(host_end);
    if (r.path[0] == '?') r.path = "/" + r.path;
    r.authority = authority;
    std::string_view h;
    uint16_t port = 80;
    if (net::splitHostPort(authority, &h, &port)) {
      r.absolute_host = std::string(h);
    } else {
      r.absolute_host = authority;
      port = 80;
    }
    r.absolute_port = port;
  } else {
    r.path = std::move(target);
    // A kept buffer when the Host is long (HeaderStock): no malloc per request.
    if (host_field < r.headers.size()) {
      std::string_view host = r.headers[host_field].second;
      HeaderStock::append(r.authority, host.data(), host.size());
    }
  }
}

}  // namespace

void Http1Session::armHeadTimer() {
  int64_t timeout = worker().downstreamLimits().request_header_timeout_us;
  if (timeout <= 0) return;
  int64_t now = event::monotonicNowUs();
  int64_t anchor = first_head_ ? conn_->acceptedUs() : now;
  first_head_ = false;
  head_timer_.armUs(std::max<int64_t>(anchor + timeout - now, 0));
}

void Http1Session::onHeadTimeout() {
  if (closed_ || closing_ || lingering_ || !awaiting_head_) return;
  worker().counters().request_header_timeouts.add();
  LOG_DEBUG("connection from %s: request header timeout", conn_->peer().toString().c_str());
  // RFC 9110 §15.5.9: the server would not wait longer; the connection ends.
  static const char k408[] =
      "HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\nconnection: close\r\n"
      "content-length: 23\r\n\r\nrequest header timeout\n";
  stage(k408, sizeof k408 - 1);
  closeWhenFlushed();
}

void Http1Session::onHead(MessageHead& head) {
  // The head is whole: the request-header timeout is done with it, whatever
  // the rest of this read turns out to hold.
  awaiting_head_ = first_head_ = false;
  head_timer_.cancel();
  parsed_.head = &head;
}

void Http1Session::deliverParsed() {
  if (MessageHead* head = std::exchange(parsed_.head, nullptr)) {
    if (worker().draining()) close_after_response_ = true;
    // (The reader found the Expect and Host fields in its pass over them.)
    size_t expect = reader_.expectField();
    bool expect_continue = expect < head->headers.size() && iequals(head->headers[expect].second, "100-continue");
    stream_ = std::make_unique<ProxyStream>(this, event::monotonicNowUs());
    const RequestHead& req = stream_->request();
    requestHeadFromHttp1(*head, reader_.hostField(), stream_->request());
    head_request_ = std::string_view(req.method) == "HEAD";
    version_minor_ = req.version_minor;
    keep_alive_ = req.keep_alive;
    upgrade_ = req.upgrade;
    head_written_ = head_only_ = downstream_chunked_ = downstream_close_ = trailers_sent_ = false;
    if (expect_continue) sendContinue();
    stream_->start();
  }
  // The stream may be gone by now (answered at once): each step asks.
  for (const auto& [data, len] : parsed_.body) {
    if (stream_) stream_->onRequestBody(data, len);
  }
  parsed_.body.clear();
  // A read of many tiny chunks needs many entries once; not kept for life.
  if (parsed_.body.capacity() > 256) parsed_.body = {};
  if (HeaderList* trailers = std::exchange(parsed_.trailers, nullptr)) {
    if (stream_) stream_->onRequestTrailers(*trailers);
  }
  if (std::exchange(parsed_.complete, false) && stream_) stream_->onRequestComplete();
}

const std::optional<net::Address>& Http1Session::originalDst() const { return conn_->originalDst(); }

void Http1Session::onBody(const char* data, size_t len) { parsed_.body.emplace_back(data, len); }

void Http1Session::onTrailers(HeaderList& trailers) { parsed_.trailers = &trailers; }

void Http1Session::onComplete() { parsed_.complete = true; }

void Http1Session::streamFinished(bool keep_alive) {
  flush();
  // Destroy the stream from the loop: we are inside its callback chain.
  if (stream_) worker().deferDelete(std::move(stream_));
  if (!keep_alive || close_after_response_ || worker().draining() || peer_eof_) {
    closeWhenFlushed();
    return;
  }
  if (!waiting_for_response_) {
    // Answered before the request ended (a local error reply, or an early
    // upstream answer): read the rest of this request, then go on.
    finished_early_ = true;
    return;
  }
  waiting_for_response_ = false;
  reader_.resume();
  processInput();
}

void Http1Session::upgradeToTunnel(bufferevent* upstream) {
  if (!head_written_ && upstream) {
    static const char kEstablished[] = "HTTP/1.1 200 Connection established\r\n\r\n";
    stage(kEstablished, sizeof kEstablished - 1);
  }
  if (stream_) worker().deferDelete(std::move(stream_));
  bufferevent_set_timeouts(bev_, nullptr, nullptr);  // tunnels live as long as their peers
  stopReading();  // the tunnel reads through the bufferevent
  if (!upstream) {
    closeNow();
    return;
  }
  flushNow();  // the 101 / 200 goes out before any tunnelled byte
  closed_ = true;  // the tunnel owns the sockets now
  bufferevent* down = bev_;
  bev_ = nullptr;
  conn_->adoptTunnel(down, upstream);
}

void Http1Session::streamAborted() {
  if (stream_) worker().deferDelete(std::move(stream_));
  closeNow();
}

void Http1Session::rejectRequest(int status, const char* reason, const std::string& why) {
  worker().counters().bad_requests.add();
  LOG_DEBUG("rejecting request from %s with %d: %s", conn_->peer().toString().c_str(), status, why.c_str());
  if (stream_) {
    // A framing error inside a body we were already proxying.
    stream_->abort(why.c_str());
    worker().deferDelete(std::move(stream_));
  }
  if (head_written_) {
    // This request's response head is already out (the upstream answered
    // before the request ended): a 400 now would land inside that response
    // or after it, as an answer to nothing. What was staged goes; then the
    // connection ends — a cut-short body is the signal left.
    closeWhenFlushed();
    return;
  }
  std::string body = why + "\n";
  std::string resp = "HTTP/1.1 " + std::to_string(status) + " " + reason +
                     "\r\ncontent-type: text/plain\r\nconnection: close\r\ncontent-length: " +
                     std::to_string(body.size()) + "\r\n\r\n" + body;
  stage(resp.data(), resp.size());
  flush();
  closeWhenFlushed();
}

void Http1Session::closeWhenFlushed() {
  if (closed_ || closing_) return;
  closing_ = true;
  flushNow();  // what is left must be in the socket before linger() shuts it down
  if (evbuffer_get_length(bufferevent_get_output(bev_)) == 0) linger();
  // else onWrite() lingers once the output has drained
}

// Lingering close (RFC 9112 §9.6): shut down our side, then read and discard
// until the peer closes (at most kLingerUs), so that a client still sending
// the rest of a request we answered early reads our answer instead of a reset.
void Http1Session::linger() {
  if (closed_ || lingering_) return;
  // Nothing can follow that our close would turn into a reset, so no
  // lingering (nginx's rule too): the app closed its side already, or it
  // said "close" (RFC 9112 §9.6: it sends no further request) and its
  // request was read in full with nothing left over. The answer is all in
  // the socket's send buffer; the close sends our FIN behind it.
  bool request_read = waiting_for_response_ && evbuffer_get_length(bufferevent_get_input(bev_)) == 0;
  if (peer_eof_ || (!keep_alive_ && request_read)) {
    closeNow();
    return;
  }
  stopReading();  // lingering reads with read_ev_: its timeout is the limit
  lingering_ = true;
  ::shutdown(fd_, SHUT_WR);
  // What is buffered is discarded with the next read (processInput while
  // lingering), not here: linger() can run inside the parser's callback (a
  // local reply to a request head) while it still reads those bytes.
  timeval tv{1, 0};
  event_add(&read_ev_, &tv);  // the linger limit; idle_timer_ leaves a lingerer alone
  reading_ = true;
}

void Http1Session::closeNow() {
  if (closed_) return;
  closed_ = true;
  if (sendQueued()) flushNow();  // bytes staged before the close go first, as they always did
  if (stream_) {
    stream_->abort("downstream connection closed");
    worker().deferDelete(std::move(stream_));
  }
  if (readingByRing()) {
    // Nothing more is read: cancelling is enough (stop() would wait for it).
    reading_ = false;
    ring_->detach(slot_);
    ring_ = nullptr;
  }
  stopReading();
  bufferevent_disable(bev_, EV_READ | EV_WRITE);
  conn_->close();
}

void Http1Session::onWrite(bufferevent*, void* arg) {
  auto* s = static_cast<Http1Session*>(arg);
  if (s->closing_ && evbuffer_get_length(bufferevent_get_output(s->bev_)) == 0) {
    s->linger();
    return;
  }
  if (s->stream_) s->stream_->onDownstreamDrained();
}

// Write-side errors (reads are ours: onReadable).
void Http1Session::onEvent(bufferevent*, short what, void* arg) {
  auto* s = static_cast<Http1Session*>(arg);
  if ((what & BEV_EVENT_EOF) && !s->lingering_) {
    s->onPeerEof();
    return;
  }
  s->closeNow();
}

void Http1Session::onLingerTimeout() {
  // read_ev_ has a timeout only while lingering (the idle timeout is
  // idle_timer_): the linger limit, done.
  closeNow();
}

void Http1Session::onPeerEof() {
  // Level-triggered: an EOF would be reported again and again.
  stopReading();
  if (lingering_) {
    closeNow();  // the peer closed: done
    return;
  }
  peer_eof_ = true;
  processInput();
  if (closed_) return;
  // The app half-closed after a complete request: answer it, then close.
  if (stream_ && stream_->requestComplete()) {
    close_after_response_ = true;
    return;
  }
  closeNow();
}

void Http1Session::drain() {
  close_after_response_ = true;
  if (!stream_ && reader_.idle()) closeWhenFlushed();
}

}  // namespace mulligan::proxy
