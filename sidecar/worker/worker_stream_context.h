// WorkerStreamContext: the StreamContext (stream/stream_context.h) of the
// calls on one worker — its loop and timer queues, its policy view, its
// counters, the shared budgets, its resolver and its transports.
#pragma once

#include "sidecar/stream/stream_context.h"
#include "sidecar/upstream/transports.h"

namespace mulligan::proxy {

class Worker;

class WorkerStreamContext final : public StreamContext {
 public:
  explicit WorkerStreamContext(Worker* worker) : worker_(worker), transports_(worker) {}

  const core::Clock& clock() override { return clock_; }
  core::Random& random() override;
  void armTimer(CallTimer& t, int64_t us, bool repeating) override { t.loopTimer().armUs(us, repeating); }
  void cancelTimer(CallTimer& t) override { t.loopTimer().cancel(); }
  event_base* base() override;
  event::TimerQueues* timerQueues() override;
  std::shared_ptr<const pfc::Table> policyTable(int64_t now_us) override;
  stats::RouteCounters& routeCounters(const pfc::Table* table, const pfc::Match& m) override;
  retry::RetryBudget& budget(std::string_view service) override;
  WorkerCounters& counters() override;
  FILE* accessLog() override;
  net::Resolver* resolver() override;
  const net::Address& listenAddress() override;
  AttemptFactory& attempts() override { return transports_; }
  void deferDelete(std::unique_ptr<event::Deletable> obj) override;

 private:
  // The loop's "now" (event::monotonicNowUs(): one clock read per burst of
  // work); the wall clock for HTTP-dates.
  class LoopClock final : public core::Clock {
   public:
    int64_t nowUs() const override;
    int64_t systemNowUnixSeconds() const override { return core::systemClock().systemNowUnixSeconds(); }
  };

  Worker* worker_;
  LoopClock clock_;
  Transports transports_;
};

}  // namespace mulligan::proxy
