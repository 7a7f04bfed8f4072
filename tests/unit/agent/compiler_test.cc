// The policy schema, field by field: parsed, inherited (defaults -> service ->
// route), overridden, and rejected when bad with the line and column.
#include "agent/compiler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>

#include "agent/render.h"

namespace mulligan::agent {
namespace {

using ::testing::HasSubstr;
constexpr int64_t kMs = 1000;
constexpr int64_t kS = 1000 * kMs;

pfc::TableModel ok(const std::string& text) {
  CompileResult r = compilePolicy(text, "policy.toml");
  std::string all;
  for (const auto& e : r.errors) all += e.format() + "\n";
  EXPECT_TRUE(r.ok()) << all;
  return r.model.value_or(pfc::TableModel{});
}

// The single error a text produces, formatted.
std::string oneError(const std::string& text) {
  CompileResult r = compilePolicy(text, "policy.toml");
  EXPECT_EQ(r.errors.size(), 1u);
  EXPECT_FALSE(r.model.has_value());
  std::string all;
  for (const auto& e : r.errors) all += e.format();
  return all;
}

const char* kService = "[[service]]\nname = \"s\"\nhosts = [\"s\"]\n";

TEST(CompilerTest, EmptyFileGivesBuiltinDefaults) {
  pfc::TableModel m = ok("");
  pfc::EffectivePolicy d = pfc::builtinDefaults();
  EXPECT_EQ(std::memcmp(&m.defaults, &d, sizeof d), 0);
  EXPECT_TRUE(m.services.empty());
}

struct DurationField {
  const char* table;  // "" for top level of [defaults]
  const char* key;
  int64_t pfc::EffectivePolicy::*top;
  int64_t pfc::RetryPolicy::*retry;
  int64_t pfc::BudgetPolicy::*budget;
  int64_t pfc::DeadlinePolicy::*deadline;
};

int64_t get(const pfc::EffectivePolicy& p, const DurationField& f) {
  if (f.top) return p.*f.top;
  if (f.retry) return p.retry.*f.retry;
  if (f.budget) return p.budget.*f.budget;
  return p.deadline.*f.deadline;
}

const DurationField kDurations[] = {
    {"", "connect_timeout", &pfc::EffectivePolicy::connect_timeout_us, nullptr, nullptr, nullptr},
    {"", "request_timeout", &pfc::EffectivePolicy::request_timeout_us, nullptr, nullptr, nullptr},
    {"", "idle_timeout", &pfc::EffectivePolicy::idle_timeout_us, nullptr, nullptr, nullptr},
    {"", "read_timeout", &pfc::EffectivePolicy::read_timeout_us, nullptr, nullptr, nullptr},
    {"retry", "per_try_timeout", nullptr, &pfc::RetryPolicy::per_try_timeout_us, nullptr, nullptr},
    {"retry", "backoff_base", nullptr, &pfc::RetryPolicy::backoff_base_us, nullptr, nullptr},
    {"retry", "backoff_max", nullptr, &pfc::RetryPolicy::backoff_max_us, nullptr, nullptr},
    {"retry", "retry_after_max", nullptr, &pfc::RetryPolicy::retry_after_max_us, nullptr, nullptr},
    {"budget", "window", nullptr, nullptr, &pfc::BudgetPolicy::window_us, nullptr},
    {"deadline", "grpc_timeout_offset", nullptr, nullptr, nullptr, &pfc::DeadlinePolicy::grpc_timeout_offset_us},
    {"deadline", "min_attempt_budget", nullptr, nullptr, nullptr, &pfc::DeadlinePolicy::min_attempt_budget_us},
};

// "key = value" placed in the right table of [defaults] or a service.
std::string field(const DurationField& f, const std::string& value, bool inline_table) {
  if (!*f.table) return std::string(f.key) + " = " + value + "\n";
  if (inline_table) return std::string(f.table) + " = { " + f.key + " = " + value + " }\n";
  return std::string("[defaults.") + f.table + "]\n" + f.key + " = " + value + "\n";
}

TEST(CompilerTest, EveryDurationFieldParsesInheritsAndOverrides) {
  for (const DurationField& f : kDurations) {
    SCOPED_TRACE(f.key);
    // [defaults] sets 7s (backoff_max stays >= base); the service inherits it.
    std::string defaults = "[defaults]\n" + field(f, "\"7s\"", true);
    std::string backoff_fix = std::string(f.key) == "backoff_base" ? "retry = { backoff_max = \"9s\" }\n" : "";
    if (!backoff_fix.empty()) defaults = "[defaults]\nretry = { backoff_base = \"7s\", backoff_max = \"9s\" }\n";
    pfc::TableModel m = ok(defaults + kService);
    EXPECT_EQ(get(m.defaults, f), 7 * kS);
    EXPECT_EQ(get(m.services[0].policy, f), 7 * kS);
    // The service overrides it; a route inherits the service value.
    bool route_ok = std::string(f.key) != "idle_timeout" && std::string(f.table) != "budget";
    std::string svc = std::string(kService) + field(f, "\"3s\"", true) +
                      "[[service.route]]\npath_prefix = \"/a\"\n[[service.route]]\npath_prefix = \"/b\"\n" +
                      (route_ok ? field(f, "\"2s\"", true) : "");
    m = ok(defaults + svc);
    EXPECT_EQ(get(m.defaults, f), 7 * kS);
    EXPECT_EQ(get(m.services[0].policy, f), 3 * kS);
    EXPECT_EQ(get(m.services[0].routes[0].policy, f), 3 * kS);
    EXPECT_EQ(get(m.services[0].routes[1].policy, f), route_ok ? 2 * kS : 3 * kS);
  }
}

TEST(CompilerTest, EveryDurationFieldRejectsBadValuesAtTheValuePosition) {
  for (const DurationField& f : kDurations) {
    SCOPED_TRACE(f.key);
    std::string text = "version = 1\n[defaults]\n" + field(f, "\"ten seconds\"", false);
    int line = *f.table ? 4 : 3;
    int col = static_cast<int>(std::strlen(f.key)) + 4;
    EXPECT_EQ(oneError(text), "policy.toml:" + std::to_string(line) + ":" + std::to_string(col) + ": " + f.key +
                                  ": \"ten seconds\" is not a duration (use e.g. \"500ms\", \"2s\")");
    std::string number = oneError("[defaults]\n" + field(f, "5", false));
    EXPECT_THAT(number, HasSubstr(std::string(f.key) + ": 5 is not a duration"));
    EXPECT_THAT(oneError("[defaults]\n" + field(f, "\"48h\"", false)), HasSubstr("is too long"));
  }
}

TEST(CompilerTest, DesignExampleCompilesToTheExpectedEffectiveValues) {
  pfc::TableModel m = ok(R"(version = 1
[defaults]
connect_timeout  = "1s"
request_timeout  = "15s"
[defaults.retry]
retry_on          = ["connect-failure", "refused-stream", "reset", "502", "503", "504"]
num_retries       = 1
[[service]]
name     = "orders"
hosts    = ["orders", "orders.default.svc.cluster.local"]
port     = 8080
upstream = "127.0.0.1:9000"
connect_timeout = "2s"
retry = { num_retries = 3 }
  [[service.route]]
  path_prefix     = "/api/reports"
  methods         = ["GET"]
  request_timeout = "60s"
  [[service.route]]
  path_prefix = "/api/"
  request_timeout = "5s"
  retry = { retry_on = ["5xx", "connect-failure"], num_retries = 3, per_try_timeout = "5s", backoff_base = "100ms", backoff_max = "1s" }
)");
  ASSERT_EQ(m.services.size(), 1u);
  const pfc::ServiceModel& s = m.services[0];
  EXPECT_EQ(s.name, "orders");
  EXPECT_EQ(s.hosts, (std::vector<std::string>{"orders", "orders.default.svc.cluster.local"}));
  EXPECT_EQ(s.port, 8080u);
  EXPECT_EQ(s.upstream, "127.0.0.1:9000");
  EXPECT_EQ(s.policy.connect_timeout_us, 2 * kS);
  EXPECT_EQ(s.policy.retry.num_retries, 3u);
  EXPECT_EQ(s.policy.retry.backoff_base_us, 25 * kMs);  // inherited built-in
  ASSERT_EQ(s.routes.size(), 2u);
  const pfc::RouteModel& reports = s.routes[0];
  EXPECT_EQ(reports.kind, pfc::MatchKind::kPathPrefix);
  EXPECT_EQ(reports.methods, pfc::methodBit(pfc::Method::kGet));
  EXPECT_EQ(reports.policy.request_timeout_us, 60 * kS);
  EXPECT_EQ(reports.policy.connect_timeout_us, 2 * kS);  // from the service
  EXPECT_EQ(reports.policy.retry.num_retries, 3u);
  const pfc::RouteModel& api = s.routes[1];
  EXPECT_TRUE(api.policy.retry.has(pfc::RetryCondition::k5xx));
  EXPECT_TRUE(api.policy.retry.has(pfc::RetryCondition::kConnectFailure));
  EXPECT_FALSE(api.policy.retry.has(pfc::RetryCondition::kReset));  // retry_on replaced, not merged
  EXPECT_FALSE(api.policy.retry.hasStatus(503));
  EXPECT_EQ(api.policy.retry.per_try_timeout_us, 5 * kS);
  EXPECT_EQ(api.policy.retry.backoff_max_us, 1 * kS);
  EXPECT_EQ(api.policy.retry.retry_after_max_us, 5 * kS);  // untouched field inherited
}

TEST(CompilerTest, RetryOnNamesStatusCodesAndGrpcCodes) {
  pfc::TableModel m = ok(
      "[defaults.retry]\nretry_on = [\"per-try-timeout\", \"gateway-error\", \"retriable-4xx\", \"429\", 418, "
      "\"unavailable\", \"deadline-exceeded\", \"cancelled\", \"internal\", \"resource-exhausted\"]\n");
  const pfc::RetryPolicy& r = m.defaults.retry;
  EXPECT_TRUE(r.has(pfc::RetryCondition::kPerTryTimeout));
  EXPECT_TRUE(r.retriesStatus(502) && r.retriesStatus(503) && r.retriesStatus(504) && r.retriesStatus(409));
  EXPECT_TRUE(r.retriesStatus(429) && r.retriesStatus(418));
  EXPECT_FALSE(r.retriesStatus(500));
  EXPECT_EQ(r.grpc_codes, pfc::grpcBit(pfc::GrpcCode::kUnavailable) | pfc::grpcBit(pfc::GrpcCode::kDeadlineExceeded) |
                              pfc::grpcBit(pfc::GrpcCode::kCancelled) | pfc::grpcBit(pfc::GrpcCode::kInternal) |
                              pfc::grpcBit(pfc::GrpcCode::kResourceExhausted));
  EXPECT_EQ(oneError("[defaults.retry]\nretry_on = [\"5xx\", \"gateway-eror\"]\n"),
            "policy.toml:2:20: retry_on: unknown condition \"gateway-eror\" (did you mean \"gateway-error\"?)");
  EXPECT_THAT(oneError("[defaults.retry]\nretry_on = [700]\n"), HasSubstr("2:13: retry_on: 700 is not an HTTP status"));
  EXPECT_THAT(oneError("[defaults.retry]\nretry_on = \"5xx\"\n"), HasSubstr("2:12: retry_on: \"5xx\" is not an array"));
}

TEST(CompilerTest, ScalarRetryBudgetAndDeadlineFields) {
  pfc::TableModel m = ok(
      "[defaults.retry]\nnum_retries = 4\nretry_after = false\nidempotency_header = \"X-Idem-Key\"\n"
      "max_buffered_body = \"1MiB\"\n"
      "[defaults.budget]\nretry_ratio = 0.5\nmin_retries_per_second = 3\n"
      "[defaults.deadline]\npropagate = false\naccept_inbound = false\n");
  EXPECT_EQ(m.defaults.retry.num_retries, 4u);
  EXPECT_EQ(m.defaults.retry.retry_after, 0);
  EXPECT_EQ(m.defaults.retry.idempotencyHeader(), "x-idem-key");
  EXPECT_EQ(m.defaults.retry.max_buffered_body, 1u << 20);
  EXPECT_EQ(m.defaults.budget.retry_ratio, 0.5);
  EXPECT_EQ(m.defaults.budget.min_retries_per_second, 3u);
  EXPECT_EQ(m.defaults.deadline.propagate, 0);
  EXPECT_EQ(m.defaults.deadline.accept_inbound, 0);
  // Integer ratios are accepted; a service overrides one budget field only.
  m = ok(std::string("[defaults.budget]\nretry_ratio = 1\n") + kService + "budget = { window = \"30s\" }\n");
  EXPECT_EQ(m.services[0].policy.budget.retry_ratio, 1.0);
  EXPECT_EQ(m.services[0].policy.budget.window_us, 30 * kS);
  EXPECT_EQ(m.services[0].policy.budget.min_retries_per_second, 10u);

  EXPECT_EQ(oneError("[defaults.retry]\nnum_retries = 99\n"), "policy.toml:2:15: num_retries: 99 is out of range (0..25)");
  EXPECT_EQ(oneError("[defaults.retry]\nnum_retries = \"3\"\n"), "policy.toml:2:15: num_retries: \"3\" is not an integer");
  EXPECT_EQ(oneError("[defaults.retry]\nretry_after = \"yes\"\n"),
            "policy.toml:2:15: retry_after: \"yes\" is not a boolean (use true or false)");
  EXPECT_THAT(oneError("[defaults.retry]\nidempotency_header = \"bad header\"\n"), HasSubstr("2:22: idempotency_header"));
  EXPECT_THAT(oneError("[defaults.retry]\nmax_buffered_body = \"1GiB\"\n"), HasSubstr("2:21: max_buffered_body: \"1GiB\" is too large"));
  EXPECT_THAT(oneError("[defaults.retry]\nmax_buffered_body = \"lots\"\n"), HasSubstr("is not a size"));
  EXPECT_THAT(oneError("[defaults.budget]\nretry_ratio = -0.1\n"), HasSubstr("2:15: retry_ratio: -0.1 is not a ratio"));
  EXPECT_THAT(oneError("[defaults.budget]\nmin_retries_per_second = -1\n"), HasSubstr("2:26: min_retries_per_second"));
  EXPECT_THAT(oneError("[defaults.budget]\nwindow = \"100ms\"\n"), HasSubstr("2:10: window: \"100ms\" is too short"));
  EXPECT_THAT(oneError("[defaults.deadline]\npropagate = 1\n"), HasSubstr("2:13: propagate: 1 is not a boolean"));
  EXPECT_THAT(oneError("[defaults]\nretry = 3\n"), HasSubstr("2:9: retry: 3 is not a table"));
}

TEST(CompilerTest, BackoffBaseAboveMaxIsRejectedOnEffectiveValues) {
  // 2s base against the inherited 250ms max.
  EXPECT_EQ(oneError(std::string(kService) + "retry = { backoff_base = \"2s\" }\n"),
            "policy.toml:4:26: backoff_base (2s) is larger than backoff_max (250ms)");
}

TEST(CompilerTest, ServiceFieldsAreValidated) {
  pfc::TableModel m = ok("[[service]]\nname = \"web\"\nhosts = [\"Web.Example.COM\", \"*.svc.local\", \"::1\", "
                         "\"10.0.0.1\"]\nport = 443\nupstream = \"[::1]:8443\"\n");
  EXPECT_EQ(m.services[0].hosts, (std::vector<std::string>{"web.example.com", "*.svc.local", "[::1]", "10.0.0.1"}));
  EXPECT_EQ(m.services[0].port, 443u);
  EXPECT_EQ(m.services[0].upstream, "[::1]:8443");
  EXPECT_EQ(oneError("[[service]]\nhosts = [\"a\"]\n"), "policy.toml:1:1: [[service]] has no name (name = \"orders\")");
  EXPECT_THAT(oneError("[[service]]\nname = \"a\"\n"), HasSubstr("1:1: [[service]] \"a\" has no hosts"));
  EXPECT_THAT(oneError("[[service]]\nname = \"Bad Name\"\nhosts = [\"a\"]\n"), HasSubstr("2:8: name: \"Bad Name\""));
  EXPECT_THAT(oneError("[[service]]\nname = \"a\"\nhosts = []\n"), HasSubstr("3:9: hosts"));
  EXPECT_THAT(oneError("[[service]]\nname = \"a\"\nhosts = [\"bad host\"]\n"), HasSubstr("3:10: hosts: \"bad host\""));
  EXPECT_THAT(oneError("[[service]]\nname = \"a\"\nhosts = [\"a\"]\nport = 0\n"), HasSubstr("4:8: port: 0 is out of range"));
  EXPECT_THAT(oneError("[[service]]\nname = \"a\"\nhosts = [\"a\"]\nupstream = \"a\"\n"),
              HasSubstr("4:12: upstream: \"a\" is not HOST:PORT"));
  EXPECT_THAT(oneError("[[service]]\nname = \"a\"\nhosts = [\"a\"]\nupstream = \"a:99999\"\n"), HasSubstr("upstream"));
}

TEST(CompilerTest, DuplicateNamesAndHostsAreErrors) {
  std::string two = "[[service]]\nname = \"a\"\nhosts = [\"x\"]\n[[service]]\nname = \"a\"\nhosts = [\"y\"]\n";
  EXPECT_EQ(oneError(two), "policy.toml:5:8: name: \"a\" is already the name of the service at line 1");
  std::string hosts = "[[service]]\nname = \"a\"\nhosts = [\"x\"]\n[[service]]\nname = \"b\"\nhosts = [\"x\"]\n";
  EXPECT_EQ(oneError(hosts), "policy.toml:6:9: hosts: \"x\" is already served by service \"a\"");
  // The same host on different ports is fine; port-specific beats any-port.
  ok("[[service]]\nname = \"a\"\nhosts = [\"x\"]\n[[service]]\nname = \"b\"\nhosts = [\"x\"]\nport = 8080\n");
}

TEST(CompilerTest, RoutesMatchFieldsAndMethods) {
  pfc::TableModel m = ok(std::string(kService) +
                         "[[service.route]]\ngrpc = \"pkg.Svc/Get\"\n"
                         "[[service.route]]\ngrpc = \"pkg.Svc\"\n"
                         "[[service.route]]\npath_exact = \"/x\"\nmethods = [\"GET\", \"HEAD\"]\n");
  auto& rs = m.services[0].routes;
  EXPECT_EQ(rs[0].kind, pfc::MatchKind::kGrpcMethod);
  EXPECT_EQ(rs[0].match, "pkg.Svc/Get");
  EXPECT_EQ(rs[1].kind, pfc::MatchKind::kGrpcService);
  EXPECT_EQ(rs[2].kind, pfc::MatchKind::kPathExact);
  EXPECT_EQ(rs[2].methods, pfc::methodBit(pfc::Method::kGet) | pfc::methodBit(pfc::Method::kHead));
  EXPECT_THAT(oneError(std::string(kService) + "[[service.route]]\nmethods = [\"GET\"]\n"),
              HasSubstr("4:1: [[service.route]] of \"s\" needs one of path_prefix"));
  EXPECT_THAT(oneError(std::string(kService) + "[[service.route]]\npath_prefix = \"/a\"\npath_exact = \"/b\"\n"),
              HasSubstr("more than one"));
  EXPECT_THAT(oneError(std::string(kService) + "[[service.route]]\npath_prefix = \"api\"\n"),
              HasSubstr("5:15: path_prefix: \"api\" must be a path starting with \"/\""));
  EXPECT_THAT(oneError(std::string(kService) + "[[service.route]]\ngrpc = \"/pkg.Svc\"\n"), HasSubstr("5:8: grpc"));
  EXPECT_EQ(oneError(std::string(kService) + "[[service.route]]\npath_prefix = \"/\"\nmethods = [\"get\"]\n"),
            "policy.toml:6:12: methods: \"get\" must be upper case (did you mean \"GET\"?)");
  EXPECT_THAT(oneError(std::string(kService) + "[[service.route]]\npath_prefix = \"/\"\nmethods = [\"BREW\"]\n"),
              HasSubstr("6:12: methods: \"BREW\" is not an HTTP method"));
  EXPECT_THAT(oneError(std::string(kService) + "[[service.route]]\npath_prefix = \"/\"\nidle_timeout = \"1s\"\n"),
              HasSubstr("6:1: idle_timeout is per connection"));
  EXPECT_THAT(oneError(std::string(kService) + "[[service.route]]\npath_prefix = \"/\"\nbudget = { window = \"1s\" }\n"),
              HasSubstr("6:1: budget is per service"));
}

TEST(CompilerTest, UnreachableRoutesAreErrors) {
  std::string svc = kService;
  EXPECT_EQ(oneError(svc + "[[service.route]]\npath_prefix = \"/api/\"\n[[service.route]]\npath_prefix = \"/api/reports\"\n"),
            "policy.toml:6:1: this route can never match: the route at line 4 matches every request it would (put "
            "the more specific route first)");
  EXPECT_THAT(oneError(svc + "[[service.route]]\ngrpc = \"pkg.S\"\n[[service.route]]\ngrpc = \"pkg.S/M\"\n"),
              HasSubstr("6:1: this route can never match"));
  EXPECT_THAT(oneError(svc + "[[service.route]]\npath_prefix = \"/\"\n[[service.route]]\ngrpc = \"pkg.S\"\n"),
              HasSubstr("never match"));
  // A narrower method set first leaves the later route reachable.
  ok(svc + "[[service.route]]\npath_prefix = \"/api/\"\nmethods = [\"GET\"]\n[[service.route]]\npath_prefix = \"/api/x\"\n");
  ok(svc + "[[service.route]]\npath_exact = \"/a\"\n[[service.route]]\npath_prefix = \"/a\"\n");
}

TEST(CompilerTest, UnknownKeysGetSuggestionsEverywhere) {
  EXPECT_EQ(oneError("[defaults.retry]\nnum_retry = 3\n"),
            "policy.toml:2:1: unknown key \"num_retry\" in [defaults.retry] (did you mean \"num_retries\"?)");
  EXPECT_EQ(oneError("[defaults]\nconect_timeout = \"1s\"\n"),
            "policy.toml:2:1: unknown key \"conect_timeout\" in [defaults] (did you mean \"connect_timeout\"?)");
  EXPECT_THAT(oneError("[[service]]\nname = \"a\"\nhosts = [\"a\"]\nupstreams = \"a:1\"\n"),
              HasSubstr("4:1: unknown key \"upstreams\" in [[service]] \"a\" (did you mean \"upstream\"?)"));
  EXPECT_THAT(oneError("[defaults]\nhosts = [\"a\"]\n"), HasSubstr("\"hosts\" belongs in a [[service]]"));
  EXPECT_THAT(oneError("versoin = 1\n"), HasSubstr("1:1: unknown key \"versoin\" in the top level (did you mean \"version\"?)"));
  EXPECT_THAT(oneError("version = 2\n"), HasSubstr("1:11: version: 2 is not supported"));
}

TEST(CompilerTest, AllErrorsAreReportedInFileOrder) {
  CompileResult r = compilePolicy(
      "[[service]]\nname = \"a\"\nhosts = [\"a\"]\nport = 0\n[defaults]\nrequest_timeout = \"x\"\nidle = 1\n", "p.toml");
  ASSERT_EQ(r.errors.size(), 3u);
  EXPECT_EQ(r.errors[0].line, 4);
  EXPECT_EQ(r.errors[1].line, 6);
  EXPECT_EQ(r.errors[2].line, 7);
  EXPECT_FALSE(r.model.has_value());
}

TEST(CompilerTest, SyntaxErrorHasAPosition) {
  CompileResult r = compilePolicy("[defaults\nx = 1\n", "p.toml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 1);
  EXPECT_GT(r.errors[0].column, 1);
}

TEST(RenderTest, TomlDumpCompilesBackToTheSameTable) {
  std::string text = "[defaults]\nrequest_timeout = \"9s\"\n[defaults.retry]\nretry_on = [\"5xx\", \"429\", \"unavailable\"]\n";
  for (int i = 0; i < 50; ++i) {
    text += "[[service]]\nname = \"svc-" + std::to_string(i) + "\"\nhosts = [\"s" + std::to_string(i) +
            "\", \"*.s" + std::to_string(i) + ".example\"]\nport = " + std::to_string(8000 + i) +
            "\nretry = { num_retries = " + std::to_string(i % 5) + ", backoff_max = \"1s\" }\n"
            "[[service.route]]\npath_prefix = \"/api/\"\nmethods = [\"GET\"]\nrequest_timeout = \"" +
            std::to_string(i + 1) + "s\"\n[[service.route]]\ngrpc = \"pkg.S" + std::to_string(i) + "/M\"\n";
  }
  pfc::TableModel m = ok(text);
  std::string dumped = renderToml(m, 3);
  pfc::TableModel back = ok(dumped);
  ASSERT_EQ(back.services.size(), m.services.size());
  EXPECT_EQ(std::memcmp(&back.defaults, &m.defaults, sizeof m.defaults), 0);
  for (size_t i = 0; i < m.services.size(); ++i) {
    EXPECT_EQ(back.services[i].hosts, m.services[i].hosts);
    EXPECT_EQ(std::memcmp(&back.services[i].policy, &m.services[i].policy, sizeof(pfc::EffectivePolicy)), 0) << i;
    ASSERT_EQ(back.services[i].routes.size(), m.services[i].routes.size());
    for (size_t r = 0; r < m.services[i].routes.size(); ++r) {
      EXPECT_EQ(back.services[i].routes[r].match, m.services[i].routes[r].match);
      EXPECT_EQ(back.services[i].routes[r].methods, m.services[i].routes[r].methods);
      EXPECT_EQ(std::memcmp(&back.services[i].routes[r].policy, &m.services[i].routes[r].policy,
                            sizeof(pfc::EffectivePolicy)),
                0);
    }
  }
  std::string json = renderJson(m, 3);
  EXPECT_THAT(json, HasSubstr("\"generation\":3"));
  EXPECT_THAT(json, HasSubstr("\"retry_on\":[\"5xx\", \"429\", \"unavailable\"]"));
}

}  // namespace
}  // namespace mulligan::agent
