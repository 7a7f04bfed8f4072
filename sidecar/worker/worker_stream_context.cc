#include "sidecar/worker/worker_stream_context.h"

#include "sidecar/worker/worker.h"

namespace mulligan::proxy {

int64_t WorkerStreamContext::LoopClock::nowUs() const { return event::monotonicNowUs(); }

core::Random& WorkerStreamContext::random() { return worker_->random(); }
event_base* WorkerStreamContext::base() { return worker_->base(); }
event::TimerQueues* WorkerStreamContext::timerQueues() { return &worker_->timerQueues(); }

std::shared_ptr<const pfc::Table> WorkerStreamContext::policyTable(int64_t now_us) {
  return worker_->policy().current(now_us);
}

stats::RouteCounters& WorkerStreamContext::routeCounters(const pfc::Table* table, const pfc::Match& m) {
  return worker_->routeStats().forMatch(table, m);
}

retry::RetryBudget& WorkerStreamContext::budget(std::string_view service) {
  return worker_->shared().budgets.get(service);
}

WorkerCounters& WorkerStreamContext::counters() { return worker_->counters(); }
FILE* WorkerStreamContext::accessLog() { return worker_->shared().config.access_log; }
net::Resolver* WorkerStreamContext::resolver() { return &worker_->resolver(); }
const net::Address& WorkerStreamContext::listenAddress() { return worker_->listenAddress(); }

void WorkerStreamContext::deferDelete(std::unique_ptr<event::Deletable> obj) { worker_->deferDelete(std::move(obj)); }

}  // namespace mulligan::proxy
