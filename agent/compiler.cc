#include "agent/compiler.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <toml++/toml.h>

#include "agent/duration.h"

namespace mulligan::agent {
namespace {

using pfc::EffectivePolicy;

constexpr int64_t kSecond = 1'000'000;
constexpr int64_t kMaxTimeout = 24 * 3600 * kSecond;
constexpr int64_t kHour = 3600 * kSecond;
constexpr uint32_t kMaxRetries = 25;
constexpr uint64_t kMaxBufferedBody = uint64_t{64} << 20;
constexpr const char* kDurationHint = " is not a duration (use e.g. \"500ms\", \"2s\")";

// Which table a key sits in; decides what is allowed there.
enum class Level {
  kDefaults,  // [defaults]
  kService,   // [[service]]
  kRoute,     // [[service.route]]
};

const std::vector<std::string_view> kRootKeys = {"version", "defaults", "service"};
const std::vector<std::string_view> kPolicyKeys = {"connect_timeout", "request_timeout", "idle_timeout",
                                                   "read_timeout",    "retry",           "budget",
                                                   "deadline"};
const std::vector<std::string_view> kServiceOnlyKeys = {"name", "hosts", "port", "upstream", "route"};
const std::vector<std::string_view> kRouteOnlyKeys = {"path_prefix", "path_exact", "grpc", "methods"};
const std::vector<std::string_view> kRetryKeys = {"retry_on",        "num_retries",      "per_try_timeout",
                                                  "backoff_base",    "backoff_max",      "retry_after",
                                                  "retry_after_max", "idempotency_header", "max_buffered_body"};
const std::vector<std::string_view> kBudgetKeys = {"retry_ratio", "min_retries_per_second", "window"};
const std::vector<std::string_view> kDeadlineKeys = {"propagate", "accept_inbound", "grpc_timeout_offset",
                                                     "min_attempt_budget"};

size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// The closest known name, if it is close enough to be a plausible typo.
std::string suggest(std::string_view word, const std::vector<std::string_view>& known) {
  std::string best;
  size_t best_d = std::max<size_t>(3, word.size() / 3) + 1;
  for (std::string_view k : known) {
    size_t d = editDistance(word, k);
    if (d < best_d) {
      best_d = d;
      best = std::string(k);
    }
  }
  return best;
}

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

// How a value looks in an error message: strings quoted, others as TOML.
std::string show(const toml::node& n) {
  if (auto s = n.as_string()) return quoted(s->get());
  std::ostringstream os;
  if (auto i = n.as_integer()) os << i->get();
  else if (auto f = n.as_floating_point()) os << f->get();
  else if (auto b = n.as_boolean()) os << (b->get() ? "true" : "false");
  else if (n.is_array()) os << "an array";
  else if (n.is_table()) os << "a table";
  else os << "a value";
  return os.str();
}

class Compiler {
 public:
  explicit Compiler(std::string_view file) : file_(file) {}

  CompileResult run(std::string_view text) {
    CompileResult result;
    toml::table root;
    try {
      root = toml::parse(text, file_);
    } catch (const toml::parse_error& e) {
      error(e.source().begin, std::string(e.description()));
      result.errors = std::move(errors_);
      return result;
    }
    pfc::TableModel model;
    compileRoot(root, &model);
    std::stable_sort(errors_.begin(), errors_.end(), [](const Diagnostic& a, const Diagnostic& b) {
      return std::tie(a.line, a.column) < std::tie(b.line, b.column);
    });
    result.errors = std::move(errors_);
    if (result.errors.empty()) result.model = std::move(model);
    return result;
  }

 private:
  void error(const toml::source_position& pos, std::string message) {
    errors_.push_back(Diagnostic{file_, static_cast<int>(pos.line), static_cast<int>(pos.column), std::move(message)});
  }
  void error(const toml::node& at, std::string message) { error(at.source().begin, std::move(message)); }

  // Reports every key of `t` not in `allowed`; `where` names the table.
  void checkKeys(const toml::table& t, const std::vector<std::string_view>& allowed, const std::string& where,
                 Level level = Level::kDefaults) {
    for (auto&& [key, value] : t) {
      std::string_view k = key.str();
      if (std::find(allowed.begin(), allowed.end(), k) != allowed.end()) continue;
      if (level == Level::kRoute && k == "idle_timeout") {
        error(key.source().begin,
              "idle_timeout is per connection: set it on the service or in [defaults], not on a route");
      } else if (level == Level::kRoute && k == "budget") {
        error(key.source().begin, "budget is per service: set it on the service or in [defaults], not on a route");
      } else if (level == Level::kDefaults && std::find(kServiceOnlyKeys.begin(), kServiceOnlyKeys.end(), k) !=
                                                  kServiceOnlyKeys.end()) {
        error(key.source().begin, quoted(k) + " belongs in a [[service]], not in " + where);
      } else {
        std::string msg = "unknown key " + quoted(k) + " in " + where;
        std::string hint = suggest(k, allowed);
        if (!hint.empty()) msg += " (did you mean " + quoted(hint) + "?)";
        error(key.source().begin, msg);
      }
    }
  }

  // ---------------------------------------------------------- value readers --

  std::optional<int64_t> duration(const toml::node& n, std::string_view name, int64_t min_us, int64_t max_us) {
    auto s = n.as_string();
    std::optional<int64_t> us = s ? parseDuration(s->get()) : std::nullopt;
    if (!us) {
      error(n, std::string(name) + ": " + show(n) + kDurationHint);
      return std::nullopt;
    }
    if (*us < min_us) {
      error(n, std::string(name) + ": " + show(n) + " is too short (at least " + formatDuration(min_us) + ")");
      return std::nullopt;
    }
    if (*us > max_us) {
      error(n, std::string(name) + ": " + show(n) + " is too long (at most " + formatDuration(max_us) + ")");
      return std::nullopt;
    }
    return us;
  }

  std::optional<bool> boolean(const toml::node& n, std::string_view name) {
    if (auto b = n.as_boolean()) return b->get();
    error(n, std::string(name) + ": " + show(n) + " is not a boolean (use true or false)");
    return std::nullopt;
  }

  std::optional<int64_t> integer(const toml::node& n, std::string_view name, int64_t min, int64_t max) {
    auto i = n.as_integer();
    if (!i) {
      error(n, std::string(name) + ": " + show(n) + " is not an integer");
      return std::nullopt;
    }
    if (i->get() < min || i->get() > max) {
      error(n, std::string(name) + ": " + show(n) + " is out of range (" + std::to_string(min) + ".." +
                   std::to_string(max) + ")");
      return std::nullopt;
    }
    return i->get();
  }

  const toml::table* table(const toml::node& n, std::string_view name) {
    if (auto t = n.as_table()) return t;
    error(n, std::string(name) + ": " + show(n) + " is not a table (use [" + std::string(name) + "] or " +
                 std::string(name) + " = { ... })");
    return nullptr;
  }

  // ---------------------------------------------------------- policy fields --

  // Applies the policy fields present in `t` onto `p` (field by field).
  void applyPolicy(const toml::table& t, Level level, const std::string& where, EffectivePolicy* p) {
    auto timeout = [&](const char* key, int64_t* field, int64_t min_us) {
      if (const toml::node* n = t.get(key)) {
        if (auto v = duration(*n, key, min_us, kMaxTimeout)) *field = *v;
      }
    };
    timeout("connect_timeout", &p->connect_timeout_us, 1000);
    timeout("request_timeout", &p->request_timeout_us, 0);
    if (level != Level::kRoute) timeout("idle_timeout", &p->idle_timeout_us, 1000);
    timeout("read_timeout", &p->read_timeout_us, 0);
    if (const toml::node* n = t.get("retry")) {
      if (auto rt = table(*n, "retry")) applyRetry(*rt, where + ".retry", p);
    }
    if (level != Level::kRoute) {
      if (const toml::node* n = t.get("budget")) {
        if (auto bt = table(*n, "budget")) applyBudget(*bt, where + ".budget", p);
      }
    }
    if (const toml::node* n = t.get("deadline")) {
      if (auto dt = table(*n, "deadline")) applyDeadline(*dt, where + ".deadline", p);
    }
  }

  void applyRetry(const toml::table& t, const std::string& where, EffectivePolicy* p) {
    checkKeys(t, kRetryKeys, "[" + where + "]");
    pfc::RetryPolicy& r = p->retry;
    if (const toml::node* n = t.get("retry_on")) applyRetryOn(*n, &r);
    if (const toml::node* n = t.get("num_retries")) {
      if (auto v = integer(*n, "num_retries", 0, kMaxRetries)) r.num_retries = static_cast<uint32_t>(*v);
    }
    auto dur = [&](const char* key, int64_t* field, int64_t min_us, int64_t max_us) {
      if (const toml::node* n = t.get(key)) {
        if (auto v = duration(*n, key, min_us, max_us)) *field = *v;
      }
    };
    dur("per_try_timeout", &r.per_try_timeout_us, 0, kMaxTimeout);
    dur("backoff_base", &r.backoff_base_us, 1, kHour);
    dur("backoff_max", &r.backoff_max_us, 1, kHour);
    dur("retry_after_max", &r.retry_after_max_us, 0, kHour);
    if (const toml::node* n = t.get("retry_after")) {
      if (auto v = boolean(*n, "retry_after")) r.retry_after = *v ? 1 : 0;
    }
    if (const toml::node* n = t.get("idempotency_header")) applyIdempotencyHeader(*n, &r);
    if (const toml::node* n = t.get("max_buffered_body")) {
      std::optional<uint64_t> bytes;
      if (auto s = n->as_string()) bytes = parseSize(s->get());
      else if (auto i = n->as_integer(); i && i->get() >= 0) bytes = static_cast<uint64_t>(i->get());
      if (!bytes) {
        error(*n, "max_buffered_body: " + show(*n) + " is not a size (use e.g. \"64KiB\", \"1MiB\")");
      } else if (*bytes > kMaxBufferedBody) {
        error(*n, "max_buffered_body: " + show(*n) + " is too large (at most \"64MiB\")");
      } else {
        r.max_buffered_body = *bytes;
      }
    }
    // Cross-field rule on the effective values, reported where this level set one.
    if (r.backoff_base_us > r.backoff_max_us) {
      const toml::node* at = t.get("backoff_base") ? t.get("backoff_base") : t.get("backoff_max");
      if (at) {
        error(*at, "backoff_base (" + formatDuration(r.backoff_base_us) + ") is larger than backoff_max (" +
                       formatDuration(r.backoff_max_us) + ")");
      }
    }
  }

  void applyRetryOn(const toml::node& n, pfc::RetryPolicy* r) {
    auto arr = n.as_array();
    if (!arr) {
      error(n, "retry_on: " + show(n) + " is not an array (e.g. [\"5xx\", \"connect-failure\"])");
      return;
    }
    uint32_t conditions = 0, grpc = 0;
    uint64_t status[pfc::kStatusWords] = {};
    std::vector<std::string_view> names;
    for (uint32_t c = 0; c < static_cast<uint32_t>(pfc::RetryCondition::kCount); ++c) {
      names.push_back(pfc::conditionName(static_cast<pfc::RetryCondition>(c)));
    }
    for (uint32_t g = 0; g <= 16; ++g) {
      if (auto name = pfc::grpcCodeName(static_cast<pfc::GrpcCode>(g)); !name.empty()) names.push_back(name);
    }
    bool ok = true;
    for (const toml::node& item : *arr) {
      int code = -1;
      if (auto i = item.as_integer()) {
        code = static_cast<int>(i->get());
        if (i->get() < pfc::kMinStatus || i->get() > pfc::kMaxStatus) code = -2;
      } else if (auto s = item.as_string()) {
        std::string_view v = s->get();
        if (!v.empty() && std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
          code = v.size() == 3 ? std::stoi(std::string(v)) : -2;
          if (code != -2 && (code < pfc::kMinStatus || code > pfc::kMaxStatus)) code = -2;
        } else {
          bool found = false;
          for (uint32_t c = 0; c < static_cast<uint32_t>(pfc::RetryCondition::kCount) && !found; ++c) {
            if (pfc::conditionName(static_cast<pfc::RetryCondition>(c)) == v) {
              conditions |= 1u << c;
              found = true;
            }
          }
          for (uint32_t g = 0; g <= 16 && !found; ++g) {
            if (auto name = pfc::grpcCodeName(static_cast<pfc::GrpcCode>(g)); !name.empty() && name == v) {
              grpc |= 1u << g;
              found = true;
            }
          }
          if (!found) {
            std::string msg = "retry_on: unknown condition " + quoted(v);
            std::string hint = suggest(v, names);
            msg += hint.empty() ? " (use e.g. \"5xx\", \"gateway-error\", \"connect-failure\", \"503\", \"unavailable\")"
                                : " (did you mean " + quoted(hint) + "?)";
            error(item, msg);
            ok = false;
          }
          continue;
        }
      } else {
        error(item, "retry_on: " + show(item) + " is not a condition name or status code");
        ok = false;
        continue;
      }
      if (code < 0) {
        error(item, "retry_on: " + show(item) + " is not an HTTP status code (100..599)");
        ok = false;
        continue;
      }
      status[code / 64] |= uint64_t{1} << (code % 64);
    }
    if (!ok) return;
    r->conditions = conditions;
    r->grpc_codes = grpc;
    std::memcpy(r->status_bits, status, sizeof status);
  }

  void applyIdempotencyHeader(const toml::node& n, pfc::RetryPolicy* r) {
    auto s = n.as_string();
    std::string v = s ? std::string(s->get()) : std::string();
    // RFC 9110 §5.6.2 token characters; stored lower case (header names are
    // case-insensitive and the sidecar compares lower case).
    bool ok = s && v.size() <= pfc::kMaxHeaderName && std::all_of(v.begin(), v.end(), [](char c) {
                return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("!#$%&'*+-.^_`|~", c);
              });
    if (!ok) {
      error(n, "idempotency_header: " + show(n) + " is not a header name (letters, digits and -, at most 63)");
      return;
    }
    std::transform(v.begin(), v.end(), v.begin(), [](char c) { return std::tolower(static_cast<unsigned char>(c)); });
    std::memset(r->idempotency_header, 0, sizeof r->idempotency_header);
    std::memcpy(r->idempotency_header, v.data(), v.size());
  }

  void applyBudget(const toml::table& t, const std::string& where, EffectivePolicy* p) {
    checkKeys(t, kBudgetKeys, "[" + where + "]");
    if (const toml::node* n = t.get("retry_ratio")) {
      std::optional<double> v;
      if (auto f = n->as_floating_point()) v = f->get();
      else if (auto i = n->as_integer()) v = static_cast<double>(i->get());
      if (!v || !(*v >= 0 && *v <= 10)) {
        error(*n, "retry_ratio: " + show(*n) + " is not a ratio between 0 and 10 (e.g. 0.2)");
      } else {
        p->budget.retry_ratio = *v;
      }
    }
    if (const toml::node* n = t.get("min_retries_per_second")) {
      if (auto v = integer(*n, "min_retries_per_second", 0, 100000)) {
        p->budget.min_retries_per_second = static_cast<uint32_t>(*v);
      }
    }
    if (const toml::node* n = t.get("window")) {
      if (auto v = duration(*n, "window", kSecond, kHour)) p->budget.window_us = *v;
    }
  }

  void applyDeadline(const toml::table& t, const std::string& where, EffectivePolicy* p) {
    checkKeys(t, kDeadlineKeys, "[" + where + "]");
    if (const toml::node* n = t.get("propagate")) {
      if (auto v = boolean(*n, "propagate")) p->deadline.propagate = *v ? 1 : 0;
    }
    if (const toml::node* n = t.get("accept_inbound")) {
      if (auto v = boolean(*n, "accept_inbound")) p->deadline.accept_inbound = *v ? 1 : 0;
    }
    if (const toml::node* n = t.get("grpc_timeout_offset")) {
      if (auto v = duration(*n, "grpc_timeout_offset", 0, kHour)) p->deadline.grpc_timeout_offset_us = *v;
    }
    if (const toml::node* n = t.get("min_attempt_budget")) {
      if (auto v = duration(*n, "min_attempt_budget", 0, kHour)) p->deadline.min_attempt_budget_us = *v;
    }
  }

  // ------------------------------------------------------------- structure --

  void compileRoot(const toml::table& root, pfc::TableModel* model) {
    checkKeys(root, kRootKeys, "the top level");
    if (const toml::node* v = root.get("version")) {
      auto i = v->as_integer();
      if (!i || i->get() != 1) error(*v, "version: " + show(*v) + " is not supported (this agent reads version = 1)");
    }
    model->defaults = pfc::builtinDefaults();
    if (const toml::node* d = root.get("defaults")) {
      if (auto t = table(*d, "defaults")) {
        std::vector<std::string_view> allowed = kPolicyKeys;
        checkKeys(*t, allowed, "[defaults]", Level::kDefaults);
        applyPolicy(*t, Level::kDefaults, "defaults", &model->defaults);
      }
    }
    const toml::node* services = root.get("service");
    if (!services) return;
    auto arr = services->as_array();
    if (!arr || !arr->is_array_of_tables()) {
      error(*services, "service: use [[service]] tables, one per service");
      return;
    }
    for (const toml::node& s : *arr) compileService(*s.as_table(), model);
    checkDuplicates(*arr, *model);
  }

  void compileService(const toml::table& t, pfc::TableModel* model) {
    pfc::ServiceModel svc;
    std::string where = "[[service]]";
    std::vector<std::string_view> allowed = kPolicyKeys;
    allowed.insert(allowed.end(), kServiceOnlyKeys.begin(), kServiceOnlyKeys.end());
    if (const toml::node* n = t.get("name")) {
      auto s = n->as_string();
      std::string v = s ? std::string(s->get()) : "";
      bool ok = !v.empty() && v.size() <= 128 && std::all_of(v.begin(), v.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
      });
      if (!ok) {
        error(*n, "name: " + show(*n) + " is not a service name (lower-case letters, digits, '.', '_', '-')");
      } else {
        svc.name = v;
        where = "[[service]] " + quoted(v);
      }
    } else {
      error(t, "[[service]] has no name (name = \"orders\")");
    }
    checkKeys(t, allowed, where, Level::kService);
    if (const toml::node* n = t.get("hosts")) {
      compileHosts(*n, &svc);
    } else {
      error(t, where + " has no hosts (hosts = [\"orders\", \"orders.default.svc.cluster.local\"])");
    }
    if (const toml::node* n = t.get("port")) {
      if (auto v = integer(*n, "port", 1, 65535)) svc.port = static_cast<uint32_t>(*v);
    }
    if (const toml::node* n = t.get("upstream")) compileUpstream(*n, &svc);
    svc.policy = model->defaults;
    applyPolicy(t, Level::kService, "service", &svc.policy);
    if (const toml::node* r = t.get("route")) {
      auto arr = r->as_array();
      if (!arr || !arr->is_array_of_tables()) {
        error(*r, "route: use [[service.route]] tables, one per route");
      } else {
        std::vector<const toml::table*> seen;
        for (const toml::node& rn : *arr) {
          compileRoute(*rn.as_table(), svc, where, seen);
          seen.push_back(rn.as_table());
        }
      }
    }
    model->services.push_back(std::move(svc));
  }

  static bool validHostName(std::string_view h) {
    if (h.empty() || h.size() > 253 || h.front() == '.' || h.back() == '.' || h.find("..") != std::string_view::npos) {
      return false;
    }
    return std::all_of(h.begin(), h.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
    });
  }

  // An IPv6 literal, with or without brackets -> "[...]" (how a Host header carries it).
  static std::optional<std::string> ipv6Literal(std::string_view h) {
    if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
    if (h.find(':') == std::string_view::npos) return std::nullopt;
    bool ok = std::all_of(h.begin(), h.end(), [](char c) {
      return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == ':' || c == '.';
    });
    if (!ok) return std::nullopt;
    return "[" + std::string(h) + "]";
  }

  void compileHosts(const toml::node& n, pfc::ServiceModel* svc) {
    auto arr = n.as_array();
    if (!arr || arr->empty()) {
      error(n, "hosts: " + show(n) + " is not a non-empty array of host names");
      return;
    }
    for (const toml::node& item : *arr) {
      auto s = item.as_string();
      if (!s) {
        error(item, "hosts: " + show(item) + " is not a host name");
        continue;
      }
      std::string h(s->get());
      std::transform(h.begin(), h.end(), h.begin(), [](char c) { return std::tolower(static_cast<unsigned char>(c)); });
      if (auto v6 = ipv6Literal(h)) {
        svc->hosts.push_back(*v6);
      } else if (h.size() > 2 && h.compare(0, 2, "*.") == 0 && validHostName(h.substr(2))) {
        svc->hosts.push_back(h);
      } else if (validHostName(h)) {
        svc->hosts.push_back(h);
      } else {
        error(item, "hosts: " + show(item) + " is not a host name, an IP address or a \"*.suffix\" wildcard");
      }
    }
  }

  void compileUpstream(const toml::node& n, pfc::ServiceModel* svc) {
    auto s = n.as_string();
    std::string v = s ? std::string(s->get()) : "";
    size_t colon = v.rfind(':');
    bool ok = colon != std::string::npos && colon > 0;
    std::string host = ok ? v.substr(0, colon) : "";
    std::string port = ok ? v.substr(colon + 1) : "";
    if (ok && host.front() == '[') ok = host.back() == ']' && ipv6Literal(host).has_value();
    else if (ok) ok = validHostName(host) || [&] {
      return !host.empty() && std::all_of(host.begin(), host.end(), [](char c) {
        return (c >= '0' && c <= '9') || c == '.' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '-';
      });
    }();
    ok = ok && !port.empty() && port.size() <= 5 &&
         std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) && std::stoi(port) >= 1 &&
         std::stoi(port) <= 65535;
    if (!ok) {
      error(n, "upstream: " + show(n) + " is not HOST:PORT (e.g. \"127.0.0.1:9000\", \"orders:8080\", \"[::1]:80\")");
      return;
    }
    svc->upstream = v;
  }

  void compileRoute(const toml::table& t, pfc::ServiceModel& svc, const std::string& service_where,
                    const std::vector<const toml::table*>& earlier) {
    std::string where = "[[service.route]] of " + service_where.substr(std::strlen("[[service]] "));
    std::vector<std::string_view> allowed = {"connect_timeout", "request_timeout", "read_timeout", "retry",
                                             "deadline"};
    allowed.insert(allowed.end(), kRouteOnlyKeys.begin(), kRouteOnlyKeys.end());
    checkKeys(t, allowed, where, Level::kRoute);
    pfc::RouteModel r;
    int matches = 0;
    bool match_ok = true;
    for (const char* key : {"path_prefix", "path_exact", "grpc"}) {
      const toml::node* n = t.get(key);
      if (!n) continue;
      ++matches;
      auto s = n->as_string();
      std::string v = s ? std::string(s->get()) : "";
      std::string_view k = key;
      if (k == "grpc") {
        // "pkg.Service" or "pkg.Service/Method"
        size_t slash = v.find('/');
        bool ok = !v.empty() && v.front() != '/' && v.find('/', slash == std::string::npos ? 0 : slash + 1) ==
                                                        std::string::npos &&
                  (slash == std::string::npos || (slash > 0 && slash + 1 < v.size())) &&
                  v.find_first_of(" ?#") == std::string::npos;
        if (!ok) {
          error(*n, "grpc: " + show(*n) + " is not \"package.Service\" or \"package.Service/Method\"");
          match_ok = false;
          continue;
        }
        r.kind = slash == std::string::npos ? pfc::MatchKind::kGrpcService : pfc::MatchKind::kGrpcMethod;
      } else {
        if (v.empty() || v.front() != '/') {
          error(*n, std::string(k) + ": " + show(*n) + " must be a path starting with \"/\"");
          match_ok = false;
          continue;
        }
        r.kind = k == "path_prefix" ? pfc::MatchKind::kPathPrefix : pfc::MatchKind::kPathExact;
      }
      r.match = v;
    }
    if (matches == 0) {
      error(t, where + " needs one of path_prefix, path_exact or grpc (path_prefix = \"/\" matches everything)");
      match_ok = false;
    } else if (matches > 1) {
      error(t, where + " has more than one of path_prefix, path_exact and grpc; use one per route");
      match_ok = false;
    }
    if (const toml::node* n = t.get("methods")) {
      auto arr = n->as_array();
      if (!arr || arr->empty()) {
        error(*n, "methods: " + show(*n) + " is not a non-empty array (e.g. [\"GET\", \"HEAD\"])");
      } else {
        uint32_t bits = 0;
        for (const toml::node& m : *arr) {
          auto s = m.as_string();
          pfc::Method method;
          if (s && pfc::parseMethod(s->get(), &method)) {
            bits |= pfc::methodBit(method);
            continue;
          }
          std::string v = s ? std::string(s->get()) : "";
          std::string upper = v;
          std::transform(upper.begin(), upper.end(), upper.begin(),
                         [](char c) { return std::toupper(static_cast<unsigned char>(c)); });
          if (s && pfc::parseMethod(upper, &method)) {
            error(m, "methods: " + show(m) + " must be upper case (did you mean " + quoted(upper) + "?)");
          } else {
            error(m, "methods: " + show(m) + " is not an HTTP method (GET, HEAD, POST, PUT, DELETE, CONNECT, "
                                             "OPTIONS, TRACE, PATCH)");
          }
        }
        if (bits) r.methods = bits;
      }
    }
    r.policy = svc.policy;
    applyPolicy(t, Level::kRoute, "service.route", &r.policy);
    if (match_ok) checkReachable(t, r, svc);
    svc.routes.push_back(std::move(r));
    route_tables_.push_back(&t);
    (void)earlier;
  }

  // Does route `a` match every request route `b` matches?
  static bool covers(const pfc::RouteModel& a, const pfc::RouteModel& b) {
    if ((a.methods & b.methods) != b.methods) return false;
    using K = pfc::MatchKind;
    // The request path each gRPC route matches, as a prefix or an exact path.
    auto path_of = [](const pfc::RouteModel& r) {
      return r.kind == K::kGrpcService ? "/" + r.match + "/" : r.kind == K::kGrpcMethod ? "/" + r.match : r.match;
    };
    std::string bp = path_of(b);
    switch (a.kind) {
      case K::kPathPrefix:
        return bp.compare(0, a.match.size(), a.match) == 0;
      case K::kPathExact:
        return (b.kind == K::kPathExact || b.kind == K::kGrpcMethod) && bp == a.match;
      case K::kGrpcService:
        return (b.kind == K::kGrpcService || b.kind == K::kGrpcMethod) && bp.compare(0, a.match.size() + 2, "/" + a.match + "/") == 0;
      case K::kGrpcMethod:
        return b.kind == K::kGrpcMethod && b.match == a.match;
    }
    return false;
  }

  void checkReachable(const toml::table& t, const pfc::RouteModel& r, const pfc::ServiceModel& svc) {
    size_t first_route = route_tables_.size() - svc.routes.size();
    for (size_t i = 0; i < svc.routes.size(); ++i) {
      if (covers(svc.routes[i], r)) {
        error(t, "this route can never match: the route at line " +
                     std::to_string(route_tables_[first_route + i]->source().begin.line) +
                     " matches every request it would (put the more specific route first)");
        return;
      }
    }
  }

  void checkDuplicates(const toml::array& arr, const pfc::TableModel& model) {
    std::map<std::string, size_t> names;
    std::map<std::pair<std::string, uint32_t>, size_t> hosts;
    for (size_t i = 0; i < model.services.size() && i < arr.size(); ++i) {
      const pfc::ServiceModel& s = model.services[i];
      const toml::table& t = *arr[i].as_table();
      if (!s.name.empty()) {
        auto [it, inserted] = names.emplace(s.name, i);
        if (!inserted) {
          error(*t.get("name"), "name: " + quoted(s.name) + " is already the name of the service at line " +
                                    std::to_string(arr[it->second].source().begin.line));
        }
      }
      for (const std::string& h : s.hosts) {
        auto [it, inserted] = hosts.emplace(std::make_pair(h, s.port), i);
        if (!inserted && it->second != i) {
          error(*t.get("hosts"), "hosts: " + quoted(h) + (s.port ? " port " + std::to_string(s.port) : "") +
                                     " is already served by service " + quoted(model.services[it->second].name));
        }
      }
    }
  }

  std::string file_;
  std::vector<Diagnostic> errors_;
  std::vector<const toml::table*> route_tables_;  // every route table so far, in order
};

}  // namespace

std::string Diagnostic::format() const {
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

CompileResult compilePolicy(std::string_view toml_text, std::string_view file_name) {
  Compiler c(file_name);
  return c.run(toml_text);
}

CompileResult compilePolicyFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    CompileResult r;
    r.errors.push_back(Diagnostic{path, 0, 0, std::string("cannot read: ") + std::strerror(errno)});
    return r;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return compilePolicy(ss.str(), path);
}

}  // namespace mulligan::agent
