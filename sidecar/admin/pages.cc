#include "sidecar/admin/pages.h"

#include <cstdio>
#include <ctime>
#include <map>

#include "proto-free-config/layout.h"
#include "proto-free-config/render.h"
#include "sidecar/admin/agent_refusal_render.h"

namespace mulligan::admin {
namespace {

std::string html(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace

std::string configJson(const StatsSnapshot& s) {
  std::string b = "{\"enforced\":" + std::string(s.table ? "true" : "false");
  b += ",\"generation\":" + std::to_string(s.table ? s.table->generation() : 0);
  b += ",\"loaded_unix_ms\":" + std::to_string(s.table ? s.policy.loaded_unix_ms : 0);
  b += ",\"loaded_at\":" + pfc::jsonQuote(s.table ? utcText(s.policy.loaded_unix_ms) : "");
  b += ",\"layout\":" + pfc::jsonQuote(pfc::layoutVersion());
  // last_refused: the newer of the two kinds of refusal, "by" says whose:
  // the agent's (a policy file that did not compile) or the sidecar's own (a
  // published table it could not trust). agent_refused: the agent's, always.
  std::string sidecar_refused = "null";
  if (!s.policy.refused_why.empty()) {
    uint64_t enforced = s.table ? s.table->generation() : 0;
    sidecar_refused = "{\"by\":\"sidecar\",\"generation\":" + std::to_string(s.policy.refused_generation) +
                      ",\"unix_ms\":" + std::to_string(s.policy.refused_unix_ms) +
                      ",\"why\":" + pfc::jsonQuote(s.policy.refused_why) +
                      ",\"after_enforced\":" + (s.policy.refused_generation > enforced ? "true" : "false") + "}";
  }
  std::string agent_refused = agentRefusalJson(s.agent);
  bool agent_newer = s.agent.refusal && (s.policy.refused_why.empty() || s.agent.refusal->unix_ms >= s.policy.refused_unix_ms);
  b += ",\"last_refused\":" + (agent_newer ? agent_refused : sidecar_refused);
  b += ",\"agent_refused\":" + agent_refused;
  if (s.table) {
    b += ",\"table\":" + pfc::renderJson(s.table->toModel(), s.table->generation());
  } else {
    b += ",\"table\":null,\"builtin_defaults\":" + pfc::policyToJson(pfc::builtinDefaults());
  }
  b += "}\n";
  return b;
}

std::string indexHtml(const StatsSnapshot& s) {
  std::map<std::pair<std::string_view, int>, const stats::RouteTotals*> totals;
  for (const auto& t : s.routes) totals[{t.service, t.route}] = &t;

  std::string b =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Mulligan sidecar</title>\n"
      "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
      "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}td.l,th.l{text-align:left}"
      "tr.service td{font-weight:bold}</style></head><body>\n<h1>Mulligan sidecar</h1>\n";
  b += "<p id=\"status\">";
  if (s.draining) {
    b += "draining";
  } else if (s.table) {
    b += "ready";
  } else {
    b += "not ready: no policy loaded (enforcing built-in defaults)";
  }
  b += " &middot; policy generation <span id=\"generation\">" +
       std::to_string(s.table ? s.table->generation() : 0) + "</span>";
  if (s.table) b += " from <code>" + html(s.table->sourcePath()) + "</code>";
  b += " &middot; reloads " + std::to_string(s.policy.reloads) + " &middot; refused tables " +
       std::to_string(s.policy.refused) + "</p>\n";
  if (s.agent.refusal) {
    const pfc::Refusal& r = *s.agent.refusal;
    b += "<p id=\"agent-refused\">policy file refused by the agent at " + html(utcText(r.unix_ms)) + ": <code>" +
         html(r.format()) + "</code>";
    if (r.error_count > 1) b += " (and " + std::to_string(r.error_count - 1) + " more)";
    b += agentRefusalInEffect(s.agent)
             ? "; generation " + std::to_string(r.kept_generation) + " stays enforced until the file is fixed"
             : "; since superseded by a later generation";
    b += " &middot; files refused " + std::to_string(r.count) + "</p>\n";
  }
  if (!s.policy.refused_why.empty()) {
    b += "<p id=\"refused\">last refused table: generation " + std::to_string(s.policy.refused_generation) + ": " +
         html(s.policy.refused_why) + "</p>\n";
  }
  b += "<ul id=\"routes\">\n"
       "<li><a href=\"/ready\">/ready</a> readiness (503 without a policy or while draining)</li>\n"
       "<li><a href=\"/healthz\">/healthz</a> liveness</li>\n"
       "<li><a href=\"/config\">/config</a> the table enforced now (JSON)</li>\n"
       "<li><a href=\"/explain?host=example&amp;path=/&amp;status=503\">/explain?host=&amp;port=&amp;method=&amp;"
       "path=&amp;status=</a> which service, route and policy a request gets, and the retry decision</li>\n"
       "<li><a href=\"/stats\">/stats</a> counters (JSON)</li>\n"
       "<li><a href=\"/metrics\">/metrics</a> Prometheus metrics</li>\n"
       "<li>POST /drain graceful stop (loopback only)</li>\n</ul>\n";

  b += "<h2>Services</h2>\n<table id=\"services\"><thead><tr><th class=\"l\">service</th><th class=\"l\">route</th>"
       "<th>requests</th><th>2xx</th><th>4xx</th><th>5xx</th><th>attempts</th><th>retries</th>"
       "<th>retries refused</th><th>timeouts</th></tr></thead><tbody>\n";
  auto row = [&](std::string_view service, int route, const std::string& service_cell, const std::string& route_cell) {
    auto it = totals.find({service, route});
    const stats::RouteTotals* t = it == totals.end() ? nullptr : it->second;
    uint64_t refused = 0, timeouts = 0;
    if (t) {
      for (uint64_t n : t->refusals) refused += n;
      for (uint64_t n : t->timeouts) timeouts += n;
    }
    auto cell = [&](uint64_t v) { return "<td>" + std::to_string(v) + "</td>"; };
    b += std::string("<tr class=\"") + (route < 0 ? "service" : "route") + "\" data-service=\"" + html(service) +
         "\"><td class=\"l\">" + service_cell + "</td><td class=\"l\">" + route_cell + "</td>";
    b += cell(t ? t->requests : 0) + cell(t ? t->responses[2] : 0) + cell(t ? t->responses[4] : 0) +
         cell(t ? t->responses[5] : 0) + cell(t ? t->attempts : 0) + cell(t ? t->retriesTotal() : 0) + cell(refused) +
         cell(timeouts) + "</tr>\n";
  };
  if (s.table) {
    const pfc::Table& t = *s.table;
    for (const pfc::ServiceEntry& svc : t.services()) {
      std::string_view name = t.str(svc.name);
      row(name, -1, html(name), "(service level)");
      for (uint32_t i = 0; i < svc.route_count; ++i) {
        row(name, static_cast<int>(i), "", std::to_string(i) + ": " + html(routeMatchText(t, t.routes()[svc.route_begin + i])));
      }
    }
  }
  row("", -1, "(no service matched)", "[defaults]");
  b += "</tbody></table>\n</body></html>\n";
  return b;
}

}  // namespace mulligan::admin
