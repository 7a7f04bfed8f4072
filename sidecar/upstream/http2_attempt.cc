#include "sidecar/upstream/http2_attempt.h"

#include <event2/buffer.h>

#include <string>

#include "sidecar/codec/header_stock.h"
#include "sidecar/codec/http2/http2_memory.h"
#include "sidecar/codec/http2/http2_session.h"
#include "sidecar/upstream/http2_client.h"
#include "sidecar/upstream/upstream_context.h"

namespace mulligan::proxy {
Http2Attempt::Http2Attempt(UpstreamContext* worker, Owner* owner, const net::Address& dest, Timeouts timeouts)
    : Attempt(worker->base(), owner, dest, timeouts), worker_(worker) {
  HeaderStock& stock = HeaderStock::local();
  fields_ = stock.takeList();
  head_.headers = stock.takeList();
}

Http2Attempt::~Http2Attempt() {
  if (session_) session_->detach(this, state() != State::kDone || !remote_ended_);
  // (The response head's list may have moved on with the head: then it is
  // empty and given back by whoever holds it, or freed.)
  HeaderStock& stock = HeaderStock::local();
  stock.give(std::move(fields_));
  stock.give(std::move(head_.headers));
  stock.give(std::move(resp_trailers_));
}

void Http2Attempt::sendHead(const RequestHead& head, const retry::AttemptHeaders& extra) {
  // RFC 9113 §8.3.1: pseudo-headers first; §8.2.2: no connection-specific
  // fields, except TE: trailers (which gRPC requires).
  // The fields are copied once, into fields_, which the session hands to
  // nghttp2 without a copy at the submit (later, after the session's
  // handshake, for a new connection). Names lower case: nghttp2 does not
  // lower-case what it does not copy (the extra fields' names are
  // lower-case constants, attempt_headers.h).
  fields_.clear();
  std::string_view authority = head.authority;
  if (authority.empty()) {
    if (auto h = findHeader(head.headers, "host")) authority = *h;
  }
  fields_.emplace_back(":method", head.method);
  fields_.emplace_back(":scheme", head.scheme.empty() ? std::string_view("http") : std::string_view(head.scheme));
  fields_.emplace_back(":authority", authority);
  fields_.emplace_back(":path", head.path);
  if (head.from_http2) {
    // Names already lower case, and no connection-specific field but TE,
    // whose value nghttp2 let through only as "trailers" (RequestHead::from_http2).
    // What the sidecar drops beyond RFC 9113 §8.2.2 (Expect, Proxy-Authorization,
    // Trailer, HTTP2-Settings: isHopByHop) it still drops; no Connection field
    // can name others.
    for (const auto& [k, v] : head.headers) {
      if (k == "te") {
        fields_.emplace_back("te", "trailers");
        continue;
      }
      if (k == "host" || isHopByHop(k) || replacedByAttemptHeaders(extra, k)) continue;
      fields_.emplace_back(k, v);
    }
    for (retry::HeaderField f : extra) fields_.emplace_back(f.name, f.value);
    has_body_ = head.body_follows;
    return;
  }
  HopByHopFilter hop(head.headers);
  static thread_local std::string scratch;  // a name lower-cased (HTTP/1 names may not be)
  for (const auto& [k, v] : head.headers) {
    if (iequals(k, "te")) {
      if (iequals(v, "trailers")) fields_.emplace_back("te", "trailers");
      continue;
    }
    if (iequals(k, "host") || hop.drops(k) || replacedByAttemptHeaders(extra, k)) {
      continue;
    }
    fields_.emplace_back(lowered(k, scratch), v);
  }
  for (retry::HeaderField f : extra) fields_.emplace_back(f.name, f.value);
  has_body_ = head.body_follows;
}

void Http2Attempt::sendBody(const char* data, size_t len) {
  if (state() == State::kDone || !has_body_ || len == 0) return;
  body_.add(data, len);
  if (session_ && stream_id_ > 0) session_->resumeData(stream_id_);
}

void Http2Attempt::endRequest(const HeaderList* trailers) {
  if (state() == State::kDone || !has_body_ || body_ended_) return;
  body_ended_ = true;
  if (trailers) trailers_ = *trailers;
  if (session_ && stream_id_ > 0) session_->resumeData(stream_id_);
}

void Http2Attempt::start() {
  worker_->counters().attempts.add();
  bool overflow = false;
  session_ = worker_->h2pool().sessionFor(destination(), timeouts().connect_us, &reused_, &overflow,
                                          freshConnection());
  if (!session_) {
    // Immediate failure (no route, or the destination's limit); report
    // from the loop, never inline.
    if (overflow) {
      worker_->counters().upstream_overflow.add();
      failSoon(retry::OutcomeKind::kOverflow,
               "max upstream connections (calls in flight) to " + destination().toString() + " reached");
    } else {
      failSoon(retry::OutcomeKind::kConnectFailure, "connect to " + destination().toString() + " failed");
    }
    return;
  }
  session_->setIdleTimeoutUs(idle_timeout_us_);
  transitionTo(State::kConnecting);  // the connect timeout, until the stream is submitted
  session_->attach(this);  // may submit at once (a ready session)
}

void Http2Attempt::flush() {
  if (session_) session_->scheduleFlush();
}

void Http2Attempt::submitted(int32_t stream_id) {
  stream_id_ = stream_id;  // (the session took the fields: nghttp2 reads them in place)
  markSent(event::monotonicNowUs());
  transitionTo(State::kAwaitingHeaders);  // the header timeout
}

void Http2Attempt::detach(bool reset) {
  if (!session_) return;
  Http2ClientSession* s = session_;
  session_ = nullptr;
  if (unconsumed_ > 0 && stream_id_ > 0) s->consume(stream_id_, unconsumed_);
  unconsumed_ = 0;
  s->detach(this, reset);
}

void Http2Attempt::onFailed(retry::OutcomeKind kind) {
  if (kind == retry::OutcomeKind::kConnectFailure) worker_->counters().upstream_connect_failures.add();
  detach(true);
}

void Http2Attempt::onHeader(std::string_view name, std::string_view value) {
  if (state() == State::kAwaitingHeaders) {
    if (name == ":status") {
      int st = 0;
      for (char c : value) st = c >= '0' && c <= '9' ? st * 10 + (c - '0') : st;
      head_.status = st;
      return;
    }
    if (!name.empty() && name[0] == ':') return;
    if (name == "content-length") {
      head_.has_content_length = true;
      head_.content_length = validatedContentLength(value);
    }
    head_.headers.emplace_back(name, value);
  } else if (state() == State::kStreaming) {
    if (!name.empty() && name[0] == ':') return;
    if (resp_trailers_.capacity() == 0) resp_trailers_ = HeaderStock::local().takeList();  // (gRPC: every call)
    resp_trailers_.emplace_back(name, value);
  }
}

void Http2Attempt::onHeadersEnd(bool end_stream) {
  if (state() == State::kAwaitingHeaders) {
    if (head_.status >= 100 && head_.status < 200) {
      // Interim: wait for the final one (in the same field storage).
      HeaderList kept = std::move(head_.headers);
      kept.clear();
      head_ = MessageHead();
      head_.headers = std::move(kept);
      return;
    }
    head_.reason = "";
    head_.version_minor = 1;
    head_.from_http2 = true;  // (nghttp2 checked its names and fields)
    head_end_stream_ = end_stream;
    headArrived(head_, end_stream);
    if (end_stream) onRemoteEnd();
    return;
  }
  if (state() == State::kStreaming) {
    trailersArrived(resp_trailers_);
    if (end_stream) onRemoteEnd();
  }
}

void Http2Attempt::onData(const uint8_t* data, size_t len) {
  if (state() != State::kStreaming) {
    if (session_) session_->consume(stream_id_, len);
    return;
  }
  responseActivity();
  bodyArrived(reinterpret_cast<const char*>(data), len);
  if (paused_) {
    unconsumed_ += len;
  } else if (session_) {
    session_->consume(stream_id_, len);
  }
}

void Http2Attempt::onRemoteEnd() {
  if (state() != State::kStreaming) return;
  remote_ended_ = true;
  // Our request side may still be open (the server answered early): RFC
  // 9113 §8.1 lets us end it with a reset; otherwise the stream is closed.
  detach(!body_ended_ && has_body_);
  complete();
}

void Http2Attempt::onStreamClose(uint32_t error_code) {
  session_ = nullptr;  // the session already forgot us
  if (state() == State::kDone) return;
  std::string why = "stream " + std::to_string(stream_id_) + " to " + destination().toString() + " reset (" +
                    nghttp2_http2_strerror(error_code) + ")";
  if (state() == State::kAwaitingHeaders || state() == State::kConnecting) {
    fail(error_code == NGHTTP2_REFUSED_STREAM ? retry::OutcomeKind::kRefusedStream : retry::OutcomeKind::kReset, why);
    return;
  }
  abortResponse(why);
}

void Http2Attempt::onSessionLost(const std::string& why, bool connect_failed, bool submitted) {
  session_ = nullptr;
  if (state() == State::kDone) return;
  if (!submitted) {
    fail(connect_failed ? retry::OutcomeKind::kConnectFailure : retry::OutcomeKind::kRefusedStream, why);
    return;
  }
  if (state() == State::kAwaitingHeaders) {
    fail(retry::OutcomeKind::kReset, why + " before response headers");
    return;
  }
  abortResponse(why + " mid-response");
}

ssize_t Http2Attempt::readBody(uint8_t* buf, size_t len, uint32_t* flags, bool* submit_trailers) {
  size_t n = body_.remove(buf, len);
  if (body_.empty() && body_ended_) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!trailers_.empty()) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      *submit_trailers = true;
    }
  } else if (n == 0) {
    return NGHTTP2_ERR_DEFERRED;
  }
  if (n > 0) requestDrained(n);
  return static_cast<ssize_t>(n);
}

void Http2Attempt::onReadDone() {
  if (state() == State::kStreaming) readDone();
}

void Http2Attempt::pauseReading(bool paused) {
  paused_ = paused;
  if (!paused && unconsumed_ > 0 && session_) {
    session_->consume(stream_id_, unconsumed_);
    unconsumed_ = 0;
  }
}

void Http2Attempt::cancel() {
  if (state() == State::kDone) {
    detach(false);
    return;
  }
  bool streaming = state() == State::kStreaming;
  transitionTo(State::kDone);
  bool request_sent = !has_body_ || (body_ended_ && body_.empty());
  if (streaming && head_end_stream_ && request_sent) {
    detach(false);  // the response ended with its head: nothing to reset
    return;
  }
  if (streaming && session_ && !has_body_ && head_.has_content_length && head_.content_length <= kOrphanMaxBody) {
    // A retry walking away from a small answer (a 503, say) to a request
    // that sent all it had (no body): let it finish rather than reset it
    // (see Http2ClientSession::orphan).
    Http2ClientSession* s = session_;
    session_ = nullptr;
    if (unconsumed_ > 0 && stream_id_ > 0) s->consume(stream_id_, unconsumed_);
    unconsumed_ = 0;
    s->orphan(this);
    return;
  }
  detach(true);  // RST_STREAM(CANCEL)
}

void Http2Attempt::cancelAsLoser() {
  bool request_sent = !has_body_ || (body_ended_ && body_.empty());
  if (state() != State::kAwaitingHeaders || !session_ || stream_id_ <= 0 || !request_sent) {
    cancel();
    return;
  }
  // Hedging sends up to max_extra_load of a route's requests twice, and
  // every loser would be one RST_STREAM: nghttp2-based servers answer ~1000
  // of those in a burst with GOAWAY (their CVE-2023-44487 limit). A loser
  // that answers within the orphan grace costs no reset; one that does not
  // is reset (CANCEL) when the grace ends.
  transitionTo(State::kDone);
  Http2ClientSession* s = session_;
  session_ = nullptr;
  if (unconsumed_ > 0) s->consume(stream_id_, unconsumed_);
  unconsumed_ = 0;
  s->orphan(this);
}

}  // namespace mulligan::proxy
