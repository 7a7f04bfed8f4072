// Http1Session's response side: the Downstream writes of the current
// ProxyStream as HTTP/1.1 frames them (the head, as received when it can go
// unchanged, else formatted; a body by Content-Length or re-chunked; HEAD,
// 204 and 304 without one; trailers after the last chunk; connection:
// close), local replies and 100 Continue, and the write burst they go into
// (inline_out_ and staged_, sent by flush() at once or in the worker's send
// batch). The request side — reading, parsing, timeouts, closing — is in
// http1_session.cc.
#include <event2/buffer.h>
#include <sys/socket.h>

#include <cstdio>

#include "sidecar/codec/http1/head_format.h"
#include "sidecar/downstream/http1_session.h"
#include "sidecar/stream/proxy_stream.h"
#include "sidecar/downstream/downstream_context.h"

namespace mulligan::proxy {

namespace {
// Response heads that cannot go straight into the inline burst are
// formatted here first (capacity kept: no allocation per head).
thread_local std::string t_head_scratch;
}  // namespace

void Http1Session::stage(const char* data, size_t len) {
  if (evbuffer_get_length(staged_) == 0 && inline_out_.size() + len <= kInlineOut) {
    inline_out_.append(data, len);
    return;
  }
  evbuffer_add(stagedBuffer(), data, len);
}

evbuffer* Http1Session::stagedBuffer() {
  if (!inline_out_.empty()) {
    evbuffer_add(staged_, inline_out_.data(), inline_out_.size());
    inline_out_.clear();
  }
  return staged_;
}

void Http1Session::flush() {
  if (sends_ && !inline_out_.empty() && bev_) {
    // A small burst (staged_ empty, see inline_out_): sent with the other
    // connections' at the end of the iteration, if it is still the only
    // thing to send then (bytesToSend).
    sends_->sendSoon(this);
    return;
  }
  flushNow();
}

bool Http1Session::bytesToSend(int* fd, const char** data, size_t* len) {
  if (!bev_ || inline_out_.empty() || evbuffer_get_length(staged_) != 0 ||
      evbuffer_get_length(bufferevent_get_output(bev_)) != 0) {
    flushNow();  // more than a small burst by now: the usual way
    return false;
  }
  *fd = fd_;
  *data = inline_out_.data();
  *len = inline_out_.size();
  return true;
}

void Http1Session::wrote(long result) {
  // As flushNow's send: what the socket did not take (all of it, after an
  // error, which the bufferevent's own write then meets and reports) is
  // queued in the bufferevent.
  size_t sent = result > 0 ? static_cast<size_t>(result) : 0;
  if (sent < inline_out_.size() && bev_) {
    evbuffer_add(bufferevent_get_output(bev_), inline_out_.data() + sent, inline_out_.size() - sent);
  }
  inline_out_.clear();
}

void Http1Session::flushNow() {
  if (sends_) sends_->forget(this);  // sent here instead
  if (!bev_ || (inline_out_.empty() && evbuffer_get_length(staged_) == 0)) return;
  evbuffer* queued = bufferevent_get_output(bev_);
  if (evbuffer_get_length(queued) == 0) {
    // Optimistic write: most responses fit the socket buffer, so this is the
    // only syscall they need (libevent would add and later remove EV_WRITE).
    if (!inline_out_.empty()) {
      // staged_ is empty (see inline_out_). A failed send queues it all: the
      // bufferevent's own write then meets the error and reports it.
      ssize_t n = ::send(fd_, inline_out_.data(), inline_out_.size(), MSG_NOSIGNAL);
      size_t sent = n > 0 ? static_cast<size_t>(n) : 0;
      if (sent < inline_out_.size()) evbuffer_add(queued, inline_out_.data() + sent, inline_out_.size() - sent);
      inline_out_.clear();
      return;
    }
    evbuffer_write(staged_, fd_);
  }
  evbuffer* rest = stagedBuffer();
  if (evbuffer_get_length(rest) != 0) evbuffer_add_buffer(queued, rest);
}

namespace {

// True when the upstream's response head, as received (`raw`), is exactly
// what writeHead would write: an HTTP/1.1 final response framed by one
// Content-Length, with no connection-specific field to drop. Then it is
// copied whole instead of field by field.
bool forwardableAsReceived(const MessageHead& head, std::string_view raw) {
  if (raw.size() < 9 || raw.compare(0, 9, "HTTP/1.1 ") != 0) return false;
  if (head.status < 200 || head.status == 204 || head.status == 304 || !head.has_content_length || head.chunked) {
    return false;
  }
  int content_lengths = 0;
  for (const auto& field : head.headers) {
    if (isHopByHop(field.first)) return false;  // Connection among them: no tokens to look up
    if (field.first.size() == 14 && iequals(field.first, "content-length")) ++content_lengths;
  }
  return content_lengths == 1;
}

void appendLastChunk(evbuffer* out, const HeaderList* trailers) {
  evbuffer_add(out, "0\r\n", 3);
  if (trailers) {
    for (const auto& [k, v] : *trailers) {
      if (notATrailer(k)) continue;
      evbuffer_add_printf(out, "%.*s: %.*s\r\n", static_cast<int>(k.size()), k.data(), static_cast<int>(v.size()), v.data());
    }
  }
  evbuffer_add(out, "\r\n", 2);
}

}  // namespace

void Http1Session::writeHead(const MessageHead& head, bool) {
  head_written_ = true;
  head_only_ = head_request_ || head.status == 204 || head.status == 304 || head.status < 200;
  // An upgrade the upstream declined: the client's bytes after its request
  // head are not HTTP we can parse; end the connection after this answer.
  downstream_close_ = !keep_alive_ || worker().draining() || upgrade_;
  if (!head_only_ && !downstream_close_) {
    std::string_view raw = rawHeadBytes(head);
    if (!raw.empty() && forwardableAsReceived(head, raw)) {
      stage(raw.data(), raw.size());
      return;
    }
  }
  // Formatted straight into the inline burst when nothing is staged ahead of
  // it (the usual case); else into a per-thread scratch string, then staged.
  bool direct = evbuffer_get_length(staged_) == 0;
  std::string& out = direct ? inline_out_ : t_head_scratch;
  t_head_scratch.clear();
  HeadFormat f(out);
  f.add("HTTP/1.1 ").number(static_cast<uint64_t>(head.status)).add(" ");
  f.add(head.reason).add("\r\n");
  HopByHopFilter hop(head.headers);
  for (const auto& [k, v] : head.headers) {
    if (hop.drops(k) || iequals(k, "content-length")) continue;
    f.field(k, v);
  }
  if (head.status == 101) {
    // Keep the upgrade handshake's own fields.
    if (auto u = findHeader(head.headers, "upgrade")) f.field("upgrade", *u);
    f.add("connection: upgrade\r\n\r\n").done();
    stageFormatted(direct);
    return;
  }
  if (head_only_) {
    if (head.has_content_length) f.field("content-length", head.content_length);
  } else if (head.has_content_length && !head.chunked) {
    f.field("content-length", head.content_length);
  } else if (version_minor_ >= 1) {
    downstream_chunked_ = true;
    f.add("transfer-encoding: chunked\r\n");
  } else {
    downstream_close_ = true;  // HTTP/1.0 client: the close ends the body
  }
  if (downstream_close_) f.add("connection: close\r\n");
  f.add("\r\n").done();
  stageFormatted(direct);
}

void Http1Session::stageFormatted(bool direct) {
  if (!direct) {
    stage(t_head_scratch.data(), t_head_scratch.size());
  } else if (inline_out_.size() > kInlineOut) {
    stagedBuffer();  // too big to keep inline: all of it goes to staged_
  }
}

void Http1Session::writeBody(const char* data, size_t len) {
  if (head_only_) return;
  if (!downstream_chunked_) {
    stage(data, len);
    return;
  }
  if (len == 0) return;  // an empty chunk would end the body
  char size[24];
  int n = snprintf(size, sizeof size, "%zx\r\n", len);
  stage(size, static_cast<size_t>(n));
  stage(data, len);
  stage("\r\n", 2);
}

void Http1Session::writeTrailers(const HeaderList& trailers) {
  if (downstream_chunked_ && !trailers_sent_) {
    appendLastChunk(stagedBuffer(), &trailers);
    trailers_sent_ = true;
  }
}

void Http1Session::responseComplete() {
  if (downstream_chunked_ && !trailers_sent_) stage("0\r\n\r\n", 5);  // the last chunk, no trailers
  streamFinished(!downstream_close_);
}

void Http1Session::responseAborted() { streamAborted(); }

void Http1Session::localReply(const LocalReply& r) {
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + std::string(r.reason) + "\r\n";
  if (r.grpc) {
    // gRPC over HTTP/1 is not gRPC, but an application/grpc request still
    // gets its answer in gRPC's words.
    out += "content-type: application/grpc\r\ngrpc-status: " + std::to_string(r.grpc_status) +
           "\r\ngrpc-message: " + percentEncodeGrpcMessage(r.grpc_message) + "\r\n";
  } else {
    out += "content-type: " + std::string(r.content_type.empty() ? "text/plain" : r.content_type) + "\r\n";
  }
  if (!r.timeoutHeader().empty()) out += "x-mulligan-timeout: " + std::string(r.timeoutHeader()) + "\r\n";
  if (!r.overloaded.empty()) {
    // x-envoy-overloaded too, so that a caller's proxy does not retry into
    // our limit (DESIGN.md "Overload signals").
    out += "x-mulligan-overloaded: " + std::string(r.overloaded) + "\r\nx-envoy-overloaded: true\r\n";
  }
  out += "content-length: " + std::to_string(r.body.size()) + "\r\n";
  // An unfinished request body: answer, then close rather than read it all.
  bool close = !keep_alive_ || !r.request_complete;
  if (close) out += "connection: close\r\n";
  out += "\r\n";
  if (!head_request_) out += r.body;
  stage(out.data(), out.size());
  streamFinished(!close);
}

void Http1Session::sendContinue() {
  static const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
  stage(kContinue, sizeof kContinue - 1);
  flush();
}

}  // namespace mulligan::proxy
