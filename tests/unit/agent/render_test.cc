// Rendering a table back to TOML (which must compile to the same table) and
// JSON (which must be valid JSON whatever the table holds).
#include "agent/render.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "agent/compiler.h"

namespace mulligan::agent {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

pfc::TableModel compileOk(const std::string& text) {
  CompileResult r = compilePolicy(text, "policy.toml");
  std::string all;
  for (const Diagnostic& e : r.errors) all += e.format() + "\n";
  EXPECT_TRUE(r.ok()) << all << "---\n" << text;
  return r.model.value_or(pfc::TableModel{});
}

// A strict JSON syntax check (RFC 8259): true when `s` is exactly one value.
class JsonChecker {
 public:
  explicit JsonChecker(std::string_view s) : s_(s) {}
  bool valid() {
    ws();
    if (!value()) return false;
    ws();
    return i_ == s_.size();
  }

 private:
  bool value() {
    if (i_ >= s_.size()) return false;
    switch (s_[i_]) {
      case '{':
        return container('}', true);
      case '[':
        return container(']', false);
      case '"':
        return string();
      case 't':
        return literal("true");
      case 'f':
        return literal("false");
      case 'n':
        return literal("null");
      default:
        return number();
    }
  }
  bool container(char close, bool object) {
    ++i_;
    ws();
    if (peek() == close) return ++i_, true;
    while (true) {
      if (object) {
        if (!string()) return false;
        ws();
        if (peek() != ':') return false;
        ++i_;
        ws();
      }
      if (!value()) return false;
      ws();
      if (peek() == close) return ++i_, true;
      if (peek() != ',') return false;
      ++i_;
      ws();
    }
  }
  bool string() {
    if (peek() != '"') return false;
    for (++i_; i_ < s_.size(); ++i_) {
      unsigned char c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') return ++i_, true;
      if (c < 0x20) return false;
      if (c == '\\') {
        char e = ++i_ < s_.size() ? s_[i_] : 0;
        if (e == 'u') {
          for (int k = 0; k < 4; ++k) {
            if (++i_ >= s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[i_]))) return false;
          }
        } else if (!std::strchr("\"\\/bfnrt", e) || e == 0) {
          return false;
        }
      }
    }
    return false;
  }
  bool number() {
    size_t start = i_;
    if (peek() == '-') ++i_;
    if (peek() == '0') {
      ++i_;
    } else if (!digits()) {
      return false;
    }
    if (peek() == '.' && (++i_, !digits())) return false;
    if (peek() == 'e' || peek() == 'E') {
      ++i_;
      if (peek() == '+' || peek() == '-') ++i_;
      if (!digits()) return false;
    }
    return i_ > start;
  }
  bool digits() {
    size_t start = i_;
    while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
    return i_ > start;
  }
  bool literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }
  void ws() {
    while (i_ < s_.size() && std::strchr(" \t\r\n", s_[i_]) && s_[i_]) ++i_;
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }

  std::string_view s_;
  size_t i_ = 0;
};

bool validJson(std::string_view s) { return JsonChecker(s).valid(); }

TEST(JsonCheckerTest, AcceptsJsonAndRejectsNearMisses) {
  EXPECT_TRUE(validJson(R"({"a": [1, -2.5e3, "x\n\u00e9", true, null, {}], "b": []})"));
  for (const char* bad : {"", "{", "{\"a\" 1}", "[1,]", "{\"a\":1,}", "01", "\"\x01\"", "\"\\x\"", "nan", "[1] 2"}) {
    EXPECT_FALSE(validJson(bad)) << bad;
  }
}

bool samePolicy(const pfc::EffectivePolicy& a, const pfc::EffectivePolicy& b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

void expectSameModel(const pfc::TableModel& a, const pfc::TableModel& b) {
  EXPECT_TRUE(samePolicy(a.defaults, b.defaults));
  ASSERT_EQ(a.services.size(), b.services.size());
  for (size_t i = 0; i < a.services.size(); ++i) {
    SCOPED_TRACE("service " + a.services[i].name);
    const pfc::ServiceModel& x = a.services[i];
    const pfc::ServiceModel& y = b.services[i];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.hosts, y.hosts);
    EXPECT_EQ(x.port, y.port);
    EXPECT_EQ(x.upstream, y.upstream);
    EXPECT_TRUE(samePolicy(x.policy, y.policy));
    ASSERT_EQ(x.routes.size(), y.routes.size());
    for (size_t r = 0; r < x.routes.size(); ++r) {
      SCOPED_TRACE("route " + std::to_string(r));
      EXPECT_EQ(x.routes[r].kind, y.routes[r].kind);
      EXPECT_EQ(x.routes[r].match, y.routes[r].match);
      EXPECT_EQ(x.routes[r].methods, y.routes[r].methods);
      EXPECT_TRUE(samePolicy(x.routes[r].policy, y.routes[r].policy));
    }
  }
}

// A policy exercising every field with awkward values: fractional and
// compound durations, zero sizes, empty lists and headers, odd ratios, IPv6,
// wildcards, every match kind and method subsets.
std::string bigPolicy() {
  std::string t =
      "version = 1\n[defaults]\nrequest_timeout = \"1m30.25s\"\nread_timeout = \"1.5ms\"\nidle_timeout = \"23h59m\"\n"
      "[defaults.retry]\nretry_on = [\"5xx\", \"429\", 418, \"unavailable\", \"cancelled\", \"per-try-timeout\"]\n"
      "idempotency_header = \"\"\nmax_buffered_body = \"1536B\"\nbackoff_max = \"1h\"\nretry_after_max = \"0s\"\n"
      "[defaults.budget]\nretry_ratio = 0.3333333333333333\nmin_retries_per_second = 0\nwindow = \"59m59.999999s\"\n"
      "[defaults.deadline]\npropagate = false\ngrpc_timeout_offset = \"1us\"\n"
      "[defaults.hedge]\ndelay = \"p99.9\"\nmax_extra_load = 0.015625\n"
      "[defaults.outlier]\nconsecutive_failures = 0\nmax_ejected = 0.1\nejection = \"1.5s\"\n";
  const char* kMethods[] = {"[\"GET\"]", "[\"GET\", \"HEAD\"]", "[\"POST\", \"PATCH\", \"DELETE\"]"};
  for (int i = 0; i < 40; ++i) {
    std::string n = std::to_string(i);
    t += "\n[[service]]\nname = \"svc-" + n + "\"\n";
    t += "hosts = [\"s" + n + "\", \"*.s" + n + ".example\", \"fd00::" + std::to_string(i + 1) + "\"]\n";
    if (i % 2) t += "port = " + std::to_string(8000 + i) + "\n";
    if (i % 3 == 0) t += "upstream = \"127.0.0." + std::to_string(i + 1) + ":" + std::to_string(9000 + i) + "\"\n";
    t += "retry = { num_retries = " + std::to_string(i % 26) + ", backoff_base = \"" + std::to_string(i + 1) +
         "ms\", retry_after = " + (i % 2 ? "true" : "false") + " }\n";
    if (i % 4 == 0)
      t += "budget = { retry_ratio = " + std::to_string(i) + ".5e-2, window = \"" + std::to_string(i + 1) + "s\" }\n";
    if (i % 5 == 0) t += "idle_timeout = \"" + std::to_string(i + 1) + ".5s\"\n";
    if (i % 3 == 1) {
      t += "hedge = { delay = \"" + std::to_string(i + 1) + "ms\", max_attempts = " + std::to_string(2 + i % 4) +
           " }\n";
    }
    if (i % 3 == 2) t += "hedge.delay = \"p90\"\n";
    t += "  [[service.route]]\n  grpc = \"pkg.S" + n +
         "/Get\"\n  retry = { retry_on = [\"deadline-exceeded\", "
         "\"resource-exhausted\", \"internal\"], per_try_timeout = \"250ms\" }\n";
    t += "  [[service.route]]\n  grpc = \"pkg.S" + n +
         "\"\n  methods = [\"POST\"]\n  deadline = { min_attempt_budget = \"" + std::to_string(i) +
         "ms\", accept_inbound = false }\n";
    t += "  [[service.route]]\n  path_exact = \"/healthz\"\n  request_timeout = \"" + std::to_string(i + 1) +
         "s\"\n  connect_timeout = \"" + std::to_string(i + 1) + "00us\"\n" +
         "  outlier = { max_ejection = \"" + std::to_string(i + 2) + "s\", consecutive_failures = " +
         std::to_string(i) + " }\n";
    t += "  [[service.route]]\n  path_prefix = \"/api/v" + n + "/\"\n  methods = " + kMethods[i % 3] + "\n" +
         "  retry = { retry_on = [], idempotency_header = \"X-Key-" + n + "\", max_buffered_body = \"" +
         std::to_string(i) + "KiB\", fresh_connection = " + (i % 2 ? "true" : "false") + " }\n";
    t += "  [[service.route]]\n  path_prefix = \"/\"\n  read_timeout = \"0s\"\n";
  }
  return t;
}

TEST(RenderTest, TomlDumpCompilesBackToTheSameTable) {
  pfc::TableModel m = compileOk(bigPolicy());
  ASSERT_EQ(m.services.size(), 40u);
  ASSERT_EQ(m.services[7].routes.size(), 5u);
  std::string dumped = renderToml(m, 3);
  pfc::TableModel back = compileOk(dumped);
  expectSameModel(m, back);
  // A fixpoint: the dump of the dump is the dump.
  EXPECT_EQ(renderToml(back, 3), dumped);
}

TEST(RenderTest, TomlDumpOfTheBuiltinDefaultsRoundTrips) {
  pfc::TableModel m;
  m.defaults = pfc::builtinDefaults();
  pfc::TableModel back = compileOk(renderToml(m, 1));
  expectSameModel(m, back);
}

TEST(RenderTest, TomlDumpIsFullyExpandedAndReadable) {
  pfc::TableModel m = compileOk(
      "[[service]]\nname = \"orders\"\nhosts = [\"orders\"]\nport = 8080\nupstream = \"127.0.0.1:9000\"\n"
      "retry = { num_retries = 3 }\n"
      "[[service.route]]\npath_prefix = \"/api/\"\nmethods = [\"GET\"]\nrequest_timeout = \"7s\"\n");
  m.source_path = "/etc/mulligan/policy.toml";
  m.source_checksum = 0xdeadbeef;
  m.created_unix_ns = int64_t{1700000000} * 1000000000;
  std::string t = renderToml(m, 42);
  EXPECT_THAT(t, StartsWith("# Mulligan policy table, generation 42.\n"));
  EXPECT_THAT(t, HasSubstr("# source: /etc/mulligan/policy.toml\n"));
  EXPECT_THAT(t, HasSubstr("# source checksum: 00000000deadbeef\n"));
  EXPECT_THAT(t, HasSubstr("# compiled: 2023-11-14T22:13:20Z\n"));
  EXPECT_THAT(t, HasSubstr("\nversion = 1\n"));
  for (const char* header :
       {"[defaults]", "[defaults.retry]", "[defaults.budget]", "[defaults.deadline]", "[defaults.hedge]",
        "[defaults.outlier]", "[[service]]", "[service.retry]", "[service.budget]", "[service.deadline]",
        "[service.hedge]", "[service.outlier]", "  [[service.route]]", "  [service.route.retry]",
        "  [service.route.deadline]", "  [service.route.hedge]", "  [service.route.outlier]"}) {
    EXPECT_THAT(t, HasSubstr("\n" + std::string(header) + "\n")) << header;
  }
  // Routes carry only what a route may set.
  EXPECT_THAT(t, Not(HasSubstr("[service.route.budget]")));
  EXPECT_THAT(t, Not(HasSubstr("  idle_timeout")));
  EXPECT_THAT(t, HasSubstr("idle_timeout = \"1m\"\n"));
  EXPECT_THAT(t, HasSubstr("retry_on = [\"connect-failure\", \"reset\", \"refused-stream\", \"502\", \"503\", "
                           "\"504\"]\n"));
  EXPECT_THAT(t, HasSubstr("max_buffered_body = \"64KiB\"\n"));
  EXPECT_THAT(t, HasSubstr("retry_ratio = 0.2\n"));
  EXPECT_THAT(t, HasSubstr("name = \"orders\"\nhosts = [\"orders\"]\nport = 8080\nupstream = \"127.0.0.1:9000\"\n"));
  EXPECT_THAT(t, HasSubstr("  path_prefix = \"/api/\"\n  methods = [\"GET\"]\n  connect_timeout = \"1s\"\n  "
                           "request_timeout = \"7s\"\n"));
  EXPECT_THAT(t, HasSubstr("  num_retries = 3\n"));
  // Issue 19's fields, with their built-in values, at every level.
  EXPECT_THAT(t, HasSubstr("max_buffered_body = \"64KiB\"\nfresh_connection = true\n"));
  EXPECT_THAT(t, HasSubstr("\n[defaults.hedge]\ndelay = \"0s\"\nmax_attempts = 2\nmax_extra_load = 0.05\n"));
  EXPECT_THAT(t, HasSubstr("\n[defaults.outlier]\nconsecutive_failures = 5\nejection = \"30s\"\n"
                           "max_ejection = \"5m\"\nmax_ejected = 0.5\n"));
  EXPECT_THAT(t, HasSubstr("\n  [service.route.hedge]\n  delay = \"0s\"\n"));
}

TEST(RenderTest, HedgeOutlierAndFreshConnectionAreDumpedAsWritten) {
  pfc::TableModel m = compileOk(
      "[defaults.hedge]\ndelay = \"p99.9\"\nmax_extra_load = 0.1\n"
      "[[service]]\nname = \"orders\"\nhosts = [\"orders\"]\n"
      "retry.fresh_connection = false\nhedge = { delay = \"40ms\", max_attempts = 3 }\n"
      "outlier = { consecutive_failures = 2, ejection = \"10s\", max_ejection = \"1m\", max_ejected = 0.25 }\n"
      "[[service.route]]\npath_prefix = \"/q\"\nhedge.delay = \"p95\"\n");
  std::string t = renderToml(m, 1);
  EXPECT_THAT(t, HasSubstr("\n[defaults.hedge]\ndelay = \"p99.9\"\nmax_attempts = 2\nmax_extra_load = 0.1\n"));
  EXPECT_THAT(t, HasSubstr("\n[service.retry]\n"));
  EXPECT_THAT(t, HasSubstr("fresh_connection = false\n"));
  EXPECT_THAT(t, HasSubstr("\n[service.hedge]\ndelay = \"40ms\"\nmax_attempts = 3\nmax_extra_load = 0.1\n"));
  EXPECT_THAT(t, HasSubstr("\n[service.outlier]\nconsecutive_failures = 2\nejection = \"10s\"\n"
                           "max_ejection = \"1m\"\nmax_ejected = 0.25\n"));
  EXPECT_THAT(t, HasSubstr("\n  [service.route.hedge]\n  delay = \"p95\"\n  max_attempts = 3\n"));
  std::string j = renderJson(m, 1);
  EXPECT_TRUE(validJson(j));
  EXPECT_THAT(j, HasSubstr("\"hedge\": {\n        \"delay\": \"40ms\",\n        \"max_attempts\": 3,\n"
                           "        \"max_extra_load\": 0.1\n      }"));
  EXPECT_THAT(j, HasSubstr("\"consecutive_failures\": 2,"));
  EXPECT_THAT(j, HasSubstr("\"fresh_connection\": false"));
  EXPECT_THAT(policyToJson(m.services[0].routes[0].policy),
              HasSubstr("\"hedge\":{\"delay\":\"p95\",\"max_attempts\":3,\"max_extra_load\":0.1}"));
  // A permille no quantile has (only from a corrupt table) is not shown as a delay.
  pfc::EffectivePolicy bad = pfc::builtinDefaults();
  bad.hedge.delay_quantile_permille = 980;
  EXPECT_THAT(policyToJson(bad), HasSubstr("\"delay\":\"p980/1000\""));
}

// A dump writes every route's hedge delay explicitly, also one the route
// inherits: a POST-only route under an inherited delay must compile back.
TEST(RenderTest, TomlDumpOfAnInheritedHedgeDelayOnAPostOnlyRouteCompilesBack) {
  pfc::TableModel m = compileOk(
      "[defaults.retry]\nidempotency_header = \"\"\n[defaults.hedge]\ndelay = \"p99\"\n"
      "[[service]]\nname = \"s\"\nhosts = [\"s\"]\nhedge.delay = \"30ms\"\n"
      "[[service.route]]\npath_prefix = \"/w\"\nmethods = [\"POST\"]\n"
      "[[service.route]]\npath_prefix = \"/\"\nmethods = [\"CONNECT\"]\n");
  std::string dumped = renderToml(m, 1);
  EXPECT_THAT(dumped, HasSubstr("  methods = [\"POST\"]\n"));
  EXPECT_THAT(dumped, HasSubstr("  [service.route.hedge]\n  delay = \"30ms\"\n"));
  pfc::TableModel back = compileOk(dumped);
  expectSameModel(m, back);
}

TEST(RenderTest, HostileStringsCannotBreakTheTomlSyntax) {
  pfc::TableModel m;
  m.defaults = pfc::builtinDefaults();
  m.source_path = "/tmp/a\nversion = 2\n\x01\xff.toml";
  pfc::ServiceModel s;
  s.name = "evil\"\n[defaults]\\";
  s.hosts = {"h\x7f"};
  s.policy = m.defaults;
  m.services.push_back(s);
  std::string t = renderToml(m, 1);
  EXPECT_THAT(t, HasSubstr("# source: /tmp/a?version = 2??\xef\xbf\xbd.toml\n"));
  EXPECT_THAT(t, HasSubstr("name = \"evil\\\"\\n[defaults]\\\\\"\n"));
  EXPECT_THAT(t, HasSubstr("hosts = [\"h\\u007f\"]\n"));
  // It parses as TOML; only the values are refused.
  CompileResult r = compilePolicy(t, "dump.toml");
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_THAT(r.errors[0].message, StartsWith("name: \"evil\\\"\\n[defaults]\\\\\" is not a service name"));
  EXPECT_THAT(r.errors[1].message, StartsWith("hosts: \"h\\u007f\" is not a host name"));
}

TEST(RenderTest, JsonDumpIsValidAndCarriesEveryLevel) {
  pfc::TableModel m = compileOk(bigPolicy());
  m.source_path = "/etc/mulligan/policy.toml";
  m.source_checksum = 0x0123456789abcdefULL;
  m.created_unix_ns = 123;
  std::string j = renderJson(m, 7);
  EXPECT_TRUE(validJson(j)) << j.substr(0, 2000);
  EXPECT_THAT(j, StartsWith("{\n  \"generation\": 7,\n  \"source\": {\n    \"path\": \"/etc/mulligan/policy.toml\",\n"
                            "    \"checksum\": \"0123456789abcdef\",\n    \"created_unix_ns\": 123\n  },\n"
                            "  \"defaults\": {\n    \"connect_timeout\": \"1s\",\n    \"request_timeout\": "
                            "\"1m30.25s\",\n"));
  EXPECT_THAT(j, HasSubstr("\"retry_on\": [\"per-try-timeout\", \"5xx\", \"418\", \"429\", \"cancelled\", "
                           "\"unavailable\"]"));
  EXPECT_THAT(j, HasSubstr("\"retry_ratio\": 0.3333333333333333,"));
  EXPECT_THAT(j, HasSubstr("\"name\": \"svc-3\",\n      \"hosts\": [\"s3\", \"*.s3.example\", \"[fd00::4]\"],\n"
                           "      \"port\": 8003,\n      \"upstream\": \"127.0.0.4:9003\",\n"));
  EXPECT_THAT(j, HasSubstr("\"grpc\": \"pkg.S3/Get\",\n          \"methods\": [\"GET\", \"HEAD\", \"POST\", \"PUT\", "
                           "\"DELETE\", \"CONNECT\", \"OPTIONS\", \"TRACE\", \"PATCH\"],"));
  EXPECT_THAT(j, HasSubstr("\"path_exact\": \"/healthz\",\n          \"methods\": ["));
  EXPECT_THAT(j, HasSubstr("\"request_timeout\": \"4s\""));
  EXPECT_EQ(j.back(), '\n');
}

TEST(RenderTest, JsonStaysValidForHostileStringsAndNumbers) {
  pfc::TableModel m;
  m.defaults = pfc::builtinDefaults();
  m.defaults.budget.retry_ratio = std::numeric_limits<double>::quiet_NaN();
  m.source_path = "a\"b\\c\nd\x01\x7f\xc3\x28\xe2\x82\xac";
  pfc::ServiceModel s;
  s.name = "\t";
  s.policy = m.defaults;
  s.policy.budget.retry_ratio = -std::numeric_limits<double>::infinity();
  s.policy.connect_timeout_us = std::numeric_limits<int64_t>::min();
  s.routes.push_back(pfc::RouteModel{});
  m.services.push_back(s);
  std::string j = renderJson(m, 0);
  EXPECT_TRUE(validJson(j)) << j;
  EXPECT_THAT(j, HasSubstr("\"path\": \"a\\\"b\\\\c\\nd\\u0001\\u007f\xef\xbf\xbd(\xe2\x82\xac\""));
  EXPECT_THAT(j, HasSubstr("\"retry_ratio\": null"));
  EXPECT_THAT(j, HasSubstr("\"connect_timeout\": \"-2562047788h54.775808s\""));
  EXPECT_THAT(j, HasSubstr("\"path_prefix\": \"\","));
  // TOML has nan and inf.
  std::string t = renderToml(m, 0);
  EXPECT_THAT(t, HasSubstr("retry_ratio = nan\n"));
  EXPECT_THAT(t, HasSubstr("retry_ratio = -inf\n"));
}

TEST(RenderTest, PolicyToJsonIsOneCompactObjectWithEveryField) {
  EXPECT_EQ(policyToJson(pfc::builtinDefaults()),
            "{\"connect_timeout\":\"1s\",\"request_timeout\":\"15s\",\"idle_timeout\":\"1m\",\"read_timeout\":\"0s\","
            "\"retry\":{\"retry_on\":[\"connect-failure\",\"reset\",\"refused-stream\",\"502\",\"503\",\"504\"],"
            "\"num_retries\":1,\"per_try_timeout\":\"0s\",\"backoff_base\":\"25ms\",\"backoff_max\":\"250ms\","
            "\"retry_after\":true,\"retry_after_max\":\"5s\",\"idempotency_header\":\"idempotency-key\","
            "\"max_buffered_body\":\"64KiB\",\"fresh_connection\":true},"
            "\"budget\":{\"retry_ratio\":0.2,\"min_retries_per_second\":10,\"window\":\"10s\"},"
            "\"deadline\":{\"propagate\":true,\"accept_inbound\":true,\"grpc_timeout_offset\":\"0s\","
            "\"min_attempt_budget\":\"5ms\"},"
            "\"hedge\":{\"delay\":\"0s\",\"max_attempts\":2,\"max_extra_load\":0.05},"
            "\"outlier\":{\"consecutive_failures\":5,\"ejection\":\"30s\",\"max_ejection\":\"5m\","
            "\"max_ejected\":0.5}}");
  pfc::TableModel m = compileOk(bigPolicy());
  for (const pfc::ServiceModel& s : m.services) {
    EXPECT_TRUE(validJson(policyToJson(s.policy)));
    for (const pfc::RouteModel& r : s.routes) EXPECT_TRUE(validJson(policyToJson(r.policy)));
  }
}

TEST(RenderTest, RetryOnNamesAreCanonical) {
  pfc::RetryPolicy r{};
  EXPECT_TRUE(retryOnNames(r).empty());
  r.conditions =
      pfc::conditionBit(pfc::RetryCondition::kRetriable4xx) | pfc::conditionBit(pfc::RetryCondition::kConnectFailure);
  r.addStatus(599);
  r.addStatus(100);
  r.grpc_codes = pfc::grpcBit(pfc::GrpcCode::kUnavailable) | pfc::grpcBit(pfc::GrpcCode::kCancelled) |
                 pfc::grpcBit(pfc::GrpcCode::kAborted);  // not nameable: only from a corrupt table
  EXPECT_THAT(retryOnNames(r), ::testing::ElementsAre("connect-failure", "retriable-4xx", "100", "599", "cancelled",
                                                      "grpc-10", "unavailable"));
}

}  // namespace
}  // namespace mulligan::agent
