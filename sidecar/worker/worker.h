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

#include "sidecar/core/random.h"
#include "sidecar/downstream/downstream_context.h"
#include "sidecar/event/event_loop.h"
#include "sidecar/event/timer_queue.h"
#include "sidecar/net/accept_gate.h"
#include "sidecar/net/address.h"
#include "sidecar/net/aio_send_batch.h"
#include "sidecar/net/io_ring.h"
#include "sidecar/net/resolver.h"
#include "sidecar/policy/policy_view.h"
#include "sidecar/stats/worker_stats.h"
#include "sidecar/upstream/conn_pool.h"
#include "sidecar/upstream/endpoints.h"
#include "sidecar/upstream/http2_client.h"
#include "sidecar/worker/shared_state.h"

namespace mulligan::proxy {

class Connection;
class StreamContext;
class WorkerStreamContext;

// The contexts of the layers below (upstream/upstream_context.h,
// stream/stream_context.h, downstream/downstream_context.h) are what
// connections, calls and attempts see of their worker; it fills them in its
// constructor from the parts it owns.
class Worker final : public DownstreamContext {
 public:
  Worker(int index, SharedState* shared);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Binds one more outbound listener (port 0 picks one; workers after the
  // first pass the address the first one got). Called before start(), once
  // per --outbound address.
  bool listen(const net::Address& addr, std::string* error);
  // Every listener's address, in --outbound order (listenAddress(), from
  // StreamContext, is the first).
  const std::vector<net::Address>& listenAddresses() const { return listen_addrs_; }

  void start();  // runs the loop on a new thread
  void join();
  // Thread-safe: stop accepting, let in-flight requests finish, close idle
  // connections, exit the loop when nothing is left (or at the drain deadline).
  void requestDrain();

  // --- for connections on this worker's loop only (and, through the
  // contexts it derives from, for the layers below) ---
  evdns_base* dns() const { return dns_; }
  SharedState& shared() { return *shared_; }
  // Everything this worker counts, for the admin's sums (stats::collect).
  const stats::WorkerStats& stats() const { return stats_; }
  int index() const { return index_; }
  // DownstreamContext
  bool draining() const override { return draining_; }
  void connectionClosed(Connection* c) override;
  void connectionFreed() override;
  StreamContext& streamContext() override;

 private:
  static void onAccept(evconnlistener*, evutil_socket_t fd, sockaddr* addr, int len, void* arg);
  void onAcceptPause(net::AcceptGate::Reason reason, bool paused);
  static void onDrain(evutil_socket_t, short, void* arg);
  static void onDrainDeadline(evutil_socket_t, short, void* arg);
  static void onPolicyTick(evutil_socket_t, short, void* arg);
  // io_ring_, else aio_sends_ (or neither), as the kernel and `cfg` allow;
  // worker 0 logs which.
  void chooseIoPath(const Config& cfg);
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
  std::unique_ptr<net::AcceptGate> gate_;
  size_t max_connections_ = 0;
  size_t held_ = 0;  // accepted connections not yet freed (what the bound counts)
  policy::PolicyView policy_;
  std::unique_ptr<ConnPool> pool_;  // freed before the loop it lives on
  std::unique_ptr<Http2Pool> h2pool_;
  stats::WorkerStats stats_;  // this worker is the only writer
  int drain_fd_ = -1;  // eventfd: requestDrain() from another thread
  event::EventPtr drain_event_;
  event::EventPtr drain_deadline_;
  event::EventPtr policy_tick_;
  std::unordered_set<Connection*> connections_;
  std::unique_ptr<event::DeferredDeleter> deleter_;
  std::unique_ptr<net::Resolver> resolver_;
  std::unique_ptr<Endpoints> endpoints_;  // after the resolver: calls hold its sets
  std::unique_ptr<net::IoRing> io_ring_;  // outlives every connection
  std::unique_ptr<net::AioSendBatch> aio_sends_;  // without io_ring_; outlives every connection
  std::unique_ptr<event::TimerQueues> timer_queues_;  // outlives every call (freed after them)
  core::SplitMix64 random_;  // per worker: no shared state
  std::unique_ptr<WorkerStreamContext> stream_context_;

  bool draining_ = false;
  std::thread thread_;
};

}  // namespace mulligan::proxy
