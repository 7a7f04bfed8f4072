#include "sidecar/stats/route_stats.h"

#include <string>

namespace mulligan::stats {

void ReasonCounters::add(std::string_view reason) {
  for (Slot& s : slots_) {
    // Only this (writer) thread stores keys, so a relaxed load sees its own.
    const char* k = s.key.load(std::memory_order_relaxed);
    if (!k) {
      s.len = static_cast<uint32_t>(reason.size());
      s.count.add();
      s.key.store(reason.data(), std::memory_order_release);  // publishes len and the count
      return;
    }
    if (std::string_view(k, s.len) == reason) {
      s.count.add();
      return;
    }
  }
  other_.add();
}

void RouteCounters::attemptFailed(retry::OutcomeKind kind, bool connect_timed_out) {
  switch (kind) {
    case retry::OutcomeKind::kConnectFailure:
      upstream_connect_failures.add();
      if (connect_timed_out) timeouts[static_cast<size_t>(TimeoutKind::kConnect)].add();
      break;
    case retry::OutcomeKind::kPerTryTimeout:
      timeouts[static_cast<size_t>(TimeoutKind::kPerTry)].add();
      break;
    default:
      break;
  }
}

void RouteCounters::upstreamLatency(int64_t us) {
  size_t i = 0;
  while (i < std::size(kLatencyBoundsUs) && us > kLatencyBoundsUs[i]) ++i;
  latency_buckets[i].add();
  latency_sum_us.add(us > 0 ? static_cast<uint64_t>(us) : 0);
}

RouteStats::~RouteStats() {
  const RouteCounters* n = head_.load(std::memory_order_relaxed);
  while (n) {
    const RouteCounters* next = n->next;
    delete n;
    n = next;
  }
}

RouteCounters& RouteStats::find(std::string_view service, int route) {
  std::string key(service);
  key += '\0';
  key += std::to_string(route);
  auto it = by_key_.find(key);
  if (it != by_key_.end()) return *it->second;
  auto* node = new RouteCounters(std::string(service), route);
  node->next = head_.load(std::memory_order_relaxed);
  head_.store(node, std::memory_order_release);  // publishes the node's fields
  by_key_.emplace(std::move(key), node);
  return *node;
}

RouteCounters& RouteStats::forMatch(const pfc::Table* table, const pfc::Match& m) {
  if (!table || m.service == pfc::Match::kNone) {
    if (!unmatched_) unmatched_ = &find("", -1);
    return *unmatched_;
  }
  auto services = table->services();
  // A new table (generation): indices mean something else now; start a
  // fresh index, filled lazily. Comparing the generation as well as the
  // pointer guards against a new table allocated where a freed one was.
  if (table != indexed_table_ || table->generation() != indexed_generation_) {
    indexed_table_ = table;
    indexed_generation_ = table->generation();
    slots_.assign(services.size() + table->routes().size(), nullptr);
  }
  size_t slot = m.route == pfc::Match::kNone ? m.service : services.size() + m.route;
  RouteCounters*& c = slots_[slot];
  if (!c) {
    const pfc::ServiceEntry& svc = services[m.service];
    int ordinal = m.route == pfc::Match::kNone ? -1 : static_cast<int>(m.route - svc.route_begin);
    c = &find(table->str(svc.name), ordinal);
  }
  return *c;
}

uint64_t RouteTotals::retriesTotal() const {
  uint64_t n = 0;
  for (const auto& [reason, count] : retries) n += count;
  return n;
}

uint64_t RouteTotals::latencyCount() const {
  uint64_t n = 0;
  for (uint64_t b : latency_buckets) n += b;
  return n;
}

}  // namespace mulligan::stats
