// StreamContext: what a ProxyStream needs from the worker it runs on, on
// top of what its attempts need (UpstreamContext): the policy view, the
// per-route counters, the retry budgets, the resolver, the shared timer
// queues, randomness for backoff, the listening address (the loop check)
// and the access log. The seam that keeps stream/ from knowing the Worker
// (worker/ is above it); Downstream::worker() hands it to each ProxyStream.
// DownstreamContext (downstream/) extends it; Worker derives from that.
//
// Inline loads, no virtual call (see UpstreamContext). One worker thread.
#pragma once

#include <vector>

#include "sidecar/core/random.h"
#include "sidecar/event/timer_queue.h"
#include "sidecar/net/address.h"
#include "sidecar/net/resolver.h"
#include "sidecar/policy/policy_view.h"
#include "sidecar/retry/budget.h"
#include "sidecar/stats/route_stats.h"
#include "sidecar/upstream/upstream_context.h"

namespace mulligan::proxy {

class AccessLogWriter;  // sidecar/stream/access_log_writer.h

class StreamContext : public UpstreamContext {
 public:
  // Timers many calls arm with one duration (deadlines from policy).
  event::TimerQueues& timerQueues() { return *stream_.timer_queues; }
  policy::PolicyView& policy() { return *stream_.policy; }
  // Per service/route counters (this worker writes them; the admin reads).
  stats::RouteStats& routeStats() { return *stream_.route_stats; }
  // Per service, shared by every worker (atomics).
  retry::BudgetRegistry& budgets() { return *stream_.budgets; }
  net::Resolver& resolver() { return *stream_.resolver; }
  core::Random& random() { return *stream_.random; }
  // The worker's first listening address (the loop check compares its port).
  const net::Address& listenAddress() const { return stream_.listen_addrs->front(); }
  // Where finished calls are logged; null = off (--access-log).
  AccessLogWriter* accessLog() const { return stream_.access_log; }
  // Which worker this is (0..workers-1): its own ring in the access log.
  int workerIndex() const { return stream_.worker_index; }

 protected:
  StreamContext() = default;
  ~StreamContext() = default;

  // Filled by the derived owner (Worker) before any stream starts.
  struct Parts {
    event::TimerQueues* timer_queues = nullptr;
    policy::PolicyView* policy = nullptr;
    stats::RouteStats* route_stats = nullptr;
    retry::BudgetRegistry* budgets = nullptr;
    net::Resolver* resolver = nullptr;
    core::Random* random = nullptr;
    const std::vector<net::Address>* listen_addrs = nullptr;  // not empty once the worker listens
    AccessLogWriter* access_log = nullptr;
    int worker_index = 0;
  };
  Parts stream_;
};

}  // namespace mulligan::proxy
