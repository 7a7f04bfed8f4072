#include "agent/status.h"

#include <algorithm>
#include <cstdio>
#include <vector>

namespace mulligan::agent {
namespace {

// "503:2 reset:1" from {"503": 2, "reset": 1}, zeros left out.
std::string reasons(const Json& counts) {
  std::string out;
  for (const auto& [name, n] : counts.members()) {
    if (n.u64() == 0) continue;
    out += (out.empty() ? "" : " ") + name + ":" + std::to_string(n.u64());
  }
  return out;
}

uint64_t sum(const Json& counts) {
  uint64_t n = 0;
  for (const auto& [name, v] : counts.members()) n += v.u64();
  return n;
}

std::string plural(uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string refusalText(const Json& r) {
  if (r.isNull()) return "none";
  if (r["by"].str() == "agent") {
    std::string s = "policy file refused by the agent: " + r["why"].str();
    uint64_t errors = r["errors"].u64();
    if (errors > 1) s += " (and " + std::to_string(errors - 1) + " more)";
    s += "\n          at " + r["at"].str() + "; " +
         (r["superseded"].boolean()
              ? std::string("since superseded by a later generation")
              : "generation " + std::to_string(r["kept_generation"].u64()) + " stays enforced until the file is fixed") +
         " (" + plural(r["count"].u64(), "file", "files") + " refused in all)";
    return s;
  }
  return "table generation " + std::to_string(r["generation"].u64()) + " refused by the sidecar: " + r["why"].str();
}

}  // namespace

std::string renderStatus(const std::string& admin, const Json& config, const Json& stats) {
  std::string out;
  std::string state = stats["draining"].boolean() ? "draining"
                      : config["enforced"].boolean() ? "ready"
                                                      : "not ready: no policy loaded, enforcing built-in defaults";
  out += "sidecar   " + admin + " (" + state + ")\n";
  if (config["enforced"].boolean()) {
    out += "policy    generation " + std::to_string(config["generation"].u64()) + " from " +
           config["table"]["source"]["path"].str() + ", enforced since " + config["loaded_at"].str() + "\n";
  } else {
    out += "policy    none (built-in defaults)\n";
  }
  out += "layout    " + config["layout"].str() + "\n";
  out += "refused   " + refusalText(config["last_refused"]) + "\n";
  // An older agent refusal hidden behind a newer sidecar one is still worth a line.
  if (!config["agent_refused"].isNull() && config["last_refused"]["by"].str() != "agent") {
    out += "          " + refusalText(config["agent_refused"]) + "\n";
  }

  const Json& routes = stats["routes"];
  uint64_t requests = 0, retries = 0, refused = 0, timeouts = 0;
  for (const Json& r : routes.items()) {
    requests += r["requests"].u64();
    retries += r["retries"].u64();
    refused += sum(r["retries_refused"]);
    timeouts += sum(r["timeouts"]);
  }
  out += "traffic   " + plural(requests, "request", "requests") + ", " + plural(retries, "retry", "retries") + ", " +
         plural(refused, "refused retry", "refused retries") + ", " + plural(timeouts, "timeout", "timeouts") + "\n";
  if (routes.size() == 0) {
    out += "\nno traffic yet\n";
    return out;
  }

  // Rows sorted by service, then the service level before its routes.
  std::vector<const Json*> rows;
  for (const Json& r : routes.items()) rows.push_back(&r);
  auto key = [](const Json* r) {
    return std::make_pair(r->operator[]("service").str(),
                          r->operator[]("route").isNull() ? int64_t{-1} : static_cast<int64_t>(r->operator[]("route").u64()));
  };
  std::stable_sort(rows.begin(), rows.end(), [&](const Json* a, const Json* b) { return key(a) < key(b); });

  char line[512];
  std::snprintf(line, sizeof line, "\n%-20s %-28s %9s %6s %8s %8s %9s  %s\n", "SERVICE", "ROUTE", "REQUESTS", "5XX",
                "RETRIES", "REFUSED", "TIMEOUTS", "WHY");
  out += line;
  for (const Json* r : rows) {
    const Json& row = *r;
    std::string service = row["service"].str().empty() ? "(no service)" : row["service"].str();
    std::string route = row["route"].isNull() ? (row["service"].str().empty() ? "[defaults]" : "(service level)")
                                              : row["route"].str() + ": " + row["match"].str();
    std::string why;
    auto add = [&](const char* label, const std::string& text) {
      if (!text.empty()) why += (why.empty() ? "" : "; ") + std::string(label) + " " + text;
    };
    add("retried on", reasons(row["retries_by_reason"]));
    add("refused by", reasons(row["retries_refused"]));
    add("timeouts", reasons(row["timeouts"]));
    std::snprintf(line, sizeof line, "%-20s %-28s %9llu %6llu %8llu %8llu %9llu  ", service.c_str(),
                  route.c_str(), static_cast<unsigned long long>(row["requests"].u64()),
                  static_cast<unsigned long long>(row["responses"]["5xx"].u64()),
                  static_cast<unsigned long long>(row["retries"].u64()),
                  static_cast<unsigned long long>(sum(row["retries_refused"])),
                  static_cast<unsigned long long>(sum(row["timeouts"])));
    out += line;
    out += why;
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out += "\n";
  }
  return out;
}

}  // namespace mulligan::agent
