// WorkerStreamContext: the StreamContext (stream/stream_context.h) of the
// calls on one worker — its loop and timer queues, its policy view, its
// counters, the shared budgets, its resolver and its transports. The worker
// fills Parts with what it owns; everything outlives the calls.
#pragma once

#include <vector>

#include "sidecar/policy/policy_view.h"
#include "sidecar/stream/stream_context.h"
#include "sidecar/upstream/transports.h"
#include "sidecar/upstream/upstream_context.h"

namespace mulligan::proxy {

class WorkerStreamContext final : public StreamContext {
 public:
  struct Parts {
    UpstreamContext* upstream = nullptr;  // the worker: loop, counters, deferred delete, transports' pools
    event::TimerQueues* timer_queues = nullptr;
    policy::PolicyView* policy = nullptr;
    stats::RouteStats* route_stats = nullptr;
    retry::BudgetRegistry* budgets = nullptr;
    net::Resolver* resolver = nullptr;
    Endpoints* endpoints = nullptr;
    core::Random* random = nullptr;
    const std::vector<net::Address>* listen_addrs = nullptr;  // not empty once the worker listens
    AccessLogWriter* access_log = nullptr;
    int worker_index = 0;
  };
  explicit WorkerStreamContext(const Parts& parts) : parts_(parts), transports_(parts.upstream) {}

  const core::Clock& clock() override { return clock_; }
  core::Random& random() override { return *parts_.random; }
  void armTimer(CallTimer& t, int64_t us, bool repeating) override { t.loopTimer().armUs(us, repeating); }
  void cancelTimer(CallTimer& t) override { t.loopTimer().cancel(); }
  event_base* base() override { return parts_.upstream->base(); }
  event::TimerQueues* timerQueues() override { return parts_.timer_queues; }
  std::shared_ptr<const pfc::Table> policyTable(int64_t now_us) override { return parts_.policy->current(now_us); }
  stats::RouteCounters& routeCounters(const pfc::Table* table, const pfc::Match& m) override {
    return parts_.route_stats->forMatch(table, m);
  }
  retry::RetryBudget& budget(std::string_view service) override { return parts_.budgets->get(service); }
  stats::WorkerCounters& counters() override { return parts_.upstream->counters(); }
  AccessLogWriter* accessLog() override { return parts_.access_log; }
  int workerIndex() override { return parts_.worker_index; }
  net::Resolver* resolver() override { return parts_.resolver; }
  Endpoints* endpoints() override { return parts_.endpoints; }
  const net::Address& listenAddress() override { return parts_.listen_addrs->front(); }
  AttemptFactory& attempts() override { return transports_; }
  void deferDelete(std::unique_ptr<event::Deletable> obj) override { parts_.upstream->deferDelete(std::move(obj)); }

 private:
  // The loop's "now" (event::monotonicNowUs(): one clock read per burst of
  // work); the wall clock for HTTP-dates.
  class LoopClock final : public core::Clock {
   public:
    int64_t nowUs() const override { return event::monotonicNowUs(); }
    int64_t systemNowUnixSeconds() const override { return core::systemClock().systemNowUnixSeconds(); }
  };

  Parts parts_;
  LoopClock clock_;
  Transports transports_;
};

}  // namespace mulligan::proxy
