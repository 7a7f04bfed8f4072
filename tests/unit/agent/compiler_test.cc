// The policy file's structure: version, unknown and misplaced keys,
// services (names, hosts, port, upstream), routes (match, methods,
// reachability), error collection and order, files, and DESIGN.md's example.
#include "agent/compiler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace mulligan::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr int64_t kMs = 1000;
constexpr int64_t kS = 1000 * kMs;

pfc::TableModel compileOk(const std::string& text) {
  CompileResult r = compilePolicy(text, "policy.toml");
  std::string all;
  for (const Diagnostic& e : r.errors) all += e.format() + "\n";
  EXPECT_TRUE(r.ok()) << all << "---\n" << text;
  return r.model.value_or(pfc::TableModel{});
}

std::vector<std::string> errorsOf(const std::string& text) {
  CompileResult r = compilePolicy(text, "policy.toml");
  EXPECT_FALSE(r.model.has_value());
  std::vector<std::string> out;
  for (const Diagnostic& e : r.errors) out.push_back(e.format());
  return out;
}

std::string oneError(const std::string& text) {
  std::vector<std::string> errors = errorsOf(text);
  EXPECT_EQ(errors.size(), 1u) << ::testing::PrintToString(errors) << "\n---\n" << text;
  return errors.empty() ? "" : errors[0];
}

bool samePolicy(const pfc::EffectivePolicy& a, const pfc::EffectivePolicy& b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

const std::string kService = "[[service]]\nname = \"s\"\nhosts = [\"s\"]\n";  // lines 1-3

// ------------------------------------------------------------ DESIGN.md --

// DESIGN.md's example policy, verbatim.
constexpr const char* kDesignExample = R"(version = 1

[defaults]                       # every field optional; these are the built-in values
connect_timeout  = "1s"          # TCP connect, per attempt
request_timeout  = "15s"         # whole call, all attempts and backoff included; "0s" = none
idle_timeout     = "60s"         # keep-alive connections, both sides
read_timeout     = "0s"          # longest silence from upstream inside a response; "0s" = none

[defaults.retry]
retry_on          = ["connect-failure", "refused-stream", "reset", "502", "503", "504"]
num_retries       = 1
per_try_timeout   = "0s"         # one attempt, until response headers; "0s" = none
backoff_base      = "25ms"
backoff_max       = "250ms"
retry_after       = true         # honour Retry-After on 429/503 when it fits the deadline
retry_after_max   = "5s"
idempotency_header = "idempotency-key"   # POST/PATCH are retried only when it is present
max_buffered_body = "64KiB"      # a request body larger than this is not retried once sent

[defaults.budget]                # cap retries per service, as Linkerd and Finagle do
retry_ratio            = 0.2     # retries / original requests over the window
min_retries_per_second = 10
window                 = "10s"

[defaults.deadline]
propagate        = true          # rewrite grpc-timeout, set x-timeout-budget and x-envoy-expected-rq-timeout-ms
accept_inbound   = true          # an inbound grpc-timeout / x-timeout-budget may shorten request_timeout
grpc_timeout_offset = "0ms"      # headroom subtracted from the deadline sent upstream
min_attempt_budget  = "5ms"      # never start an attempt with less time than this left

[[service]]
name     = "orders"
hosts    = ["orders", "orders.default.svc.cluster.local"]   # "*.example.com" suffix wildcards allowed
port     = 8080                  # optional
upstream = "127.0.0.1:9000"      # optional, see "Where a request goes"
connect_timeout = "2s"           # any [defaults] field may be overridden here ...
retry = { num_retries = 3 }      # ... and any [defaults.retry|budget|deadline] field, field by field

  # A service matches when the request's Host / :authority (port stripped) is in
  # `hosts` and, if `port` is set, the destination port equals it. No match: [defaults].
  [[service.route]]              # first match wins; a service with no match uses the service level
  path_prefix     = "/api/reports"   # or path_exact, or grpc = "pkg.Service" / "pkg.Service/Method"
  methods         = ["GET"]          # optional
  request_timeout = "60s"

  [[service.route]]
  path_prefix = "/api/"
  request_timeout = "5s"
  retry = { retry_on = ["5xx", "connect-failure"], num_retries = 3, per_try_timeout = "5s", backoff_base = "100ms", backoff_max = "1s" }
)";

// `services`: the example file adds services after the design's one.
void expectDesignExample(const pfc::TableModel& m, size_t services = 1) {
  // Its [defaults] spell out the built-in values, exactly.
  pfc::EffectivePolicy builtin = pfc::builtinDefaults();
  EXPECT_TRUE(samePolicy(m.defaults, builtin));

  ASSERT_EQ(m.services.size(), services);
  const pfc::ServiceModel& s = m.services[0];
  EXPECT_EQ(s.name, "orders");
  EXPECT_THAT(s.hosts, ElementsAre("orders", "orders.default.svc.cluster.local"));
  EXPECT_EQ(s.port, 8080u);
  EXPECT_EQ(s.upstream, "127.0.0.1:9000");
  pfc::EffectivePolicy service = builtin;
  service.connect_timeout_us = 2 * kS;
  service.retry.num_retries = 3;
  EXPECT_TRUE(samePolicy(s.policy, service));

  ASSERT_EQ(s.routes.size(), 2u);
  const pfc::RouteModel& reports = s.routes[0];
  EXPECT_EQ(reports.kind, pfc::MatchKind::kPathPrefix);
  EXPECT_EQ(reports.match, "/api/reports");
  EXPECT_EQ(reports.methods, pfc::methodBit(pfc::Method::kGet));
  pfc::EffectivePolicy reports_policy = service;
  reports_policy.request_timeout_us = 60 * kS;
  EXPECT_TRUE(samePolicy(reports.policy, reports_policy));

  const pfc::RouteModel& api = s.routes[1];
  EXPECT_EQ(api.kind, pfc::MatchKind::kPathPrefix);
  EXPECT_EQ(api.match, "/api/");
  EXPECT_EQ(api.methods, pfc::kAllMethods);
  pfc::EffectivePolicy api_policy = service;
  api_policy.request_timeout_us = 5 * kS;
  api_policy.retry.conditions =
      pfc::conditionBit(pfc::RetryCondition::k5xx) | pfc::conditionBit(pfc::RetryCondition::kConnectFailure);
  std::memset(api_policy.retry.status_bits, 0, sizeof api_policy.retry.status_bits);  // replaced, not merged
  api_policy.retry.num_retries = 3;
  api_policy.retry.per_try_timeout_us = 5 * kS;
  api_policy.retry.backoff_base_us = 100 * kMs;
  api_policy.retry.backoff_max_us = 1 * kS;
  EXPECT_TRUE(samePolicy(api.policy, api_policy));
  EXPECT_EQ(api.policy.retry.retry_after_max_us, 5 * kS);  // untouched fields inherited
}

TEST(CompilerTest, DesignExampleCompilesToTheExpectedEffectiveValues) {
  CompileResult r = compilePolicy(kDesignExample, "policy.toml");
  ASSERT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].format());
  expectDesignExample(*r.model);
}

std::string sourceDir() {
  if (const char* dir = std::getenv("MULLIGAN_SOURCE_DIR")) return dir;
  std::string file = __FILE__;  // .../tests/unit/agent/compiler_test.cc
  for (int i = 0; i < 4; ++i) file = file.substr(0, file.rfind('/'));
  return file;
}

TEST(CompilerTest, ExamplePolicyFileCompilesCleanlyToTheDesignExample) {
  std::string path = sourceDir() + "/examples/policy.toml";
  CompileResult r = compilePolicyFile(path);
  ASSERT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].format());
  expectDesignExample(*r.model, 2);
  EXPECT_EQ(r.model->source_path, path);
  // Its second service shows hedging and outlier ejection (issue 19).
  const pfc::ServiceModel& search = r.model->services[1];
  EXPECT_EQ(search.name, "search");
  EXPECT_EQ(search.policy.hedge.delay_quantile_permille, 990);
  EXPECT_EQ(search.policy.hedge.max_extra_load, 0.05);
  EXPECT_EQ(search.policy.outlier.consecutive_failures, 3u);
  EXPECT_EQ(search.policy.outlier.max_ejected, 0.33);
  EXPECT_EQ(search.policy.outlier.ejection_us, 30 * kS);
  ASSERT_EQ(search.routes.size(), 1u);
  EXPECT_FALSE(search.routes[0].policy.hedge.enabled());
  EXPECT_EQ(search.routes[0].policy.outlier.consecutive_failures, 3u);
}

// -------------------------------------------------------------- version --

TEST(CompilerTest, VersionIsOneOrAbsent) {
  compileOk("version = 1\n");
  compileOk("[defaults]\n");
  EXPECT_EQ(oneError("version = 2\n"), "policy.toml:1:11: version: 2 is not supported (this agent reads version = 1)");
  EXPECT_EQ(oneError("version = \"1\"\n"),
            "policy.toml:1:11: version: \"1\" is not an integer (this agent reads version = 1)");
  EXPECT_EQ(oneError("version = 1.0\n"),
            "policy.toml:1:11: version: 1.0 is not an integer (this agent reads version = 1)");
}

// ------------------------------------------------------ keys everywhere --

TEST(CompilerTest, UnknownKeysAreReportedAtTheKeyWithASuggestion) {
  EXPECT_EQ(oneError("version = 1\n[defaults]\n\n\n\n[defaults.retry]\n  num_retry = 3\n"),
            "policy.toml:7:3: unknown key \"num_retry\" in [defaults.retry] (did you mean \"num_retries\"?)");
  EXPECT_EQ(oneError("[defaults]\nconect_timeout = \"1s\"\n"),
            "policy.toml:2:1: unknown key \"conect_timeout\" in [defaults] (did you mean \"connect_timeout\"?)");
  EXPECT_EQ(oneError("[defaults.budget]\nretry_ration = 0.1\n"),
            "policy.toml:2:1: unknown key \"retry_ration\" in [defaults.budget] (did you mean \"retry_ratio\"?)");
  EXPECT_EQ(oneError("[defaults.deadline]\nPropagate = true\n"),
            "policy.toml:2:1: unknown key \"Propagate\" in [defaults.deadline] (did you mean \"propagate\"?)");
  EXPECT_EQ(oneError("[defaults]\nfoo = 1\n"), "policy.toml:2:1: unknown key \"foo\" in [defaults]");
  EXPECT_EQ(oneError("versoin = 1\n"),
            "policy.toml:1:1: unknown key \"versoin\" in the top level (did you mean \"version\"?)");
  EXPECT_EQ(oneError("[[services]]\nname = \"a\"\n"),
            "policy.toml:1:3: unknown key \"services\" in the top level (did you mean \"service\"?)");
  EXPECT_EQ(oneError("[default]\n"),
            "policy.toml:1:2: unknown key \"default\" in the top level (did you mean \"defaults\"?)");
  EXPECT_EQ(oneError(kService + "upstreams = \"a:1\"\n"),
            "policy.toml:4:1: unknown key \"upstreams\" in [[service]] \"s\" (did you mean \"upstream\"?)");
  EXPECT_EQ(oneError(kService + "retry = { num_retry = 3 }\n"),
            "policy.toml:4:11: unknown key \"num_retry\" in [service.retry] of \"s\" (did you mean \"num_retries\"?)");
  EXPECT_EQ(oneError(kService + "[[service.route]]\npath_prefix = \"/\"\nmethod = [\"GET\"]\n"),
            "policy.toml:6:1: unknown key \"method\" in [[service.route]] of \"s\" (did you mean \"methods\"?)");
  EXPECT_EQ(oneError(kService + "[[service.route]]\npath_prefix = \"/\"\n[service.route.deadline]\npropagte = true\n"),
            "policy.toml:7:1: unknown key \"propagte\" in [service.route.deadline] of \"s\" (did you mean "
            "\"propagate\"?)");
}

TEST(CompilerTest, KeysInTheWrongPlaceSayWhereTheyBelong) {
  EXPECT_EQ(oneError(kService + "[[service.route]]\npath_prefix = \"/\"\nidle_timeout = \"1s\"\n"),
            "policy.toml:6:1: idle_timeout is per connection, not per route: set it on the service or in [defaults]");
  EXPECT_EQ(oneError(kService + "[[service.route]]\npath_prefix = \"/\"\nbudget = { window = \"1s\" }\n"),
            "policy.toml:6:1: budget is per service, not per route: set it on the service or in [defaults]");
  EXPECT_EQ(oneError(kService + "[[service.route]]\npath_prefix = \"/\"\n[service.route.budget]\nwindow = \"1s\"\n"),
            "policy.toml:6:16: budget is per service, not per route: set it on the service or in [defaults]");
  EXPECT_EQ(oneError(kService + "[[service.route]]\npath_prefix = \"/\"\nretry_ratio = 0.1\n"),
            "policy.toml:6:1: \"retry_ratio\" (a budget field) is per service, not per route: set it on the service "
            "or in [defaults]");
  EXPECT_EQ(oneError(kService + "[[service.route]]\npath_prefix = \"/\"\nhosts = [\"x\"]\n"),
            "policy.toml:6:1: \"hosts\" belongs to the [[service]], not to one of its routes");
  EXPECT_EQ(oneError("[defaults]\nhosts = [\"a\"]\n"),
            "policy.toml:2:1: \"hosts\" belongs in a [[service]], not in [defaults]");
  EXPECT_EQ(oneError("[defaults]\npath_prefix = \"/\"\n"),
            "policy.toml:2:1: \"path_prefix\" belongs in a [[service.route]], not in [defaults]");
  EXPECT_EQ(oneError(kService + "methods = [\"GET\"]\n"),
            "policy.toml:4:1: \"methods\" belongs in a [[service.route]] of this service");
  EXPECT_EQ(oneError("[defaults]\nnum_retries = 3\n"),
            "policy.toml:2:1: \"num_retries\" belongs in the retry table (retry = { num_retries = ... } or "
            "[defaults.retry])");
  EXPECT_EQ(oneError("[defaults.retry]\nconnect_timeout = \"1s\"\n"),
            "policy.toml:2:1: \"connect_timeout\" belongs one level up, next to retry, not inside it");
  EXPECT_EQ(oneError("[defaults.retry]\nwindow = \"1s\"\n"),
            "policy.toml:2:1: \"window\" belongs in the budget table, not in retry");
  EXPECT_EQ(oneError("connect_timeout = \"1s\"\n"), "policy.toml:1:1: \"connect_timeout\" belongs in [defaults]");
  EXPECT_EQ(oneError("name = \"a\"\n"), "policy.toml:1:1: \"name\" belongs in a [[service]]");
  EXPECT_EQ(oneError("[defaults]\nversion = 1\n"), "policy.toml:2:1: \"version\" belongs at the top of the file");
}

// ------------------------------------------------------------- services --

TEST(CompilerTest, ServiceFieldsAreRead) {
  pfc::TableModel m = compileOk(
      "[[service]]\nname = \"web-1.v2_x\"\nhosts = [\"Web.Example.COM\", \"*.svc.local\", \"::1\", \"[2001:DB8::1]\", "
      "\"10.0.0.1\", \"orders.\", \"_grpc._tcp.x\"]\nport = 443\nupstream = \"[::1]:8443\"\n"
      "[[service]]\nname = \"b\"\nhosts = [\"b\"]\nupstream = \"orders.default.svc:8080\"\n"
      "[[service]]\nname = \"c\"\nhosts = [\"c\"]\nport = 65535\nupstream = \"10.1.2.3:1\"\n");
  ASSERT_EQ(m.services.size(), 3u);
  EXPECT_EQ(m.services[0].name, "web-1.v2_x");
  EXPECT_THAT(m.services[0].hosts, ElementsAre("web.example.com", "*.svc.local", "[::1]", "[2001:db8::1]", "10.0.0.1",
                                               "orders", "_grpc._tcp.x"));
  EXPECT_EQ(m.services[0].port, 443u);
  EXPECT_EQ(m.services[0].upstream, "[::1]:8443");
  EXPECT_EQ(m.services[1].port, 0u);  // any port
  EXPECT_EQ(m.services[1].upstream, "orders.default.svc:8080");
  EXPECT_EQ(m.services[2].port, 65535u);
  EXPECT_EQ(m.services[2].upstream, "10.1.2.3:1");
  EXPECT_TRUE(m.services[1].routes.empty());
  compileOk("service = []\n");
}

TEST(CompilerTest, ServiceNameIsRequiredWellFormedAndUnique) {
  EXPECT_EQ(oneError("[[service]]\nhosts = [\"a\"]\n"),
            "policy.toml:1:1: [[service]] has no name (add name = \"...\", e.g. name = \"orders\")");
  EXPECT_EQ(oneError("[[service]]\nname = \"Orders\"\nhosts = [\"a\"]\n"),
            "policy.toml:2:8: name: \"Orders\" must be lower case (did you mean \"orders\"?)");
  EXPECT_EQ(oneError("[[service]]\nname = \"bad name\"\nhosts = [\"a\"]\n"),
            "policy.toml:2:8: name: \"bad name\" is not a service name (lower-case letters, digits, '.', '_' and '-')");
  EXPECT_EQ(oneError("[[service]]\nname = \"\"\nhosts = [\"a\"]\n"),
            "policy.toml:2:8: name: \"\" must be 1 to 128 characters");
  EXPECT_EQ(oneError("[[service]]\nname = 5\nhosts = [\"a\"]\n"),
            "policy.toml:2:8: name: 5 is not a service name (e.g. \"orders\")");
  EXPECT_EQ(oneError("[[service]]\nname = \"a\"\nhosts = [\"x\"]\n[[service]]\nname = \"a\"\nhosts = [\"y\"]\n"),
            "policy.toml:5:8: name: \"a\" is already the name of the service at line 1");
  // Case-insensitively: both problems of the second one are reported.
  EXPECT_THAT(errorsOf("[[service]]\nname = \"orders\"\nhosts = [\"x\"]\n[[service]]\nname = \"ORDERS\"\n"
                       "hosts = [\"y\"]\n"),
              ElementsAre("policy.toml:5:8: name: \"ORDERS\" must be lower case (did you mean \"orders\"?)",
                          "policy.toml:5:8: name: \"ORDERS\" is already the name of the service at line 1"));
}

TEST(CompilerTest, HostsAreRequiredAndValidated) {
  EXPECT_EQ(oneError("[[service]]\nname = \"a\"\n"),
            "policy.toml:1:1: [[service]] \"a\" has no hosts (add hosts = [\"...\"], e.g. hosts = [\"orders\"])");
  EXPECT_EQ(oneError("[[service]]\nname = \"a\"\nhosts = []\n"),
            "policy.toml:3:9: hosts: [] is empty: a service needs at least one host name");
  EXPECT_EQ(oneError("[[service]]\nname = \"a\"\nhosts = \"a\"\n"),
            "policy.toml:3:9: hosts: \"a\" is not an array (e.g. hosts = [\"orders\"])");
  const std::string head = "[[service]]\nname = \"a\"\nhosts = [\"ok\", ";  // the item is at 3:16
  auto bad = [&](const std::string& item, const std::string& why) {
    EXPECT_EQ(oneError(head + item + "]\n"), "policy.toml:3:16: hosts: " + item + " " + why);
  };
  const std::string not_a_host = "is not a host name, an IP address or a \"*.suffix\" wildcard";
  bad("\"bad host\"", not_a_host);
  bad("\"a..b\"", not_a_host);
  bad("\"-a.com\"", not_a_host);
  bad("\"a/b\"", not_a_host);
  bad("\"" + std::string(64, 'a') + ".com\"", not_a_host);  // a label over 63 characters
  bad("\"10.0.0.256\"", not_a_host);
  bad("\"1::2::3\"", not_a_host);
  bad("\"\"", "is empty");
  bad("\"orders:8080\"", "has a port: set port = 8080 on the service instead");
  bad("\"[::1]:80\"", "has a port: set port = 80 on the service instead");
  bad("\"*\"", "has a wildcard that is not a leading \"*.\" (e.g. \"*.example.com\")");
  bad("\"a.*.com\"", "has a wildcard that is not a leading \"*.\" (e.g. \"*.example.com\")");
  bad("\"*.\"", "is not a valid \"*.suffix\" wildcard (e.g. \"*.example.com\")");
  bad("\"*.*.com\"", "is not a valid \"*.suffix\" wildcard (e.g. \"*.example.com\")");
  bad("5", "is not a host name");
  bad("\"OK\"", "is listed twice");  // same host after lower-casing
}

TEST(CompilerTest, AHostAndPortPairBelongsToOneService) {
  EXPECT_EQ(oneError("[[service]]\nname = \"a\"\nhosts = [\"x\"]\n[[service]]\nname = \"b\"\nhosts = [\"y\", \"X\"]\n"),
            "policy.toml:6:15: hosts: \"X\" is already served by service \"a\" (line 1)");
  EXPECT_EQ(oneError("[[service]]\nname = \"a\"\nhosts = [\"*.x.com\"]\nport = 80\n"
                     "[[service]]\nname = \"b\"\nhosts = [\"*.X.com\"]\nport = 80\n"),
            "policy.toml:7:10: hosts: \"*.X.com\" on port 80 is already served by service \"a\" (line 1)");
  // Different ports, or a port against any port, are different pairs: the
  // sidecar prefers the service with the matching port.
  compileOk(
      "[[service]]\nname = \"a\"\nhosts = [\"x\"]\n[[service]]\nname = \"b\"\nhosts = [\"x\"]\nport = 8080\n"
      "[[service]]\nname = \"c\"\nhosts = [\"x\"]\nport = 9090\n");
  // An exact name and a wildcard covering it are different entries too.
  compileOk("[[service]]\nname = \"a\"\nhosts = [\"a.x.com\"]\n[[service]]\nname = \"b\"\nhosts = [\"*.x.com\"]\n");
}

TEST(CompilerTest, PortAndUpstreamAreValidated) {
  EXPECT_EQ(oneError(kService + "port = 0\n"), "policy.toml:4:8: port: 0 is out of range (1..65535)");
  EXPECT_EQ(oneError(kService + "port = 70000\n"), "policy.toml:4:8: port: 70000 is out of range (1..65535)");
  EXPECT_EQ(oneError(kService + "port = \"80\"\n"), "policy.toml:4:8: port: \"80\" is not an integer");
  EXPECT_EQ(oneError(kService + "upstream = \"orders\"\n"),
            "policy.toml:4:12: upstream: \"orders\" has no port (e.g. \"orders:8080\")");
  const std::string not_host_port = " is not HOST:PORT (e.g. \"127.0.0.1:9000\", \"orders:8080\", \"[::1]:80\")";
  for (const char* bad :
       {"a:99999", "a:0", "a:", ":80", "::1:80", "[::1]", "[::1]80", "[zz]:80", "http://a:80", "a b:80", "a:8o"}) {
    EXPECT_EQ(oneError(kService + "upstream = \"" + bad + "\"\n"),
              std::string("policy.toml:4:12: upstream: \"") + bad + "\"" + not_host_port);
  }
  EXPECT_EQ(oneError(kService + "upstream = 9000\n"),
            "policy.toml:4:12: upstream: 9000 is not HOST:PORT (e.g. \"127.0.0.1:9000\")");
}

// --------------------------------------------------------------- routes --

TEST(CompilerTest, RouteMatchKindsAndMethods) {
  pfc::TableModel m =
      compileOk(kService +
                "[[service.route]]\ngrpc = \"pkg.Svc/Get\"\n"
                "[[service.route]]\ngrpc = \"/pkg.v1.Other\"\n"
                "[[service.route]]\ngrpc = \"/pkg.Svc2/Put_2\"\nmethods = [\"POST\"]\n"
                "[[service.route]]\npath_exact = \"/x\"\nmethods = [\"GET\", \"HEAD\", \"GET\"]\n"
                "[[service.route]]\npath_prefix = \"/\"\nmethods = [\"GET\", \"HEAD\", \"POST\", \"PUT\", "
                "\"DELETE\", \"CONNECT\", \"OPTIONS\", \"TRACE\", \"PATCH\"]\n");
  const auto& rs = m.services[0].routes;
  ASSERT_EQ(rs.size(), 5u);
  EXPECT_EQ(rs[0].kind, pfc::MatchKind::kGrpcMethod);
  EXPECT_EQ(rs[0].match, "pkg.Svc/Get");
  EXPECT_EQ(rs[0].methods, pfc::kAllMethods);
  EXPECT_EQ(rs[1].kind, pfc::MatchKind::kGrpcService);
  EXPECT_EQ(rs[1].match, "pkg.v1.Other");  // stored without the leading "/"
  EXPECT_EQ(rs[2].kind, pfc::MatchKind::kGrpcMethod);
  EXPECT_EQ(rs[2].match, "pkg.Svc2/Put_2");
  EXPECT_EQ(rs[2].methods, pfc::methodBit(pfc::Method::kPost));
  EXPECT_EQ(rs[3].kind, pfc::MatchKind::kPathExact);
  EXPECT_EQ(rs[3].match, "/x");
  EXPECT_EQ(rs[3].methods, pfc::methodBit(pfc::Method::kGet) | pfc::methodBit(pfc::Method::kHead));
  EXPECT_EQ(rs[4].kind, pfc::MatchKind::kPathPrefix);
  EXPECT_EQ(rs[4].methods, pfc::kAllMethods);
}

TEST(CompilerTest, RouteNeedsExactlyOneWellFormedMatch) {
  const std::string r = kService + "[[service.route]]\n";  // the route header is 4:1
  EXPECT_EQ(oneError(r + "methods = [\"GET\"]\n"),
            "policy.toml:4:1: [[service.route]] of \"s\" needs one of path_prefix, path_exact or grpc (path_prefix = "
            "\"/\" matches everything)");
  EXPECT_THAT(errorsOf(r + "path_prefix = \"/a\"\npath_exact = \"/b\"\ngrpc = \"p.S\"\n"),
              ElementsAre("policy.toml:6:1: path_exact: a route matches on exactly one of path_prefix, path_exact or "
                          "grpc, and this one already has path_prefix",
                          "policy.toml:7:1: grpc: a route matches on exactly one of path_prefix, path_exact or grpc, "
                          "and this one already has path_prefix"));
  EXPECT_EQ(oneError(r + "path_prefix = \"api\"\n"),
            "policy.toml:5:15: path_prefix: \"api\" must start with \"/\" (did you mean \"/api\"?)");
  EXPECT_EQ(oneError(r + "path_exact = \"\"\n"),
            "policy.toml:5:14: path_exact: \"\" must start with \"/\" (did you mean \"/\"?)");
  EXPECT_EQ(oneError(r + "path_prefix = \"/a b\"\n"),
            "policy.toml:5:15: path_prefix: \"/a b\" has a space or control character, which no request path has");
  EXPECT_EQ(oneError(r + "path_exact = \"/a?b=1\"\n"),
            "policy.toml:5:14: path_exact: \"/a?b=1\" has a query or fragment, but path_exact compares the path "
            "without them");
  EXPECT_EQ(oneError(r + "path_prefix = 5\n"), "policy.toml:5:15: path_prefix: 5 is not a path");
  for (const char* bad : {"", "/", "pkg.Svc/", "pkg..Svc", ".pkg.Svc", "pkg.Svc.", "pkg.Svc/Get/More", "pkg Svc",
                          "pkg.Svc/Get.x", "pkg-x.Svc", "//pkg.Svc"}) {
    EXPECT_EQ(
        oneError(r + "grpc = \"" + bad + "\"\n"),
        std::string("policy.toml:5:8: grpc: \"") + bad + "\" is not \"package.Service\" or \"package.Service/Method\"");
  }
}

TEST(CompilerTest, MethodsAreKnownUpperCaseNames) {
  const std::string r = kService + "[[service.route]]\npath_prefix = \"/\"\n";  // methods on line 6
  EXPECT_EQ(oneError(r + "methods = [\"get\"]\n"),
            "policy.toml:6:12: methods: \"get\" must be upper case (did you mean \"GET\"?)");
  EXPECT_EQ(oneError(r + "methods = [\"GET\", \"Patch\"]\n"),
            "policy.toml:6:19: methods: \"Patch\" must be upper case (did you mean \"PATCH\"?)");
  EXPECT_EQ(oneError(r + "methods = [\"GTE\"]\n"),
            "policy.toml:6:12: methods: \"GTE\" is not an HTTP method (did you mean \"GET\"?)");
  EXPECT_EQ(oneError(r + "methods = [\"BREW\"]\n"),
            "policy.toml:6:12: methods: \"BREW\" is not an HTTP method (GET, HEAD, POST, PUT, DELETE, CONNECT, "
            "OPTIONS, TRACE, PATCH)");
  EXPECT_EQ(oneError(r + "methods = [1]\n"), "policy.toml:6:12: methods: 1 is not a method name (e.g. \"GET\")");
  EXPECT_EQ(oneError(r + "methods = []\n"),
            "policy.toml:6:11: methods: [] is empty (leave methods out to match every method)");
  EXPECT_EQ(oneError(r + "methods = \"GET\"\n"),
            "policy.toml:6:11: methods: \"GET\" is not an array (e.g. methods = [\"GET\", \"HEAD\"])");
  EXPECT_EQ(oneError(kService + "[[service.route]]\ngrpc = \"p.S\"\nmethods = [\"GET\", \"PUT\"]\n"),
            "policy.toml:6:11: methods: gRPC calls are always POST, so this grpc route without POST never matches");
}

// Two routes of one service; the first's header is on line 4.
std::string twoRoutes(const std::string& first, const std::string& second) {
  return kService + "[[service.route]]\n" + first + "\n[[service.route]]\n" + second + "\n";
}

TEST(CompilerTest, UnreachableRoutesAreErrorsNamingTheEarlierRoute) {
  struct Case {
    const char* first;
    const char* second;
  };
  // The first route covers the second.
  for (Case c : std::vector<Case>{
           {"path_prefix = \"/api/\"", "path_prefix = \"/api/reports\""},
           {"path_prefix = \"/api\"", "path_prefix = \"/api\""},
           {"path_prefix = \"/api/\"", "path_exact = \"/api/x\""},
           {"path_prefix = \"/\"", "grpc = \"pkg.S\""},
           {"path_prefix = \"/pkg.S\"", "grpc = \"pkg.S\""},
           {"path_prefix = \"/pkg.S/\"", "grpc = \"pkg.S/M\""},
           {"path_prefix = \"/pkg.S/M\"", "grpc = \"pkg.S/M\""},
           {"path_exact = \"/x\"", "path_exact = \"/x\""},
           {"path_exact = \"/pkg.S/M\"", "grpc = \"pkg.S/M\""},
           {"grpc = \"pkg.S\"", "grpc = \"pkg.S/M\""},
           {"grpc = \"pkg.S\"", "grpc = \"/pkg.S\""},
           {"grpc = \"pkg.S/M\"", "grpc = \"pkg.S/M\""},
           {"path_prefix = \"/\"", "path_prefix = \"/x\"\nmethods = [\"GET\"]"},
           {"path_prefix = \"/\"\nmethods = [\"GET\", \"HEAD\"]", "path_prefix = \"/x\"\nmethods = [\"HEAD\"]"},
       }) {
    SCOPED_TRACE(std::string(c.first) + " / " + c.second);
    int second_line = 5 + static_cast<int>(std::count(c.first, c.first + std::strlen(c.first), '\n')) + 1;
    EXPECT_EQ(oneError(twoRoutes(c.first, c.second)),
              "policy.toml:" + std::to_string(second_line) +
                  ":1: this route can never match: the route at line 4 matches every request it would (put the "
                  "more specific route first)");
  }
  // The second stays reachable.
  for (Case c : std::vector<Case>{
           {"path_prefix = \"/api/x\"", "path_prefix = \"/api/\""},
           {"path_prefix = \"/api\"", "path_prefix = \"/ap\""},
           {"path_exact = \"/a\"", "path_prefix = \"/a\""},
           {"path_exact = \"/a\"", "path_exact = \"/a/\""},
           {"grpc = \"pkg.S/M\"", "grpc = \"pkg.S\""},
           {"grpc = \"pkg.S\"", "grpc = \"pkg.S2/M\""},
           {"grpc = \"pkg.S\"", "path_prefix = \"/pkg.S/\""},  // gRPC routes see gRPC requests only
           {"grpc = \"pkg.S/M\"", "path_exact = \"/pkg.S/M\""},
           {"path_prefix = \"/pkg.S/M\"", "grpc = \"pkg.S\""},
           {"path_exact = \"/pkg.S\"", "grpc = \"pkg.S\""},
           {"path_prefix = \"/\"\nmethods = [\"GET\"]", "path_prefix = \"/x\""},
           {"path_prefix = \"/\"\nmethods = [\"GET\"]", "path_prefix = \"/x\"\nmethods = [\"GET\", \"PUT\"]"},
       }) {
    SCOPED_TRACE(std::string(c.first) + " / " + c.second);
    compileOk(twoRoutes(c.first, c.second));
  }
}

TEST(CompilerTest, UnreachableRouteNamesTheFirstRouteThatCoversIt) {
  std::string text = kService +
                     "  [[service.route]]\n  path_prefix = \"/b\"\n"    // 4: unrelated
                     "  [[service.route]]\n  path_prefix = \"/a\"\n"    // 6: covers line 10
                     "  [[service.route]]\n  path_prefix = \"/a/\"\n"   // 8: covered by 6 too
                     "  [[service.route]]\n  path_exact = \"/a/x\"\n";  // 10
  EXPECT_THAT(errorsOf(text),
              ElementsAre(HasSubstr("policy.toml:8:3: this route can never match: the route at line 6 "),
                          HasSubstr("policy.toml:10:3: this route can never match: the route at line 6 ")));
  // Routes of different services never shadow each other.
  compileOk(
      "[[service]]\nname = \"a\"\nhosts = [\"a\"]\n[[service.route]]\npath_prefix = \"/\"\n"
      "[[service]]\nname = \"b\"\nhosts = [\"b\"]\n[[service.route]]\npath_prefix = \"/x\"\n");
}

// ------------------------------------------------------------ reporting --

TEST(CompilerTest, AllErrorsAreReportedSortedByLineThenColumn) {
  // Found out of order: services before [defaults] is legal TOML; the
  // duplicate check runs last; two errors share line 8.
  std::string text =
      "[[service]]\n"                                                   // 1
      "name = \"a\"\n"                                                  // 2
      "hosts = [\"a\"]\n"                                               // 3
      "port = 0\n"                                                      // 4
      "[[service]]\n"                                                   // 5
      "name = \"a\"\n"                                                  // 6
      "hosts = [\"b\"]\n"                                               // 7
      "retry = { num_retries = 99, backoff_base = \"x\", nope = 1 }\n"  // 8
      "[defaults]\n"                                                    // 9
      "request_timeout = \"ten seconds\"\n"                             // 10
      "idle = 1\n";                                                     // 11
  CompileResult r = compilePolicy(text, "p.toml");
  EXPECT_FALSE(r.model.has_value());
  std::vector<std::pair<int, int>> positions;
  for (const Diagnostic& d : r.errors) positions.emplace_back(d.line, d.column);
  EXPECT_THAT(positions, ElementsAre(std::pair{4, 8}, std::pair{6, 8}, std::pair{8, 25}, std::pair{8, 44},
                                     std::pair{8, 49}, std::pair{10, 19}, std::pair{11, 1}));
  ASSERT_EQ(r.errors.size(), 7u);
  EXPECT_EQ(r.errors[5].format(),
            "p.toml:10:19: request_timeout: \"ten seconds\" is not a duration (use e.g. \"500ms\", \"2s\")");
  EXPECT_EQ(r.errors[6].file, "p.toml");
}

TEST(CompilerTest, ASyntaxErrorIsOneDiagnosticAtItsPosition) {
  CompileResult r = compilePolicy("version = 1\n[defaults\nrequest_timeout = \"x\"\n", "p.toml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_FALSE(r.model.has_value());
  EXPECT_EQ(r.errors[0].line, 2);
  EXPECT_EQ(r.errors[0].column, 10);
  EXPECT_THAT(r.errors[0].format(), StartsWith("p.toml:2:10: "));
  EXPECT_THAT(r.errors[0].message, HasSubstr("expected ']'"));

  r = compilePolicy("[defaults]\nrequest_timeout = \"1s\"\nrequest_timeout = \"2s\"\n", "p.toml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 3);
  EXPECT_THAT(r.errors[0].message, HasSubstr("request_timeout"));

  r = compilePolicy("a = \"\xff\"\n", "p.toml");  // not UTF-8
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 1);
}

TEST(CompilerTest, DiagnosticFormat) {
  EXPECT_EQ((Diagnostic{"policy.toml", 12, 19, "msg"}.format()), "policy.toml:12:19: msg");
  EXPECT_EQ((Diagnostic{"policy.toml", 0, 0, "cannot read: x"}.format()), "policy.toml: cannot read: x");
}

// ---------------------------------------------------------------- files --

class CompilePolicyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/mulligan-compiler-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    for (const std::string& f : files_) unlink(f.c_str());
    rmdir(dir_.c_str());
  }
  std::string write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    files_.push_back(path);
    return path;
  }

  std::string dir_;
  std::vector<std::string> files_;
};

TEST_F(CompilePolicyFileTest, ReadsTheFileAndRecordsItsPath) {
  std::string path = write("policy.toml", kService);
  CompileResult r = compilePolicyFile(path);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.model->source_path, path);
  EXPECT_EQ(r.model->source_checksum, 0u);  // the caller's job
  EXPECT_EQ(r.model->services.size(), 1u);
}

TEST_F(CompilePolicyFileTest, ErrorsNameTheFile) {
  std::string path = write("bad.toml", "[defaults]\nrequest_timeout = 5\n");
  CompileResult r = compilePolicyFile(path);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].format(), path + ":2:19: request_timeout: 5 is not a duration (use e.g. \"500ms\", \"2s\")");
}

TEST_F(CompilePolicyFileTest, UnreadableFilesSaySo) {
  CompileResult r = compilePolicyFile(dir_ + "/absent.toml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_FALSE(r.model.has_value());
  EXPECT_EQ(r.errors[0].format(), dir_ + "/absent.toml: cannot read: No such file or directory");
  r = compilePolicyFile(dir_);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].format(), dir_ + ": cannot read: Is a directory");
}

}  // namespace
}  // namespace mulligan::agent
