#include "agent/compiler.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <map>

#include "agent/duration.h"
#include "agent/policy_fields.h"
#include "proto-free-config/render.h"

namespace mulligan::agent {
namespace {

using pfc::EffectivePolicy;

constexpr std::string_view kDurationHint = " is not a duration (use e.g. \"500ms\", \"2s\")";

// Which table a key sits in; decides what is allowed there.
enum class Level {
  kDefaults,  // [defaults]
  kService,   // [[service]]
  kRoute,     // [[service.route]]
};

using Names = std::vector<std::string_view>;

// The key lists come from the field descriptions (agent/policy_fields.h), as
// the limits below do, so what the compiler accepts is what the schema and
// docs/policy.md describe.
const Names kRootKeys = fieldNames(Section::kRoot);
const Names kTimeoutKeys = fieldNames(Section::kPolicy, KindFilter::kValues);
const Names kSubTableKeys = fieldNames(Section::kPolicy, KindFilter::kTables);
const Names kServiceKeys = fieldNames(Section::kService);
const Names kRouteMatchKeys(routeMatchKeys().begin(), routeMatchKeys().end());
const Names kRouteKeys = fieldNames(Section::kRoute);
const Names kRetryKeys = fieldNames(Section::kRetry);
const Names kBudgetKeys = fieldNames(Section::kBudget);
const Names kDeadlineKeys = fieldNames(Section::kDeadline);
const Names kHedgeKeys = fieldNames(Section::kHedge);
const Names kOutlierKeys = fieldNames(Section::kOutlier);

// The sub-tables and their keys, for the "belongs in the X table" messages.
struct SubTableKeys {
  const Names* keys;
  const char* name;
};
const SubTableKeys kSubTables[] = {{&kRetryKeys, "retry"},
                                   {&kBudgetKeys, "budget"},
                                   {&kDeadlineKeys, "deadline"},
                                   {&kHedgeKeys, "hedge"},
                                   {&kOutlierKeys, "outlier"}};
// gRPC codes that exist but that retry_on may not name: retrying them would
// repeat a call that failed for a reason a retry does not fix.
const Names kNonRetriableGrpc = {"ok",
                                 "unknown",
                                 "invalid-argument",
                                 "not-found",
                                 "already-exists",
                                 "permission-denied",
                                 "failed-precondition",
                                 "aborted",
                                 "out-of-range",
                                 "unimplemented",
                                 "data-loss",
                                 "unauthenticated"};

bool contains(const Names& names, std::string_view s) {
  return std::find(names.begin(), names.end(), s) != names.end();
}

// The keys a policy level accepts. Routes cannot set idle_timeout (it is per
// connection, and a connection serves many routes) nor budget (per service).
Names policyKeys(Level level) {
  switch (level) {
    case Level::kDefaults:
      return levelKeys(kAtDefaults);
    case Level::kService:
      return levelKeys(kAtService);
    case Level::kRoute:
      return levelKeys(kAtRoute);
  }
  return {};
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
char upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

std::string toLower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), lower);
  return out;
}

bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool allDigits(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), isDigit); }

// Optimal-string-alignment distance: Levenshtein plus adjacent
// transpositions, so "versoin" is one edit from "version".
size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// The closest known name when it is close enough to be a plausible typo
// (a third of the word, 1..3 edits), else "".
std::string suggest(std::string_view w, const Names& known) {
  size_t limit = std::clamp<size_t>(w.size() / 3, 1, 3);
  std::string best;
  size_t best_d = limit + 1;
  for (std::string_view k : known) {
    size_t d = editDistance(w, k);
    if (d < best_d) {
      best_d = d;
      best = std::string(k);
    }
  }
  return best;
}

std::string didYouMean(std::string_view word, const Names& known) {
  std::string hint = suggest(toLower(word), known);
  return hint.empty() ? "" : " (did you mean \"" + hint + "\"?)";
}

// A string as it appears in a message: quoted and escaped as the dumps
// quote it (JSON and TOML both read it), so the message stays on one line.
std::string quoted(std::string_view s) { return pfc::jsonQuote(s); }

std::string formatDouble(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : "a number";
}

// How a value looks in an error message: strings quoted, others as TOML.
std::string show(const toml::node& n) {
  if (auto s = n.as_string()) return quoted(s->get());
  if (auto i = n.as_integer()) return std::to_string(i->get());
  if (auto f = n.as_floating_point()) {
    // "1.0", not "1": the message is about a float.
    std::string text = formatDouble(f->get());
    if (text.find_first_of(".eEni") == std::string::npos) text += ".0";
    return text;
  }
  if (auto b = n.as_boolean()) return b->get() ? "true" : "false";
  if (auto a = n.as_array()) return a->empty() ? "[]" : "an array";
  if (n.is_table()) return "a table";
  return "a date/time";
}

// RFC 9110 §5.6.2 tchar.
bool isTokenChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || isDigit(c) ||
         (c != '\0' && std::strchr("!#$%&'*+-.^_`|~", c));
}

bool validIpv4(std::string_view s) {
  in_addr a;
  return inet_pton(AF_INET, std::string(s).c_str(), &a) == 1;
}

bool validIpv6(std::string_view s) {
  in6_addr a;
  return inet_pton(AF_INET6, std::string(s).c_str(), &a) == 1;
}

// A DNS name (RFC 1123 labels, plus '_' which service discovery names use),
// lower case, no trailing dot. IPv4 literals are handled by the caller.
bool validDnsName(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  size_t start = 0;
  while (true) {
    size_t dot = h.find('.', start);
    std::string_view label = h.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!((c >= 'a' && c <= 'z') || isDigit(c) || c == '-' || c == '_')) return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

// A host name or an IPv4 literal (anything all digits and dots must be a
// real address, so "10.0.0.256" is caught).
bool validHostOrIpv4(std::string_view h) {
  if (std::all_of(h.begin(), h.end(), [](char c) { return isDigit(c) || c == '.'; })) return validIpv4(h);
  return validDnsName(h);
}

bool parsePort(std::string_view s, uint32_t* port) {
  if (!allDigits(s) || s.size() > 5) return false;
  uint32_t v = 0;
  for (char c : s) v = v * 10 + static_cast<uint32_t>(c - '0');
  if (v < 1 || v > 65535) return false;
  *port = v;
  return true;
}

// Where a table is, for messages: "[defaults]" and "[defaults.retry]",
// "[[service]] \"orders\"" and "[service.retry] of \"orders\"", ...
struct Where {
  std::string table;
  std::string sub_prefix;
  std::string sub_suffix;
  std::string sub(std::string_view name) const { return sub_prefix + std::string(name) + sub_suffix; }
  // The sub-table's header as written in a file: "[service.retry]".
  std::string header(std::string_view name) const { return sub_prefix + std::string(name) + "]"; }
};

// What the compiler knows of a route once its match and methods are read:
// enough to decide whether a later route is reachable.
struct RouteShape {
  pfc::MatchKind kind;
  std::string match;
  uint32_t methods;
  int line;
};

// The request path a route matches, as a prefix (prefix and gRPC service
// routes) or in full (exact and gRPC method routes); see pfc::Table's
// matchRoute: gRPC routes see only gRPC requests, path routes see all.
std::string pathOf(const RouteShape& r) {
  switch (r.kind) {
    case pfc::MatchKind::kGrpcService:
      return "/" + r.match + "/";
    case pfc::MatchKind::kGrpcMethod:
      return "/" + r.match;
    default:
      return r.match;
  }
}

// True when every request that `b` matches is matched by `a` first.
bool covers(const RouteShape& a, const RouteShape& b) {
  if ((a.methods & b.methods) != b.methods) return false;
  using K = pfc::MatchKind;
  std::string bp = pathOf(b);
  switch (a.kind) {
    case K::kPathPrefix:
      // A prefix route sees every request, gRPC included.
      return bp.starts_with(a.match);
    case K::kPathExact:
      return (b.kind == K::kPathExact || b.kind == K::kGrpcMethod) && bp == a.match;
    case K::kGrpcService:
      return (b.kind == K::kGrpcService || b.kind == K::kGrpcMethod) && bp.starts_with(pathOf(a));
    case K::kGrpcMethod:
      return b.kind == K::kGrpcMethod && b.match == a.match;
  }
  return false;
}

// What the duplicate checks need of a service.
struct ServiceInfo {
  std::string name;  // as written, lower-cased for comparison
  const toml::node* name_node = nullptr;
  int line = 0;  // of its [[service]] header
  uint32_t port = 0;
  std::vector<std::pair<std::string, const toml::node*>> hosts;  // normalized
};

class Compiler {
 public:
  explicit Compiler(std::string_view file) : file_(file) {}

  CompileResult run(std::string_view text) {
    CompileResult result;
    toml::table root;
    try {
      root = toml::parse(text, std::string_view(file_));
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

  // ------------------------------------------------------------- keys --

  // Why `key` does not belong in a policy table of `level`, when it belongs
  // somewhere else; "" when it is simply unknown.
  static std::string misplacedInPolicy(std::string_view key, Level level) {
    std::string k = quoted(key);
    if (level == Level::kRoute) {
      if (key == "idle_timeout") {
        return "idle_timeout is per connection, not per route: set it on the service or in [defaults]";
      }
      if (key == "budget" || contains(kBudgetKeys, key)) {
        return (key == "budget" ? std::string("budget") : k + " (a budget field)") +
               " is per service, not per route: set it on the service or in [defaults]";
      }
      if (contains(kServiceKeys, key)) return k + " belongs to the [[service]], not to one of its routes";
    }
    if (level == Level::kDefaults) {
      if (contains(kServiceKeys, key)) return k + " belongs in a [[service]], not in [defaults]";
      if (contains(kRouteKeys, key)) return k + " belongs in a [[service.route]], not in [defaults]";
    }
    if (level == Level::kService && contains(kRouteKeys, key)) {
      return k + " belongs in a [[service.route]] of this service";
    }
    for (auto [names, table] : kSubTables) {
      if (contains(*names, key)) {
        return k + " belongs in the " + table + " table (" + table + " = { " + std::string(key) +
               " = ... } or [defaults." + table + "])";
      }
    }
    if (key == "version") return k + " belongs at the top of the file";
    return "";
  }

  // Why `key` does not belong in the `table` sub-table ("retry", ...).
  static std::string misplacedInSubTable(std::string_view key, std::string_view table) {
    std::string k = quoted(key);
    if (contains(kTimeoutKeys, key) || contains(kSubTableKeys, key)) {
      return k + " belongs one level up, next to " + std::string(table) + ", not inside it";
    }
    for (auto [names, name] : kSubTables) {
      if (contains(*names, key) && table != name)
        return k + " belongs in the " + name + " table, not in " + std::string(table);
    }
    return "";
  }

  // Reports every key of `t` not in `allowed`. `misplaced` explains keys that
  // exist elsewhere; otherwise the nearest allowed key is suggested.
  template <typename Explain>
  void checkKeys(const toml::table& t, const Names& allowed, const std::string& where, Explain misplaced) {
    for (auto&& [key, value] : t) {
      std::string_view k = key.str();
      if (contains(allowed, k)) continue;
      std::string why = misplaced(k);
      if (why.empty()) why = "unknown key " + quoted(k) + " in " + where + didYouMean(k, allowed);
      error(key.source().begin, why);
    }
  }

  // ---------------------------------------------------- value readers --

  std::optional<int64_t> readDuration(const toml::node& n, std::string_view name, int64_t min_us, int64_t max_us) {
    auto s = n.as_string();
    std::optional<int64_t> us = s ? parseDuration(s->get()) : std::nullopt;
    std::string head = std::string(name) + ": " + show(n);
    if (!us) {
      if (s && s->get().starts_with("-")) {
        error(n, head + " is negative (durations are \"0s\" or more)");
      } else {
        error(n, head + std::string(kDurationHint));
      }
      return std::nullopt;
    }
    if (*us < min_us) {
      error(n, min_us == 1 ? head + " must be more than 0s"
                           : head + " is too short (at least " + formatDuration(min_us) + ")");
      return std::nullopt;
    }
    if (*us > max_us) {
      error(n, head + " is too long (at most " + formatDuration(max_us) + ")");
      return std::nullopt;
    }
    return us;
  }

  std::optional<int64_t> readDuration(const toml::node& n, const FieldSpec& f) {
    return readDuration(n, f.name, f.min, f.max);
  }

  std::optional<bool> readBool(const toml::node& n, std::string_view name) {
    if (auto b = n.as_boolean()) return b->get();
    error(n, std::string(name) + ": " + show(n) + " is not a boolean (use true or false)");
    return std::nullopt;
  }

  std::optional<int64_t> readInteger(const toml::node& n, std::string_view name, int64_t min, int64_t max) {
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

  std::optional<int64_t> readInteger(const toml::node& n, const FieldSpec& f) {
    return readInteger(n, f.name, f.min, f.max);
  }

  std::optional<std::string_view> readString(const toml::node& n, std::string_view name, std::string_view what) {
    if (auto s = n.as_string()) return std::string_view(s->get());
    error(n, std::string(name) + ": " + show(n) + " is not " + std::string(what));
    return std::nullopt;
  }

  const toml::table* readTable(const toml::node& n, std::string_view name, const std::string& header) {
    if (auto t = n.as_table()) return t;
    error(n, std::string(name) + ": " + show(n) + " is not a table (use " + header + " or " + std::string(name) +
                 " = { ... })");
    return nullptr;
  }

  // ---------------------------------------------------- policy fields --

  // Applies the policy fields present in `t` onto `p`, field by field.
  // Keys are checked by the caller (they depend on the level).
  void applyPolicy(const toml::table& t, Level level, const Where& where, EffectivePolicy* p) {
    // A key the level may not set was reported by the caller's key check;
    // the field descriptions say which (idle_timeout and budget are not
    // per route).
    LevelBit bit = level == Level::kDefaults ? kAtDefaults : level == Level::kService ? kAtService : kAtRoute;
    auto settable = [&](const char* key) { return (policyField(Section::kPolicy, key).levels & bit) != 0; };
    auto timeout = [&](const char* key, int64_t* field) {
      if (!settable(key)) return;
      if (const toml::node* n = t.get(key)) {
        if (auto v = readDuration(*n, policyField(Section::kPolicy, key))) *field = *v;
      }
    };
    timeout("connect_timeout", &p->connect_timeout_us);
    timeout("request_timeout", &p->request_timeout_us);
    timeout("idle_timeout", &p->idle_timeout_us);
    timeout("read_timeout", &p->read_timeout_us);
    if (const toml::node* n = settable("retry") ? t.get("retry") : nullptr) {
      if (auto rt = readTable(*n, "retry", where.header("retry"))) applyRetry(*rt, where.sub("retry"), p);
    }
    if (const toml::node* n = settable("budget") ? t.get("budget") : nullptr) {
      if (auto bt = readTable(*n, "budget", where.header("budget"))) applyBudget(*bt, where.sub("budget"), p);
    }
    if (const toml::node* n = settable("deadline") ? t.get("deadline") : nullptr) {
      if (auto dt = readTable(*n, "deadline", where.header("deadline"))) applyDeadline(*dt, where.sub("deadline"), p);
    }
    if (const toml::node* n = settable("hedge") ? t.get("hedge") : nullptr) {
      if (auto ht = readTable(*n, "hedge", where.header("hedge"))) applyHedge(*ht, where.sub("hedge"), p);
    }
    if (const toml::node* n = settable("outlier") ? t.get("outlier") : nullptr) {
      if (auto ot = readTable(*n, "outlier", where.header("outlier"))) applyOutlier(*ot, where.sub("outlier"), p);
    }
  }

  void applyRetry(const toml::table& t, const std::string& where, EffectivePolicy* p) {
    checkKeys(t, kRetryKeys, where, [](std::string_view k) { return misplacedInSubTable(k, "retry"); });
    pfc::RetryPolicy& r = p->retry;
    if (const toml::node* n = t.get("retry_on")) applyRetryOn(*n, &r);
    if (const toml::node* n = t.get("num_retries")) {
      if (auto v = readInteger(*n, policyField(Section::kRetry, "num_retries"))) {
        r.num_retries = static_cast<uint32_t>(*v);
      }
    }
    auto duration = [&](const char* key, int64_t* field) {
      if (const toml::node* n = t.get(key)) {
        if (auto v = readDuration(*n, policyField(Section::kRetry, key))) *field = *v;
      }
    };
    duration("per_try_timeout", &r.per_try_timeout_us);
    duration("backoff_base", &r.backoff_base_us);
    duration("backoff_max", &r.backoff_max_us);
    duration("retry_after_max", &r.retry_after_max_us);
    if (const toml::node* n = t.get("retry_after")) {
      if (auto v = readBool(*n, "retry_after")) r.retry_after = *v ? 1 : 0;
    }
    if (const toml::node* n = t.get("fresh_connection")) {
      if (auto v = readBool(*n, "fresh_connection")) r.fresh_connection = *v ? 1 : 0;
    }
    if (const toml::node* n = t.get("idempotency_header")) applyIdempotencyHeader(*n, &r);
    if (const toml::node* n = t.get("max_buffered_body")) applyMaxBufferedBody(*n, &r);

    // base <= max on the effective values: a service that raises only
    // backoff_base must still fit under the inherited backoff_max. Reported
    // where this level set one of them; a level that sets neither inherits a
    // pair its parent already checked.
    if (r.backoff_base_us > r.backoff_max_us) {
      if (const toml::node* base = t.get("backoff_base")) {
        error(*base,
              "backoff_base: " + show(*base) + " is more than backoff_max (" + formatDuration(r.backoff_max_us) + ")");
      } else if (const toml::node* max = t.get("backoff_max")) {
        error(*max,
              "backoff_max: " + show(*max) + " is less than backoff_base (" + formatDuration(r.backoff_base_us) + ")");
      }
    }
  }

  // Known names for retry_on, in the order a suggestion prefers them.
  static Names retryOnNames() {
    Names names;
    for (uint32_t c = 0; c < static_cast<uint32_t>(pfc::RetryCondition::kCount); ++c) {
      names.push_back(pfc::conditionName(static_cast<pfc::RetryCondition>(c)));
    }
    for (uint32_t g = 0; g <= static_cast<uint32_t>(pfc::GrpcCode::kUnauthenticated); ++g) {
      if (auto name = pfc::grpcCodeName(static_cast<pfc::GrpcCode>(g)); !name.empty()) names.push_back(name);
    }
    return names;
  }

  void applyRetryOn(const toml::node& n, pfc::RetryPolicy* r) {
    auto arr = n.as_array();
    if (!arr) {
      error(n, "retry_on: " + show(n) + " is not an array (e.g. [\"5xx\", \"connect-failure\"])");
      return;
    }
    uint32_t conditions = 0, grpc = 0;
    uint64_t status[pfc::kStatusWords] = {};
    bool ok = true;
    auto addStatus = [&](const toml::node& item, int64_t code) {
      if (code < pfc::kMinStatus || code > pfc::kMaxStatus) {
        error(item, "retry_on: " + show(item) + " is not an HTTP status code (100..599)");
        ok = false;
        return;
      }
      status[code / 64] |= uint64_t{1} << (code % 64);
    };
    for (const toml::node& item : *arr) {
      if (auto i = item.as_integer()) {
        addStatus(item, i->get());
        continue;
      }
      auto s = item.as_string();
      if (!s) {
        error(item, "retry_on: " + show(item) + " is not a condition name or a status code");
        ok = false;
        continue;
      }
      std::string_view v = s->get();
      if (allDigits(v)) {
        addStatus(item, v.size() <= 3 ? std::stoi(std::string(v)) : 0);
        continue;
      }
      bool found = false;
      for (uint32_t c = 0; c < static_cast<uint32_t>(pfc::RetryCondition::kCount) && !found; ++c) {
        if (pfc::conditionName(static_cast<pfc::RetryCondition>(c)) == v) {
          conditions |= 1u << c;
          found = true;
        }
      }
      for (uint32_t g = 0; g <= static_cast<uint32_t>(pfc::GrpcCode::kUnauthenticated) && !found; ++g) {
        std::string_view name = pfc::grpcCodeName(static_cast<pfc::GrpcCode>(g));
        if (!name.empty() && name == v) {
          grpc |= 1u << g;
          found = true;
        }
      }
      if (found) continue;
      ok = false;
      if (contains(kNonRetriableGrpc, toLower(v))) {
        error(item, "retry_on: gRPC status " + quoted(v) +
                        " is not retriable (retry_on takes cancelled, deadline-exceeded, internal, "
                        "resource-exhausted, unavailable)");
        continue;
      }
      std::string hint = didYouMean(v, retryOnNames());
      error(item, "retry_on: unknown condition " + quoted(v) +
                      (hint.empty() ? " (use e.g. \"5xx\", \"gateway-error\", \"connect-failure\", \"503\", "
                                      "\"unavailable\")"
                                    : hint));
    }
    if (!ok) return;
    r->conditions = conditions;
    r->grpc_codes = grpc;
    std::memcpy(r->status_bits, status, sizeof status);
  }

  void applyIdempotencyHeader(const toml::node& n, pfc::RetryPolicy* r) {
    auto v = readString(n, "idempotency_header", "a header name (e.g. \"idempotency-key\")");
    if (!v) return;
    // A header name is an RFC 9110 token; stored lower case because header
    // names are case-insensitive and the sidecar compares lower case (HTTP/2
    // sends them lower case anyway). Empty means: no header makes POST safe.
    // The table's limit is the layout's (idempotency_header[kMaxHeaderName + 1]).
    static_assert(pfc::kMaxHeaderName == 63);
    if (v->size() > static_cast<size_t>(policyField(Section::kRetry, "idempotency_header").max)) {
      error(n, "idempotency_header: " + show(n) + " is too long (at most " + std::to_string(pfc::kMaxHeaderName) +
                   " characters)");
      return;
    }
    if (!std::all_of(v->begin(), v->end(), isTokenChar)) {
      error(n, "idempotency_header: " + show(n) +
                   " is not a header name (letters, digits and -, e.g. "
                   "\"idempotency-key\")");
      return;
    }
    std::memset(r->idempotency_header, 0, sizeof r->idempotency_header);
    std::string l = toLower(*v);
    std::memcpy(r->idempotency_header, l.data(), l.size());
  }

  void applyMaxBufferedBody(const toml::node& n, pfc::RetryPolicy* r) {
    std::optional<uint64_t> bytes;
    if (auto s = n.as_string()) {
      bytes = parseSize(s->get());
    } else if (auto i = n.as_integer(); i && i->get() >= 0) {
      bytes = static_cast<uint64_t>(i->get());
    }
    if (!bytes) {
      error(n, "max_buffered_body: " + show(n) + " is not a size (use e.g. \"64KiB\", \"1MiB\")");
    } else if (*bytes > static_cast<uint64_t>(policyField(Section::kRetry, "max_buffered_body").max)) {
      uint64_t max = static_cast<uint64_t>(policyField(Section::kRetry, "max_buffered_body").max);
      error(n, "max_buffered_body: " + show(n) + " is too large (at most " + formatSize(max) + ")");
    } else {
      r->max_buffered_body = *bytes;
    }
  }

  // A kNumber field: an integer or a float within the field's limits.
  // `example` is a good value, for the message.
  std::optional<double> readNumber(const toml::node& n, const FieldSpec& f, std::string_view example) {
    std::optional<double> v;
    if (auto d = n.as_floating_point()) v = d->get();
    if (auto i = n.as_integer()) v = static_cast<double>(i->get());
    std::string head = std::string(f.name) + ": " + show(n);
    if (!v) {
      error(n, head + " is not a number (e.g. " + std::string(example) + ")");
      return std::nullopt;
    }
    if (!(*v >= static_cast<double>(f.min) && *v <= static_cast<double>(f.max))) {  // NaN fails too
      error(n, head + " is out of range (" + std::to_string(f.min) + ".." + std::to_string(f.max) + ", e.g. " +
                   std::string(example) + ")");
      return std::nullopt;
    }
    return v;
  }

  void applyBudget(const toml::table& t, const std::string& where, EffectivePolicy* p) {
    checkKeys(t, kBudgetKeys, where, [](std::string_view k) { return misplacedInSubTable(k, "budget"); });
    if (const toml::node* n = t.get("retry_ratio")) {
      if (auto v = readNumber(*n, policyField(Section::kBudget, "retry_ratio"), "0.2")) p->budget.retry_ratio = *v;
    }
    if (const toml::node* n = t.get("min_retries_per_second")) {
      if (auto v = readInteger(*n, policyField(Section::kBudget, "min_retries_per_second"))) {
        p->budget.min_retries_per_second = static_cast<uint32_t>(*v);
      }
    }
    if (const toml::node* n = t.get("window")) {
      if (auto v = readDuration(*n, policyField(Section::kBudget, "window"))) p->budget.window_us = *v;
    }
  }

  void applyDeadline(const toml::table& t, const std::string& where, EffectivePolicy* p) {
    checkKeys(t, kDeadlineKeys, where, [](std::string_view k) { return misplacedInSubTable(k, "deadline"); });
    if (const toml::node* n = t.get("propagate")) {
      if (auto v = readBool(*n, "propagate")) p->deadline.propagate = *v ? 1 : 0;
    }
    if (const toml::node* n = t.get("accept_inbound")) {
      if (auto v = readBool(*n, "accept_inbound")) p->deadline.accept_inbound = *v ? 1 : 0;
    }
    if (const toml::node* n = t.get("grpc_timeout_offset")) {
      if (auto v = readDuration(*n, policyField(Section::kDeadline, "grpc_timeout_offset"))) {
        p->deadline.grpc_timeout_offset_us = *v;
      }
    }
    if (const toml::node* n = t.get("min_attempt_budget")) {
      if (auto v = readDuration(*n, policyField(Section::kDeadline, "min_attempt_budget"))) {
        p->deadline.min_attempt_budget_us = *v;
      }
    }
  }

  void applyHedge(const toml::table& t, const std::string& where, EffectivePolicy* p) {
    checkKeys(t, kHedgeKeys, where, [](std::string_view k) { return misplacedInSubTable(k, "hedge"); });
    pfc::HedgePolicy& h = p->hedge;
    if (const toml::node* n = t.get("delay")) applyHedgeDelay(*n, &h);
    if (const toml::node* n = t.get("max_attempts")) {
      if (auto v = readInteger(*n, policyField(Section::kHedge, "max_attempts"))) {
        h.max_attempts = static_cast<uint32_t>(*v);
      }
    }
    if (const toml::node* n = t.get("max_extra_load")) {
      if (auto v = readNumber(*n, policyField(Section::kHedge, "max_extra_load"), "0.05")) h.max_extra_load = *v;
    }
  }

  // "0s" (no hedging), a duration, or a quantile name. A string that looks
  // like a quantile ("p98", "P99") is told which quantiles exist: the
  // sidecar's estimator tracks only those.
  void applyHedgeDelay(const toml::node& n, pfc::HedgePolicy* h) {
    auto s = n.as_string();
    const FieldSpec& f = policyField(Section::kHedge, "delay");
    std::string choices;
    for (std::string_view q : pfc::kQuantileNames) choices += (choices.empty() ? "" : ", ") + quoted(q);
    if (s) {
      uint16_t permille = 0;
      if (pfc::parseQuantile(s->get(), &permille)) {
        h->delay_us = 0;
        h->delay_quantile_permille = permille;
        return;
      }
      std::string_view v = s->get();
      if (v.size() >= 2 && (v[0] == 'p' || v[0] == 'P') && (isDigit(v[1]) || v[1] == '.')) {
        std::string l = toLower(v);
        uint16_t ignored;
        std::string hint = pfc::parseQuantile(l, &ignored) ? " (did you mean " + quoted(l) + "?)"
                                                           : " (the quantiles are " + choices + ")";
        error(n, "delay: " + show(n) + " is not a quantile Mulligan tracks" + hint);
        return;
      }
    }
    if (!s || !parseDuration(s->get())) {
      if (s && s->get().starts_with("-")) {
        error(n, "delay: " + show(n) + " is negative (\"0s\" turns hedging off)");
      } else {
        error(n, "delay: " + show(n) + " is not a duration or a quantile (use e.g. \"50ms\", or one of " + choices +
                     "; \"0s\" = no hedging)");
      }
      return;
    }
    if (auto us = readDuration(n, f)) {
      h->delay_us = *us;
      h->delay_quantile_permille = 0;
    }
  }

  void applyOutlier(const toml::table& t, const std::string& where, EffectivePolicy* p) {
    checkKeys(t, kOutlierKeys, where, [](std::string_view k) { return misplacedInSubTable(k, "outlier"); });
    pfc::OutlierPolicy& o = p->outlier;
    if (const toml::node* n = t.get("consecutive_failures")) {
      if (auto v = readInteger(*n, policyField(Section::kOutlier, "consecutive_failures"))) {
        o.consecutive_failures = static_cast<uint32_t>(*v);
      }
    }
    if (const toml::node* n = t.get("ejection")) {
      if (auto v = readDuration(*n, policyField(Section::kOutlier, "ejection"))) o.ejection_us = *v;
    }
    if (const toml::node* n = t.get("max_ejection")) {
      if (auto v = readDuration(*n, policyField(Section::kOutlier, "max_ejection"))) o.max_ejection_us = *v;
    }
    if (const toml::node* n = t.get("max_ejected")) {
      if (auto v = readNumber(*n, policyField(Section::kOutlier, "max_ejected"), "0.5")) o.max_ejected = *v;
    }
    // ejection <= max_ejection on the effective values, reported where this
    // level set one of them (as backoff_base <= backoff_max).
    if (o.ejection_us > o.max_ejection_us) {
      if (const toml::node* e = t.get("ejection")) {
        error(*e, "ejection: " + show(*e) + " is more than max_ejection (" + formatDuration(o.max_ejection_us) + ")");
      } else if (const toml::node* m = t.get("max_ejection")) {
        error(*m, "max_ejection: " + show(*m) + " is less than ejection (" + formatDuration(o.ejection_us) + ")");
      }
    }
  }

  // -------------------------------------------------------- structure --

  void compileRoot(const toml::table& root, pfc::TableModel* model) {
    checkKeys(root, kRootKeys, "the top level", [](std::string_view k) -> std::string {
      if (contains(kTimeoutKeys, k) || contains(kSubTableKeys, k)) return quoted(k) + " belongs in [defaults]";
      if (contains(kServiceKeys, k)) return quoted(k) + " belongs in a [[service]]";
      if (contains(kRouteKeys, k)) return quoted(k) + " belongs in a [[service.route]]";
      return "";
    });
    if (const toml::node* v = root.get("version")) {
      auto i = v->as_integer();
      if (!i) {
        error(*v, "version: " + show(*v) + " is not an integer (this agent reads version = 1)");
      } else if (i->get() != 1) {
        error(*v, "version: " + show(*v) + " is not supported (this agent reads version = 1)");
      }
    }
    model->defaults = pfc::builtinDefaults();
    if (const toml::node* d = root.get("defaults")) {
      if (auto t = d->as_table()) {
        Where where{"[defaults]", "[defaults.", "]"};
        checkKeys(*t, policyKeys(Level::kDefaults), where.table,
                  [](std::string_view k) { return misplacedInPolicy(k, Level::kDefaults); });
        applyPolicy(*t, Level::kDefaults, where, &model->defaults);
      } else {
        error(*d, "defaults: " + show(*d) + " is not a table (use [defaults])");
      }
    }
    const toml::node* services = root.get("service");
    if (!services) return;
    auto arr = services->as_array();
    if (!arr || (!arr->empty() && !arr->is_array_of_tables())) {
      error(*services, "service: use [[service]] tables, one per service");
      return;
    }
    std::vector<ServiceInfo> infos;
    for (const toml::node& s : *arr) {
      infos.emplace_back();
      compileService(*s.as_table(), model, &infos.back());
    }
    checkDuplicates(infos);
  }

  void compileService(const toml::table& t, pfc::TableModel* model, ServiceInfo* info) {
    pfc::ServiceModel svc;
    info->line = static_cast<int>(t.source().begin.line);
    Where where{"[[service]]", "[service.", "]"};
    if (const toml::node* n = t.get("name")) {
      info->name_node = n;
      if (auto v = readString(*n, "name", "a service name (e.g. \"orders\")")) {
        info->name = toLower(*v);
        if (validServiceName(*n, *v)) {
          svc.name = std::string(*v);
          where = Where{"[[service]] " + quoted(*v), "[service.", "] of " + quoted(*v)};
        }
      }
    } else {
      error(t, "[[service]] has no name (add name = \"...\", e.g. name = \"orders\")");
    }
    checkKeys(t, policyKeys(Level::kService), where.table,
              [](std::string_view k) { return misplacedInPolicy(k, Level::kService); });
    if (const toml::node* n = t.get("hosts")) {
      compileHosts(*n, &svc, info);
    } else {
      error(t, where.table + " has no hosts (add hosts = [\"...\"], e.g. hosts = [\"orders\"])");
    }
    if (const toml::node* n = t.get("port")) {
      if (auto v = readInteger(*n, policyField(Section::kService, "port"))) svc.port = static_cast<uint32_t>(*v);
    }
    info->port = svc.port;
    if (const toml::node* n = t.get("upstream")) compileUpstream(*n, &svc);
    svc.policy = model->defaults;
    applyPolicy(t, Level::kService, where, &svc.policy);
    if (const toml::node* r = t.get("route")) {
      auto arr = r->as_array();
      if (!arr || (!arr->empty() && !arr->is_array_of_tables())) {
        error(*r, "route: use [[service.route]] tables, one per route");
      } else {
        std::string route_where = svc.name.empty() ? "" : " of " + quoted(svc.name);
        std::vector<RouteShape> earlier;
        for (const toml::node& rn : *arr) compileRoute(*rn.as_table(), route_where, &svc, &earlier);
      }
    }
    model->services.push_back(std::move(svc));
  }

  bool validServiceName(const toml::node& n, std::string_view v) {
    auto ok = [](char c) { return (c >= 'a' && c <= 'z') || isDigit(c) || c == '.' || c == '_' || c == '-'; };
    const FieldSpec& f = policyField(Section::kService, "name");
    if (v.size() < static_cast<size_t>(f.min) || v.size() > static_cast<size_t>(f.max)) {
      error(n, "name: " + show(n) + " must be " + std::to_string(f.min) + " to " + std::to_string(f.max) +
                   " characters");
      return false;
    }
    if (std::all_of(v.begin(), v.end(), ok)) return true;
    std::string l = toLower(v);
    if (std::all_of(l.begin(), l.end(), ok)) {
      error(n, "name: " + show(n) + " must be lower case (did you mean " + quoted(l) + "?)");
    } else {
      error(n, "name: " + show(n) + " is not a service name (lower-case letters, digits, '.', '_' and '-')");
    }
    return false;
  }

  // Normalizes one `hosts` entry: lower case, no trailing dot, IPv6 in
  // brackets (the form a Host header carries). Returns "" and sets `why`
  // when it is not a host.
  static std::string normalizeHost(std::string_view raw, std::string* why) {
    std::string h = toLower(raw);
    if (h.empty()) {
      *why = "is empty";
      return "";
    }
    if (h.front() == '[' || h.find(':') != std::string::npos) {
      if (h.front() == '[' && h.back() == ']' && validIpv6(h.substr(1, h.size() - 2))) return h;
      if (validIpv6(h)) return "[" + h + "]";
      size_t colon = h.rfind(':');
      uint32_t port;
      if (colon != std::string::npos && parsePort(std::string_view(h).substr(colon + 1), &port) &&
          (validHostOrIpv4(h.substr(0, colon)) || h.front() == '[')) {
        *why = "has a port: set port = " + std::to_string(port) + " on the service instead";
      } else {
        *why = "is not a host name, an IP address or a \"*.suffix\" wildcard";
      }
      return "";
    }
    // "orders." is "orders" (the sidecar drops the dot from a Host header too).
    auto dropDot = [](std::string x) {
      if (!x.empty() && x.back() == '.') x.pop_back();
      return x;
    };
    if (h.starts_with("*.")) {
      std::string suffix = dropDot(h.substr(2));
      if (validDnsName(suffix)) return "*." + suffix;
      *why = "is not a valid \"*.suffix\" wildcard (e.g. \"*.example.com\")";
      return "";
    }
    if (h.size() > 1) h = dropDot(h);
    if (h.find('*') != std::string::npos) {
      *why = "has a wildcard that is not a leading \"*.\" (e.g. \"*.example.com\")";
      return "";
    }
    if (validHostOrIpv4(h)) return h;
    *why = "is not a host name, an IP address or a \"*.suffix\" wildcard";
    return "";
  }

  void compileHosts(const toml::node& n, pfc::ServiceModel* svc, ServiceInfo* info) {
    auto arr = n.as_array();
    if (!arr) {
      error(n, "hosts: " + show(n) + " is not an array (e.g. hosts = [\"orders\"])");
      return;
    }
    if (arr->empty()) {
      error(n, "hosts: [] is empty: a service needs at least one host name");
      return;
    }
    for (const toml::node& item : *arr) {
      auto s = item.as_string();
      if (!s) {
        error(item, "hosts: " + show(item) + " is not a host name");
        continue;
      }
      std::string why;
      std::string h = normalizeHost(s->get(), &why);
      if (h.empty()) {
        error(item, "hosts: " + show(item) + " " + why);
        continue;
      }
      if (std::find(svc->hosts.begin(), svc->hosts.end(), h) != svc->hosts.end()) {
        error(item, "hosts: " + show(item) + " is listed twice");
        continue;
      }
      svc->hosts.push_back(h);
      info->hosts.emplace_back(h, &item);
    }
  }

  void compileUpstream(const toml::node& n, pfc::ServiceModel* svc) {
    auto v = readString(n, "upstream", "HOST:PORT (e.g. \"127.0.0.1:9000\")");
    if (!v) return;
    std::string_view s = *v;
    std::string_view host, port;
    bool ok = false;
    if (s.starts_with("[")) {
      size_t close = s.find(']');
      ok = close != std::string_view::npos && validIpv6(s.substr(1, close - 1)) && close + 1 < s.size() &&
           s[close + 1] == ':';
      if (ok) port = s.substr(close + 2);
    } else if (size_t colon = s.rfind(':'); colon != std::string_view::npos) {
      host = s.substr(0, colon);
      port = s.substr(colon + 1);
      ok = validHostOrIpv4(toLower(host));
    } else if (validHostOrIpv4(toLower(s))) {
      error(n, "upstream: " + show(n) + " has no port (e.g. " + quoted(std::string(s) + ":8080") + ")");
      return;
    }
    uint32_t p;
    if (!ok || !parsePort(port, &p)) {
      error(n, "upstream: " + show(n) + " is not HOST:PORT (e.g. \"127.0.0.1:9000\", \"orders:8080\", \"[::1]:80\")");
      return;
    }
    svc->upstream = std::string(s);
  }

  // ------------------------------------------------------------ routes --

  // Reads the route's match key into `r`; false (after reporting) when it
  // has none, several, or a malformed one.
  bool compileMatch(const toml::table& t, const std::string& where, pfc::RouteModel* r) {
    struct Present {
      std::string_view key;
      toml::source_position key_pos;
      const toml::node* value;
    };
    std::vector<Present> present;
    for (auto&& [key, value] : t) {
      if (contains(kRouteMatchKeys, key.str())) present.push_back({key.str(), key.source().begin, &value});
    }
    if (present.empty()) {
      error(t, where + " needs one of path_prefix, path_exact or grpc (path_prefix = \"/\" matches everything)");
      return false;
    }
    std::sort(present.begin(), present.end(), [](const Present& a, const Present& b) {
      return std::tie(a.key_pos.line, a.key_pos.column) < std::tie(b.key_pos.line, b.key_pos.column);
    });
    if (present.size() > 1) {
      for (size_t i = 1; i < present.size(); ++i) {
        error(present[i].key_pos, std::string(present[i].key) +
                                      ": a route matches on exactly one of path_prefix, path_exact or grpc, and "
                                      "this one already has " +
                                      std::string(present[0].key));
      }
      return false;
    }
    std::string_view key = present[0].key;
    const toml::node* node = present[0].value;
    auto v = readString(*node, key, key == "grpc" ? "\"package.Service\" or \"package.Service/Method\"" : "a path");
    if (!v) return false;
    if (key == "grpc") return compileGrpcMatch(*node, *v, r);
    std::string_view path = *v;
    if (!path.starts_with("/")) {
      error(*node, std::string(key) + ": " + show(*node) + " must start with \"/\" (did you mean " +
                       quoted("/" + std::string(path)) + "?)");
      return false;
    }
    if (std::any_of(path.begin(), path.end(),
                    [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f; })) {
      error(*node, std::string(key) + ": " + show(*node) +
                       " has a space or control character, which no request "
                       "path has");
      return false;
    }
    if (key == "path_exact" && path.find_first_of("?#") != std::string_view::npos) {
      error(*node, "path_exact: " + show(*node) +
                       " has a query or fragment, but path_exact compares the path "
                       "without them");
      return false;
    }
    r->kind = key == "path_prefix" ? pfc::MatchKind::kPathPrefix : pfc::MatchKind::kPathExact;
    r->match = std::string(path);
    return true;
  }

  // "pkg.Service" or "pkg.Service/Method", a leading "/" (as in the HTTP/2
  // :path) tolerated and dropped.
  bool compileGrpcMatch(const toml::node& n, std::string_view v, pfc::RouteModel* r) {
    std::string_view s = v;
    if (s.starts_with("/")) s.remove_prefix(1);
    size_t slash = s.find('/');
    std::string_view service = s.substr(0, slash);
    std::string_view method = slash == std::string_view::npos ? std::string_view() : s.substr(slash + 1);
    auto ident = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || isDigit(c) || c == '_'; };
    bool ok =
        !service.empty() && service.front() != '.' && service.back() != '.' &&
        service.find("..") == std::string_view::npos &&
        std::all_of(service.begin(), service.end(), [&](char c) { return ident(c) || c == '.'; }) &&
        (slash == std::string_view::npos || (!method.empty() && std::all_of(method.begin(), method.end(), ident)));
    if (!ok) {
      error(n, "grpc: " + show(n) + " is not \"package.Service\" or \"package.Service/Method\"");
      return false;
    }
    r->kind = slash == std::string_view::npos ? pfc::MatchKind::kGrpcService : pfc::MatchKind::kGrpcMethod;
    r->match = std::string(s);
    return true;
  }

  // Reads `methods` into `r`; false (after reporting) when it is malformed.
  bool compileMethods(const toml::node& n, pfc::RouteModel* r) {
    auto arr = n.as_array();
    if (!arr) {
      error(n, "methods: " + show(n) + " is not an array (e.g. methods = [\"GET\", \"HEAD\"])");
      return false;
    }
    if (arr->empty()) {
      error(n, "methods: [] is empty (leave methods out to match every method)");
      return false;
    }
    Names known;
    for (uint32_t m = 0; m < static_cast<uint32_t>(pfc::Method::kCount); ++m) {
      known.push_back(pfc::methodName(static_cast<pfc::Method>(m)));
    }
    uint32_t bits = 0;
    bool ok = true;
    for (const toml::node& item : *arr) {
      auto s = item.as_string();
      pfc::Method method;
      if (s && pfc::parseMethod(s->get(), &method)) {
        bits |= pfc::methodBit(method);
        continue;
      }
      ok = false;
      if (!s) {
        error(item, "methods: " + show(item) + " is not a method name (e.g. \"GET\")");
        continue;
      }
      std::string up(s->get());
      std::transform(up.begin(), up.end(), up.begin(), upper);
      if (pfc::parseMethod(up, &method)) {
        error(item, "methods: " + show(item) + " must be upper case (did you mean " + quoted(up) + "?)");
        continue;
      }
      std::string hint = suggest(up, known);
      error(item, "methods: " + show(item) + " is not an HTTP method" +
                      (hint.empty() ? " (GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH)"
                                    : " (did you mean " + quoted(hint) + "?)"));
    }
    if (ok) r->methods = bits;
    return ok;
  }

  void compileRoute(const toml::table& t, const std::string& of_service, pfc::ServiceModel* svc,
                    std::vector<RouteShape>* earlier) {
    Where where{"[[service.route]]" + of_service, "[service.route.", "]" + of_service};
    checkKeys(t, policyKeys(Level::kRoute), where.table,
              [](std::string_view k) { return misplacedInPolicy(k, Level::kRoute); });
    pfc::RouteModel r;
    bool shape_ok = compileMatch(t, where.table, &r);
    if (const toml::node* n = t.get("methods")) {
      shape_ok = compileMethods(*n, &r) && shape_ok;
      // gRPC is POST only (gRPC over HTTP/2 protocol spec, "Requests").
      bool grpc = r.kind == pfc::MatchKind::kGrpcService || r.kind == pfc::MatchKind::kGrpcMethod;
      if (shape_ok && grpc && !(r.methods & pfc::methodBit(pfc::Method::kPost))) {
        error(*n, "methods: gRPC calls are always POST, so this grpc route without POST never matches");
        shape_ok = false;
      }
    }
    r.policy = svc->policy;
    applyPolicy(t, Level::kRoute, where, &r.policy);
    if (shape_ok) checkHedgeableMethods(t, r, svc->policy.hedge);
    if (shape_ok) {
      RouteShape shape{r.kind, r.match, r.methods, static_cast<int>(t.source().begin.line)};
      for (const RouteShape& e : *earlier) {
        if (covers(e, shape)) {
          error(t, "this route can never match: the route at line " + std::to_string(e.line) +
                       " matches every request it would (put the more specific route first)");
          break;
        }
      }
      earlier->push_back(std::move(shape));
    }
    svc->routes.push_back(std::move(r));
  }

  // A route that sets a hedge delay but whose methods can never be retried
  // (DESIGN.md "Retry rules": POST and PATCH only with the idempotency
  // header, CONNECT never) would hedge nothing: say so, at the delay. gRPC
  // routes are exempt (their calls are retried when retry_on names gRPC
  // codes, whatever the method). A delay inherited from the service or
  // [defaults] is not reported: there it covers other routes too. Nor is
  // one the route writes equal to its service's: that decides nothing of
  // the route's own, and `dump` writes every route's delay that way, so a
  // dump of an accepted policy must still compile.
  void checkHedgeableMethods(const toml::table& t, const pfc::RouteModel& r, const pfc::HedgePolicy& service) {
    if (r.kind == pfc::MatchKind::kGrpcService || r.kind == pfc::MatchKind::kGrpcMethod) return;
    const pfc::HedgePolicy& h = r.policy.hedge;
    if (!h.enabled()) return;
    if (h.delay_us == service.delay_us && h.delay_quantile_permille == service.delay_quantile_permille) return;
    const toml::table* hedge = t.get("hedge") ? t.get("hedge")->as_table() : nullptr;
    const toml::node* delay = hedge ? hedge->get("delay") : nullptr;
    if (!delay) return;
    // A delay that did not parse was reported already; once is enough.
    uint16_t permille;
    auto text = delay->as_string();
    if (!text || !(pfc::parseQuantile(text->get(), &permille) || parseDuration(text->get()))) return;
    using pfc::Method;
    uint32_t retryable = pfc::methodBit(Method::kGet) | pfc::methodBit(Method::kHead) | pfc::methodBit(Method::kPut) |
                         pfc::methodBit(Method::kDelete) | pfc::methodBit(Method::kOptions) |
                         pfc::methodBit(Method::kTrace);
    if (!r.policy.retry.idempotencyHeader().empty()) {
      retryable |= pfc::methodBit(Method::kPost) | pfc::methodBit(Method::kPatch);
    }
    if (r.methods & retryable) return;
    std::string methods;
    for (uint32_t m = 0; m < static_cast<uint32_t>(Method::kCount); ++m) {
      if (r.methods & (1u << m)) methods += (methods.empty() ? "" : ", ") + std::string(pfc::methodName(Method(m)));
    }
    bool post_or_patch = (r.methods & (pfc::methodBit(Method::kPost) | pfc::methodBit(Method::kPatch))) != 0;
    error(*delay, "delay: no request of this route can be hedged: its methods (" + methods + ") are never retried" +
                      (post_or_patch ? " while idempotency_header is \"\" (set one, or leave the delay out)"
                                     : " (leave the delay out)"));
  }

  // ------------------------------------------------------- duplicates --

  void checkDuplicates(const std::vector<ServiceInfo>& infos) {
    // Names compare case-insensitively: they label metrics and logs, where
    // "Orders" and "orders" would be one series.
    std::map<std::string, const ServiceInfo*> names;
    std::map<std::pair<std::string, uint32_t>, const ServiceInfo*> hosts;
    for (const ServiceInfo& s : infos) {
      if (s.name_node && !s.name.empty()) {
        auto [it, inserted] = names.emplace(s.name, &s);
        if (!inserted) {
          error(*s.name_node, "name: " + show(*s.name_node) + " is already the name of the service at line " +
                                  std::to_string(it->second->line));
        }
      }
      for (const auto& [host, node] : s.hosts) {
        auto [it, inserted] = hosts.emplace(std::make_pair(host, s.port), &s);
        if (inserted) continue;
        const ServiceInfo& other = *it->second;
        std::string other_name = other.name.empty() ? "at line " + std::to_string(other.line)
                                                    : quoted(other.name) + " (line " + std::to_string(other.line) + ")";
        error(*node, "hosts: " + show(*node) + (s.port ? " on port " + std::to_string(s.port) : "") +
                         " is already served by service " + other_name);
      }
    }
  }

  std::string file_;
  std::vector<Diagnostic> errors_;
};

}  // namespace

std::string Diagnostic::format() const {
  if (line <= 0) return file + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

CompileResult compilePolicy(std::string_view toml_text, std::string_view file_name) {
  return Compiler(file_name).run(toml_text);
}

CompileResult compilePolicyFile(const std::string& path) {
  auto fail = [&](int err) {
    CompileResult r;
    r.errors.push_back(Diagnostic{path, 0, 0, std::string("cannot read: ") + std::strerror(err)});
    return r;
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(errno);
  std::string text;
  struct stat st;
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    return fail(EISDIR);
  }
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return fail(err);
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  CompileResult r = compilePolicy(text, path);
  if (r.model) r.model->source_path = path;
  return r;
}

}  // namespace mulligan::agent
