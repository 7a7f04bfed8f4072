// Per-service, per-route counters for the admin endpoint (/stats, /metrics,
// the / page): what happened to requests, attempts, retries, refused retries
// and timeouts, and the upstream latency, labelled only by names that come
// from the policy — never by anything a request carries (no raw paths).
//
// Writers and readers:
//   * Each worker owns one RouteStats (in its WorkerStats, worker_stats.h)
//     and is its ONLY writer. Its hot-path
//     cost is one vector index per request (forMatch) and a few relaxed
//     load+store increments (Counter): no lock, no read-modify-write, no
//     string lookup except the first time a (service, route) is seen in a
//     policy generation.
//   * The admin thread reads every worker's counters at any time without
//     stopping anyone (stats::collect(), worker_stats.h). A reader may see one worker's counters a
//     few increments apart from each other (no snapshot across counters);
//     each value on its own is never torn.
//
// Labels and policy reloads: counters are keyed by (service name, route
// ordinal within the service), not by table indices, so a reload that adds,
// removes or reorders services keeps every series monotonic. A RouteCounters
// is created the first time its key sees a request and is NEVER freed while
// its RouteStats lives (the worker outlives the admin thread): the admin
// walks an append-only list published with release/acquire, so it can never
// read freed memory whatever the policy does. Memory is bounded by the
// (service, route) pairs that ever had traffic, i.e. by the policies, not by
// the traffic.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proto-free-config/table_reader.h"
#include "sidecar/stats/counter.h"
#include "sidecar/retry/hedge.h"
#include "sidecar/retry/latency_estimator.h"
#include "sidecar/retry/outcome.h"
#include "sidecar/retry/retry_state.h"
#include "sidecar/retry/timeout_kind.h"

namespace mulligan::stats {

// Which timeout fired: the engine's one list (retry/timeout_kind.h); the
// per-kind counters are indexed by it.
using retry::TimeoutKind;
using retry::timeoutKindName;

// Number of retry::Refusal values (kNone .. kOverloaded).
constexpr size_t kRefusalCount = static_cast<size_t>(retry::Refusal::kOverloaded) + 1;

// Number of retry::HedgeRefusal values (kNone .. kBudget).
constexpr size_t kHedgeRefusalCount = static_cast<size_t>(retry::HedgeRefusal::kBudget) + 1;

// Upstream latency buckets: time from the request sent to the response
// headers, per attempt that got headers. Upper bounds in microseconds, as
// Prometheus' default buckets (plus 1 ms steps at the low end); the last
// bucket (+Inf) is implicit.
inline constexpr int64_t kLatencyBoundsUs[] = {500,    1000,   2500,    5000,    10000,   25000,   50000,
                                               100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};
constexpr size_t kLatencyBuckets = std::size(kLatencyBoundsUs) + 1;

// Retries by reason (retry::Outcome::reason(): "connect-failure", "503",
// "unavailable", ...). The set is closed per route in practice (what its
// retry_on names), but status codes make it large in theory, so a route
// keeps kReasonSlots reasons in first-seen order and counts the rest as
// "other". Single writer; slots are claimed with a release store of the key.
class ReasonCounters {
 public:
  static constexpr size_t kReasonSlots = 12;
  // `reason` must have static storage (Outcome::reason() does).
  void add(std::string_view reason);
  // Readers: calls f(reason, count) for every claimed slot, then ("other", n)
  // if anything overflowed.
  template <typename F>
  void forEach(F&& f) const {
    for (const Slot& s : slots_) {
      const char* k = s.key.load(std::memory_order_acquire);
      if (!k) break;
      f(std::string_view(k, s.len), s.count.get());
    }
    if (uint64_t n = other_.get()) f(std::string_view("other"), n);
  }

 private:
  struct Slot {
    std::atomic<const char*> key{nullptr};
    uint32_t len = 0;  // written before key's release store
    Counter count;
  };
  Slot slots_[kReasonSlots];
  Counter other_;
};

// The counters of one (service, route) on one worker.
struct RouteCounters {
  RouteCounters(std::string service_name, int route_ordinal)
      : service(std::move(service_name)), route(route_ordinal) {}

  // --- hot-path hooks (the owning worker's thread only) ---
  void request() { requests.add(); }
  void response(int status) {
    if (status >= 100 && status < 600) responses[status / 100].add();
  }
  // An attempt started, on a new connection or a pooled one.
  void attemptStarted(bool reused) {
    attempts.add();
    (reused ? upstream_reused : upstream_connects).add();
  }
  // An attempt ended without response headers; `connect_timed_out` tells a
  // connect timeout from a refused/unreachable connect.
  void attemptFailed(retry::OutcomeKind kind, bool connect_timed_out);
  // The response to an attempt broke off; `read_timed_out`: read_timeout fired.
  void attemptAborted(bool read_timed_out) {
    if (read_timed_out) timeouts[static_cast<size_t>(TimeoutKind::kRead)].add();
  }
  void timeout(TimeoutKind k) { timeouts[static_cast<size_t>(k)].add(); }
  void retried(const retry::Outcome& o) { retries.add(o.reason()); }
  // A retry did not happen. kNone and kNotRetriable (the policy never asked
  // for one) are not counted; kRetriesExhausted and every limit are.
  void refused(retry::Refusal r) {
    if (r != retry::Refusal::kNone && r != retry::Refusal::kNotRetriable) refusals[static_cast<size_t>(r)].add();
  }
  void upstreamLatency(int64_t us);
  // A hedge started (retry/hedge.h); a hedge's response won the call.
  void hedged() { hedges.add(); }
  void hedgeWon() { hedge_wins.add(); }
  // A hedge delay passed and no hedge started (retry/hedge.h says why).
  void hedgeRefused(retry::HedgeRefusal r) { hedge_refusals[static_cast<size_t>(r)].add(); }

  // --- identity, immutable ---
  const std::string service;  // "" = no service matched (the [defaults])
  const int route;            // ordinal within the service; -1 = service level

  // --- counters ---
  Counter requests;
  Counter responses[6];  // index = status / 100; 0 unused
  Counter attempts;
  Counter upstream_connects;          // attempts on a new connection
  Counter upstream_reused;            // attempts on a pooled connection
  Counter upstream_connect_failures;  // connects refused, unreachable or timed out
  ReasonCounters retries;
  Counter refusals[kRefusalCount];  // index = retry::Refusal
  Counter timeouts[retry::kTimeoutKindCount];
  Counter latency_buckets[kLatencyBuckets];  // NOT cumulative; last = above every bound
  Counter latency_sum_us;
  Counter hedges;      // hedges started
  Counter hedge_wins;  // calls whose response came from a hedge
  Counter hedge_refusals[kHedgeRefusalCount];  // index = retry::HedgeRefusal

  // --- the hedging engine's per-route state (retry/hedge.h). Worker thread
  // only, never read by the admin thread: kept here because this is where
  // a worker keys per-route state (by names, stable across reloads). ---
  retry::LatencyEstimator latency_estimate;  // time to response headers
  retry::HedgeLoad hedge_load;               // hedges vs requests, for max_extra_load

  // The registry's list; set before the node is published, then immutable.
  const RouteCounters* next = nullptr;
};

// One worker's counters for every (service, route) it has served.
class RouteStats {
 public:
  RouteStats() = default;
  ~RouteStats();
  RouteStats(const RouteStats&) = delete;
  RouteStats& operator=(const RouteStats&) = delete;

  // Worker thread only. The counters for a request matched as `m` in
  // `table` (null table: no policy loaded). The reference stays valid for
  // the life of this RouteStats; keep it for the request.
  RouteCounters& forMatch(const pfc::Table* table, const pfc::Match& m);

  // Any thread: every RouteCounters created so far, newest first.
  const RouteCounters* first() const { return head_.load(std::memory_order_acquire); }

 private:
  RouteCounters& find(std::string_view service, int route);

  std::atomic<RouteCounters*> head_{nullptr};
  // Worker thread only: the slow path, and the index for the current table.
  std::unordered_map<std::string, RouteCounters*> by_key_;
  const pfc::Table* indexed_table_ = nullptr;
  uint64_t indexed_generation_ = 0;
  std::vector<RouteCounters*> slots_;  // [service i] then [services + global route j]
  RouteCounters* unmatched_ = nullptr;
};

// The families counted both per route and process-wide, summed over workers.
struct CallTotals {
  uint64_t requests = 0;
  uint64_t responses[6] = {};  // index = status / 100; 0 unused
  uint64_t attempts = 0;
  uint64_t upstream_connects = 0;
  uint64_t upstream_reused = 0;
  uint64_t upstream_connect_failures = 0;
};

// One (service, route)'s counters summed over workers (stats::collect()).
struct RouteTotals : CallTotals {
  std::string service;
  int route = -1;
  std::vector<std::pair<std::string_view, uint64_t>> retries;  // by reason, sorted by reason
  uint64_t refusals[kRefusalCount] = {};
  uint64_t timeouts[retry::kTimeoutKindCount] = {};
  uint64_t latency_buckets[kLatencyBuckets] = {};  // NOT cumulative
  uint64_t latency_sum_us = 0;
  uint64_t hedges = 0;
  uint64_t hedge_wins = 0;
  uint64_t hedge_refusals[kHedgeRefusalCount] = {};

  uint64_t retriesTotal() const;
  uint64_t latencyCount() const;
};

}  // namespace mulligan::stats
