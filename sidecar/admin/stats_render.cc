#include "sidecar/admin/stats_render.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <set>
#include <unordered_map>

#include "proto-free-config/duration.h"
#include "proto-free-config/render.h"
#include "sidecar/admin/agent_refusal_render.h"
#include "sidecar/stream/access_log_writer.h"

namespace mulligan::admin {
namespace {

// Hedge refusals shown: all but kNone and kOff (a delay never passes with
// hedging off).
constexpr size_t kFirstHedgeRefusal = static_cast<size_t>(retry::HedgeRefusal::kIdempotency);

const char* const kClassNames[6] = {"", "1xx", "2xx", "3xx", "4xx", "5xx"};

// Refusals worth a series: everything but "it did happen" and "the policy
// never asked" (see RouteCounters::refused).
bool countedRefusal(size_t i) {
  auto r = static_cast<retry::Refusal>(i);
  return r != retry::Refusal::kNone && r != retry::Refusal::kNotRetriable;
}

// Prometheus label value escaping (exposition format: \\, \", \n).
std::string labelValue(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string seconds(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// Shortest text that reads back as the same double; JSON has no NaN/Inf.
std::string number(double v) {
  if (!std::isfinite(v)) return "0";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : "0";
}

class Metrics {
 public:
  void family(const char* name, const char* type, const char* help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  // name{labels} value; labels already rendered ("" for none).
  void sample(std::string_view name, const std::string& labels, const std::string& value) {
    out_ += name;
    if (!labels.empty()) out_ += "{" + labels + "}";
    out_ += ' ';
    out_ += value;
    out_ += '\n';
  }
  void sample(std::string_view name, const std::string& labels, uint64_t v) { sample(name, labels, std::to_string(v)); }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

std::string routeLabels(const stats::RouteTotals& t) {
  return "service=\"" + labelValue(t.service) + "\",route=\"" + routeLabel(t.route) + "\"";
}

}  // namespace

std::string endpointsJson(const StatsSnapshot& s, std::string_view service, std::string_view destination) {
  std::string b = "[";
  bool first = true;
  for (const stats::EndpointTotals& e : s.endpoints) {
    if (e.service != service || e.destination != destination || !e.current) continue;
    b += (first ? "" : ",") + std::string("{\"address\":") + pfc::jsonQuote(e.address) +
         ",\"ejected\":" + (e.ejected_workers > 0 ? "true" : "false") +
         ",\"ejected_for\":" + pfc::jsonQuote(pfc::formatDuration(e.ejected_for_us)) +
         ",\"ejections\":" + std::to_string(e.ejections) + "}";
    first = false;
  }
  return b + "]";
}

std::string routeLabel(int route) { return route < 0 ? "" : std::to_string(route); }

std::string routeMatchText(const pfc::Table& t, const pfc::RouteEntry& r) {
  const char* kind = "path_prefix";
  if (r.kind == pfc::MatchKind::kPathExact) kind = "path_exact";
  if (r.kind == pfc::MatchKind::kGrpcService || r.kind == pfc::MatchKind::kGrpcMethod) kind = "grpc";
  return std::string(kind) + " = " + std::string(t.str(r.match));
}

StatsSnapshot takeSnapshot(proxy::SharedState& shared, int64_t now_us) {
  StatsSnapshot s;
  stats::Totals totals = stats::collect(shared.worker_stats);
  auto& g = s.globals;
  static_cast<stats::GlobalTotals&>(g) = totals.globals;
  if (shared.config.access_log) g.access_log_dropped = shared.config.access_log->dropped();
  g.max_connections = shared.config.max_connections;
  g.descriptor_limit = shared.config.descriptor_limit;
  s.routes = std::move(totals.routes);
  s.policy = shared.policy_status.snapshot();
  s.table = shared.policy_status.table();
  s.draining = shared.draining.load();
  {
    std::vector<const stats::EndpointStats*> eps;
    for (const stats::WorkerStats* w : shared.worker_stats) eps.push_back(&w->endpoints);
    s.endpoints = stats::collectEndpoints(eps, now_us);
    s.endpoint_sets = stats::collectEndpointSets(eps);
  }

  // Budgets of the services that had traffic: those slots are claimed
  // already, so reading them claims nothing new in the registry.
  std::unordered_map<std::string_view, const pfc::ServiceEntry*> by_name;
  std::unordered_map<std::string_view, const pfc::EffectivePolicy*> policies;
  static const pfc::EffectivePolicy kBuiltin = pfc::builtinDefaults();
  if (s.table) {
    for (const pfc::ServiceEntry& e : s.table->services()) {
      by_name[s.table->str(e.name)] = &e;
      policies[s.table->str(e.name)] = &s.table->policies()[e.policy_index];
    }
  }
  for (const stats::RouteTotals& t : s.routes) {
    auto it = by_name.find(t.service);
    bool known = t.route >= 0 && it != by_name.end() && static_cast<uint32_t>(t.route) < it->second->route_count;
    s.matches.push_back(known ? routeMatchText(*s.table, s.table->routes()[it->second->route_begin + t.route]) : "");
  }
  std::set<std::string> seen;
  for (const stats::RouteTotals& t : s.routes) {
    if (!seen.insert(t.service).second) continue;
    const pfc::EffectivePolicy* p = &kBuiltin;
    if (t.service.empty()) {
      if (s.table) p = &s.table->defaults();
    } else if (auto it = policies.find(t.service); it != policies.end()) {
      p = it->second;
    } else {
      continue;  // a service the enforced table no longer has
    }
    StatsSnapshot::Budget b;
    b.service = t.service;
    b.state = shared.budgets.get(t.service).snapshot(now_us, p->budget);
    b.retry_ratio = p->budget.retry_ratio;
    b.min_retries_per_second = p->budget.min_retries_per_second;
    s.budgets.push_back(std::move(b));
  }
  return s;
}

std::string statsJson(const StatsSnapshot& s) {
  const auto& g = s.globals;
  std::string b = "{";
  auto field = [&](const char* name, uint64_t v) { b += "\"" + std::string(name) + "\":" + std::to_string(v) + ","; };
  field("downstream_accepted", g.downstream_accepted);
  field("downstream_active", g.downstream_active);
  field("tunnels", g.tunnels);
  field("requests", g.requests);
  field("attempts", g.attempts);
  field("retries", g.retries);
  uint64_t hedges = 0, hedge_wins = 0;  // per route below; their sums here
  for (const auto& t : s.routes) {
    hedges += t.hedges;
    hedge_wins += t.hedge_wins;
  }
  field("hedges", hedges);
  field("hedge_wins", hedge_wins);
  field("upstream_connects", g.upstream_connects);
  field("upstream_connect_failures", g.upstream_connect_failures);
  field("upstream_reused", g.upstream_reused);
  field("bad_requests", g.bad_requests);
  field("upstream_overflow", g.upstream_overflow);
  field("io_uring_workers", g.io_uring_workers);
  field("aio_workers", g.aio_workers);
  field("accept_paused_resources", g.accept_paused_resources);
  field("accept_paused_max_connections", g.accept_paused_max_connections);
  field("accept_paused_workers", g.accept_paused_workers);
  field("max_connections_per_worker", g.max_connections);
  field("descriptor_limit", g.descriptor_limit);
  field("request_header_timeouts", g.request_header_timeouts);
  field("http2_streams_refused", g.http2_streams_refused);
  field("access_log_dropped", g.access_log_dropped);
  b += "\"http2_goaways\":{";
  for (size_t side = 0; side < 2; ++side) {
    b += side == 0 ? "\"downstream\":{" : ",\"upstream\":{";
    for (size_t r = 0; r < proxy::kHttp2OffenceCount; ++r) {
      b += (r ? ",\"" : "\"") + std::string(proxy::offenceName(static_cast<proxy::Http2Offence>(r))) +
           "\":" + std::to_string(g.http2_goaways[side][r]);
    }
    b += "}";
  }
  b += "},";
  b += "\"responses\":{";
  for (int c = 1; c <= 5; ++c) b += "\"" + std::string(kClassNames[c]) + "\":" + std::to_string(g.responses[c]) + (c < 5 ? "," : "");
  b += "},";
  field("policy_generation", s.policy.loaded_generation);
  field("policy_reloads", s.policy.reloads);
  field("policy_refused", s.policy.refused);
  b += "\"draining\":" + std::string(s.draining ? "true" : "false") + ",";

  b += "\"policy\":{\"generation\":" + std::to_string(s.policy.loaded_generation) +
       ",\"loaded_unix_ms\":" + std::to_string(s.policy.loaded_unix_ms) +
       ",\"loaded_unix_us\":" + std::to_string(s.policy.loaded_unix_us) +
       ",\"reloads\":" + std::to_string(s.policy.reloads) + ",\"refused\":" + std::to_string(s.policy.refused);
  if (!s.policy.refused_why.empty()) {
    b += ",\"last_refused\":{\"generation\":" + std::to_string(s.policy.refused_generation) +
         ",\"unix_ms\":" + std::to_string(s.policy.refused_unix_ms) + ",\"why\":" + pfc::jsonQuote(s.policy.refused_why) +
         "}";
  }
  b += ",\"agent_refused\":" + agentRefusalJson(s.agent);  // the agent's last refused file
  {
    // Publish (the agent's stamp) -> a request able to enforce it
    // (policy::Propagation); buckets are per bucket, "le_us": null = above all.
    const policy::Propagation& p = s.policy.propagation;
    b += ",\"propagation\":{\"count\":" + std::to_string(p.count) + ",\"sum_us\":" + std::to_string(p.sum_us) +
         ",\"last_us\":" + (p.last_us < 0 ? std::string("null") : std::to_string(p.last_us)) +
         ",\"last_generation\":" + std::to_string(p.last_generation) +
         ",\"last_published_unix_us\":" + std::to_string(p.last_published_unix_us) + ",\"buckets\":[";
    for (size_t k = 0; k < policy::Propagation::kBuckets; ++k) {
      b += std::string(k ? "," : "") + "{\"le_us\":" +
           (k < std::size(policy::Propagation::kBoundsUs) ? std::to_string(policy::Propagation::kBoundsUs[k])
                                                          : std::string("null")) +
           ",\"count\":" + std::to_string(p.buckets[k]) + "}";
    }
    b += "]}";
  }
  b += "},";

  b += "\"routes\":[";
  for (size_t i = 0; i < s.routes.size(); ++i) {
    const stats::RouteTotals& t = s.routes[i];
    if (i) b += ",";
    b += "{\"service\":" + pfc::jsonQuote(t.service) + ",\"route\":" + (t.route < 0 ? "null" : std::to_string(t.route));
    if (i < s.matches.size() && !s.matches[i].empty()) b += ",\"match\":" + pfc::jsonQuote(s.matches[i]);
    b += ",\"requests\":" + std::to_string(t.requests) + ",\"responses\":{";
    for (int c = 1; c <= 5; ++c) b += "\"" + std::string(kClassNames[c]) + "\":" + std::to_string(t.responses[c]) + (c < 5 ? "," : "");
    b += "},\"attempts\":" + std::to_string(t.attempts);
    b += ",\"retries\":" + std::to_string(t.retriesTotal()) + ",\"retries_by_reason\":{";
    for (size_t k = 0; k < t.retries.size(); ++k) {
      b += (k ? "," : "") + pfc::jsonQuote(t.retries[k].first) + ":" + std::to_string(t.retries[k].second);
    }
    b += "},\"retries_refused\":{";
    bool first = true;
    for (size_t r = 0; r < stats::kRefusalCount; ++r) {
      if (!countedRefusal(r)) continue;
      b += (first ? "\"" : ",\"") + std::string(retry::refusalName(static_cast<retry::Refusal>(r))) +
           "\":" + std::to_string(t.refusals[r]);
      first = false;
    }
    b += "},\"hedges\":" + std::to_string(t.hedges) + ",\"hedge_wins\":" + std::to_string(t.hedge_wins) +
         ",\"hedges_refused\":{";
    for (size_t r = kFirstHedgeRefusal; r < stats::kHedgeRefusalCount; ++r) {
      b += (r > kFirstHedgeRefusal ? ",\"" : "\"") + std::string(retry::hedgeRefusalName(static_cast<retry::HedgeRefusal>(r))) +
           "\":" + std::to_string(t.hedge_refusals[r]);
    }
    b += "},\"timeouts\":{";
    for (size_t k = 0; k < std::size(t.timeouts); ++k) {
      b += (k ? ",\"" : "\"") + std::string(stats::timeoutKindName(static_cast<stats::TimeoutKind>(k))) +
           "\":" + std::to_string(t.timeouts[k]);
    }
    b += "},\"upstream\":{\"connects\":" + std::to_string(t.upstream_connects) +
         ",\"reused\":" + std::to_string(t.upstream_reused) +
         ",\"connect_failures\":" + std::to_string(t.upstream_connect_failures) + "}";
    b += ",\"latency\":{\"count\":" + std::to_string(t.latencyCount()) +
         ",\"sum_seconds\":" + seconds(static_cast<double>(t.latency_sum_us) / 1e6) + ",\"buckets\":[";
    uint64_t cumulative = 0;
    for (size_t k = 0; k < stats::kLatencyBuckets; ++k) {
      cumulative += t.latency_buckets[k];
      std::string le = k < std::size(stats::kLatencyBoundsUs)
                           ? seconds(static_cast<double>(stats::kLatencyBoundsUs[k]) / 1e6)
                           : std::string("\"+Inf\"");
      b += (k ? "," : "") + std::string("{\"le\":") + le + ",\"count\":" + std::to_string(cumulative) + "}";
    }
    b += "]}}";
  }
  b += "],\"endpoints\":[";
  for (size_t i = 0; i < s.endpoints.size(); ++i) {
    const stats::EndpointTotals& e = s.endpoints[i];
    b += (i ? "," : "") + std::string("{\"service\":") + pfc::jsonQuote(e.service) +
         ",\"destination\":" + pfc::jsonQuote(e.destination) + ",\"address\":" + pfc::jsonQuote(e.address) +
         ",\"current\":" + (e.current ? "true" : "false") + ",\"ejections\":" + std::to_string(e.ejections) +
         ",\"ejected_workers\":" + std::to_string(e.ejected_workers) +
         ",\"ejected_for\":" + pfc::jsonQuote(pfc::formatDuration(e.ejected_for_us)) +
         ",\"last_ejection\":" + pfc::jsonQuote(pfc::formatDuration(e.last_ejection_us)) + "}";
  }
  b += "],\"endpoint_sets\":{\"current\":" + std::to_string(s.endpoint_sets.sets) +
       ",\"forgotten\":" + std::to_string(s.endpoint_sets.forgotten) + "}";
  b += ",\"budgets\":[";
  for (size_t i = 0; i < s.budgets.size(); ++i) {
    const auto& bu = s.budgets[i];
    b += (i ? "," : "") + std::string("{\"service\":") + pfc::jsonQuote(bu.service) +
         ",\"window\":" + pfc::jsonQuote(pfc::formatDuration(bu.state.window_us)) +
         ",\"requests\":" + std::to_string(bu.state.requests) + ",\"retries\":" + std::to_string(bu.state.retries) +
         ",\"allowed\":" + number(bu.state.allowed) + ",\"refused\":" + std::to_string(bu.state.refused) +
         ",\"retry_ratio\":" + number(bu.retry_ratio) +
         ",\"min_retries_per_second\":" + std::to_string(bu.min_retries_per_second) + "}";
  }
  b += "]}\n";
  return b;
}

std::string metricsText(const StatsSnapshot& s) {
  const auto& g = s.globals;
  Metrics m;
  auto global = [&](const char* name, const char* type, const char* help, uint64_t v) {
    m.family(name, type, help);
    m.sample(name, "", v);
  };
  global("mulligan_downstream_connections_total", "counter", "Connections accepted from the app.",
         g.downstream_accepted);
  global("mulligan_downstream_connections_active", "gauge", "Connections from the app open now.",
         g.downstream_active);
  global("mulligan_tunnels_total", "counter", "Connections relayed as opaque TCP, CONNECT or upgrades.", g.tunnels);
  global("mulligan_bad_requests_total", "counter", "Requests refused for framing or size (400, 431).",
         g.bad_requests);
  global("mulligan_upstream_overflow_total", "counter",
         "Calls answered 503 because the destination had --max-upstream-connections open.", g.upstream_overflow);
  m.family("mulligan_http2_goaways_total", "counter",
           "HTTP/2 connections ended with GOAWAY because the peer went beyond a limit, by side (downstream: the "
           "app; upstream) and reason.");
  for (size_t side = 0; side < 2; ++side) {
    for (size_t r = 0; r < proxy::kHttp2OffenceCount; ++r) {
      m.sample("mulligan_http2_goaways_total",
               std::string("side=\"") + (side == 0 ? "downstream" : "upstream") + "\",reason=\"" +
                   std::string(proxy::offenceName(static_cast<proxy::Http2Offence>(r))) + "\"",
               g.http2_goaways[side][r]);
    }
  }
  global("mulligan_http2_streams_refused_total", "counter",
         "HTTP/2 request streams refused (REFUSED_STREAM) because the worker had its limit of streams open.",
         g.http2_streams_refused);
  global("mulligan_access_log_dropped_total", "counter",
         "Access-log lines dropped because their destination was not keeping up (never waited for).",
         g.access_log_dropped);
  global("mulligan_io_uring_workers", "gauge",
         "Workers whose HTTP/1 sockets receive and send through io_uring (0: epoll, see the log).",
         g.io_uring_workers);
  global("mulligan_aio_workers", "gauge",
         "Workers on the epoll path whose HTTP/1 sends go to the kernel in batches through Linux AIO "
         "(0 there: one send(2) each, see the log).",
         g.aio_workers);
  m.family("mulligan_accept_paused_total", "counter",
           "Episodes in which a worker stopped accepting: reason=\"resources\" when accept ran out of file "
           "descriptors or memory, reason=\"max-connections\" at --max-connections (clients wait in the backlog).");
  m.sample("mulligan_accept_paused_total", "reason=\"resources\"", g.accept_paused_resources);
  m.sample("mulligan_accept_paused_total", "reason=\"max-connections\"", g.accept_paused_max_connections);
  global("mulligan_accept_paused_workers", "gauge", "Workers in an accept pause now (out of descriptors, or at --max-connections).",
         g.accept_paused_workers);
  global("mulligan_downstream_connections_max", "gauge",
         "Connections from the app each worker holds at most (--max-connections; 0 = no bound).", g.max_connections);
  global("mulligan_request_header_timeouts_total", "counter",
         "Connections cut (408, or closed when nothing was sent) by --request-header-timeout.",
         g.request_header_timeouts);

  auto perRoute = [&](const char* name, const char* help, uint64_t stats::RouteTotals::*field) {
    m.family(name, "counter", help);
    for (const auto& t : s.routes) m.sample(name, routeLabels(t), t.*field);
  };
  m.family("mulligan_route_info", "gauge", "What each route label means: its match in the enforced policy.");
  for (size_t i = 0; i < s.routes.size() && i < s.matches.size(); ++i) {
    if (s.matches[i].empty()) continue;
    m.sample("mulligan_route_info", routeLabels(s.routes[i]) + ",match=\"" + labelValue(s.matches[i]) + "\"", 1);
  }
  perRoute("mulligan_requests_total", "HTTP requests received, by policy service and route.",
           &stats::RouteTotals::requests);
  m.family("mulligan_responses_total", "counter", "Responses sent to the app, by status class.");
  for (const auto& t : s.routes) {
    for (int c = 1; c <= 5; ++c) {
      m.sample("mulligan_responses_total", routeLabels(t) + ",code_class=\"" + kClassNames[c] + "\"", t.responses[c]);
    }
  }
  perRoute("mulligan_upstream_attempts_total", "Attempts sent upstream (first tries and retries).",
           &stats::RouteTotals::attempts);
  m.family("mulligan_retries_total", "counter", "Retries started, by the outcome that caused them.");
  for (const auto& t : s.routes) {
    for (const auto& [reason, n] : t.retries) {
      m.sample("mulligan_retries_total", routeLabels(t) + ",reason=\"" + labelValue(reason) + "\"", n);
    }
  }
  m.family("mulligan_retries_refused_total", "counter",
           "Retries the policy asked for that did not happen, by why (budget = budget overflow).");
  for (const auto& t : s.routes) {
    for (size_t r = 0; r < stats::kRefusalCount; ++r) {
      if (!countedRefusal(r)) continue;
      m.sample("mulligan_retries_refused_total",
               routeLabels(t) + ",reason=\"" + std::string(retry::refusalName(static_cast<retry::Refusal>(r))) + "\"",
               t.refusals[r]);
    }
  }
  perRoute("mulligan_hedges_total", "Hedges started: attempts sent while an earlier one of the call was still out.",
           &stats::RouteTotals::hedges);
  perRoute("mulligan_hedge_wins_total", "Calls whose response came from a hedge (not from the attempt it hedged).",
           &stats::RouteTotals::hedge_wins);
  m.family("mulligan_hedges_refused_total", "counter",
           "Hedge delays that passed with no hedge started, by why (budget, extra-load, max-attempts, ...).");
  for (const auto& t : s.routes) {
    for (size_t r = kFirstHedgeRefusal; r < stats::kHedgeRefusalCount; ++r) {
      m.sample("mulligan_hedges_refused_total",
               routeLabels(t) + ",reason=\"" +
                   std::string(retry::hedgeRefusalName(static_cast<retry::HedgeRefusal>(r))) + "\"",
               t.hedge_refusals[r]);
    }
  }
  m.family("mulligan_timeouts_total", "counter", "Timeouts that fired, by kind (connect, per-try, request, read).");
  for (const auto& t : s.routes) {
    for (size_t k = 0; k < std::size(t.timeouts); ++k) {
      m.sample("mulligan_timeouts_total",
               routeLabels(t) + ",kind=\"" +
                   std::string(stats::timeoutKindName(static_cast<stats::TimeoutKind>(k))) + "\"",
               t.timeouts[k]);
    }
  }
  perRoute("mulligan_upstream_connects_total", "Attempts that opened a new upstream connection.",
           &stats::RouteTotals::upstream_connects);
  perRoute("mulligan_upstream_connections_reused_total", "Attempts sent on a pooled upstream connection.",
           &stats::RouteTotals::upstream_reused);
  perRoute("mulligan_upstream_connect_failures_total", "Upstream connects refused, unreachable or timed out.",
           &stats::RouteTotals::upstream_connect_failures);

  m.family("mulligan_upstream_latency_seconds", "histogram",
           "Time from sending a request upstream to its response headers, per attempt.");
  for (const auto& t : s.routes) {
    std::string labels = routeLabels(t);
    uint64_t cumulative = 0;
    for (size_t k = 0; k < stats::kLatencyBuckets; ++k) {
      cumulative += t.latency_buckets[k];
      std::string le = k < std::size(stats::kLatencyBoundsUs)
                           ? seconds(static_cast<double>(stats::kLatencyBoundsUs[k]) / 1e6)
                           : std::string("+Inf");
      m.sample("mulligan_upstream_latency_seconds_bucket", labels + ",le=\"" + le + "\"", cumulative);
    }
    m.sample("mulligan_upstream_latency_seconds_sum", labels, seconds(static_cast<double>(t.latency_sum_us) / 1e6));
    m.sample("mulligan_upstream_latency_seconds_count", labels, cumulative);
  }

  m.family("mulligan_outlier_ejections_total", "counter",
           "Times outlier detection ejected an address of a destination name, by service and address.");
  for (const auto& e : s.endpoints) {
    if (e.ejections == 0) continue;
    m.sample("mulligan_outlier_ejections_total",
             "service=\"" + labelValue(e.service) + "\",address=\"" + labelValue(e.address) + "\"", e.ejections);
  }
  m.family("mulligan_outlier_ejected", "gauge",
           "Workers that have the address ejected now (0: none; a sidecar with one worker: 0 or 1).");
  for (const auto& e : s.endpoints) {
    if (e.ejections == 0) continue;  // never ejected: always 0
    m.sample("mulligan_outlier_ejected",
             "service=\"" + labelValue(e.service) + "\",address=\"" + labelValue(e.address) + "\"",
             e.ejected_workers);
  }

  m.family("mulligan_endpoint_sets", "gauge",
           "Endpoint sets (service, destination name) the workers hold now; at most 1024 per worker beyond the "
           "calls in flight.");
  m.sample("mulligan_endpoint_sets", "", s.endpoint_sets.sets);
  m.family("mulligan_endpoint_sets_forgotten_total", "counter",
           "Endpoint sets forgotten (over the cap, least recently used first, or idle for 10 minutes), with "
           "their outlier state.");
  m.sample("mulligan_endpoint_sets_forgotten_total", "", s.endpoint_sets.forgotten);

  auto budget = [&](const char* name, const char* help, auto value) {
    m.family(name, "gauge", help);
    for (const auto& b : s.budgets) m.sample(name, "service=\"" + labelValue(b.service) + "\"", value(b));
  };
  budget("mulligan_retry_budget_requests", "Original requests counted in the budget's window now.",
         [](const StatsSnapshot::Budget& b) { return std::to_string(b.state.requests); });
  budget("mulligan_retry_budget_retries", "Retries admitted in the budget's window now.",
         [](const StatsSnapshot::Budget& b) { return std::to_string(b.state.retries); });
  budget("mulligan_retry_budget_allowed", "Retries the budget allows in its window now.",
         [](const StatsSnapshot::Budget& b) { return number(b.state.allowed); });
  m.family("mulligan_retry_budget_refused_total", "counter", "Retries the service's budget refused.");
  for (const auto& b : s.budgets) {
    m.sample("mulligan_retry_budget_refused_total", "service=\"" + labelValue(b.service) + "\"", b.state.refused);
  }

  global("mulligan_policy_generation", "gauge", "Generation of the policy table enforced (0 = none).",
         s.policy.loaded_generation);
  global("mulligan_policy_reloads_total", "counter", "Policy tables loaded, summed over workers.", s.policy.reloads);
  global("mulligan_policy_refused_total", "counter", "Policy tables refused as untrustworthy.", s.policy.refused);
  {
    const policy::Propagation& p = s.policy.propagation;
    m.family("mulligan_policy_propagation_seconds", "histogram",
             "From the agent publishing a generation to a worker loading it for the first request after the "
             "publish; one observation per worker and generation a request was waiting for (not one the idle "
             "tick loaded first).");
    uint64_t cumulative = 0;
    for (size_t k = 0; k < policy::Propagation::kBuckets; ++k) {
      cumulative += p.buckets[k];
      std::string le = k < std::size(policy::Propagation::kBoundsUs)
                           ? seconds(static_cast<double>(policy::Propagation::kBoundsUs[k]) / 1e6)
                           : std::string("+Inf");
      m.sample("mulligan_policy_propagation_seconds_bucket", "le=\"" + le + "\"", cumulative);
    }
    m.sample("mulligan_policy_propagation_seconds_sum", "", seconds(static_cast<double>(p.sum_us) / 1e6));
    m.sample("mulligan_policy_propagation_seconds_count", "", p.count);
    m.family("mulligan_policy_propagation_last_seconds", "gauge",
             "The newest observation of mulligan_policy_propagation_seconds (0 before the first).");
    m.sample("mulligan_policy_propagation_last_seconds", "", seconds(p.last_us < 0 ? 0 : static_cast<double>(p.last_us) / 1e6));
  }
  // The agent's refusals of policy files (from the segment; see agent_refusal_render.h).
  global("mulligan_policy_agent_refused_total", "counter",
         "Policy files the agent refused (did not compile; nothing published).",
         s.agent.refusal ? s.agent.refusal->count : 0);
  global("mulligan_policy_agent_refused", "gauge",
         "1 while the agent's newest policy file is refused and an older generation stays enforced.",
         agentRefusalInEffect(s.agent) ? 1 : 0);
  global("mulligan_policy_agent_last_refused_timestamp_seconds", "gauge",
         "When the agent last refused a policy file (Unix time; 0 = never).",
         s.agent.refusal ? s.agent.refusal->unix_ms / 1000 : 0);
  global("mulligan_draining", "gauge", "1 while the sidecar drains (POST /drain or SIGTERM).", s.draining ? 1 : 0);
  return m.take();
}

}  // namespace mulligan::admin
