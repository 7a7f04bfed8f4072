#include "sidecar/admin/agent_refusal_render.h"

#include <cstdio>
#include <ctime>

#include "proto-free-config/render.h"

namespace mulligan::admin {

std::string utcText(int64_t unix_ms) {
  if (unix_ms <= 0) return "";
  time_t secs = static_cast<time_t>(unix_ms / 1000);
  struct tm tm;
  char buf[32];
  if (!gmtime_r(&secs, &tm) || !std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm)) return "";
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(unix_ms % 1000));
  return out;
}

bool agentRefusalInEffect(const policy::AgentRefusalReader::Result& a) {
  return a.refusal && a.published_generation <= a.refusal->kept_generation;
}

std::string agentRefusalJson(const policy::AgentRefusalReader::Result& a) {
  if (!a.refusal) return "null";
  const pfc::Refusal& r = *a.refusal;
  std::string b = "{\"by\":\"agent\",\"why\":" + pfc::jsonQuote(r.format());
  b += ",\"file\":" + pfc::jsonQuote(r.file) + ",\"line\":" + std::to_string(r.line) +
       ",\"column\":" + std::to_string(r.column) + ",\"message\":" + pfc::jsonQuote(r.message);
  b += ",\"errors\":" + std::to_string(r.error_count) + ",\"count\":" + std::to_string(r.count);
  b += ",\"unix_ms\":" + std::to_string(r.unix_ms) + ",\"at\":" + pfc::jsonQuote(utcText(r.unix_ms));
  b += ",\"kept_generation\":" + std::to_string(r.kept_generation);
  b += ",\"superseded\":" + std::string(agentRefusalInEffect(a) ? "false" : "true") + "}";
  return b;
}

}  // namespace mulligan::admin
