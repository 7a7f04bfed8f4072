#include "sidecar/proxy/proxy_stream.h"

#include <chrono>
#include <cstring>

#include "sidecar/core/clock.h"
#include "sidecar/core/logging.h"
#include "sidecar/retry/attempt_headers.h"
#include "sidecar/proxy/connection.h"
#include "sidecar/proxy/http1_session.h"
#include "sidecar/proxy/worker.h"

namespace mulligan::proxy {
namespace {

int64_t unixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const pfc::EffectivePolicy& builtinPolicy() {
  static const pfc::EffectivePolicy p = pfc::builtinDefaults();
  return p;
}

// RFC 9110 §7.6.1: connection-specific fields a proxy must not forward, plus
// the ones we set ourselves on every attempt.
bool isHopByHop(std::string_view name) {
  static constexpr std::string_view kNames[] = {
      "connection", "keep-alive",       "proxy-connection", "te",
      "transfer-encoding", "upgrade",   "trailer",          "expect",
      "content-length",  "x-envoy-attempt-count", "x-timeout-budget", "x-envoy-expected-rq-timeout-ms",
      "proxy-authorization",
  };
  for (std::string_view n : kNames) {
    if (iequals(name, n)) return true;
  }
  return false;
}

// Fields named in the Connection header are hop-by-hop too.
bool namedInConnection(const HeaderList& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (!iequals(k, "connection")) continue;
    size_t pos = 0;
    while (pos < v.size()) {
      size_t comma = v.find(',', pos);
      std::string_view token = std::string_view(v).substr(pos, comma == std::string::npos ? v.npos : comma - pos);
      while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) token.remove_prefix(1);
      while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
      if (iequals(token, name)) return true;
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
  }
  return false;
}

void appendHeaders(std::string* out, const HeaderList& headers) {
  for (const auto& [k, v] : headers) {
    if (isHopByHop(k) || namedInConnection(headers, k)) continue;
    out->append(k).append(": ").append(v).append("\r\n");
  }
}

void appendChunk(evbuffer* out, const char* data, size_t len) {
  if (len == 0) return;
  evbuffer_add_printf(out, "%zx\r\n", len);
  evbuffer_add(out, data, len);
  evbuffer_add(out, "\r\n", 2);
}

void appendLastChunk(evbuffer* out, const HeaderList* trailers) {
  evbuffer_add(out, "0\r\n", 3);
  if (trailers) {
    for (const auto& [k, v] : *trailers) evbuffer_add_printf(out, "%s: %s\r\n", k.c_str(), v.c_str());
  }
  evbuffer_add(out, "\r\n", 2);
}

}  // namespace

ProxyStream::ProxyStream(Http1Session* session, MessageHead& head, int64_t start_us)
    : session_(session),
      worker_(&session->worker()),
      start_us_(start_us),
      start_unix_ms_(unixMs()),
      method_(std::move(head.method)),
      headers_(std::move(head.headers)),
      version_minor_(head.version_minor),
      keep_alive_(head.keep_alive),
      chunked_(head.chunked),
      has_length_(head.has_content_length),
      content_length_(head.content_length),
      replay_(evbuffer_new()),
      deadline_timer_(worker_->base(), [this] { onDeadline(); }),
      backoff_timer_(worker_->base(), [this] { startAttempt(); }) {
  upgrade_ = head.upgrade && method_ != "CONNECT";
  connect_ = method_ == "CONNECT";
  // A request without a body is complete with its head.
  request_complete_ = !chunked_ && (!has_length_ || content_length_ == 0);
  const std::string* expect = findHeader(headers_, "expect");
  expect_continue_ = expect && iequals(*expect, "100-continue");
  // Absolute-form (a proxy request: curl -x, HTTP_PROXY): the target names
  // the destination; the upstream gets origin-form.
  std::string& target = head.target;
  if (connect_) {
    // Authority-form (RFC 9110 §9.3.6): "host:port" names the destination.
    authority_ = target;
    path_ = target;
    std::string_view h;
    uint16_t port = 0;
    if (net::splitHostPort(target, &h, &port)) {
      absolute_host_ = std::string(h);
      absolute_port_ = port;
    }
  } else if (target.compare(0, 7, "http://") == 0) {
    size_t host_end = target.find_first_of("/?", 7);
    std::string authority = target.substr(7, host_end == std::string::npos ? std::string::npos : host_end - 7);
    path_ = host_end == std::string::npos ? "/" : target.substr(host_end);
    if (path_[0] == '?') path_ = "/" + path_;
    authority_ = authority;
    std::string_view h;
    uint16_t port = 80;
    if (net::splitHostPort(authority, &h, &port)) {
      absolute_host_ = std::string(h);
    } else {
      absolute_host_ = authority;
      port = 80;
    }
    absolute_port_ = port;
  } else {
    path_ = std::move(target);
    const std::string* host = findHeader(headers_, "host");
    authority_ = host ? *host : "";
  }
}

ProxyStream::~ProxyStream() {
  if (connect_bev_) bufferevent_free(connect_bev_);
  attempt_.reset();
  resolving_.reset();
  evbuffer_free(replay_);
}

// ------------------------------------------------------------- the start --

void ProxyStream::start() {
  worker_->counters().requests.add();
  // The policy snapshot this request keeps to its end (DESIGN.md: requests
  // in flight keep the snapshot they started with).
  table_ = worker_->policy().current(start_us_);
  const auto& orig = session_->connection().originalDst();
  uint16_t port = orig ? orig->port() : absolute_port_;
  if (port == 0) {
    std::string_view h;
    uint16_t p = 0;
    port = net::splitHostPort(authority_, &h, &p) ? p : 80;
  }
  if (table_) {
    match_ = table_->lookup(pfc::RequestKey{authority_, port, method_, path_, false});
    policy_ = match_.policy;
    if (match_.service != pfc::Match::kNone) service_name_ = table_->str(table_->services()[match_.service].name);
  } else {
    policy_ = &builtinPolicy();
  }
  (route_stats_ = &worker_->routeStats().forMatch(table_.get(), match_))->request();
  budget_ = &worker_->shared().budgets.get(service_name_);
  budget_->recordRequest(start_us_, policy_->budget);

  deadline_ = retry::computeDeadline(start_us_, *policy_, findHeader(headers_, "grpc-timeout"),
                                     findHeader(headers_, "x-timeout-budget"));
  if (!deadline_.none()) deadline_timer_.armUs(deadline_.remaining(start_us_));
  const std::string* key = nullptr;
  if (!policy_->retry.idempotencyHeader().empty()) key = findHeader(headers_, policy_->retry.idempotencyHeader());
  retry::RequestFacts facts;
  facts.method = method_;
  facts.has_idempotency_key = key != nullptr;
  if (has_length_) facts.body_size = content_length_;
  retry_ = std::make_unique<retry::RetryState>(*policy_, facts, deadline_);
  if (policy_->retry.num_retries == 0) replayable_ = false;  // nothing to replay for

  // We answer 100 Continue ourselves and buffer the body: the upstream gets
  // no Expect (we may need to replay the body to another attempt anyway).
  if (expect_continue_) session_->sendContinue();
  pickDestination();
}

void ProxyStream::pickDestination() {
  // DESIGN.md "Where a request goes", in order.
  const auto& orig = session_->connection().originalDst();
  if (orig) {
    destinationResolved(*orig);
    return;
  }
  std::string host;
  uint16_t port = 0;
  std::string source;
  if (!absolute_host_.empty()) {
    host = absolute_host_;
    port = absolute_port_;
    source = "proxy request target";
  } else if (table_ && match_.service != pfc::Match::kNone) {
    std::string_view upstream = table_->str(table_->services()[match_.service].upstream);
    std::string_view h;
    if (!upstream.empty() && net::splitHostPort(upstream, &h, &port)) {
      host = std::string(h);
      source = "policy upstream";
    }
  }
  if (host.empty()) {
    sidecar_error_ = "no-destination";
    sendLocalReply(502, "Bad Gateway",
                   "no destination for \"" + authority_ +
                       "\": not an iptables-redirected connection, not a proxy request, and no policy service with "
                       "an upstream matches this host\n",
                   nullptr);
    return;
  }
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  auto cb = [this, host](const net::Address* addr, const char* error) {
    resolving_.reset();
    if (!addr) {
      sidecar_error_ = "dns";
      sendLocalReply(502, "Bad Gateway", std::string("no destination: ") + error + "\n", nullptr);
      return;
    }
    destinationResolved(*addr);
  };
  resolving_ = worker_->resolver().resolve(host, port, event::monotonicNowUs(), cb);
}

void ProxyStream::destinationResolved(const net::Address& addr) {
  if (state_ == State::kDone) return;
  if (connect_) {
    dest_ = addr;
    startConnectTunnel();
    return;
  }
  const net::Address& self = worker_->listenAddress();
  if (addr.port() == self.port() && (addr == self || addr.isLoopback())) {
    sidecar_error_ = "loop";
    sendLocalReply(502, "Bad Gateway", "refusing to proxy to the sidecar's own listener (a redirect loop)\n", nullptr);
    return;
  }
  dest_ = addr;
  startAttempt();
}

void ProxyStream::startConnectTunnel() {
  // CONNECT is not retried: a tunnel's bytes are opaque to us.
  retry_->attemptStarted();
  worker_->counters().upstream_connects.add();
  connect_bev_ = bufferevent_socket_new(worker_->base(), -1, BEV_OPT_CLOSE_ON_FREE);
  bufferevent_setcb(connect_bev_, nullptr, nullptr, &ProxyStream::onConnectTunnelEvent, this);
  timeval tv{static_cast<time_t>(policy_->connect_timeout_us / 1000000),
             static_cast<suseconds_t>(policy_->connect_timeout_us % 1000000)};
  bufferevent_set_timeouts(connect_bev_, nullptr, &tv);  // bounds the connect
  bufferevent_enable(connect_bev_, EV_WRITE);
  if (bufferevent_socket_connect(connect_bev_, dest_.sa(), static_cast<int>(dest_.len)) != 0) {
    bufferevent_free(connect_bev_);
    connect_bev_ = nullptr;
    sidecar_error_ = "connect-failure";
    sendLocalReply(502, "Bad Gateway", "CONNECT to " + dest_.toString() + " failed\n", nullptr);
  }
}

void ProxyStream::onConnectTunnelEvent(bufferevent* bev, short what, void* arg) {
  auto* self = static_cast<ProxyStream*>(arg);
  if (!(what & BEV_EVENT_CONNECTED)) {
    bufferevent_free(bev);
    self->connect_bev_ = nullptr;
    self->worker_->counters().upstream_connect_failures.add();
    self->sidecar_error_ = "connect-failure";
    self->sendLocalReply(502, "Bad Gateway", "CONNECT to " + self->dest_.toString() + " failed\n", nullptr);
    return;
  }
  bufferevent_set_timeouts(bev, nullptr, nullptr);
  self->connect_bev_ = nullptr;
  self->status_ = 200;
  self->response_started_ = true;
  self->state_ = State::kDone;
  self->deadline_timer_.cancel();  // a tunnel lives as long as its peers
  static const char kEstablished[] = "HTTP/1.1 200 Connection established\r\n\r\n";
  evbuffer_add(self->session_->output(), kEstablished, sizeof kEstablished - 1);
  self->worker_->counters().responses_by_class[2].add();
  self->route_stats_->response(200);
  self->logAccess();
  self->session_->upgradeToTunnel(bev);  // may defer-delete us
}

// ------------------------------------------------------------- attempts --

void ProxyStream::appendRequestHead(std::string* out) {
  out->reserve(512);
  out->append(method_).append(" ").append(path_).append(" HTTP/1.1\r\n");
  if (!findHeader(headers_, "host") && !authority_.empty()) out->append("host: ").append(authority_).append("\r\n");
  appendHeaders(out, headers_);
  if (upgrade_) {
    // A WebSocket-style upgrade keeps its handshake fields (hop-by-hop
    // otherwise): the upstream must see them to answer 101.
    if (const std::string* u = findHeader(headers_, "upgrade")) out->append("upgrade: ").append(*u).append("\r\n");
    out->append("connection: upgrade\r\n");
  }
  // x-envoy-attempt-count and the deadline headers, from the engine.
  for (retry::HeaderField f : retry::attemptHeaders(*retry_, event::monotonicNowUs())) {
    out->append(f.name).append(": ").append(f.value).append("\r\n");
  }
  if (chunked_) {
    out->append("transfer-encoding: chunked\r\n");
  } else if (has_length_) {
    out->append("content-length: ").append(std::to_string(content_length_)).append("\r\n");
  }
  out->append("\r\n");
}

void ProxyStream::startAttempt() {
  if (state_ == State::kDone) return;
  int64_t now = event::monotonicNowUs();
  // DESIGN.md: no attempt with less than min_attempt_budget left.
  if (!deadline_.none() && deadline_.remaining(now) < policy_->deadline.min_attempt_budget_us) {
    onDeadline();
    return;
  }
  state_ = State::kAttempting;
  retry_->attemptStarted();
  attempt_ = std::make_unique<UpstreamAttempt>(worker_, static_cast<UpstreamAttempt::Owner*>(this), dest_, method_, policy_->connect_timeout_us,
                                               policy_->read_timeout_us);
  // The deadline timer answers for the whole call ("request"); the attempt's
  // own timer is armed only when the per-try timeout ends sooner.
  int64_t per_try = policy_->retry.per_try_timeout_us;
  int64_t left = deadline_.remaining(now);
  attempt_->setHeaderTimeoutUs(per_try > 0 && per_try < left ? per_try : -1);
  attempt_->setIdleTimeoutUs(policy_->idle_timeout_us);
  std::string head;
  appendRequestHead(&head);
  attempt_->send(head.data(), head.size());
  // Replay what we hold of the body (the first attempt: what arrived so far).
  evbuffer_iovec vecs[16];
  int n = evbuffer_peek(replay_, -1, nullptr, vecs, 16);
  if (n > 16) {
    evbuffer_pullup(replay_, -1);
    n = evbuffer_peek(replay_, -1, nullptr, vecs, 16);
  }
  for (int i = 0; i < n && i < 16; ++i) attempt_->send(static_cast<const char*>(vecs[i].iov_base), vecs[i].iov_len);
  attempt_started_ = true;
  if (!replayable_) evbuffer_drain(replay_, evbuffer_get_length(replay_));  // sent once; never again
  attempt_->start();  // a pooled connection flushes at once
  route_stats_->attemptStarted(attempt_->reused());
}

namespace {
// Appends a copy of `src` to `dst` (src unchanged).
void copyInto(evbuffer* dst, evbuffer* src) {
  size_t n = evbuffer_get_length(src);
  if (n == 0) return;
  evbuffer_iovec vecs[8];
  int count = evbuffer_peek(src, -1, nullptr, vecs, 8);
  if (count > 8) {
    evbuffer_add(dst, evbuffer_pullup(src, -1), n);
    return;
  }
  for (int i = 0; i < count; ++i) evbuffer_add(dst, vecs[i].iov_base, vecs[i].iov_len);
}
}  // namespace

void ProxyStream::sendToUpstream(evbuffer* framed) {
  // Before the first attempt everything waits in replay_ (the first attempt
  // needs it whatever its size); afterwards replay_ keeps a copy only while
  // the body fits max_buffered_body, and the live attempt gets the bytes.
  if (replayable_ && evbuffer_get_length(replay_) + evbuffer_get_length(framed) > policy_->retry.max_buffered_body) {
    replayable_ = false;
    if (attempt_started_) evbuffer_drain(replay_, evbuffer_get_length(replay_));
  }
  if (!attempt_started_) {
    evbuffer_add_buffer(replay_, framed);
    return;
  }
  if (replayable_) copyInto(replay_, framed);
  if (attempt_ && attempt_->state() != UpstreamAttempt::State::kDone) {
    attempt_->send(framed);
    attempt_->flush();
  } else {
    evbuffer_drain(framed, evbuffer_get_length(framed));
  }
}

void ProxyStream::appendBody(const char* data, size_t len) {
  // Framed as the upstream expects: chunked is re-encoded, since llhttp gave
  // us the decoded bytes.
  evbuffer* framed = evbuffer_new();
  if (chunked_) {
    appendChunk(framed, data, len);
  } else {
    evbuffer_add(framed, data, len);
  }
  sendToUpstream(framed);
  evbuffer_free(framed);
}

void ProxyStream::onRequestBody(const char* data, size_t len) {
  request_bytes_ += len;
  if (retry_) retry_->addRequestBodyBytes(len);
  if (state_ == State::kDone) return;  // answered already; the body is discarded
  appendBody(data, len);
}

void ProxyStream::onRequestTrailers(HeaderList& trailers) {
  if (state_ == State::kDone || !chunked_) return;
  evbuffer* framed = evbuffer_new();
  appendLastChunk(framed, &trailers);
  sendToUpstream(framed);
  evbuffer_free(framed);
  trailers_sent_ = true;
}

void ProxyStream::onRequestComplete() {
  request_complete_ = true;
  if (state_ == State::kDone) return;
  if (chunked_ && !trailers_sent_) {
    evbuffer* framed = evbuffer_new();
    appendLastChunk(framed, nullptr);
    sendToUpstream(framed);
    evbuffer_free(framed);
  }
}

bool ProxyStream::maybeRetry(const retry::Outcome& o) {
  if (response_started_) retry_->responseStarted();
  retry::Decision d = retry_->decide(o, core::systemClock(), *budget_, worker_->random());
  if (!d.retry) {
    route_stats_->refused(d.refusal);
    if (d.refusal != retry::Refusal::kNotRetriable && d.refusal != retry::Refusal::kRetriesExhausted) {
      retry_refused_ = retry::refusalName(d.refusal);
    }
    return false;
  }
  route_stats_->retried(o);
  retryAfter(d.wait_us, std::string(o.reason()));
  return true;
}

void ProxyStream::retryAfter(int64_t wait_us, const std::string& reason) {
  worker_->counters().retries.add();
  if (!retry_reasons_.empty()) retry_reasons_ += ",";
  retry_reasons_ += reason;
  if (attempt_) {
    attempt_->cancel();  // we walked away from its response
    worker_->deferDelete(std::move(attempt_));
  }
  state_ = State::kBackoff;
  backoff_timer_.armUs(wait_us);
}

void ProxyStream::onAttemptFailed(retry::OutcomeKind kind, const std::string& why) {
  route_stats_->attemptFailed(kind, attempt_ && attempt_->connectTimedOut());
  retry::Outcome o;
  o.kind = kind;
  LOG_DEBUG("attempt %u for %s %s%s: %s", retry_->attempts(), method_.c_str(), authority_.c_str(), path_.c_str(),
            why.c_str());
  if (maybeRetry(o)) return;
  switch (kind) {
    case retry::OutcomeKind::kPerTryTimeout:
      sendLocalReply(504, "Gateway Timeout", "upstream request timeout", "per-try");
      break;
    case retry::OutcomeKind::kConnectFailure:
      sidecar_error_ = "connect-failure";
      sendLocalReply(502, "Bad Gateway", "upstream connect error: " + why + "\n", nullptr);
      break;
    default:
      sidecar_error_ = "reset";
      sendLocalReply(502, "Bad Gateway", "upstream reset before response: " + why + "\n", nullptr);
      break;
  }
}

void ProxyStream::onAttemptHead(MessageHead& head) {
  upstream_head_us_ = event::monotonicNowUs() - attempt_->sentAtUs();
  route_stats_->upstreamLatency(upstream_head_us_);
  if (!request_complete_) attempt_->forbidReuse();
  retry::Outcome o;
  o.kind = retry::OutcomeKind::kResponse;
  o.status = head.status;
  o.retry_after = findHeader(head.headers, "retry-after");
  if (head.status != 101 && maybeRetry(o)) return;
  // Commit: this response is the one the client gets.
  state_ = State::kStreaming;
  status_ = head.status;
  deadline_timer_.cancel();  // the deadline bounds the wait for headers
  if (head.status == 101 || (method_ == "CONNECT" && head.status / 100 == 2)) {
    // Upgrade (WebSocket): the rest is a tunnel. Hand both sockets over.
    writeResponseHead(head);
    session_->upgradeToTunnel(attempt_->releaseConnection());
    return;
  }
  writeResponseHead(head);
}

void ProxyStream::writeResponseHead(const MessageHead& head) {
  response_started_ = true;
  head_only_ = method_ == "HEAD" || head.status == 204 || head.status == 304 || head.status < 200;
  std::string out;
  out.reserve(512);
  out.append("HTTP/1.1 ").append(std::to_string(head.status)).append(" ").append(head.reason).append("\r\n");
  appendHeaders(&out, head.headers);
  // An upgrade the upstream declined: the client's bytes after its request
  // head are not HTTP we can parse; end the connection after this answer.
  downstream_close_ = !keep_alive_ || session_->worker().draining() || upgrade_;
  if (head.status == 101) {
    // Keep the upgrade handshake's own fields.
    if (const std::string* u = findHeader(head.headers, "upgrade")) out.append("upgrade: ").append(*u).append("\r\n");
    out.append("connection: upgrade\r\n\r\n");
    evbuffer_add(session_->output(), out.data(), out.size());
    return;
  }
  if (head_only_) {
    if (head.has_content_length) out.append("content-length: ").append(std::to_string(head.content_length)).append("\r\n");
  } else if (head.has_content_length && !head.chunked) {
    out.append("content-length: ").append(std::to_string(head.content_length)).append("\r\n");
  } else if (version_minor_ >= 1) {
    downstream_chunked_ = true;
    out.append("transfer-encoding: chunked\r\n");
  } else {
    downstream_close_ = true;  // HTTP/1.0 client: the close ends the body
  }
  if (downstream_close_) out.append("connection: close\r\n");
  out.append("\r\n");
  evbuffer_add(session_->output(), out.data(), out.size());
}

void ProxyStream::onAttemptBody(const char* data, size_t len) {
  if (head_only_) return;
  response_bytes_ += len;
  if (downstream_chunked_) {
    appendChunk(session_->output(), data, len);
  } else {
    evbuffer_add(session_->output(), data, len);
  }
  if (session_->congested()) attempt_->pauseReading(true);
}

void ProxyStream::onAttemptTrailers(HeaderList& trailers) {
  if (downstream_chunked_) {
    appendLastChunk(session_->output(), &trailers);
    response_trailers_sent_ = true;
  }
}

void ProxyStream::onAttemptComplete() {
  if (downstream_chunked_ && !response_trailers_sent_) appendLastChunk(session_->output(), nullptr);
  finish(!downstream_close_);
}

void ProxyStream::onAttemptAborted(const std::string& why) {
  LOG_DEBUG("response from %s broke off: %s", dest_.toString().c_str(), why.c_str());
  route_stats_->attemptAborted(attempt_ && attempt_->readTimedOut());
  sidecar_error_ = "response-aborted";
  state_ = State::kDone;
  deadline_timer_.cancel();
  backoff_timer_.cancel();
  logAccess();
  session_->streamAborted();
}

void ProxyStream::onAttemptReadDone() {
  if (state_ == State::kStreaming) session_->flush();
}

void ProxyStream::onDownstreamDrained() {
  if (attempt_ && state_ == State::kStreaming) attempt_->pauseReading(false);
}

// ------------------------------------------------------------ endings --

void ProxyStream::onDeadline() {
  if (state_ == State::kDone) return;
  route_stats_->timeout(stats::TimeoutKind::kRequest);
  if (response_started_) {
    // HTTP/1 cannot say "timed out" mid-body; the close tells the client.
    onAttemptAborted("request timeout mid-response");
    return;
  }
  sendLocalReply(504, "Gateway Timeout", "upstream request timeout", "request");
}

void ProxyStream::sendLocalReply(int status, const char* reason, const std::string& body, const char* timeout_kind) {
  if (state_ == State::kDone) return;
  if (attempt_) {
    attempt_->cancel();
    worker_->deferDelete(std::move(attempt_));
  }
  resolving_.reset();
  status_ = status;
  if (timeout_kind) timeout_kind_ = timeout_kind;
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\ncontent-type: text/plain\r\n";
  if (timeout_kind) out += std::string("x-mulligan-timeout: ") + timeout_kind + "\r\n";
  out += "content-length: " + std::to_string(body.size()) + "\r\n";
  // An unfinished request body: answer, then close rather than read it all.
  bool close = !keep_alive_ || !request_complete_;
  if (close) out += "connection: close\r\n";
  out += "\r\n";
  if (method_ != "HEAD") out += body;
  evbuffer_add(session_->output(), out.data(), out.size());
  response_started_ = true;
  response_bytes_ = body.size();
  finish(!close);
}

void ProxyStream::finish(bool keep_alive) {
  if (state_ == State::kDone) return;
  state_ = State::kDone;
  deadline_timer_.cancel();
  backoff_timer_.cancel();
  if (status_ >= 100 && status_ < 600) worker_->counters().responses_by_class[status_ / 100].add();
  route_stats_->response(status_);
  logAccess();
  session_->streamFinished(keep_alive);  // may defer-delete us
}

void ProxyStream::abort(const char* why) {
  if (state_ == State::kDone) return;
  LOG_DEBUG("%s %s%s abandoned: %s", method_.c_str(), authority_.c_str(), path_.c_str(), why);
  state_ = State::kDone;
  deadline_timer_.cancel();
  backoff_timer_.cancel();
  resolving_.reset();
  if (attempt_) attempt_->cancel();
  if (!sidecar_error_.size()) sidecar_error_ = "downstream-closed";
  logAccess();
}

void ProxyStream::logAccess() {
  FILE* out = worker_->shared().config.access_log;
  if (!out) return;
  AccessRecord r;
  r.start_unix_ms = start_unix_ms_;
  r.method = method_;
  r.authority = authority_;
  r.path = path_;
  r.protocol = version_minor_ ? "HTTP/1.1" : "HTTP/1.0";
  r.status = status_;
  r.service = service_name_;
  if (table_ && match_.route != pfc::Match::kNone && match_.service != pfc::Match::kNone) {
    r.route = static_cast<int>(match_.route - table_->services()[match_.service].route_begin);
  }
  r.attempts = retry_ ? retry_->attempts() : 0;
  r.retry_reasons = retry_reasons_;
  r.retry_refused = retry_refused_;
  r.timeout = timeout_kind_;
  r.sidecar_error = sidecar_error_;
  r.deadline_ms = deadline_.none() ? -1 : deadline_.budgetUs() / 1000;
  if (dest_.len) r.upstream = dest_.toString();
  r.duration_us = event::monotonicNowUs() - start_us_;
  r.upstream_us = upstream_head_us_;
  r.request_bytes = request_bytes_;
  r.response_bytes = response_bytes_;
  writeAccessLog(out, r);
}

}  // namespace mulligan::proxy
