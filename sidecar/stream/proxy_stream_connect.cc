// ProxyStream and the Connect protocol (DESIGN.md "Connect"; the wire rules
// are codec/connect_rpc.h's). A Connect call's status is not in a header: a
// unary call's error is its JSON body (with an HTTP error status), a
// streaming call's is its end-of-stream message (HTTP 200). When the route
// opted in (gRPC codes in retry_on) the response head is held, as a gRPC
// head is held for its trailers, and the first body bytes with it — at most
// max_buffered_body — until they say whether this is an error retry_on
// names. Nothing has gone downstream then, so a retry is still possible.
#include "sidecar/core/logging.h"
#include "sidecar/stream/proxy_stream.h"

namespace mulligan::proxy {

bool ProxyStream::holdsConnectResponse(const MessageHead& head, bool end_stream) const {
  if (connect_rpc_ == ConnectKind::kNone || end_stream) return false;
  // Only when a retry could follow, and once the request is complete (as for
  // gRPC: a client stream may wait for the headers before it sends on).
  if (policy_->retry.grpc_codes == 0 || !retry_->mayRetry() || !request_complete_) return false;
  // Unary: an error status carries the error body; a 200 is the answer.
  // Streaming: errors come in a 200's end-of-stream message; another status
  // is an HTTP-level failure, decided from the status at once.
  return connect_rpc_ == ConnectKind::kStreaming ? head.status == 200 : head.status != 200 && head.status >= 200;
}

void ProxyStream::onConnectHeldBody(const char* data, size_t len) {
  switch (connect_hold_->feed(data, len)) {
    case ConnectErrorReader::Verdict::kMore:
      return;
    case ConnectErrorReader::Verdict::kCommit:
      releaseConnectHold();
      return;
    case ConnectErrorReader::Verdict::kError:
      decideConnectHold();  // the stream's end-of-stream error, before its end
      return;
  }
}

bool ProxyStream::connectHoldEnded() {
  if (connect_hold_->end() == ConnectErrorReader::Verdict::kError) return decideConnectHold();
  releaseConnectHold();
  return false;
}

bool ProxyStream::decideConnectHold() {
  // The Connect code stands for the grpc-status a gRPC call would have had;
  // without one (a body that is no Connect error) RetryState derives it
  // from the HTTP status, as Connect clients do.
  retry::Outcome o;
  o.kind = retry::OutcomeKind::kResponse;
  o.status = held_head_->status;
  o.grpc_status = connect_hold_->code() == kNoConnectCode ? retry::kNoGrpcStatus : connect_hold_->code();
  if (maybeRetry(o)) return true;
  releaseConnectHold();
  return false;
}

void ProxyStream::releaseConnectHold() {
  std::string held = connect_hold_->take();
  connect_hold_.reset();
  commitHeldHead();
  if (held.empty() || state_ != State::kStreaming) return;
  response_bytes_ += held.size();
  if (connect_rpc_ == ConnectKind::kStreaming) connect_frames_.feed(held.data(), held.size());
  down_->writeBody(held.data(), held.size());
  if (down_->congested() && responding_) responding_->pauseReading(true);
}

bool ProxyStream::endConnectStreamAtDeadline() {
  if (!connect_frames_.atBoundary() || connect_frames_.ended()) return false;
  // Between two messages: cancel the upstream and end the stream as a
  // Connect server would at its deadline.
  retireAttempts();
  timeout_ = retry::TimeoutKind::kRequest;
  std::string end = connectEndStreamMessage(kGrpcDeadlineExceeded, retry::timeoutMessage(retry::TimeoutKind::kRequest));
  response_bytes_ += end.size();
  down_->writeBody(end.data(), end.size());
  finish();
  return true;
}

void ProxyStream::connectForm(LocalReply& r, int grpc_status, std::string_view message) {
  // DESIGN.md "Connect": a unary call gets the error as JSON with the
  // protocol's HTTP status for its code (504 deadline_exceeded, 503
  // unavailable); a streaming one gets 200 and an end-of-stream message
  // carrying it, in the content type it asked for.
  if (connect_rpc_ == ConnectKind::kUnary) {
    r.status = connectHttpStatus(grpc_status);
    r.reason = r.status == 504 ? "Gateway Timeout" : "Service Unavailable";
    r.content_type = "application/json";
    r.body = connectErrorJson(grpc_status, message);
    return;
  }
  r.status = 200;
  r.reason = "OK";
  std::optional<std::string_view> ct = findHeader(req_.headers, "content-type");
  r.content_type = ct ? *ct : std::string_view("application/connect+proto");
  r.body = connectEndStreamMessage(grpc_status, message);
}

}  // namespace mulligan::proxy
