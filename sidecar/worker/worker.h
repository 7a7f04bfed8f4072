// Worker: one thread, one libevent loop, and everything a request needs on
// it — its own listener on each outbound address (SO_REUSEPORT), policy
// view, upstream connection pool, DNS resolver and counters — so that
// nothing on the request path takes a lock. The only state shared between
// workers is read-mostly (the policy status) or atomic (retry budgets).
#pragma once

#include <event2/dns.h>
#include <event2/listener.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "sidecar/event/event_loop.h"
#include "sidecar/event/timer_queue.h"
#include "sidecar/net/address.h"
#include "sidecar/net/io_ring.h"
#include "sidecar/net/resolver.h"
#include "sidecar/core/random.h"
#include "sidecar/retry/retry_state.h"
#include "sidecar/policy/policy_view.h"
#include "sidecar/worker/accept_gate.h"
#include "sidecar/upstream/conn_pool.h"
#include "sidecar/upstream/http2_client.h"
#include "sidecar/worker/shared_state.h"

namespace mulligan::proxy {

class Connection;
class StreamContext;
class WorkerStreamContext;

class Worker {
 public:
  Worker(int index, SharedState* shared);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Binds one more outbound listener (port 0 picks one; workers after the
  // first pass the address the first one got). Called before start(), once
  // per --outbound address.
  bool listen(const net::Address& addr, std::string* error);
  // The first listener's address (the loop check compares its port).
  const net::Address& listenAddress() const { return listen_addrs_.front(); }
  const std::vector<net::Address>& listenAddresses() const { return listen_addrs_; }

  void start();  // runs the loop on a new thread
  void join();
  // Thread-safe: stop accepting, let in-flight requests finish, close idle
  // connections, exit the loop when nothing is left (or at the drain deadline).
  void requestDrain();

  // --- for connections on this worker's loop only ---
  event_base* base() const { return base_; }
  evdns_base* dns() const { return dns_; }
  policy::PolicyView& policy() { return policy_; }
  ConnPool& pool() { return *pool_; }
  // HTTP/2 upstream sessions, per destination.
  Http2Pool& h2pool() { return *h2pool_; }
  SharedState& shared() { return *shared_; }
  WorkerCounters& counters() { return counters_; }
  // Per service/route counters (this worker writes them; the admin reads).
  stats::WorkerStats& routeStats() { return route_stats_; }
  bool draining() const { return draining_; }
  int index() const { return index_; }
  // Connections report their end; the worker destroys them from the loop.
  void connectionClosed(Connection* c);
  // From ~Connection: its sockets are closed. The bound on connections
  // counts until here, not until connectionClosed(): a connection ended in
  // this loop iteration still holds its descriptors until it is freed.
  void connectionFreed();
  // Destroys `obj` on the next loop iteration (never inside its own callback).
  void deferDelete(std::unique_ptr<event::Deletable> obj) { deleter_->defer(std::move(obj)); }
  net::Resolver& resolver() { return *resolver_; }
  // Timers many calls arm with one duration (deadlines from policy).
  event::TimerQueues& timerQueues() { return *timer_queues_; }
  // How long a downstream connection may sit idle (no request in flight, no
  // bytes): the policy's [defaults] idle_timeout, else the built-in 60 s.
  int64_t downstreamIdleTimeoutUs();
  core::Random& random() { return random_; }
  // Hot sockets receive through it; null: with epoll (see net::IoRing).
  net::IoRing* ioRing() { return io_ring_.get(); }
  // What the calls on this worker (ProxyStream) use of it.
  StreamContext& streamContext();

 private:
  static void onAccept(evconnlistener*, evutil_socket_t fd, sockaddr* addr, int len, void* arg);
  void onAcceptPause(AcceptGate::Reason reason, bool paused);
  static void onDrain(evutil_socket_t, short, void* arg);
  static void onDrainDeadline(evutil_socket_t, short, void* arg);
  static void onPolicyTick(evutil_socket_t, short, void* arg);
  void beginDrain();
  void maybeExit();

  int index_;
  SharedState* shared_;
  event_base* base_ = nullptr;
  evdns_base* dns_ = nullptr;
  std::vector<evconnlistener*> listeners_;  // one per --outbound address
  std::vector<net::Address> listen_addrs_;
  // Pauses the listeners at --max-connections and when accept runs out of
  // descriptors (see AcceptGate); max_connections_ 0 = no bound.
  std::unique_ptr<AcceptGate> gate_;
  size_t max_connections_ = 0;
  size_t held_ = 0;  // accepted connections not yet freed (what the bound counts)
  policy::PolicyView policy_;
  std::unique_ptr<ConnPool> pool_;  // freed before the loop it lives on
  std::unique_ptr<Http2Pool> h2pool_;
  WorkerCounters counters_;
  stats::WorkerStats route_stats_;
  int drain_fd_ = -1;  // eventfd: requestDrain() from another thread
  event::EventPtr drain_event_;
  event::EventPtr drain_deadline_;
  event::EventPtr policy_tick_;
  std::unordered_set<Connection*> connections_;
  std::unique_ptr<event::DeferredDeleter> deleter_;
  std::unique_ptr<net::Resolver> resolver_;
  std::unique_ptr<net::IoRing> io_ring_;  // outlives every connection
  std::unique_ptr<event::TimerQueues> timer_queues_;  // outlives every call (freed after them)
  core::SplitMix64 random_;  // per worker: no shared state
  std::unique_ptr<WorkerStreamContext> stream_context_;

  bool draining_ = false;
  std::thread thread_;
};

}  // namespace mulligan::proxy
