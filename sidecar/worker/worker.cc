#include "sidecar/worker/worker.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "sidecar/core/logging.h"
#include "sidecar/downstream/connection.h"
#include "sidecar/worker/worker_stream_context.h"

namespace mulligan::proxy {
namespace {

// With EPOLL_USE_CHANGELIST libevent folds the event changes made during one
// loop iteration into one epoll_ctl per socket (a connection registered for
// reading and writing, then for reading only, costs one call, not three).
// libevent's documented caveat is sockets cloned with dup(), which we never
// make.
event_base* newWorkerBase() {
  event_config* cfg = event_config_new();
  event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
  event_base* base = event_base_new_with_config(cfg);
  event_config_free(cfg);
  return base ? base : event_base_new();
}

}  // namespace

Worker::Worker(int index, SharedState* shared)
    : index_(index),
      shared_(shared),
      base_(newWorkerBase()),
      policy_(shared->config.shm, &shared->policy_status),
      pool_(std::make_unique<ConnPool>(
          base_, ConnPool::Limits{.max_connections_per_destination = shared->config.max_upstream_connections})),
      h2pool_(std::make_unique<Http2Pool>(this)),
      random_(static_cast<uint64_t>(event::monotonicNowUs()) * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(index)) {
  // Resolver: the system's /etc/resolv.conf, as the app in the pod sees it,
  // or only the --dns-server given (tests: a name server of their own).
  bool dns_server_ok = true;
  dns_ = net::newDnsBase(base_, shared->config.dns_server, &dns_server_ok);
  if (!dns_server_ok && index == 0) {
    LOG_WARN("--dns-server %s: not a usable name server address", shared->config.dns_server.c_str());
  }
  // Cross-thread wake-up through an eventfd: libevent's own thread support
  // (evthread_use_pthreads) would put a mutex on every event operation.
  drain_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  drain_event_.reset(event_new(base_, drain_fd_, EV_READ, &Worker::onDrain, this));
  event_add(drain_event_.get(), nullptr);
  drain_deadline_.reset(evtimer_new(base_, &Worker::onDrainDeadline, this));
  deleter_ = std::make_unique<event::DeferredDeleter>(base_);
  timer_queues_ = std::make_unique<event::TimerQueues>(base_);
  chooseIoPath(shared->config);
  resolver_ = std::make_unique<net::Resolver>(dns_, shared->config.dns_ttl_us);
  endpoints_ = std::make_unique<Endpoints>(&stats_.endpoints);
  max_connections_ = shared->config.max_connections;
  gate_ =
      std::make_unique<net::AcceptGate>(base_, "worker " + std::to_string(index), /*keep_spare=*/false,
                                        [this](net::AcceptGate::Reason r, bool paused) { onAcceptPause(r, paused); });
  // Requests check the policy generation themselves; this tick keeps the
  // view (and /ready) current when no traffic flows.
  policy_tick_.reset(event_new(base_, -1, EV_PERSIST, &Worker::onPolicyTick, this));
  timeval tv{0, 250'000};
  event_add(policy_tick_.get(), &tv);
  // A table published before we started is loaded now, before main() opens
  // the admin endpoint: /ready is 200 from its first answer, not after the
  // first tick (the worker's thread has not started; the view is ours).
  policy_.refresh(event::monotonicNowUs());

  // What the layers below see of this worker (their contexts).
  const Config& cfg = shared->config;
  upstream_ = {.base = base_,
               .pool = pool_.get(),
               .h2pool = h2pool_.get(),
               .io_ring = io_ring_.get(),
               .send_batch = io_ring_ ? static_cast<net::SendBatch*>(io_ring_.get()) : aio_sends_.get(),
               .timer_queues = timer_queues_.get(),
               .counters = &stats_.counters,
               .deleter = deleter_.get(),
               .limits = {.max_header_bytes = cfg.max_header_bytes,
                          .max_upstream_connections = cfg.max_upstream_connections}};
  stream_context_ = std::make_unique<WorkerStreamContext>(WorkerStreamContext::Parts{
      .upstream = this,
      .timer_queues = timer_queues_.get(),
      .policy = &policy_,
      .route_stats = &stats_.routes,
      .budgets = &shared->budgets,
      .resolver = resolver_.get(),
      .endpoints = endpoints_.get(),
      .random = &random_,
      .listen_addrs = &listen_addrs_,
      .access_log = cfg.access_log,
      .worker_index = index_});
  downstream_limits_ = {.max_header_bytes = cfg.max_header_bytes,
                        .max_headers = cfg.max_headers,
                        .request_header_timeout_us = cfg.request_header_timeout_us,
                        .idle_timeout_us = cfg.downstream_idle_timeout_us};
}

StreamContext& Worker::streamContext() { return *stream_context_; }

void Worker::chooseIoPath(const Config& cfg) {
  // HTTP/1 sockets receive and send through io_uring where the kernel and
  // the seccomp profile allow it; else they receive with epoll and their
  // sends are batched through Linux AIO (what RuntimeDefault allows).
  std::string no_ring = "io_uring off (--io-uring off)";
  if (cfg.io_uring) {
    std::string why;
    io_ring_ = net::IoRing::create(base_, &why);
    if (io_ring_) {
      stats_.counters.io_uring.add();
      return;
    }
    no_ring = "io_uring unavailable (" + why + ")";
  }
  std::string sends = "one send(2) each (--aio off)";
  if (cfg.aio) {
    std::string why;
    aio_sends_ = net::AioSendBatch::create(base_, &why);
    if (aio_sends_) stats_.counters.aio.add();
    sends = aio_sends_ ? "batched through Linux AIO" : "one send(2) each (Linux AIO unavailable: " + why + ")";
  }
  if (index_ == 0) LOG_INFO("%s: sockets receive with epoll, sends %s", no_ring.c_str(), sends.c_str());
}

void Worker::onPolicyTick(evutil_socket_t, short, void* arg) {
  auto* w = static_cast<Worker*>(arg);
  w->policy_.refresh(event::monotonicNowUs());
}

Worker::~Worker() {
  if (thread_.joinable()) thread_.join();
  gate_.reset();  // (the connections freed below report to no gate)
  for (evconnlistener* l : listeners_) evconnlistener_free(l);
  for (Connection* c : connections_) delete c;
  connections_.clear();
  deleter_.reset();
  h2pool_.reset();  // after the calls that used its sessions
  timer_queues_.reset();  // after the calls that armed them
  resolver_.reset();  // cancels its lookups still out (a refresh, a call's whose connection went above)
  drain_event_.reset();
  drain_deadline_.reset();
  policy_tick_.reset();
  if (drain_fd_ >= 0) ::close(drain_fd_);
  pool_.reset();  // its bufferevents must go before the base
  io_ring_.reset();  // after every reader detached
  aio_sends_.reset();  // after every writer (connections, pool) went
  // Last before the base, with nothing else on it: evdns calls the
  // cancelled lookups back from the loop, which shutdownDns runs once more
  // (before, evdns_base_free(dns_, 0) dropped them uncalled, and their
  // bookkeeping leaked at exit).
  net::shutdownDns(base_, dns_);
  dns_ = nullptr;
  event_base_free(base_);
}

bool Worker::listen(const net::Address& addr, std::string* error) {
  // SO_REUSEPORT: every worker has its own listening socket on the same port
  // and the kernel spreads connections across them — no shared accept lock.
  unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT | LEV_OPT_CLOSE_ON_EXEC;
  evconnlistener* listener = evconnlistener_new_bind(base_, &Worker::onAccept, this, flags, 1024, addr.sa(),
                                                     static_cast<int>(addr.len));
  if (!listener) {
    *error = "cannot listen on " + addr.toString() + ": " + evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
    return false;
  }
  // Accepted sockets inherit TCP_NODELAY from their listener (Linux copies
  // the listener's socket options into each new connection): one setsockopt
  // here instead of one per connection. The sessions write whole responses
  // and frames and must not wait for the previous segment's ACK (Nagle).
  int one = 1;
  setsockopt(evconnlistener_get_fd(listener), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  auto bound = net::localAddress(evconnlistener_get_fd(listener));
  listen_addrs_.push_back(bound ? *bound : addr);
  listeners_.push_back(listener);
  gate_->add(listener);
  return true;
}

void Worker::start() {
  thread_ = std::thread([this] {
    event_base_dispatch(base_);
    LOG_DEBUG("worker %d stopped", index_);
  });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::requestDrain() {
  uint64_t one = 1;
  ssize_t n = ::write(drain_fd_, &one, sizeof one);
  (void)n;  // an eventfd write of 1 cannot fail short of overflow
}

void Worker::onDrain(evutil_socket_t, short, void* arg) { static_cast<Worker*>(arg)->beginDrain(); }

void Worker::onDrainDeadline(evutil_socket_t, short, void* arg) {
  auto* w = static_cast<Worker*>(arg);
  LOG_WARN("worker %d: drain timeout with %zu connections open; closing them", w->index_, w->connections_.size());
  event_base_loopbreak(w->base_);
}

void Worker::beginDrain() {
  if (draining_) return;
  draining_ = true;
  gate_->clear();
  for (evconnlistener* l : listeners_) evconnlistener_free(l);
  listeners_.clear();
  policy_tick_.reset();  // nothing left to keep current; lets the loop end
  int64_t us = shared_->config.drain_timeout_us;
  timeval tv{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
  evtimer_add(drain_deadline_.get(), &tv);
  // Copy: drain() may close connections, which edits the set.
  std::vector<Connection*> conns(connections_.begin(), connections_.end());
  for (Connection* c : conns) c->drain();
  maybeExit();
}

void Worker::maybeExit() {
  if (!draining_ || !connections_.empty()) return;
  // Idle pooled connections and DNS are not worth waiting for.
  event_base_loopexit(base_, nullptr);
}

void Worker::onAccept(evconnlistener*, evutil_socket_t fd, sockaddr* addr, int len, void* arg) {
  auto* w = static_cast<Worker*>(arg);
  auto peer = net::Address::fromSockaddr(addr, static_cast<socklen_t>(len));
  if (!peer || w->draining_) {
    evutil_closesocket(fd);
    return;
  }
  w->stats_.counters.downstream_accepted.add();
  w->stats_.counters.downstream_active.add();
  w->gate_->accepted();
  auto* c = new Connection(w, fd, *peer);
  w->connections_.insert(c);
  // At the bound the listeners stop before the next accept (libevent's
  // accept loop checks after each callback): the rest wait in the backlog.
  ++w->held_;
  w->gate_->setOpen(w->held_, w->max_connections_);
  c->start();
}

void Worker::onAcceptPause(net::AcceptGate::Reason reason, bool paused) {
  stats::WorkerCounters& c = stats_.counters;
  stats::Counter& now =
      reason == net::AcceptGate::Reason::kResources ? c.accept_paused_resources_now : c.accept_paused_bound_now;
  if (!paused) {
    now.sub();
    return;
  }
  now.add();
  if (reason == net::AcceptGate::Reason::kResources) {
    stats_.counters.accept_paused_resources.add();
  } else {
    stats_.counters.accept_paused_bound.add();
  }
}

void Worker::connectionClosed(Connection* c) {
  if (connections_.erase(c) == 0) return;
  stats_.counters.downstream_active.sub();
  deleter_->defer(std::unique_ptr<event::Deletable>(c));
  maybeExit();
}

void Worker::connectionFreed() {
  --held_;
  if (draining_ || !gate_) return;  // not accepting any more (or tearing down)
  gate_->setOpen(held_, max_connections_);
  gate_->connectionClosed();  // descriptors came free: accept again if that was what stopped it
}

}  // namespace mulligan::proxy
