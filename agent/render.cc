#include "agent/render.h"

#include <cstdio>

#include "agent/duration.h"

namespace mulligan::agent {
namespace {

std::string jsonString(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// TOML basic strings use the same escapes as JSON for what we emit.
std::string tomlString(std::string_view s) { return jsonString(s); }

std::string hex64(uint64_t v) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string ratio(double r) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", r);
  std::string s = buf;
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

std::string list(const std::vector<std::string>& items, std::string (*quote)(std::string_view)) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + quote(items[i]);
  return out + "]";
}

std::string matchKey(pfc::MatchKind k) {
  switch (k) {
    case pfc::MatchKind::kPathPrefix: return "path_prefix";
    case pfc::MatchKind::kPathExact: return "path_exact";
    case pfc::MatchKind::kGrpcService:
    case pfc::MatchKind::kGrpcMethod: return "grpc";
  }
  return "path_prefix";
}

std::vector<std::string> methodNames(uint32_t bits) {
  std::vector<std::string> out;
  for (uint32_t m = 0; m < static_cast<uint32_t>(pfc::Method::kCount); ++m) {
    if (bits & (1u << m)) out.emplace_back(pfc::methodName(static_cast<pfc::Method>(m)));
  }
  return out;
}

// Emits the policy fields as TOML under `prefix` ("defaults", "service", "service.route").
void tomlPolicy(std::string& out, const pfc::EffectivePolicy& p, const std::string& prefix, bool route_level) {
  out += "connect_timeout = " + tomlString(formatDuration(p.connect_timeout_us)) + "\n";
  out += "request_timeout = " + tomlString(formatDuration(p.request_timeout_us)) + "\n";
  if (!route_level) out += "idle_timeout = " + tomlString(formatDuration(p.idle_timeout_us)) + "\n";
  out += "read_timeout = " + tomlString(formatDuration(p.read_timeout_us)) + "\n";
  const pfc::RetryPolicy& r = p.retry;
  out += "\n[" + prefix + ".retry]\n";
  out += "retry_on = " + list(retryOnNames(r), tomlString) + "\n";
  out += "num_retries = " + std::to_string(r.num_retries) + "\n";
  out += "per_try_timeout = " + tomlString(formatDuration(r.per_try_timeout_us)) + "\n";
  out += "backoff_base = " + tomlString(formatDuration(r.backoff_base_us)) + "\n";
  out += "backoff_max = " + tomlString(formatDuration(r.backoff_max_us)) + "\n";
  out += std::string("retry_after = ") + (r.retry_after ? "true" : "false") + "\n";
  out += "retry_after_max = " + tomlString(formatDuration(r.retry_after_max_us)) + "\n";
  out += "idempotency_header = " + tomlString(r.idempotencyHeader()) + "\n";
  out += "max_buffered_body = " + tomlString(formatSize(r.max_buffered_body)) + "\n";
  if (!route_level) {
    out += "\n[" + prefix + ".budget]\n";
    out += "retry_ratio = " + ratio(p.budget.retry_ratio) + "\n";
    out += "min_retries_per_second = " + std::to_string(p.budget.min_retries_per_second) + "\n";
    out += "window = " + tomlString(formatDuration(p.budget.window_us)) + "\n";
  }
  out += "\n[" + prefix + ".deadline]\n";
  out += std::string("propagate = ") + (p.deadline.propagate ? "true" : "false") + "\n";
  out += std::string("accept_inbound = ") + (p.deadline.accept_inbound ? "true" : "false") + "\n";
  out += "grpc_timeout_offset = " + tomlString(formatDuration(p.deadline.grpc_timeout_offset_us)) + "\n";
  out += "min_attempt_budget = " + tomlString(formatDuration(p.deadline.min_attempt_budget_us)) + "\n";
}

}  // namespace

std::vector<std::string> retryOnNames(const pfc::RetryPolicy& r) {
  std::vector<std::string> out;
  for (uint32_t c = 0; c < static_cast<uint32_t>(pfc::RetryCondition::kCount); ++c) {
    if (r.conditions & (1u << c)) out.emplace_back(pfc::conditionName(static_cast<pfc::RetryCondition>(c)));
  }
  for (int code = pfc::kMinStatus; code <= pfc::kMaxStatus; ++code) {
    if (r.hasStatus(code)) out.push_back(std::to_string(code));
  }
  for (uint32_t g = 0; g <= 16; ++g) {
    if (r.grpc_codes & (1u << g)) out.emplace_back(pfc::grpcCodeName(static_cast<pfc::GrpcCode>(g)));
  }
  return out;
}

std::string policyToJson(const pfc::EffectivePolicy& p, bool route_level) {
  const pfc::RetryPolicy& r = p.retry;
  std::string o = "{";
  o += "\"connect_timeout\":" + jsonString(formatDuration(p.connect_timeout_us));
  o += ",\"request_timeout\":" + jsonString(formatDuration(p.request_timeout_us));
  if (!route_level) o += ",\"idle_timeout\":" + jsonString(formatDuration(p.idle_timeout_us));
  o += ",\"read_timeout\":" + jsonString(formatDuration(p.read_timeout_us));
  o += ",\"retry\":{\"retry_on\":" + list(retryOnNames(r), jsonString);
  o += ",\"num_retries\":" + std::to_string(r.num_retries);
  o += ",\"per_try_timeout\":" + jsonString(formatDuration(r.per_try_timeout_us));
  o += ",\"backoff_base\":" + jsonString(formatDuration(r.backoff_base_us));
  o += ",\"backoff_max\":" + jsonString(formatDuration(r.backoff_max_us));
  o += std::string(",\"retry_after\":") + (r.retry_after ? "true" : "false");
  o += ",\"retry_after_max\":" + jsonString(formatDuration(r.retry_after_max_us));
  o += ",\"idempotency_header\":" + jsonString(r.idempotencyHeader());
  o += ",\"max_buffered_body\":" + jsonString(formatSize(r.max_buffered_body)) + "}";
  if (!route_level) {
    o += ",\"budget\":{\"retry_ratio\":" + ratio(p.budget.retry_ratio);
    o += ",\"min_retries_per_second\":" + std::to_string(p.budget.min_retries_per_second);
    o += ",\"window\":" + jsonString(formatDuration(p.budget.window_us)) + "}";
  }
  o += std::string(",\"deadline\":{\"propagate\":") + (p.deadline.propagate ? "true" : "false");
  o += std::string(",\"accept_inbound\":") + (p.deadline.accept_inbound ? "true" : "false");
  o += ",\"grpc_timeout_offset\":" + jsonString(formatDuration(p.deadline.grpc_timeout_offset_us));
  o += ",\"min_attempt_budget\":" + jsonString(formatDuration(p.deadline.min_attempt_budget_us)) + "}";
  return o + "}";
}

std::string renderToml(const pfc::TableModel& m, uint64_t generation) {
  std::string out;
  out += "# Mulligan policy table, generation " + std::to_string(generation) + ", every value effective.\n";
  out += "# source: " + m.source_path + " (checksum " + hex64(m.source_checksum) + ")\n";
  out += "version = 1\n\n[defaults]\n";
  tomlPolicy(out, m.defaults, "defaults", false);
  for (const pfc::ServiceModel& s : m.services) {
    out += "\n[[service]]\n";
    out += "name = " + tomlString(s.name) + "\n";
    out += "hosts = " + list(s.hosts, tomlString) + "\n";
    if (s.port) out += "port = " + std::to_string(s.port) + "\n";
    if (!s.upstream.empty()) out += "upstream = " + tomlString(s.upstream) + "\n";
    tomlPolicy(out, s.policy, "service", false);
    for (const pfc::RouteModel& r : s.routes) {
      out += "\n  [[service.route]]\n";
      out += matchKey(r.kind) + " = " + tomlString(r.match) + "\n";
      if (r.methods != pfc::kAllMethods) out += "methods = " + list(methodNames(r.methods), tomlString) + "\n";
      tomlPolicy(out, r.policy, "service.route", true);
    }
  }
  return out;
}

std::string renderJson(const pfc::TableModel& m, uint64_t generation) {
  std::string o = "{\"generation\":" + std::to_string(generation);
  o += ",\"source\":{\"path\":" + jsonString(m.source_path) + ",\"checksum\":\"" + hex64(m.source_checksum) +
       "\",\"compiled_unix_ms\":" + std::to_string(m.created_unix_ns / 1000000) + "}";
  o += ",\"defaults\":" + policyToJson(m.defaults);
  o += ",\"services\":[";
  for (size_t i = 0; i < m.services.size(); ++i) {
    const pfc::ServiceModel& s = m.services[i];
    if (i) o += ",";
    o += "{\"name\":" + jsonString(s.name) + ",\"hosts\":" + list(s.hosts, jsonString);
    o += ",\"port\":" + std::to_string(s.port) + ",\"upstream\":" + jsonString(s.upstream);
    std::string pol = policyToJson(s.policy);
    o += "," + pol.substr(1, pol.size() - 2);  // policy fields inline with the service's
    o += ",\"routes\":[";
    for (size_t j = 0; j < s.routes.size(); ++j) {
      const pfc::RouteModel& r = s.routes[j];
      if (j) o += ",";
      o += "{" + jsonString(matchKey(r.kind)) + ":" + jsonString(r.match);
      o += ",\"methods\":" + list(methodNames(r.methods), jsonString);
      std::string rp = policyToJson(r.policy, true);
      o += "," + rp.substr(1, rp.size() - 2) + "}";
    }
    o += "]}";
  }
  return o + "]}\n";
}

}  // namespace mulligan::agent
