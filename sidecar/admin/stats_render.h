// What GET /stats (JSON), GET /metrics (Prometheus text exposition 0.0.4)
// and the GET / page show: one StatsSnapshot, read from the workers'
// counters without stopping them, rendered by pure functions.
//
// Labels are bounded by the policy, never by requests:
//   service  the policy service's name; "" for requests no service matched
//   route    the route's ordinal within its service ("0", "1", ...); "" for
//            the service level (no route matched)
//   reason   retries: retry::Outcome::reason() ("503", "connect-failure",
//            "unavailable", ...; at most 12 per route, then "other");
//            refused retries: retry::refusalName() ("budget", "deadline", ...)
//   kind     timeouts: connect, per-try, request, read
//
// Threading: takeSnapshot() runs on the admin thread; it reads atomics and
// takes PolicyStatus's mutex (which only reloads take, never requests).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "proto-free-config/table_reader.h"
#include "sidecar/policy/agent_refusal.h"
#include "sidecar/worker/shared_state.h"
#include "sidecar/retry/budget.h"
#include "sidecar/stats/route_stats.h"
#include "sidecar/stats/worker_stats.h"

namespace mulligan::admin {

struct StatsSnapshot {
  // Process-wide sums of the workers' stats::WorkerCounters, and two
  // settings shown beside them.
  struct Globals : stats::GlobalTotals {
    uint64_t max_connections = 0;   // per worker; 0 = no bound
    uint64_t descriptor_limit = 0;  // soft RLIMIT_NOFILE
    uint64_t access_log_dropped = 0;  // lines the access log's destination could not take
  } globals;
  std::vector<stats::RouteTotals> routes;  // every service/route that had traffic
  // Per routes[i]: the route's match in the enforced table ("path_prefix =
  // /api/"), "" at the service level or when that table has no such route.
  std::vector<std::string> matches;
  // The live retry budget of every service that had traffic, with the
  // policy of the table enforced now (the built-in defaults without one).
  struct Budget {
    std::string service;
    retry::RetryBudget::Snapshot state;
    double retry_ratio = 0;
    uint32_t min_retries_per_second = 0;
  };
  std::vector<Budget> budgets;
  // Every address of every destination name that resolved, with its
  // outlier ejections (stats/endpoint_stats.h), summed over workers.
  std::vector<stats::EndpointTotals> endpoints;
  // The workers' endpoint sets (upstream/endpoints.h: bounded, forgotten
  // when idle or over the cap), summed.
  stats::EndpointSetTotals endpoint_sets;
  policy::PolicyStatus::Snapshot policy;
  // The agent's last refused policy file, from the segment (AdminServer
  // fills it; takeSnapshot leaves it empty). See agent_refusal_render.h.
  policy::AgentRefusalReader::Result agent;
  std::shared_ptr<const pfc::Table> table;  // null: no policy loaded
  bool draining = false;
};

StatsSnapshot takeSnapshot(proxy::SharedState& shared, int64_t now_us);

// GET /stats: the historical top-level fields (downstream_accepted, requests,
// responses{1xx..5xx}, attempts, retries, policy_generation, ...) plus
// "routes": [...], "budgets": [...] and "policy": {...}.
std::string statsJson(const StatsSnapshot& s);

// GET /metrics: Prometheus text format 0.0.4, accepted by `promtool check
// metrics`. Families: mulligan_requests_total, mulligan_responses_total,
// mulligan_upstream_attempts_total, mulligan_retries_total,
// mulligan_retries_refused_total, mulligan_timeouts_total,
// mulligan_upstream_connects_total, mulligan_upstream_connect_failures_total,
// mulligan_upstream_connections_reused_total (all {service, route, ...}),
// mulligan_route_info{service, route, match} (what a route ordinal means),
// mulligan_upstream_latency_seconds (histogram), mulligan_retry_budget_*
// {service}, and the process-wide downstream, tunnel, bad-request and policy
// families.
std::string metricsText(const StatsSnapshot& s);

// The addresses of `service`'s destination `destination` (name:port) as a
// JSON array for /explain: [{"address", "ejected", "ejected_for",
// "ejections"}]; [] when the name has not resolved (no call went to it).
std::string endpointsJson(const StatsSnapshot& s, std::string_view service, std::string_view destination);

// The route label: "" for the service level, else the ordinal.
std::string routeLabel(int route);

// A route's match as the policy writes it: "path_prefix = /api/",
// "path_exact = /healthz", "grpc = pkg.Service/Method".
std::string routeMatchText(const pfc::Table& t, const pfc::RouteEntry& r);

}  // namespace mulligan::admin
