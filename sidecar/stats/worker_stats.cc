#include "sidecar/stats/worker_stats.h"

#include <map>
#include <string_view>
#include <utility>

namespace mulligan::stats {
namespace {

void addGlobals(const WorkerCounters& w, GlobalTotals& g) {
  g.downstream_accepted += w.downstream_accepted.get();
  g.downstream_active += w.downstream_active.get();
  g.tunnels += w.tunnels.get();
  g.requests += w.requests.get();
  for (int c = 0; c < 6; ++c) g.responses[c] += w.responses_by_class[c].get();
  g.attempts += w.attempts.get();
  g.retries += w.retries.get();
  g.upstream_connects += w.upstream_connects.get();
  g.upstream_connect_failures += w.upstream_connect_failures.get();
  g.upstream_reused += w.upstream_reused.get();
  g.bad_requests += w.bad_requests.get();
  g.upstream_overflow += w.upstream_overflow.get();
  g.io_uring_workers += w.io_uring.get();
  g.aio_workers += w.aio.get();
  g.accept_paused_resources += w.accept_paused_resources.get();
  g.accept_paused_max_connections += w.accept_paused_bound.get();
  if (w.accept_paused_resources_now.get() || w.accept_paused_bound_now.get()) ++g.accept_paused_workers;
  g.request_header_timeouts += w.request_header_timeouts.get();
  for (size_t side = 0; side < 2; ++side) {
    for (size_t r = 0; r < proxy::kHttp2OffenceCount; ++r) g.http2_goaways[side][r] += w.http2_goaways[side][r].get();
  }
  g.http2_streams_refused += w.http2_streams_refused.get();
}

}  // namespace

Totals collect(const std::vector<const WorkerStats*>& workers) {
  Totals out;
  using Key = std::pair<std::string_view, int>;
  std::map<Key, RouteTotals> by_key;
  std::map<Key, std::map<std::string_view, uint64_t>> reasons;
  for (const WorkerStats* w : workers) {
    addGlobals(w->counters, out.globals);
    for (const RouteCounters* c = w->routes.first(); c; c = c->next) {
      Key key(c->service, c->route);
      RouteTotals& t = by_key[key];
      t.service = c->service;
      t.route = c->route;
      t.requests += c->requests.get();
      for (size_t i = 0; i < 6; ++i) t.responses[i] += c->responses[i].get();
      t.attempts += c->attempts.get();
      t.upstream_connects += c->upstream_connects.get();
      t.upstream_reused += c->upstream_reused.get();
      t.upstream_connect_failures += c->upstream_connect_failures.get();
      c->retries.forEach([&](std::string_view reason, uint64_t n) { reasons[key][reason] += n; });
      for (size_t i = 0; i < kRefusalCount; ++i) t.refusals[i] += c->refusals[i].get();
      for (size_t i = 0; i < std::size(t.timeouts); ++i) t.timeouts[i] += c->timeouts[i].get();
      for (size_t i = 0; i < kLatencyBuckets; ++i) t.latency_buckets[i] += c->latency_buckets[i].get();
      t.latency_sum_us += c->latency_sum_us.get();
      t.hedges += c->hedges.get();
      t.hedge_wins += c->hedge_wins.get();
      for (size_t i = 0; i < kHedgeRefusalCount; ++i) t.hedge_refusals[i] += c->hedge_refusals[i].get();
    }
  }
  out.routes.reserve(by_key.size());
  for (auto& [key, t] : by_key) {
    for (const auto& [reason, n] : reasons[key]) t.retries.emplace_back(reason, n);
    out.routes.push_back(std::move(t));
  }
  return out;
}

}  // namespace mulligan::stats
