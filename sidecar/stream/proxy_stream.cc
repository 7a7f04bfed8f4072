#include "sidecar/stream/proxy_stream.h"

#include <cstring>

#include "sidecar/codec/header_stock.h"
#include "sidecar/codec/http2/http2_memory.h"
#include "sidecar/core/logging.h"
#include "sidecar/retry/attempt_headers.h"

namespace mulligan::proxy {
namespace {

const pfc::EffectivePolicy& builtinPolicy() {
  static const pfc::EffectivePolicy p = pfc::builtinDefaults();
  return p;
}

// The request fields a call reads as it starts, found in one pass over the
// head instead of one findHeader() each: the first field of each name,
// case-insensitively, as findHeader() gives it.
struct StartFields {
  std::optional<std::string_view> content_type;
  std::optional<std::string_view> connect_protocol_version;
  std::optional<std::string_view> grpc_timeout;
  std::optional<std::string_view> timeout_budget;
  std::optional<std::string_view> connect_timeout;
};

StartFields findStartFields(const HeaderList& headers) {
  StartFields f;
  for (const auto& [name, value] : headers) {
    std::optional<std::string_view>* slot = nullptr;
    switch (name.size()) {  // the names differ in length but for two
      case 12:
        if (iequals(name, "content-type")) {
          slot = &f.content_type;
        } else if (iequals(name, "grpc-timeout")) {
          slot = &f.grpc_timeout;
        }
        break;
      case 16:
        if (iequals(name, "x-timeout-budget")) slot = &f.timeout_budget;
        break;
      case 18:
        if (iequals(name, "connect-timeout-ms")) slot = &f.connect_timeout;
        break;
      case 24:
        if (iequals(name, "connect-protocol-version")) slot = &f.connect_protocol_version;
        break;
      default:
        break;
    }
    if (slot != nullptr && !*slot) *slot = value;
  }
  return f;
}

}  // namespace

// The timers' callbacks (CallTimer takes a plain function and its argument).
void ProxyStream::deadlineFired(void* self) { static_cast<ProxyStream*>(self)->onDeadline(); }
void ProxyStream::backoffFired(void* self) { static_cast<ProxyStream*>(self)->startAttempt(); }
void ProxyStream::hedgeFired(void* self) { static_cast<ProxyStream*>(self)->onHedgeTimer(); }

ProxyStream::ProxyStream(Downstream* downstream, int64_t start_us)
    : down_(downstream),
      ctx_(downstream->streamContext()),
      start_us_(start_us),
      deadline_timer_(ctx_, &ProxyStream::deadlineFired, this) {}

// The same, with the head moved in as it is constructed (not made empty and
// then assigned: a call is made per request).
ProxyStream::ProxyStream(Downstream* downstream, RequestHead&& head, int64_t start_us)
    : down_(downstream),
      ctx_(downstream->streamContext()),
      start_us_(start_us),
      req_(std::move(head)),
      deadline_timer_(ctx_, &ProxyStream::deadlineFired, this) {}

CallTimer& ProxyStream::backoffTimer() {
  if (!backoff_timer_) backoff_timer_.emplace(ctx_, &ProxyStream::backoffFired, this);
  return *backoff_timer_;
}

CallTimer& ProxyStream::hedgeTimer() {
  if (!hedge_timer_) hedge_timer_.emplace(ctx_, &ProxyStream::hedgeFired, this);
  return *hedge_timer_;
}

void ProxyStream::cancelTimers() {
  deadline_timer_.cancel();
  if (backoff_timer_) backoff_timer_->cancel();
  if (hedge_timer_) hedge_timer_->cancel();
}

ProxyStream::~ProxyStream() {
  abandonTunnelConnect();
  attempts_.clear();
  resolving_.reset();
  giveHttp2StreamBuffer(replay_);  // (drained: the next call's replay buffer)
  // The request's header storage serves the next request's head.
  HeaderStock& stock = HeaderStock::local();
  stock.give(std::move(req_.headers));
  if (request_trailers_) stock.give(std::move(*request_trailers_));
  stock.giveString(std::move(req_.path));
  stock.giveString(std::move(req_.authority));
}

size_t ProxyStream::requestBacklog() const {
  // No body, no backlog: the common case answers without asking the attempt
  // (the downstream asks after every read and every drain).
  if (!req_.body_follows) return 0;
  if (!attempt_started_) return replay_ ? evbuffer_get_length(replay_) : 0;
  Attempt* a = attempts_.newest();
  return a ? a->requestBacklog() : 0;
}

// ------------------------------------------------------------- the start --

void ProxyStream::start() {
  connect_ = std::string_view(req_.method) == "CONNECT" && down_->protocol() == Protocol::kHttp1;
  request_complete_ = !req_.body_follows;
  StartFields fields = findStartFields(req_.headers);
  grpc_ = isGrpcContentType(fields.content_type);
  // Connect (connectrpc.com): a unary call has a body, so a content type;
  // a request without one is not looked at further.
  if (!grpc_ && fields.content_type) connect_rpc_ = connectKind(fields.content_type, fields.connect_protocol_version);
  ctx_.counters().requests.add();
  // The policy snapshot this request keeps to its end (DESIGN.md: requests
  // in flight keep the snapshot they started with).
  table_ = ctx_.policyTable(start_us_);
  const auto& orig = down_->originalDst();
  uint16_t port = orig ? orig->port() : req_.absolute_port;
  if (port == 0) {
    std::string_view h;
    uint16_t p = 0;
    port = net::splitHostPort(req_.authority, &h, &p) ? p : 80;
  }
  if (table_) {
    match_ = table_->lookup(pfc::RequestKey{req_.authority, port, req_.method, req_.path, grpc_});
    policy_ = match_.policy;
    if (match_.service != pfc::Match::kNone) service_name_ = table_->str(table_->services()[match_.service].name);
  } else {
    policy_ = &builtinPolicy();
  }
  route_stats_ = &ctx_.routeCounters(table_.get(), match_);
  route_stats_->request();
  budget_ = &ctx_.budget(service_name_);
  budget_->recordRequest(start_us_, policy_->budget);
  // max_extra_load counts hedges against the route's requests; only routes
  // that hedge pay for counting them.
  if (policy_->hedge.enabled()) route_stats_->hedge_load.recordRequest(start_us_);

  deadline_ = retry::computeDeadline(start_us_, *policy_, fields.grpc_timeout, fields.timeout_budget,
                                     connect_rpc_ != ConnectKind::kNone ? fields.connect_timeout : std::nullopt);
  // A policy's request_timeout is one duration for many calls: the worker's
  // queue for it costs no libevent call per request. A caller's own deadline
  // (grpc-timeout, x-timeout-budget) is any duration: a plain timer.
  if (!deadline_.none()) deadline_timer_.armUs(deadline_.remaining(start_us_), !deadline_.fromInbound());
  std::optional<std::string_view> key;
  if (std::string_view idem = policy_->retry.idempotencyHeader(); !idem.empty()) key = findHeader(req_.headers, idem);
  retry::RequestFacts facts;
  facts.method = req_.method;
  facts.grpc = grpc_;
  facts.connect = connect_rpc_ != ConnectKind::kNone;
  facts.has_idempotency_key = key.has_value();
  if (req_.has_content_length) facts.body_size = req_.content_length;
  retry_.emplace(*policy_, facts, deadline_);
  // Nothing to replay for: no retry, no hedge.
  if (policy_->retry.num_retries == 0 && !policy_->hedge.enabled()) replayable_ = false;
  pickDestination();
}

void ProxyStream::pickDestination() {
  // DESIGN.md "Where a request goes", in order.
  const auto& orig = down_->originalDst();
  if (orig) {
    destinationResolved(*orig);
    return;
  }
  std::string host;
  uint16_t port = 0;
  if (!req_.absolute_host.empty()) {
    host = req_.absolute_host;
    port = req_.absolute_port;
  } else if (table_ && match_.service != pfc::Match::kNone && ctx_.resolver()) {
    std::string_view upstream = table_->str(table_->services()[match_.service].upstream);
    if (const net::Address* numeric = ctx_.resolver()->numericHostPort(upstream)) {
      destinationResolved(*numeric);  // an IP literal (most upstreams): no lookup, no strings
      return;
    }
    std::string_view h;
    if (!upstream.empty() && net::splitHostPort(upstream, &h, &port)) host = std::string(h);
  }
  if (host.empty() || !ctx_.resolver()) {
    sidecar_error_ = "no-destination";
    sendLocalReply(502, "Bad Gateway",
                   "no destination for \"" + req_.authority +
                       "\": not an iptables-redirected connection, not a proxy request, and no policy service with "
                       "an upstream matches this host\n",
                   kGrpcUnavailable);
    return;
  }
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (!connect_ && ctx_.endpoints()) {
    // Every address of the name; attempts spread over them (startAttempt).
    endpoints_ = ctx_.endpoints()->get(service_name_, host, port, now());
    resolving_ = ctx_.resolver()->resolveAll(
        host, now(),
        [this](const net::Resolver::Answer* answer, const char* error) { endpointsResolved(answer, error); });
    return;
  }
  if (connect_) {
    // Every address of the name: a connect that fails goes on to the next.
    resolving_ = ctx_.resolver()->resolveAll(host, now(), [this, port](const net::Resolver::Answer* answer,
                                                                        const char* error) {
      resolving_.reset();
      if (!answer || answer->addrs->empty()) {
        dnsFailed(error);
        return;
      }
      connect_addrs_ = *answer->addrs;  // sorted: IPv4 first
      for (net::Address& a : connect_addrs_) a.setPort(port);
      connect_next_ = 1;
      destinationResolved(connect_addrs_.front());
    });
    return;
  }
  auto cb = [this](const net::Address* addr, const char* error) {
    resolving_.reset();
    if (!addr) {
      dnsFailed(error);
      return;
    }
    destinationResolved(*addr);
  };
  resolving_ = ctx_.resolver()->resolve(host, port, now(), cb);
}

void ProxyStream::dnsFailed(const char* error) {
  sidecar_error_ = "dns";
  sendLocalReply(502, "Bad Gateway", std::string("no destination: ") + (error ? error : "no address") + "\n",
                 kGrpcUnavailable);
}

void ProxyStream::endpointsResolved(const net::Resolver::Answer* answer, const char* error) {
  resolving_.reset();
  if (!answer || answer->addrs->empty()) {
    dnsFailed(error);
    return;
  }
  endpoints_->update(*answer->addrs, answer->version);
  // The loop check looks at every address (they share the port): any one
  // of them may be the one an attempt picks.
  const net::Address& self = ctx_.listenAddress();
  const net::Address* check = &endpoints_->endpoints().front().addr;
  for (const EndpointSet::Endpoint& e : endpoints_->endpoints()) {
    if (e.addr.port() == self.port() && (e.addr == self || e.addr.isLoopback())) check = &e.addr;
  }
  destinationResolved(*check);
}

void ProxyStream::reportEndpoint(const Attempt& a, retry::OutcomeKind kind, int status) {
  if (endpoints_ && a.endpoint() != 0) {
    endpoints_->report(a.endpoint(), endpointResult(kind, status), policy_->outlier, now());
  }
}

void ProxyStream::destinationResolved(const net::Address& addr) {
  if (state_ == State::kDone) return;
  if (connect_) {
    dest_ = addr;
    startConnectTunnel();
    return;
  }
  const net::Address& self = ctx_.listenAddress();
  if (addr.port() == self.port() && (addr == self || addr.isLoopback())) {
    sidecar_error_ = "loop";
    sendLocalReply(502, "Bad Gateway", "refusing to proxy to the sidecar's own listener (a redirect loop)\n",
                   kGrpcUnavailable);
    return;
  }
  dest_ = addr;
  startAttempt();
}

void ProxyStream::startConnectTunnel() {
  // CONNECT is not retried once the tunnel is up (its bytes are opaque to
  // us); before that, a failed connect tries the name's next address
  // (connectTunnelFailed).
  retry_->attemptStarted();
  ctx_.counters().upstream_connects.add();
  connect_bev_ = bufferevent_socket_new(ctx_.base(), -1, BEV_OPT_CLOSE_ON_FREE);
  bufferevent_setcb(connect_bev_, nullptr, nullptr, &ProxyStream::onConnectTunnelEvent, this);
  timeval tv{static_cast<time_t>(policy_->connect_timeout_us / 1000000),
             static_cast<suseconds_t>(policy_->connect_timeout_us % 1000000)};
  bufferevent_set_timeouts(connect_bev_, nullptr, &tv);  // bounds the connect
  bufferevent_enable(connect_bev_, EV_WRITE);
  if (bufferevent_socket_connect(connect_bev_, dest_.sa(), static_cast<int>(dest_.len)) != 0) {
    bufferevent_free(connect_bev_);
    connect_bev_ = nullptr;
    connectTunnelFailed();  // (no route to this address's family, say)
  }
}

void ProxyStream::connectTunnelFailed() {
  if (state_ == State::kDone) return;  // answered meanwhile (the deadline)
  if (connect_next_ < connect_addrs_.size() && !deadline_.expired(now())) {
    dest_ = connect_addrs_[connect_next_++];
    startConnectTunnel();
    return;
  }
  sidecar_error_ = "connect-failure";
  sendLocalReply(502, "Bad Gateway", "CONNECT to " + dest_.toString() + " failed\n", kGrpcUnavailable);
}

void ProxyStream::abandonTunnelConnect() {
  // A CONNECT's connect still under way ends with the call (its 504, the
  // client gone), not when this object goes: nothing may reach the upstream
  // after the answer, and a late "connected" must not open a tunnel behind it.
  if (!connect_bev_) return;
  bufferevent_free(connect_bev_);
  connect_bev_ = nullptr;
}

void ProxyStream::onConnectTunnelEvent(bufferevent* bev, short what, void* arg) {
  auto* self = static_cast<ProxyStream*>(arg);
  if (!(what & BEV_EVENT_CONNECTED)) {
    bufferevent_free(bev);
    self->connect_bev_ = nullptr;
    self->ctx_.counters().upstream_connect_failures.add();
    self->connectTunnelFailed();
    return;
  }
  bufferevent_set_timeouts(bev, nullptr, nullptr);
  self->connect_bev_ = nullptr;
  self->status_ = 200;
  self->response_started_ = true;
  self->state_ = State::kDone;
  self->deadline_timer_.cancel();  // a tunnel lives as long as its peers
  self->ctx_.counters().responses_by_class[2].add();
  self->route_stats_->response(200);
  self->logAccess();
  self->down_->upgradeToTunnel(bev);  // writes the 200; may defer-delete us
}

// ------------------------------------------------------------- attempts --

void ProxyStream::startAttempt(bool hedge) {
  if (state_ == State::kDone) return;
  int64_t now = this->now();
  // DESIGN.md: no attempt with less than min_attempt_budget left (the
  // engine's rule; a wait it decided may have run into the deadline). The
  // deadline timer answers, at the deadline: a 504 "request" never comes
  // before the time the call was given.
  if (!retry::enoughTimeForAttempt(deadline_, *policy_, now)) {
    if (deadline_.expired(now)) onDeadline();
    return;
  }
  state_ = State::kAttempting;
  if (hedge) {
    retry_->hedgeStarted();
  } else {
    retry_->attemptStarted();
  }
  // A name's addresses: the first attempt spreads (round robin), a retry or
  // hedge goes to one this call has not tried while one is left.
  uint32_t endpoint = 0;
  if (endpoints_) {
    if (const EndpointSet::Endpoint* e = endpoints_->pick(tried_, now)) {
      dest_ = e->addr;
      endpoint = e->id;
      tried_.add(e->id);
    }
  }
  // retry.fresh_connection: every attempt after the first (a retry or a
  // hedge) on a new connection.
  AttemptSpec spec{down_->protocol(), dest_, req_.method,
                   Attempt::Timeouts{policy_->connect_timeout_us, policy_->read_timeout_us}, endpoint,
                   attempt_started_ && policy_->retry.fresh_connection != 0};
  Attempt& a = attempts_.add(ctx_.attempts().newAttempt(this, spec), retry_->attempts(), hedge);
  // The deadline timer answers for the whole call ("request"); the attempt's
  // own timer is armed only when the per-try timeout ends sooner.
  retry::AttemptTimeout timeout = retry::attemptTimeout(deadline_, *policy_, now);
  a.setHeaderTimeoutUs(timeout.perTry() ? timeout.us : -1);
  a.setIdleTimeoutUs(policy_->idle_timeout_us);
  // x-envoy-attempt-count, grpc-previous-rpc-attempts and the deadline
  // headers (grpc-timeout in its wire format), from the engine.
  a.sendHead(req_, retry::attemptHeaders(*retry_, now));
  // Replay what we hold of the body (the first attempt: what arrived so far).
  evbuffer_iovec vecs[16];
  int n = replay_ ? evbuffer_peek(replay_, -1, nullptr, vecs, 16) : 0;
  if (n > 16) {
    evbuffer_pullup(replay_, -1);
    n = evbuffer_peek(replay_, -1, nullptr, vecs, 16);
  }
  for (int i = 0; i < n && i < 16; ++i) a.sendBody(static_cast<const char*>(vecs[i].iov_base), vecs[i].iov_len);
  if (request_complete_ && req_.body_follows) a.endRequest(request_trailers_ ? &*request_trailers_ : nullptr);
  attempt_started_ = true;
  if (!replayable_ && replay_) evbuffer_drain(replay_, evbuffer_get_length(replay_));  // sent once; never again
  a.start();  // a pooled connection flushes at once
  route_stats_->attemptStarted(a.reused());
  if (hedge) {
    route_stats_->hedged();
  } else {
    armHedgeTimer();  // a new round: its first attempt
  }
  // The body held in replay_ is the attempt's now: the app may send more.
  // (Without a body there is no backlog to re-check: the downstream re-checks
  // its own input whenever that changes.)
  if (req_.body_follows) down_->requestBodyConsumed();
}

void ProxyStream::armHedgeTimer() {
  // Cheap exits first: most routes do not hedge.
  if (!policy_->hedge.enabled() || !retry_->mayRepeat()) return;
  std::optional<int64_t> delay = retry::hedgeDelayUs(policy_->hedge, route_stats_->latency_estimate, now());
  if (!delay) return;  // a quantile with too few samples yet: no hedge this round
  hedge_delay_us_ = *delay;
  // A fixed delay is one duration for many calls: the worker's timer queue.
  hedgeTimer().armUs(hedge_delay_us_, policy_->hedge.delay_quantile_permille == 0);
}

void ProxyStream::onHedgeTimer() {
  if (state_ != State::kAttempting || responding_) return;
  retry::HedgeQuery q;
  q.policy = policy_;
  q.may_repeat = retry_->mayRepeat();
  // The whole body must be in replay_ (a hedge sends it at once): the
  // request is complete and nothing of it was let go.
  q.body_in_hand = request_complete_ && replayable_;
  q.response_started = response_started_ || held_head_ != nullptr;
  q.in_flight = attempts_.size();
  q.deadline = &deadline_;
  q.now_us = now();
  retry::HedgeDecision d = retry::decideHedge(q, route_stats_->hedge_load, *budget_);
  if (!d.hedge) {
    route_stats_->hedgeRefused(d.refusal);
    return;
  }
  startAttempt(/*hedge=*/true);
  // The next hedge, one delay later, while fewer than max_attempts are out.
  if (state_ == State::kAttempting && attempts_.size() < policy_->hedge.max_attempts) {
    hedgeTimer().armUs(hedge_delay_us_, policy_->hedge.delay_quantile_permille == 0);
  }
}

void ProxyStream::onRequestBody(const char* data, size_t len) {
  request_bytes_ += len;
  if (retry_) retry_->addRequestBodyBytes(len);
  if (state_ == State::kDone) return;  // answered already; the body is discarded
  // From the worker's stock of empty evbuffers (http2_memory.h: any
  // protocol's body buffer may use it): evbuffer_new and evbuffer_free were
  // a calloc and a free for every call with a body (issue 18: gRPC).
  if (!replay_) replay_ = takeHttp2StreamBuffer();
  // Before the first attempt everything waits in replay_ (the first attempt
  // needs it whatever its size); afterwards replay_ keeps a copy only while
  // the body fits max_buffered_body, and the live attempt gets the bytes.
  if (replayable_ && policy_ && evbuffer_get_length(replay_) + len > policy_->retry.max_buffered_body) {
    replayable_ = false;
    if (attempt_started_) evbuffer_drain(replay_, evbuffer_get_length(replay_));
    if (state_ == State::kBackoff) {
      // A retry was decided while the body still fit; it has outgrown the
      // replay buffer during the wait, so the next attempt could not send
      // it whole. Never send a truncated body: answer instead.
      retry_refused_ = retry::refusalName(retry::Refusal::kBodyTooLarge);
      sidecar_error_ = "body-too-large";
      sendLocalReply(502, "Bad Gateway",
                     "request body outgrew max_buffered_body while waiting to retry; not replayed\n",
                     kGrpcUnavailable);
      return;
    }
  }
  if (!attempt_started_) {
    evbuffer_add(replay_, data, len);
    return;
  }
  if (replayable_) evbuffer_add(replay_, data, len);
  attempts_.forEach([&](Attempt& a) {
    if (a.state() == Attempt::State::kDone) return;
    a.sendBody(data, len);
    a.flush();
  });
}

void ProxyStream::onRequestTrailers(HeaderList& trailers) { request_trailers_ = std::move(trailers); }

void ProxyStream::onRequestComplete() {
  request_complete_ = true;
  // A request without a body was complete when it started (start()): its
  // attempts have all of it, with nothing to end or flush. (Most requests:
  // a virtual endRequest and flush per attempt saved.)
  if (!req_.body_follows) return;
  if (state_ == State::kDone || !attempt_started_) return;
  attempts_.forEach([&](Attempt& a) {
    if (a.state() == Attempt::State::kDone) return;
    a.endRequest(request_trailers_ ? &*request_trailers_ : nullptr);
    a.flush();
  });
}

void ProxyStream::onAttemptRequestDrained(Attempt&, size_t) {
  if (req_.body_follows) down_->requestBodyConsumed();  // (as at the end of startAttempt)
}

bool ProxyStream::maybeRetry(const retry::Outcome& o) {
  if (response_started_) retry_->responseStarted();
  retry::Decision d = retry_->decide(o, ctx_.clock(), *budget_, ctx_.random());
  if (!d.retry) {
    route_stats_->refused(d.refusal);
    if (d.refusal != retry::Refusal::kNotRetriable && d.refusal != retry::Refusal::kRetriesExhausted) {
      retry_refused_ = retry::refusalName(d.refusal);
    }
    return false;
  }
  route_stats_->retried(o);
  retryAfter(d.wait_us, o.reason());
  return true;
}

void ProxyStream::retireAttempt(Attempt& a, bool loser) {
  std::unique_ptr<Attempt> gone = attempts_.take(&a);
  if (!gone) return;
  if (responding_ == &a) responding_ = nullptr;
  // No more callbacks (a no-op for one that ended).
  if (loser) {
    gone->cancelAsLoser();
  } else {
    gone->cancel();
  }
  ctx_.deferDelete(std::move(gone));
}

void ProxyStream::retireAttempts(const Attempt* keep) {
  for (size_t i = attempts_.size(); i-- > 0;) {
    if (Attempt* a = attempts_.at(i); a != keep) retireAttempt(*a, /*loser=*/keep != nullptr);
  }
}

void ProxyStream::retryAfter(int64_t wait_us, std::string_view reason) {
  ctx_.counters().retries.add();
  held_head_.reset();
  connect_hold_.reset();
  if (!retry_reasons_.empty()) retry_reasons_ += ",";
  retry_reasons_ += reason;
  retireAttempts();  // we walked away from their responses
  if (hedge_timer_) hedge_timer_->cancel();
  state_ = State::kBackoff;
  backoffTimer().armUs(wait_us);
  // The body is in replay_ now; the downstream may send more.
  down_->requestBodyConsumed();
}

void ProxyStream::onAttemptFailed(Attempt& a, retry::OutcomeKind kind, const std::string& why) {
  reportEndpoint(a, kind);
  route_stats_->attemptFailed(kind, a.connectTimedOut());
  retireAttempt(a);
  // Hedging: another attempt still in flight may yet answer; the call is
  // decided when the last one fails.
  if (!attempts_.empty()) return;
  retry::Outcome o;
  o.kind = kind;
  LOG_DEBUG("attempt %u for %s %s%s: %s", retry_->attempts(), req_.method.c_str(), req_.authority.c_str(),
            req_.path.c_str(), why.c_str());
  if (kind == retry::OutcomeKind::kOverflow) {
    // Our own limit: answered at once, never retried (DESIGN.md: 503 for the
    // sidecar's own overload limits).
    sidecar_error_ = "overflow";
    sendLocalReply(503, "Service Unavailable", "upstream overloaded: " + why + "\n", kGrpcUnavailable,
                   "upstream-connections");
    return;
  }
  if (maybeRetry(o)) return;
  switch (kind) {
    case retry::OutcomeKind::kPerTryTimeout:
      sendTimeoutReply(retry::TimeoutKind::kPerTry);
      break;
    case retry::OutcomeKind::kConnectFailure:
      sidecar_error_ = "connect-failure";
      sendLocalReply(502, "Bad Gateway", "upstream connect error: " + why + "\n", kGrpcUnavailable);
      break;
    case retry::OutcomeKind::kRefusedStream:
      sidecar_error_ = "refused-stream";
      sendLocalReply(502, "Bad Gateway", "upstream refused the stream: " + why + "\n", kGrpcUnavailable);
      break;
    default:
      sidecar_error_ = "reset";
      sendLocalReply(502, "Bad Gateway", "upstream reset before response: " + why + "\n", kGrpcUnavailable);
      break;
  }
}

void ProxyStream::onAttemptHead(Attempt& a, MessageHead& head, bool end_stream) {
  int64_t now = this->now();
  int64_t head_us = now - a.sentAtUs();
  reportEndpoint(a, retry::OutcomeKind::kResponse, head.status);
  route_stats_->upstreamLatency(head_us);
  route_stats_->latency_estimate.record(head_us, now);
  if (!request_complete_) a.forbidReuse();
  retry::Outcome o;
  o.kind = retry::OutcomeKind::kResponse;
  o.status = head.status;
  o.retry_after = findHeader(head.headers, "retry-after");
  o.overloaded = findHeader(head.headers, retry::kEnvoyOverloadedHeader).has_value();
  if (grpc_) {
    // A trailers-only response carries its grpc-status in the only HEADERS
    // frame; some servers also put it in headers before a body.
    o.grpc_status = parseGrpcStatus(findHeader(head.headers, "grpc-status"));
    o.grpc_pushback = findHeader(head.headers, "grpc-retry-pushback-ms");
  }
  if (head.status != 101 && attempts_.size() > 1 && retry_->wouldRetry(o)) {
    // DESIGN.md "Hedging": a retry_on response while another attempt is
    // still out is not retried; the others are awaited (the last one's
    // outcome goes through the ordinary rules).
    retireAttempt(a);
    return;
  }
  upstream_head_us_ = head_us;
  if (grpc_) grpc_status_ = o.grpc_status;
  // A Connect error's code is in its body: decided once that is read.
  bool hold_connect = holdsConnectResponse(head, end_stream) && !o.overloaded;
  if (head.status != 101 && !hold_connect && maybeRetry(o)) return;
  // This head wins: the call's response comes from `a` (held or committed).
  responding_ = &a;
  winner_ = attempts_.numberOf(&a);
  winner_hedge_ = attempts_.isHedge(&a);
  if (hedge_timer_) hedge_timer_->cancel();
  if (attempts_.size() > 1) {
    // The losers, still waiting for their heads: what they waited so far is
    // a lower bound of their latency, and the estimate keeps it (else the
    // slow calls hedging cuts short would vanish from it; see
    // retry/latency_estimator.h).
    attempts_.forEach([&](Attempt& other) {
      if (&other != &a && other.sentAtUs() > 0) route_stats_->latency_estimate.record(now - other.sentAtUs(), now);
    });
  }
  retireAttempts(&a);
  if (hold_connect) {
    held_head_ = std::make_unique<MessageHead>(std::move(head));
    connect_hold_.emplace(connect_rpc_ == ConnectKind::kStreaming, policy_->retry.max_buffered_body);
    return;
  }
  if (grpc_ && !end_stream && head.status == 200 && o.grpc_status == retry::kNoGrpcStatus &&
      policy_->retry.grpc_codes != 0 && retry_->mayRetry() && request_complete_) {
    // Hold the headers: the call's status comes with the trailers, and until
    // a message flows a retriable one can still be retried. Only once the
    // request is complete (unary, server streaming): a client or bidi stream
    // may wait for the headers before it sends on.
    held_head_ = std::make_unique<MessageHead>(std::move(head));
    return;
  }
  commitHead(head, end_stream);
}

void ProxyStream::commitHeldHead() {
  std::unique_ptr<MessageHead> head = std::move(held_head_);
  commitHead(*head, false);
}

void ProxyStream::commitHead(MessageHead& head, bool end_stream) {
  // Commit: this response is the one the client gets.
  state_ = State::kStreaming;
  if (winner_hedge_) route_stats_->hedgeWon();
  status_ = head.status;
  response_started_ = true;
  // For HTTP the deadline bounds the wait for headers; a gRPC deadline bounds
  // the whole call (gRPC "PROTOCOL-HTTP2.md": the server ends it with
  // DEADLINE_EXCEEDED wherever it is).
  // So does a Connect stream's (its end-of-stream message says it).
  if (!grpc_ && connect_rpc_ != ConnectKind::kStreaming) deadline_timer_.cancel();
  if (head.status == 101 && down_->protocol() == Protocol::kHttp1) {
    // Upgrade (WebSocket): the rest is a tunnel. Hand both sockets over.
    down_->writeHead(head, false);
    state_ = State::kDone;
    logAccess();
    down_->upgradeToTunnel(responding_->releaseConnection());
    return;
  }
  down_->writeHeadTaking(head, end_stream);  // (the head's fields are read no more here)
}

void ProxyStream::onAttemptBody(Attempt& a, const char* data, size_t len) {
  if (connect_hold_) {
    onConnectHeldBody(data, len);
    return;
  }
  if (held_head_) commitHeldHead();  // the first message: committed now
  if (state_ != State::kStreaming) return;
  response_bytes_ += len;
  if (connect_rpc_ == ConnectKind::kStreaming) connect_frames_.feed(data, len);
  down_->writeBody(data, len);
  if (down_->congested()) a.pauseReading(true);
}

void ProxyStream::onAttemptTrailers(Attempt&, HeaderList& trailers) {
  if (connect_hold_) releaseConnectHold();  // Connect has no HTTP trailers to read: pass on
  bool decided = false;  // this outcome went through maybeRetry already
  if (held_head_) {
    // Headers, then trailers, no message: the trailers' grpc-status is the
    // attempt's outcome, as for a trailers-only response.
    retry::Outcome o;
    o.kind = retry::OutcomeKind::kResponse;
    o.status = held_head_->status;
    o.grpc_status = parseGrpcStatus(findHeader(trailers, "grpc-status"));
    o.grpc_pushback = findHeader(trailers, "grpc-retry-pushback-ms");
    if (maybeRetry(o)) return;
    commitHeldHead();
    decided = true;
  }
  if (state_ != State::kStreaming) return;
  if (grpc_) {
    int g = parseGrpcStatus(findHeader(trailers, "grpc-status"));
    if (g != retry::kNoGrpcStatus) {
      grpc_status_ = g;
      // A status retry_on names, after a message went downstream: never
      // retried, but the refusal is told (DESIGN.md: a retry that policy
      // allowed but that did not happen says why — response-started).
      if (!decided) {
        retry::Outcome o;
        o.kind = retry::OutcomeKind::kResponse;
        o.status = status_;
        o.grpc_status = g;
        maybeRetry(o);  // response_started_: always refused
      }
    }
  }
  down_->writeTrailers(trailers);
}

void ProxyStream::onAttemptComplete(Attempt&) {
  if (connect_hold_ && connectHoldEnded()) return;  // retried
  if (held_head_) commitHeldHead();
  finish();
}

void ProxyStream::onAttemptAborted(Attempt& a, const std::string& why) {
  LOG_DEBUG("response from %s broke off: %s", dest_.toString().c_str(), why.c_str());
  if (state_ == State::kDone) return;
  if (held_head_) {
    // Nothing went downstream yet: a reset before the response, as far as
    // the client can tell.
    held_head_.reset();
    connect_hold_.reset();
    onAttemptFailed(a, retry::OutcomeKind::kReset, why);
    return;
  }
  route_stats_->attemptAborted(a.readTimedOut());
  endAborted();
}

void ProxyStream::onAttemptReadDone(Attempt&) {
  if (state_ == State::kStreaming) down_->flush();
}

void ProxyStream::onDownstreamDrained() {
  if (responding_ && state_ == State::kStreaming) responding_->pauseReading(false);
}

}  // namespace mulligan::proxy
