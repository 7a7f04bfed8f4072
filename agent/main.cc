// mulligan-agent: TOML policy -> validated, compiled table -> shared memory.
// Wiring only: parsing lives in compiler.*, rendering in render.*, the
// segment protocol in proto-free-config/, file watching in watcher.*.
#include <getopt.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>

#include "agent/admin_client.h"
#include "agent/compiler.h"
#include "agent/json.h"
#include "agent/log.h"
#include "agent/policy_docs.h"
#include "agent/render.h"
#include "agent/status.h"
#include "agent/watcher.h"
#include "proto-free-config/checksum.h"
#include "proto-free-config/layout.h"
#include "proto-free-config/publish.h"
#include "sidecar/core/logging.h"

namespace mulligan::agent {
namespace {

constexpr const char* kUsage = R"(usage:
  mulligan-agent check   --policy FILE                 validate; exit 0, or 1 with FILE:LINE:COL: message
  mulligan-agent publish --policy FILE [--shm NAME]    compile and publish once, exit
  mulligan-agent run     --policy FILE [--shm NAME]    publish, then watch FILE and republish on change
  mulligan-agent dump    [--shm NAME] [--format json|toml]   print the table in shared memory
  mulligan-agent status  [--admin ADDR:PORT]          what a sidecar enforces and what it did (its /config, /stats)
  mulligan-agent schema                               print the policy's JSON Schema (draft-07; docs/policy.schema.json)
  mulligan-agent reference                            print the policy reference (Markdown; docs/policy.md)

options (each may also come from the environment variable in brackets):
  --policy FILE     the TOML policy                              [MULLIGAN_POLICY]
  --shm NAME        POSIX shm name, or absolute path of a file on tmpfs
                    (default: mulligan-policy = /dev/shm/mulligan-policy)  [MULLIGAN_SHM]
  --format FMT      dump format: toml (default) or json           [MULLIGAN_FORMAT]
  --poll-ms N       run: re-read the file at least every N ms (default 2000)  [MULLIGAN_POLL_MS]
  --admin ADDR:PORT status: the sidecar's admin endpoint (default 127.0.0.1:15000)  [MULLIGAN_ADMIN]
  --help, --version
exit codes: 0 ok, 1 policy or segment error (status: the admin endpoint cannot be read), 2 usage error
)";

struct Options {
  std::string command;
  std::string policy;
  std::string shm = "mulligan-policy";
  std::string format = "toml";
  int poll_ms = 2000;
  std::string admin = "127.0.0.1:15000";
};

std::string envOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

// Returns the exit code to stop with, or nullopt to go on.
std::optional<int> parseArgs(int argc, char** argv, Options* o) {
  o->policy = envOr("MULLIGAN_POLICY", o->policy);
  o->shm = envOr("MULLIGAN_SHM", o->shm);
  o->format = envOr("MULLIGAN_FORMAT", o->format);
  o->admin = envOr("MULLIGAN_ADMIN", o->admin);
  o->poll_ms = std::atoi(envOr("MULLIGAN_POLL_MS", std::to_string(o->poll_ms)).c_str());
  static const option kLong[] = {
      {"policy", required_argument, nullptr, 'p'}, {"shm", required_argument, nullptr, 's'},
      {"format", required_argument, nullptr, 'f'}, {"poll-ms", required_argument, nullptr, 'P'},
      {"admin", required_argument, nullptr, 'a'},
      {"help", no_argument, nullptr, 'h'},         {"version", no_argument, nullptr, 'V'},
      {nullptr, 0, nullptr, 0},
  };
  int c;
  while ((c = getopt_long(argc, argv, "p:s:f:h", kLong, nullptr)) != -1) {
    switch (c) {
      case 'p': o->policy = optarg; break;
      case 's': o->shm = optarg; break;
      case 'f': o->format = optarg; break;
      case 'P': o->poll_ms = std::atoi(optarg); break;
      case 'a': o->admin = optarg; break;
      case 'h': std::fputs(kUsage, stdout); return 0;
      case 'V': std::printf("mulligan-agent %s (%s)\n", MULLIGAN_VERSION, pfc::layoutVersion()); return 0;
      default: std::fputs(kUsage, stderr); return 2;
    }
  }
  if (optind >= argc) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  o->command = argv[optind];
  if (optind + 1 < argc) {
    std::fprintf(stderr, "mulligan-agent: unexpected argument \"%s\"\n", argv[optind + 1]);
    return 2;
  }
  bool needs_policy = o->command == "check" || o->command == "publish" || o->command == "run";
  if (!needs_policy && o->command != "dump" && o->command != "status" && o->command != "schema" &&
      o->command != "reference") {
    std::fprintf(stderr,
                 "mulligan-agent: unknown command \"%s\" (check, publish, run, dump, status, schema, reference)\n",
                 o->command.c_str());
    return 2;
  }
  if (needs_policy && o->policy.empty()) {
    std::fprintf(stderr, "mulligan-agent %s: --policy FILE is required\n", o->command.c_str());
    return 2;
  }
  if (o->format != "toml" && o->format != "json") {
    std::fprintf(stderr, "mulligan-agent: --format must be toml or json, not \"%s\"\n", o->format.c_str());
    return 2;
  }
  if (o->poll_ms <= 0) o->poll_ms = 2000;
  return std::nullopt;
}

bool readFile(const std::string& path, std::string* out, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = path + ": cannot read: " + std::strerror(errno);
    return false;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

std::string absolutePath(const std::string& path) {
  if (!path.empty() && path[0] == '/') return path;
  char cwd[4096];
  if (!::getcwd(cwd, sizeof cwd)) return path;
  return std::string(cwd) + "/" + path;
}

// The outcome of reading and compiling the policy file once.
struct Compiled {
  std::optional<pfc::TableModel> model;
  std::vector<std::string> errors;  // formatted FILE:LINE:COL: message
  std::vector<Diagnostic> diagnostics;  // the same, as fields
  uint64_t source_checksum = 0;
};

Compiled compileFile(const std::string& path) {
  Compiled out;
  std::string text, error;
  if (!readFile(path, &text, &error)) {
    out.errors.push_back(error);
    out.diagnostics.push_back(Diagnostic{path, 0, 0, error.substr(std::min(error.size(), path.size() + 2))});
    return out;
  }
  out.source_checksum = pfc::checksum64(text.data(), text.size());
  CompileResult r = compilePolicy(text, path);
  out.diagnostics = r.errors;
  for (const Diagnostic& d : r.errors) out.errors.push_back(d.format());
  if (r.ok() && r.model) {
    out.model = std::move(r.model);
    out.model->source_path = absolutePath(path);
    out.model->source_checksum = out.source_checksum;
    out.model->created_unix_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count();
  }
  return out;
}

size_t routeCount(const pfc::TableModel& m) {
  size_t n = 0;
  for (const auto& s : m.services) n += s.routes.size();
  return n;
}

// "1 service, 3 routes": what a file holds, in English.
std::string servicesAndRoutes(const pfc::TableModel& m) {
  size_t s = m.services.size();
  size_t r = routeCount(m);
  return std::to_string(s) + (s == 1 ? " service, " : " services, ") + std::to_string(r) +
         (r == 1 ? " route" : " routes");
}

int cmdCheck(const Options& o) {
  Compiled c = compileFile(o.policy);
  for (const std::string& e : c.errors) std::fprintf(stderr, "%s\n", e.c_str());
  if (!c.model) {
    std::fprintf(stderr, "%s: %zu error%s\n", o.policy.c_str(), c.errors.size(), c.errors.size() == 1 ? "" : "s");
    return 1;
  }
  std::printf("%s: ok (%s)\n", o.policy.c_str(), servicesAndRoutes(*c.model).c_str());
  return 0;
}

// Compiles and publishes; logs the outcome. Returns the generation, 0 on failure.
uint64_t compileAndPublish(pfc::Publisher& pub, const Compiled& c, const std::string& path) {
  auto start = std::chrono::steady_clock::now();
  std::string error;
  uint64_t g = pub.publish(*c.model, &error);
  if (g == 0) {
    logError("publish to %s failed: %s", pub.segment().name().c_str(), error.c_str());
    return 0;
  }
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  logInfo("published generation %llu from %s (%s, source checksum %016llx) to %s in %.2f ms",
          static_cast<unsigned long long>(g), path.c_str(), servicesAndRoutes(*c.model).c_str(),
          static_cast<unsigned long long>(c.source_checksum), pub.segment().name().c_str(), ms);
  return g;
}

std::unique_ptr<pfc::Publisher> openPublisher(const Options& o) {
  std::string error;
  auto pub = pfc::Publisher::open(o.shm, &error);
  if (!pub) logError("%s", error.c_str());
  return pub;
}

// Records a refused file in the segment, where sidecars show it on their
// admin endpoint (/config last_refused, /, /metrics).
void recordRefusal(pfc::Publisher& pub, const Compiled& c) {
  if (c.diagnostics.empty()) return;
  const Diagnostic& first = c.diagnostics.front();
  pfc::Refusal r;
  r.file = first.file;
  r.line = static_cast<uint32_t>(std::max(first.line, 0));
  r.column = static_cast<uint32_t>(std::max(first.column, 0));
  r.message = first.message;
  r.error_count = static_cast<uint32_t>(c.diagnostics.size());
  r.unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  r.source_checksum = c.source_checksum;
  pub.recordRefusal(r);
}

int cmdPublish(const Options& o) {
  Compiled c = compileFile(o.policy);
  if (!c.model) {
    for (const std::string& e : c.errors) std::fprintf(stderr, "%s\n", e.c_str());
    logError("%s has %zu error%s; nothing published", o.policy.c_str(), c.errors.size(),
             c.errors.size() == 1 ? "" : "s");
    // Best effort: tell the sidecars of an existing segment too, unless
    // another agent owns it (that one reports its own refusals). A one-shot
    // publish never creates a segment only to say it published nothing.
    std::string ignored;
    if (pfc::Subscriber::open(o.shm, &ignored)) {
      if (auto pub = pfc::Publisher::open(o.shm, &ignored)) recordRefusal(*pub, c);
    }
    return 1;
  }
  auto pub = openPublisher(o);
  if (!pub) return 1;
  uint64_t g = compileAndPublish(*pub, c, o.policy);
  if (g == 0) return 1;
  std::printf("published generation %llu to %s\n", static_cast<unsigned long long>(g), o.shm.c_str());
  return 0;
}

int cmdRun(const Options& o) {
  PolicyWatcher watcher(o.policy);
  if (!watcher.ok()) {
    logError("%s", watcher.error().c_str());
    return 1;
  }
  auto pub = openPublisher(o);
  if (!pub) return 1;
  logInfo("watching %s; publishing to %s (resuming after generation %llu)", o.policy.c_str(), o.shm.c_str(),
          static_cast<unsigned long long>(pub->lastGeneration()));
  // The checksum of the file contents last acted on (published or refused),
  // so that a re-read of unchanged bytes does nothing and a broken edit is
  // reported once, not on every poll.
  bool have_last = false;
  uint64_t last_seen = 0;
  bool ever_published = false;
  for (;;) {
    Compiled c = compileFile(o.policy);
    bool unreadable = !c.model && c.source_checksum == 0 && !c.errors.empty();
    uint64_t key = unreadable ? 0 : c.source_checksum;
    if (!have_last || last_seen != key) {
      have_last = true;
      last_seen = key;
      if (c.model) {
        if (compileAndPublish(*pub, c, o.policy) != 0) {
          ever_published = true;
        } else {
          have_last = false;  // try again on the next wake-up
        }
      } else {
        for (const std::string& e : c.errors) logError("%s", e.c_str());
        recordRefusal(*pub, c);
        logError("%s has %zu error%s; %s", o.policy.c_str(), c.errors.size(), c.errors.size() == 1 ? "" : "s",
                 ever_published || pub->lastGeneration() > 0
                     ? ("keeping generation " + std::to_string(pub->lastGeneration())).c_str()
                     : "nothing published yet");
      }
    }
    switch (watcher.wait(o.poll_ms, 5)) {
      case PolicyWatcher::Wake::kChanged:
      case PolicyWatcher::Wake::kTimeout:
        break;
      case PolicyWatcher::Wake::kSignal:
        logInfo("stopping; generation %llu stays published", static_cast<unsigned long long>(pub->lastGeneration()));
        return 0;
      case PolicyWatcher::Wake::kError:
        logError("%s", watcher.error().c_str());
        return 1;
    }
  }
}

int cmdDump(const Options& o) {
  std::string error;
  auto sub = pfc::Subscriber::open(o.shm, &error);
  if (!sub) {
    std::fprintf(stderr, "mulligan-agent dump: %s\n", error.c_str());
    return 1;
  }
  std::shared_ptr<const pfc::Table> table;
  auto status = sub->read(&table, &error);
  if (status != pfc::Subscriber::Status::kOk) {
    std::fprintf(stderr, "mulligan-agent dump: %s: %s%s%s\n", o.shm.c_str(), pfc::Subscriber::statusName(status),
                 error.empty() ? "" : ": ", error.c_str());
    return 1;
  }
  pfc::TableModel model = table->toModel();
  std::string out = o.format == "json" ? renderJson(model, table->generation()) : renderToml(model, table->generation());
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

// Fetches a JSON document from the admin endpoint, or says why not.
std::optional<Json> adminJson(const std::string& admin, const char* path, std::string* error) {
  auto reply = httpGet(admin, path, 5000, error);
  if (!reply) return std::nullopt;
  if (reply->status != 200) {
    *error = admin + path + ": HTTP " + std::to_string(reply->status);
    return std::nullopt;
  }
  auto doc = Json::parse(reply->body, error);
  if (!doc) *error = admin + path + ": not JSON (" + *error + ")";
  return doc;
}

int cmdStatus(const Options& o) {
  std::string error;
  auto config = adminJson(o.admin, "/config", &error);
  auto stats = config ? adminJson(o.admin, "/stats", &error) : std::nullopt;
  if (!config || !stats) {
    std::fprintf(stderr, "mulligan-agent status: %s (is the sidecar's --admin elsewhere? try --admin ADDR:PORT)\n",
                 error.c_str());
    return 1;
  }
  std::string out = renderStatus(o.admin, *config, *stats);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace
}  // namespace mulligan::agent

int main(int argc, char** argv) {
  using namespace mulligan::agent;
  mulligan::setLogProgram("mulligan-agent");
  Options o;
  if (auto code = parseArgs(argc, argv, &o)) return *code;
  if (o.command == "check") return cmdCheck(o);
  if (o.command == "publish") return cmdPublish(o);
  if (o.command == "run") return cmdRun(o);
  if (o.command == "status") return cmdStatus(o);
  if (o.command == "schema" || o.command == "reference") {
    std::string out = o.command == "schema" ? policySchemaJson() : policyReferenceMarkdown();
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
  }
  return cmdDump(o);
}
