// ProxyStream's endings: how a call ends — its deadline, the sidecar's own
// replies (DESIGN.md "Deadlines": 502/503/504, gRPC 4 or 14), completion,
// a broken-off response, the client leaving — and the access log line each
// ending writes. The call's start, attempts and retry decisions are in
// proxy_stream.cc.
#include <chrono>

#include "sidecar/core/logging.h"
#include "sidecar/stream/proxy_stream.h"
#include "sidecar/stream/access_log_writer.h"

namespace mulligan::proxy {
namespace {

int64_t unixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void ProxyStream::endAborted() {
  sidecar_error_ = "response-aborted";
  state_ = State::kDone;
  cancelTimers();
  logAccess();
  down_->responseAborted();
}

void ProxyStream::onDeadline() {
  if (state_ == State::kDone) return;
  route_stats_->timeout(retry::TimeoutKind::kRequest);
  if (response_started_) {
    if (grpc_) {
      // After response headers: cancel the upstream stream (RST_STREAM
      // CANCEL) and end the call with DEADLINE_EXCEEDED in trailers.
      retireAttempts();
      timeout_ = retry::TimeoutKind::kRequest;
      grpc_status_ = kGrpcDeadlineExceeded;
      HeaderList trailers;
      trailers.emplace_back("grpc-status", "4");
      trailers.emplace_back("grpc-message", std::string(retry::timeoutMessage(retry::TimeoutKind::kRequest)));
      down_->writeTrailers(trailers);
      finish();
      return;
    }
    if (connect_rpc_ == ConnectKind::kStreaming && endConnectStreamAtDeadline()) return;
    // HTTP/1 cannot say "timed out" mid-body; the close tells the client.
    LOG_DEBUG("response from %s broke off: request timeout mid-response", dest_.toString().c_str());
    endAborted();
    return;
  }
  sendTimeoutReply(retry::TimeoutKind::kRequest);
}

void ProxyStream::sendTimeoutReply(retry::TimeoutKind kind) {
  timeout_ = kind;
  // HTTP: Envoy's body for any upstream timeout (the contract's); the kind
  // is in x-mulligan-timeout. gRPC: the kind's own message.
  sendLocalReply(504, "Gateway Timeout", std::string(retry::timeoutMessage(retry::TimeoutKind::kRequest)),
                 kGrpcDeadlineExceeded);
}

void ProxyStream::sendLocalReply(int status, std::string_view reason, std::string body,
                                 int grpc_status, std::string_view overloaded) {
  if (state_ == State::kDone) return;
  retireAttempts();
  abandonTunnelConnect();
  resolving_.reset();
  held_head_.reset();
  connect_hold_.reset();
  state_ = State::kDone;
  cancelTimers();
  LocalReply r;
  r.status = status;
  r.reason = reason;
  r.timeout = timeout_;
  r.overloaded = overloaded;
  r.request_complete = request_complete_;
  if (grpc_) {
    // gRPC: a trailers-only response, HTTP 200 (DESIGN.md "Deadlines").
    r.grpc = true;
    r.status = 200;
    r.grpc_status = grpc_status;
    while (!body.empty() && body.back() == '\n') body.pop_back();
    r.grpc_message = r.timeout ? std::string(retry::timeoutMessage(*r.timeout)) : body;
    grpc_status_ = grpc_status;
  } else if (connect_rpc_ != ConnectKind::kNone) {
    while (!body.empty() && body.back() == '\n') body.pop_back();
    connectForm(r, grpc_status, r.timeout ? retry::timeoutMessage(*r.timeout) : std::string_view(body));
    response_bytes_ = r.body.size();
  } else {
    r.body = std::move(body);
    response_bytes_ = r.body.size();
  }
  status_ = r.status;
  response_started_ = true;
  if (status_ >= 100 && status_ < 600) ctx_.counters().responses_by_class[status_ / 100].add();
  route_stats_->response(status_);
  logAccess();
  down_->localReply(r);  // may defer-delete us
}

void ProxyStream::finish() {
  if (state_ == State::kDone) return;
  state_ = State::kDone;
  cancelTimers();
  if (status_ >= 100 && status_ < 600) ctx_.counters().responses_by_class[status_ / 100].add();
  route_stats_->response(status_);
  logAccess();
  down_->responseComplete();  // may defer-delete us
}

void ProxyStream::abort(const char* why) {
  if (state_ == State::kDone) return;
  LOG_DEBUG("%s %s%s abandoned: %s", req_.method.c_str(), req_.authority.c_str(), req_.path.c_str(), why);
  state_ = State::kDone;
  cancelTimers();
  resolving_.reset();
  retireAttempts();
  abandonTunnelConnect();
  if (!sidecar_error_.size()) sidecar_error_ = "downstream-closed";
  logAccess();
}

void ProxyStream::logAccess() {
  AccessLogWriter* log = ctx_.accessLog();
  if (!log) return;
  AccessRecord r;
  // What the filter reads first: a call it leaves out costs nothing more.
  r.status = status_;
  r.grpc_status = grpc_ ? grpc_status_ : -1;
  r.attempts = retry_ ? retry_->attempts() : 0;
  r.hedges = retry_ ? retry_->hedges() : 0;
  r.retry_refused = retry_refused_;
  r.timeout = timeout_ ? retry::timeoutKindName(*timeout_) : std::string_view();
  r.sidecar_error = sidecar_error_;
  if (!log->wants(r)) return;
  // The wall-clock start, worked out only when a line is written: a call
  // with no access log never reads the wall clock.
  int64_t now_us = now();
  r.start_unix_ms = unixMs() - (now_us - start_us_) / 1000;
  r.method = req_.method;
  r.authority = req_.authority;
  r.path = req_.path;
  r.protocol = down_->protocol() == Protocol::kHttp2 ? "HTTP/2" : req_.version_minor ? "HTTP/1.1" : "HTTP/1.0";
  r.service = service_name_;
  if (table_ && match_.route != pfc::Match::kNone && match_.service != pfc::Match::kNone) {
    r.route = static_cast<int>(match_.route - table_->services()[match_.service].route_begin);
  }
  r.retry_reasons = retry_reasons_;
  r.winner = winner_;
  r.deadline_us = deadline_.none() ? -1 : deadline_.budgetUs();
  if (dest_.len) r.upstream = &dest_;
  r.duration_us = now_us - start_us_;
  r.upstream_us = upstream_head_us_;
  r.request_bytes = request_bytes_;
  r.response_bytes = response_bytes_;
  log->append(ctx_.workerIndex(), r);
}

}  // namespace mulligan::proxy
