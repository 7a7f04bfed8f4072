// Every policy field of the schema, one table row each: parsed at every
// level, inherited field by field (built-in -> [defaults] -> service ->
// route), overridden, and rejected when bad with the exact FILE:LINE:COL.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "agent/compiler.h"
#include "agent/render.h"

namespace mulligan::agent {
namespace {

using ::testing::HasSubstr;

pfc::TableModel compileOk(const std::string& text) {
  CompileResult r = compilePolicy(text, "policy.toml");
  std::string all;
  for (const Diagnostic& e : r.errors) all += e.format() + "\n";
  EXPECT_TRUE(r.ok()) << all << "---\n" << text;
  return r.model.value_or(pfc::TableModel{});
}

// The one error `text` has, formatted; "" (and a failure) otherwise.
std::string oneError(const std::string& text) {
  CompileResult r = compilePolicy(text, "policy.toml");
  EXPECT_FALSE(r.model.has_value());
  std::string all;
  for (const Diagnostic& e : r.errors) all += (all.empty() ? "" : " | ") + e.format();
  EXPECT_EQ(r.errors.size(), 1u) << all << "\n---\n" << text;
  return r.errors.size() == 1 ? r.errors[0].format() : all;
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

using Getter = std::string (*)(const pfc::EffectivePolicy&);

// One schema field: where it lives, three distinct good values (set in
// [defaults], on a service and on a route) and what each reads back as.
struct Field {
  const char* table;  // "" for the policy level itself, else "retry", "budget", "deadline", "hedge", "outlier"
  const char* key;
  const char* defaults_value;
  const char* service_value;
  const char* route_value;
  Getter get;
  const char* defaults_expect;
  const char* service_expect;
  const char* route_expect;
  bool route_allowed;
};

std::string us(int64_t v) { return std::to_string(v); }

const Field kFields[] = {
    {"", "connect_timeout", "\"3s\"", "\"4s\"", "\"1500ms\"",
     [](const pfc::EffectivePolicy& p) { return us(p.connect_timeout_us); }, "3000000", "4000000", "1500000", true},
    {"", "request_timeout", "\"30s\"", "\"0s\"", "\"1m\"",
     [](const pfc::EffectivePolicy& p) { return us(p.request_timeout_us); }, "30000000", "0", "60000000", true},
    {"", "idle_timeout", "\"2m\"", "\"90s\"", nullptr,
     [](const pfc::EffectivePolicy& p) { return us(p.idle_timeout_us); }, "120000000", "90000000", nullptr, false},
    {"", "read_timeout", "\"10s\"", "\"0s\"", "\"250ms\"",
     [](const pfc::EffectivePolicy& p) { return us(p.read_timeout_us); }, "10000000", "0", "250000", true},
    {"retry", "retry_on", "[\"5xx\"]", "[\"reset\", 429, \"503\"]", "[\"unavailable\", \"deadline-exceeded\"]",
     [](const pfc::EffectivePolicy& p) { return joined(retryOnNames(p.retry)); }, "5xx", "reset,429,503",
     "deadline-exceeded,unavailable", true},
    {"retry", "num_retries", "4", "0", "25",
     [](const pfc::EffectivePolicy& p) { return std::to_string(p.retry.num_retries); }, "4", "0", "25", true},
    {"retry", "per_try_timeout", "\"2s\"", "\"0s\"", "\"500ms\"",
     [](const pfc::EffectivePolicy& p) { return us(p.retry.per_try_timeout_us); }, "2000000", "0", "500000", true},
    {"retry", "backoff_base", "\"10ms\"", "\"50ms\"", "\"100ms\"",
     [](const pfc::EffectivePolicy& p) { return us(p.retry.backoff_base_us); }, "10000", "50000", "100000", true},
    {"retry", "backoff_max", "\"1s\"", "\"2s\"", "\"30s\"",
     [](const pfc::EffectivePolicy& p) { return us(p.retry.backoff_max_us); }, "1000000", "2000000", "30000000", true},
    {"retry", "retry_after", "false", "true", "false",
     [](const pfc::EffectivePolicy& p) { return std::to_string(p.retry.retry_after); }, "0", "1", "0", true},
    {"retry", "retry_after_max", "\"10s\"", "\"1m\"", "\"0s\"",
     [](const pfc::EffectivePolicy& p) { return us(p.retry.retry_after_max_us); }, "10000000", "60000000", "0", true},
    {"retry", "idempotency_header", "\"x-request-id\"", "\"Idem-Key\"", "\"\"",
     [](const pfc::EffectivePolicy& p) { return std::string(p.retry.idempotencyHeader()); }, "x-request-id", "idem-key",
     "", true},
    {"retry", "max_buffered_body", "\"1MiB\"", "4096", "\"0B\"",
     [](const pfc::EffectivePolicy& p) { return std::to_string(p.retry.max_buffered_body); }, "1048576", "4096", "0",
     true},
    {"budget", "retry_ratio", "0.5", "1", nullptr,
     [](const pfc::EffectivePolicy& p) { return std::to_string(p.budget.retry_ratio); }, "0.500000", "1.000000",
     nullptr, false},
    {"budget", "min_retries_per_second", "0", "100", nullptr,
     [](const pfc::EffectivePolicy& p) { return std::to_string(p.budget.min_retries_per_second); }, "0", "100", nullptr,
     false},
    {"budget", "window", "\"30s\"", "\"1h\"", nullptr,
     [](const pfc::EffectivePolicy& p) { return us(p.budget.window_us); }, "30000000", "3600000000", nullptr, false},
    {"deadline", "propagate", "false", "true", "false",
     [](const pfc::EffectivePolicy& p) { return std::to_string(p.deadline.propagate); }, "0", "1", "0", true},
    {"deadline", "accept_inbound", "false", "true", "false",
     [](const pfc::EffectivePolicy& p) { return std::to_string(p.deadline.accept_inbound); }, "0", "1", "0", true},
    {"deadline", "grpc_timeout_offset", "\"5ms\"", "\"1s\"", "\"0s\"",
     [](const pfc::EffectivePolicy& p) { return us(p.deadline.grpc_timeout_offset_us); }, "5000", "1000000", "0", true},
    {"deadline", "min_attempt_budget", "\"1ms\"", "\"0s\"", "\"20ms\"",
     [](const pfc::EffectivePolicy& p) { return us(p.deadline.min_attempt_budget_us); }, "1000", "0", "20000", true},
    // Issue 19.
    {"retry", "fresh_connection", "false", "true", "false",
     [](const pfc::EffectivePolicy& p) { return std::to_string(p.retry.fresh_connection); }, "0", "1", "0", true},
    {"hedge", "delay", "\"p99\"", "\"50ms\"", "\"p99.9\"",
     [](const pfc::EffectivePolicy& p) {
       return us(p.hedge.delay_us) + "/" + std::to_string(p.hedge.delay_quantile_permille);
     },
     "0/990", "50000/0", "0/999", true},
    {"hedge", "max_attempts", "3", "5", "4",
     [](const pfc::EffectivePolicy& p) { return std::to_string(p.hedge.max_attempts); }, "3", "5", "4", true},
    {"hedge", "max_extra_load", "0.1", "1", "0",
     [](const pfc::EffectivePolicy& p) { return std::to_string(p.hedge.max_extra_load); }, "0.100000", "1.000000",
     "0.000000", true},
    {"outlier", "consecutive_failures", "3", "0", "1000",
     [](const pfc::EffectivePolicy& p) { return std::to_string(p.outlier.consecutive_failures); }, "3", "0", "1000",
     true},
    {"outlier", "ejection", "\"10s\"", "\"1m\"", "\"5m\"",
     [](const pfc::EffectivePolicy& p) { return us(p.outlier.ejection_us); }, "10000000", "60000000", "300000000",
     true},
    {"outlier", "max_ejection", "\"10m\"", "\"1h\"", "\"30s\"",
     [](const pfc::EffectivePolicy& p) { return us(p.outlier.max_ejection_us); }, "600000000", "3600000000",
     "30000000", true},
    {"outlier", "max_ejected", "0.3", "1", "0",
     [](const pfc::EffectivePolicy& p) { return std::to_string(p.outlier.max_ejected); }, "0.300000", "1.000000",
     "0.000000", true},
};

enum class Form {
  kHeaders,  // [defaults.retry] / [service.retry] / [service.route.retry]
  kInline,   // retry = { key = value }
  kDotted,   // retry.key = value
};

// "key = value" at one level, in the given form. `header` is the table the
// sub-table header form names ("defaults", "service", "service.route").
std::string setField(const Field& f, const char* value, Form form, const std::string& header,
                     const std::string& indent) {
  std::string key = f.key;
  if (!*f.table) return indent + key + " = " + value + "\n";
  switch (form) {
    case Form::kHeaders:
      return indent + "[" + header + "." + f.table + "]\n" + indent + key + " = " + value + "\n";
    case Form::kInline:
      return indent + f.table + " = { " + key + " = " + value + " }\n";
    case Form::kDotted:
      return indent + f.table + "." + key + " = " + value + "\n";
  }
  return "";
}

TEST(CompilerFieldsTest, BuiltinDefaultsWhenNothingIsSet) {
  for (const char* text : {"", "version = 1\n", "[defaults]\n", "version = 1\n[defaults]\n[defaults.retry]\n"}) {
    pfc::TableModel m = compileOk(text);
    pfc::EffectivePolicy builtin = pfc::builtinDefaults();
    EXPECT_EQ(std::memcmp(&m.defaults, &builtin, sizeof builtin), 0) << text;
    EXPECT_TRUE(m.services.empty());
  }
}

TEST(CompilerFieldsTest, EveryFieldIsParsedInheritedAndOverriddenFieldByField) {
  const pfc::EffectivePolicy builtin = pfc::builtinDefaults();
  for (const Field& f : kFields) {
    // The values chosen must differ from the built-in one, or inheritance
    // would be invisible.
    ASSERT_NE(f.get(builtin), f.defaults_expect) << f.key;
    for (Form form : {Form::kHeaders, Form::kInline, Form::kDotted}) {
      SCOPED_TRACE(std::string(f.key) + " form " + std::to_string(static_cast<int>(form)));
      std::string text = "version = 1\n[defaults]\n" + setField(f, f.defaults_value, form, "defaults", "") +
                         "[[service]]\nname = \"plain\"\nhosts = [\"plain\"]\n"
                         "  [[service.route]]\n  path_prefix = \"/\"\n"
                         "[[service]]\nname = \"over\"\nhosts = [\"over\"]\n" +
                         setField(f, f.service_value, form, "service", "") +
                         "  [[service.route]]\n  path_prefix = \"/x\"\n"
                         "  [[service.route]]\n  path_prefix = \"/\"\n" +
                         (f.route_allowed ? setField(f, f.route_value, form, "service.route", "  ") : "");
      pfc::TableModel m = compileOk(text);
      ASSERT_EQ(m.services.size(), 2u);
      const pfc::ServiceModel& plain = m.services[0];
      const pfc::ServiceModel& over = m.services[1];
      ASSERT_EQ(plain.routes.size(), 1u);
      ASSERT_EQ(over.routes.size(), 2u);

      EXPECT_EQ(f.get(m.defaults), f.defaults_expect);
      EXPECT_EQ(f.get(plain.policy), f.defaults_expect);            // service inherits [defaults]
      EXPECT_EQ(f.get(plain.routes[0].policy), f.defaults_expect);  // and so does its route
      EXPECT_EQ(f.get(over.policy), f.service_expect);              // service overrides
      EXPECT_EQ(f.get(over.routes[0].policy), f.service_expect);    // route inherits the service
      EXPECT_EQ(f.get(over.routes[1].policy), f.route_allowed ? f.route_expect : f.service_expect);

      // Field by field: nothing else changed anywhere.
      for (const Field& other : kFields) {
        if (&other == &f) continue;
        SCOPED_TRACE(other.key);
        for (const pfc::EffectivePolicy* p : std::initializer_list<const pfc::EffectivePolicy*>{
                 &m.defaults, &plain.policy, &over.policy, &over.routes[0].policy, &over.routes[1].policy}) {
          EXPECT_EQ(other.get(*p), other.get(builtin));
        }
      }
    }
  }
}

TEST(CompilerFieldsTest, ZeroMeansNoneWhereTheSchemaSaysSoAndLimitsAreInclusive) {
  pfc::TableModel m = compileOk(
      "[defaults]\nrequest_timeout = \"0s\"\nread_timeout = \"0s\"\nconnect_timeout = \"24h\"\n"
      "idle_timeout = \"1us\"\n"
      "[defaults.retry]\nper_try_timeout = \"0s\"\nnum_retries = 25\nbackoff_base = \"1h\"\nbackoff_max = \"1h\"\n"
      "retry_after_max = \"1h\"\nmax_buffered_body = \"64MiB\"\nretry_on = []\n"
      "[defaults.budget]\nretry_ratio = 10\nwindow = \"1s\"\n"
      "[defaults.deadline]\ngrpc_timeout_offset = \"1h\"\nmin_attempt_budget = \"0s\"\n");
  EXPECT_EQ(m.defaults.request_timeout_us, 0);
  EXPECT_EQ(m.defaults.read_timeout_us, 0);
  EXPECT_EQ(m.defaults.connect_timeout_us, int64_t{24} * 3600 * 1000000);
  EXPECT_EQ(m.defaults.idle_timeout_us, 1);
  EXPECT_EQ(m.defaults.retry.per_try_timeout_us, 0);
  EXPECT_EQ(m.defaults.retry.num_retries, 25u);
  EXPECT_EQ(m.defaults.retry.max_buffered_body, uint64_t{64} << 20);
  EXPECT_EQ(m.defaults.retry.conditions, 0u);  // an empty retry_on retries nothing
  EXPECT_EQ(m.defaults.retry.grpc_codes, 0u);
  EXPECT_FALSE(m.defaults.retry.retriesStatus(503));
  EXPECT_EQ(m.defaults.budget.retry_ratio, 10.0);
  EXPECT_EQ(m.defaults.budget.window_us, 1000000);
  EXPECT_EQ(m.defaults.deadline.min_attempt_budget_us, 0);
}

TEST(CompilerFieldsTest, RetryOnReplacesTheInheritedListAtEachLevel) {
  pfc::TableModel m = compileOk(
      "[defaults.retry]\nretry_on = [\"5xx\", \"unavailable\"]\n"
      "[[service]]\nname = \"s\"\nhosts = [\"s\"]\nretry = { retry_on = [\"connect-failure\"] }\n"
      "[[service.route]]\npath_prefix = \"/a\"\nretry = { num_retries = 2 }\n"
      "[[service.route]]\npath_prefix = \"/\"\nretry = { retry_on = [] }\n");
  const pfc::ServiceModel& s = m.services[0];
  EXPECT_EQ(joined(retryOnNames(m.defaults.retry)), "5xx,unavailable");
  EXPECT_EQ(joined(retryOnNames(s.policy.retry)), "connect-failure");  // replaced, not merged
  EXPECT_EQ(joined(retryOnNames(s.routes[0].policy.retry)), "connect-failure");
  EXPECT_EQ(s.routes[0].policy.retry.num_retries, 2u);
  EXPECT_EQ(joined(retryOnNames(s.routes[1].policy.retry)), "");
}

TEST(CompilerFieldsTest, RetryOnTakesEveryNameStatusCodesAndGrpcCodes) {
  pfc::TableModel m = compileOk(
      "[defaults.retry]\nretry_on = [\"connect-failure\", \"reset\", \"refused-stream\", \"per-try-timeout\", "
      "\"5xx\", \"gateway-error\", \"retriable-4xx\", \"429\", 418, 100, \"599\", \"cancelled\", "
      "\"deadline-exceeded\", \"internal\", \"resource-exhausted\", \"unavailable\", \"5xx\"]\n");
  const pfc::RetryPolicy& r = m.defaults.retry;
  for (uint32_t c = 0; c < static_cast<uint32_t>(pfc::RetryCondition::kCount); ++c) {
    EXPECT_TRUE(r.has(static_cast<pfc::RetryCondition>(c))) << c;
  }
  for (int code : {100, 418, 429, 599}) EXPECT_TRUE(r.hasStatus(code)) << code;
  EXPECT_FALSE(r.hasStatus(503));  // covered by gateway-error, not named on its own
  EXPECT_TRUE(r.retriesStatus(503) && r.retriesStatus(409) && r.retriesStatus(500));
  EXPECT_EQ(r.grpc_codes, pfc::grpcBit(pfc::GrpcCode::kCancelled) | pfc::grpcBit(pfc::GrpcCode::kDeadlineExceeded) |
                              pfc::grpcBit(pfc::GrpcCode::kInternal) | pfc::grpcBit(pfc::GrpcCode::kResourceExhausted) |
                              pfc::grpcBit(pfc::GrpcCode::kUnavailable));
}

TEST(CompilerFieldsTest, RetryOnRejectsUnknownNamesWithASuggestionAtTheItem) {
  const std::string head = "[defaults.retry]\nretry_on = [\"5xx\", ";  // the item starts at column 20
  EXPECT_EQ(oneError(head + "\"gateway-eror\"]\n"),
            "policy.toml:2:20: retry_on: unknown condition \"gateway-eror\" (did you mean \"gateway-error\"?)");
  EXPECT_EQ(oneError(head + "\"5XX\"]\n"),
            "policy.toml:2:20: retry_on: unknown condition \"5XX\" (did you mean "
            "\"5xx\"?)");
  EXPECT_EQ(oneError(head + "\"connect_failure\"]\n"),
            "policy.toml:2:20: retry_on: unknown condition \"connect_failure\" (did you mean \"connect-failure\"?)");
  EXPECT_EQ(oneError(head + "\"everything\"]\n"),
            "policy.toml:2:20: retry_on: unknown condition \"everything\" (use e.g. \"5xx\", \"gateway-error\", "
            "\"connect-failure\", \"503\", \"unavailable\")");
  EXPECT_EQ(oneError(head + "\"aborted\"]\n"),
            "policy.toml:2:20: retry_on: gRPC status \"aborted\" is not retriable (retry_on takes cancelled, "
            "deadline-exceeded, internal, resource-exhausted, unavailable)");
  EXPECT_EQ(oneError(head + "700]\n"), "policy.toml:2:20: retry_on: 700 is not an HTTP status code (100..599)");
  EXPECT_EQ(oneError(head + "\"99\"]\n"), "policy.toml:2:20: retry_on: \"99\" is not an HTTP status code (100..599)");
  EXPECT_EQ(oneError(head + "\"5030\"]\n"),
            "policy.toml:2:20: retry_on: \"5030\" is not an HTTP status code (100..599)");
  EXPECT_EQ(oneError(head + "true]\n"), "policy.toml:2:20: retry_on: true is not a condition name or a status code");
  EXPECT_EQ(oneError("[defaults.retry]\nretry_on = \"5xx\"\n"),
            "policy.toml:2:12: retry_on: \"5xx\" is not an array (e.g. [\"5xx\", \"connect-failure\"])");
}

// A bad value for a field and the message after "KEY: ".
struct BadValue {
  const char* table;
  const char* key;
  const char* value;
  const char* message;
  bool route_allowed = true;
};

const char* const kNotADuration = " is not a duration (use e.g. \"500ms\", \"2s\")";

std::vector<BadValue> badValues() {
  std::vector<BadValue> v;
  auto duration = [&](const char* table, const char* key, bool route_allowed) {
    v.push_back({table, key, "\"ten seconds\"", nullptr, route_allowed});
    v.push_back({table, key, "5", nullptr, route_allowed});
    v.push_back({table, key, "true", nullptr, route_allowed});
    v.push_back({table, key, "\"5\"", nullptr, route_allowed});
    v.push_back({table, key, "\"-1s\"", "\"-1s\" is negative (durations are \"0s\" or more)", route_allowed});
  };
  for (const char* key : {"connect_timeout", "request_timeout", "read_timeout"}) duration("", key, true);
  duration("", "idle_timeout", false);
  for (const char* key : {"per_try_timeout", "backoff_base", "backoff_max", "retry_after_max"}) {
    duration("retry", key, true);
  }
  duration("budget", "window", false);
  for (const char* key : {"grpc_timeout_offset", "min_attempt_budget"}) duration("deadline", key, true);
  for (const char* key : {"ejection", "max_ejection"}) duration("outlier", key, true);

  // Limits.
  for (const char* key : {"connect_timeout", "request_timeout", "read_timeout"}) {
    v.push_back({"", key, "\"24h1us\"", "\"24h1us\" is too long (at most 24h)"});
  }
  v.push_back({"", "idle_timeout", "\"25h\"", "\"25h\" is too long (at most 24h)", false});
  v.push_back({"", "connect_timeout", "\"0s\"", "\"0s\" must be more than 0s"});
  v.push_back({"", "idle_timeout", "\"0ms\"", "\"0ms\" must be more than 0s", false});
  v.push_back({"retry", "per_try_timeout", "\"48h\"", "\"48h\" is too long (at most 24h)"});
  v.push_back({"retry", "backoff_base", "\"0s\"", "\"0s\" must be more than 0s"});
  v.push_back({"retry", "backoff_base", "\"2h\"", "\"2h\" is too long (at most 1h)"});
  v.push_back({"retry", "backoff_max", "\"0s\"", "\"0s\" must be more than 0s"});
  v.push_back({"retry", "backoff_max", "\"1h1s\"", "\"1h1s\" is too long (at most 1h)"});
  v.push_back({"retry", "retry_after_max", "\"61m\"", "\"61m\" is too long (at most 1h)"});
  v.push_back({"budget", "window", "\"999ms\"", "\"999ms\" is too short (at least 1s)", false});
  v.push_back({"budget", "window", "\"2h\"", "\"2h\" is too long (at most 1h)", false});
  v.push_back({"deadline", "grpc_timeout_offset", "\"2h\"", "\"2h\" is too long (at most 1h)"});
  v.push_back({"deadline", "min_attempt_budget", "\"1h0.5s\"", "\"1h0.5s\" is too long (at most 1h)"});

  // Integers, booleans, sizes, ratios, header names.
  v.push_back({"retry", "num_retries", "26", "26 is out of range (0..25)"});
  v.push_back({"retry", "num_retries", "-1", "-1 is out of range (0..25)"});
  v.push_back({"retry", "num_retries", "\"3\"", "\"3\" is not an integer"});
  v.push_back({"retry", "num_retries", "2.5", "2.5 is not an integer"});
  for (auto [table, key] : {std::pair{"retry", "retry_after"}, std::pair{"deadline", "propagate"},
                            std::pair{"deadline", "accept_inbound"}}) {
    v.push_back({table, key, "\"yes\"", "\"yes\" is not a boolean (use true or false)"});
    v.push_back({table, key, "1", "1 is not a boolean (use true or false)"});
  }
  v.push_back({"retry", "max_buffered_body", "\"65MiB\"", "\"65MiB\" is too large (at most 64MiB)"});
  v.push_back({"retry", "max_buffered_body", "67108865", "67108865 is too large (at most 64MiB)"});
  v.push_back({"retry", "max_buffered_body", "\"lots\"", "\"lots\" is not a size (use e.g. \"64KiB\", \"1MiB\")"});
  v.push_back({"retry", "max_buffered_body", "\"64kb\"", "\"64kb\" is not a size (use e.g. \"64KiB\", \"1MiB\")"});
  v.push_back({"retry", "max_buffered_body", "-1", "-1 is not a size (use e.g. \"64KiB\", \"1MiB\")"});
  v.push_back({"retry", "idempotency_header", "\"bad header\"",
               "\"bad header\" is not a header name (letters, digits and -, e.g. \"idempotency-key\")"});
  v.push_back({"retry", "idempotency_header", "\"x:y\"",
               "\"x:y\" is not a header name (letters, digits and -, e.g. \"idempotency-key\")"});
  v.push_back({"retry", "idempotency_header", "5", "5 is not a header name (e.g. \"idempotency-key\")"});
  static const std::string kLong = "\"" + std::string(64, 'x') + "\"";
  static const std::string kLongMessage = kLong + " is too long (at most 63 characters)";
  v.push_back({"retry", "idempotency_header", kLong.c_str(), kLongMessage.c_str()});
  v.push_back({"budget", "retry_ratio", "-0.1", "-0.1 is out of range (0..10, e.g. 0.2)", false});
  v.push_back({"budget", "retry_ratio", "10.5", "10.5 is out of range (0..10, e.g. 0.2)", false});
  v.push_back({"budget", "retry_ratio", "11", "11 is out of range (0..10, e.g. 0.2)", false});
  v.push_back({"budget", "retry_ratio", "nan", "nan is out of range (0..10, e.g. 0.2)", false});
  v.push_back({"budget", "retry_ratio", "\"0.2\"", "\"0.2\" is not a number (e.g. 0.2)", false});
  v.push_back({"budget", "min_retries_per_second", "-1", "-1 is out of range (0..1000000)", false});
  v.push_back({"budget", "min_retries_per_second", "1.5", "1.5 is not an integer", false});

  // Issue 19: fresh_connection, hedge, outlier.
  v.push_back({"retry", "fresh_connection", "\"yes\"", "\"yes\" is not a boolean (use true or false)"});
  v.push_back({"retry", "fresh_connection", "0", "0 is not a boolean (use true or false)"});
  const char* kQuantiles = "(the quantiles are \"p90\", \"p95\", \"p99\", \"p99.9\")";
  static const std::string kP98 = std::string("\"p98\" is not a quantile Mulligan tracks ") + kQuantiles;
  static const std::string kP999 = std::string("\"p99.99\" is not a quantile Mulligan tracks ") + kQuantiles;
  v.push_back({"hedge", "delay", "\"p98\"", kP98.c_str()});
  v.push_back({"hedge", "delay", "\"p99.99\"", kP999.c_str()});
  v.push_back({"hedge", "delay", "\"P99\"", "\"P99\" is not a quantile Mulligan tracks (did you mean \"p99\"?)"});
  static const std::string kNotDelay =
      std::string(" is not a duration or a quantile (use e.g. \"50ms\", or one of \"p90\", \"p95\", \"p99\", "
                  "\"p99.9\"; \"0s\" = no hedging)");
  static const std::string kSoon = "\"soon\"" + kNotDelay;
  static const std::string kFive = "5" + kNotDelay;
  static const std::string kPct = "\"99%\"" + kNotDelay;
  v.push_back({"hedge", "delay", "\"soon\"", kSoon.c_str()});
  v.push_back({"hedge", "delay", "5", kFive.c_str()});
  v.push_back({"hedge", "delay", "\"99%\"", kPct.c_str()});
  v.push_back({"hedge", "delay", "\"-5ms\"", "\"-5ms\" is negative (\"0s\" turns hedging off)"});
  v.push_back({"hedge", "delay", "\"2h\"", "\"2h\" is too long (at most 1h)"});
  v.push_back({"hedge", "max_attempts", "1", "1 is out of range (2..5)"});
  v.push_back({"hedge", "max_attempts", "6", "6 is out of range (2..5)"});
  v.push_back({"hedge", "max_attempts", "\"3\"", "\"3\" is not an integer"});
  v.push_back({"hedge", "max_extra_load", "1.5", "1.5 is out of range (0..1, e.g. 0.05)"});
  v.push_back({"hedge", "max_extra_load", "-0.01", "-0.01 is out of range (0..1, e.g. 0.05)"});
  v.push_back({"hedge", "max_extra_load", "nan", "nan is out of range (0..1, e.g. 0.05)"});
  v.push_back({"hedge", "max_extra_load", "\"5%\"", "\"5%\" is not a number (e.g. 0.05)"});
  v.push_back({"outlier", "consecutive_failures", "1001", "1001 is out of range (0..1000)"});
  v.push_back({"outlier", "consecutive_failures", "-1", "-1 is out of range (0..1000)"});
  v.push_back({"outlier", "consecutive_failures", "2.5", "2.5 is not an integer"});
  v.push_back({"outlier", "ejection", "\"0s\"", "\"0s\" must be more than 0s"});
  v.push_back({"outlier", "max_ejection", "\"25h\"", "\"25h\" is too long (at most 24h)"});
  v.push_back({"outlier", "max_ejected", "2", "2 is out of range (0..1, e.g. 0.5)"});
  v.push_back({"outlier", "max_ejected", "inf", "inf is out of range (0..1, e.g. 0.5)"});
  v.push_back({"outlier", "max_ejected", "true", "true is not a number (e.g. 0.5)"});
  return v;
}

std::string expectedMessage(const BadValue& b) {
  return std::string(b.key) + ": " + (b.message ? b.message : std::string(b.value) + kNotADuration);
}

TEST(CompilerFieldsTest, EveryFieldRejectsBadValuesAtTheValuePositionInDefaults) {
  for (const BadValue& b : badValues()) {
    SCOPED_TRACE(std::string(b.key) + " = " + b.value);
    // [defaults] is line 1 and its sub-table header line 2; the value sits
    // after "key = ".
    std::string text = *b.table ? "[defaults]\n[defaults." + std::string(b.table) + "]\n" : "[defaults]\n";
    text += std::string(b.key) + " = " + b.value + "\n";
    int line = *b.table ? 3 : 2;
    int column = static_cast<int>(std::strlen(b.key)) + 4;
    EXPECT_EQ(oneError(text),
              "policy.toml:" + std::to_string(line) + ":" + std::to_string(column) + ": " + expectedMessage(b));
  }
}

TEST(CompilerFieldsTest, EveryFieldRejectsBadValuesAtTheValuePositionInInlineTables) {
  for (const BadValue& b : badValues()) {
    SCOPED_TRACE(std::string(b.key) + " = " + b.value);
    // On the route when a route may set it, else on the service; inline.
    std::string text = "[[service]]\nname = \"s\"\nhosts = [\"s\"]\n";
    std::string indent;
    if (b.route_allowed) {
      text += "  [[service.route]]\n  path_prefix = \"/\"\n";
      indent = "  ";
    }
    std::string prefix = indent + (*b.table ? std::string(b.table) + " = { " : "");
    text += prefix + b.key + " = " + b.value + (*b.table ? " }\n" : "\n");
    int line = b.route_allowed ? 6 : 4;
    int column = static_cast<int>(prefix.size() + std::strlen(b.key) + 4);
    EXPECT_EQ(oneError(text),
              "policy.toml:" + std::to_string(line) + ":" + std::to_string(column) + ": " + expectedMessage(b));
  }
}

TEST(CompilerFieldsTest, SubTablesMustBeTables) {
  EXPECT_EQ(oneError("[defaults]\nretry = 3\n"),
            "policy.toml:2:9: retry: 3 is not a table (use [defaults.retry] or retry = { ... })");
  EXPECT_EQ(oneError("[[service]]\nname = \"s\"\nhosts = [\"s\"]\nbudget = \"lots\"\n"),
            "policy.toml:4:10: budget: \"lots\" is not a table (use [service.budget] or budget = { ... })");
  EXPECT_EQ(oneError("[[service]]\nname = \"s\"\nhosts = [\"s\"]\n[[service.route]]\npath_prefix = \"/\"\n"
                     "deadline = true\n"),
            "policy.toml:6:12: deadline: true is not a table (use [service.route.deadline] or deadline = { "
            "... })");
  EXPECT_EQ(oneError("defaults = 1\n"), "policy.toml:1:12: defaults: 1 is not a table (use [defaults])");
}

TEST(CompilerFieldsTest, IdempotencyHeaderIsStoredLowerCaseAndMayBeEmpty) {
  pfc::TableModel m = compileOk("[defaults.retry]\nidempotency_header = \"X-Idempotency-Key\"\n");
  EXPECT_EQ(m.defaults.retry.idempotencyHeader(), "x-idempotency-key");
  m = compileOk("[defaults.retry]\nidempotency_header = \"" + std::string(63, 'k') + "\"\n");
  EXPECT_EQ(m.defaults.retry.idempotencyHeader(), std::string(63, 'k'));
  m = compileOk("[defaults.retry]\nidempotency_header = \"\"\n");
  EXPECT_EQ(m.defaults.retry.idempotencyHeader(), "");
  // The bytes after the name are zero, so equal policies compare equal.
  for (char c : std::string_view(m.defaults.retry.idempotency_header, sizeof m.defaults.retry.idempotency_header)) {
    EXPECT_EQ(c, '\0');
  }
}

TEST(CompilerFieldsTest, BackoffBaseAboveMaxIsCheckedOnEffectiveValuesWhereSet) {
  const std::string svc = "[[service]]\nname = \"s\"\nhosts = [\"s\"]\n";
  // Only the base is raised; the max (250ms) is inherited from the built-ins.
  EXPECT_EQ(oneError(svc + "retry = { backoff_base = \"2s\" }\n"),
            "policy.toml:4:26: backoff_base: \"2s\" is more than backoff_max (250ms)");
  // Only the max is lowered, below the inherited base (25ms).
  EXPECT_EQ(oneError("[defaults.retry]\nbackoff_max = \"10ms\"\n"),
            "policy.toml:2:15: backoff_max: \"10ms\" is less than backoff_base (25ms)");
  // Both on one level: reported at the base.
  EXPECT_EQ(oneError(svc + "[[service.route]]\npath_prefix = \"/\"\n"
                           "retry = { backoff_max = \"1s\", backoff_base = \"2s\" }\n"),
            "policy.toml:6:46: backoff_base: \"2s\" is more than backoff_max (1s)");
  // A route raising the base under a max its service raised is fine; equal is fine.
  pfc::TableModel m = compileOk(svc +
                                "retry = { backoff_max = \"5s\" }\n[[service.route]]\npath_prefix = \"/x\"\n"
                                "retry = { backoff_base = \"2s\" }\n[[service.route]]\npath_prefix = \"/\"\n"
                                "retry = { backoff_base = \"5s\" }\n");
  EXPECT_EQ(m.services[0].routes[0].policy.retry.backoff_base_us, 2000000);
  EXPECT_EQ(m.services[0].routes[0].policy.retry.backoff_max_us, 5000000);
  EXPECT_EQ(m.services[0].routes[1].policy.retry.backoff_base_us, 5000000);
}

TEST(CompilerFieldsTest, EjectionAboveMaxEjectionIsCheckedOnEffectiveValuesWhereSet) {
  const std::string svc = "[[service]]\nname = \"s\"\nhosts = [\"s\"]\n";
  // Only ejection is raised, above the built-in max_ejection (5m).
  EXPECT_EQ(oneError(svc + "outlier = { ejection = \"10m\" }\n"),
            "policy.toml:4:24: ejection: \"10m\" is more than max_ejection (5m)");
  // Only max_ejection is lowered, below the inherited ejection (30s).
  EXPECT_EQ(oneError("[defaults.outlier]\nmax_ejection = \"10s\"\n"),
            "policy.toml:2:16: max_ejection: \"10s\" is less than ejection (30s)");
  // Both on a route: reported at ejection.
  EXPECT_EQ(oneError(svc + "[[service.route]]\npath_prefix = \"/\"\n"
                           "outlier = { max_ejection = \"1m\", ejection = \"2m\" }\n"),
            "policy.toml:6:45: ejection: \"2m\" is more than max_ejection (1m)");
  pfc::TableModel m = compileOk(svc + "outlier = { max_ejection = \"1h\" }\n[[service.route]]\npath_prefix = \"/\"\n"
                                      "outlier = { ejection = \"1h\" }\n");
  EXPECT_EQ(m.services[0].routes[0].policy.outlier.ejection_us, int64_t{3600} * 1000000);
}

TEST(CompilerFieldsTest, HedgeDelayIsADurationOrAQuantileAndZeroTurnsHedgingOff) {
  pfc::TableModel m = compileOk(
      "[defaults.hedge]\ndelay = \"p90\"\n"
      "[[service]]\nname = \"s\"\nhosts = [\"s\"]\nhedge = { delay = \"1.5ms\" }\n"
      "[[service.route]]\npath_prefix = \"/a\"\nhedge = { delay = \"0s\" }\n"
      "[[service.route]]\npath_prefix = \"/b\"\nhedge = { delay = \"p95\" }\n"
      "[[service.route]]\npath_prefix = \"/\"\nhedge = { max_attempts = 5 }\n");
  EXPECT_EQ(m.defaults.hedge.delay_quantile_permille, 900);
  EXPECT_EQ(m.defaults.hedge.delay_us, 0);
  EXPECT_TRUE(m.defaults.hedge.enabled());
  const pfc::ServiceModel& s = m.services[0];
  // A fixed delay replaces an inherited quantile, and the other way round.
  EXPECT_EQ(s.policy.hedge.delay_us, 1500);
  EXPECT_EQ(s.policy.hedge.delay_quantile_permille, 0);
  EXPECT_FALSE(s.routes[0].policy.hedge.enabled());
  EXPECT_EQ(s.routes[1].policy.hedge.delay_us, 0);
  EXPECT_EQ(s.routes[1].policy.hedge.delay_quantile_permille, 950);
  EXPECT_EQ(s.routes[2].policy.hedge.delay_us, 1500);  // inherited from the service
  EXPECT_EQ(s.routes[2].policy.hedge.max_attempts, 5u);
  EXPECT_FALSE(pfc::builtinDefaults().hedge.enabled());
}

// A hedge delay on a route none of whose methods can be retried hedges
// nothing: an error at the delay (the end-to-end `check` test is in
// tests/integration/agent_cli_test.py).
TEST(CompilerFieldsTest, AHedgeDelayOnARouteWithNoRetryableMethodIsAnError) {
  const std::string svc = "[[service]]\nname = \"s\"\nhosts = [\"s\"]\n";
  auto route = [&](const std::string& lines) { return svc + "[[service.route]]\npath_prefix = \"/\"\n" + lines; };
  EXPECT_EQ(oneError(route("methods = [\"POST\", \"PATCH\"]\nretry.idempotency_header = \"\"\n"
                           "hedge.delay = \"10ms\"\n")),
            "policy.toml:8:15: delay: no request of this route can be hedged: its methods (POST, PATCH) are never "
            "retried while idempotency_header is \"\" (set one, or leave the delay out)");
  EXPECT_EQ(oneError(route("methods = [\"CONNECT\"]\nhedge = { delay = \"p99\" }\n")),
            "policy.toml:7:19: delay: no request of this route can be hedged: its methods (CONNECT) are never "
            "retried (leave the delay out)");
  // The idempotency header inherited from [defaults] counts.
  EXPECT_EQ(oneError("[defaults.retry]\nidempotency_header = \"\"\n" +
                     route("methods = [\"PATCH\"]\nhedge.delay = \"1s\"\n")),
            "policy.toml:9:15: delay: no request of this route can be hedged: its methods (PATCH) are never "
            "retried while idempotency_header is \"\" (set one, or leave the delay out)");
  // A bad delay is reported once, as a bad delay.
  EXPECT_EQ(oneError("[defaults.hedge]\ndelay = \"p99\"\n" +
                     route("methods = [\"CONNECT\"]\nhedge.delay = \"p98\"\n")),
            "policy.toml:9:15: delay: \"p98\" is not a quantile Mulligan tracks (the quantiles are \"p90\", "
            "\"p95\", \"p99\", \"p99.9\")");
  // Fine: a retryable method, POST with an idempotency header, delay "0s",
  // a gRPC route, and a delay inherited from the service or [defaults].
  compileOk(route("methods = [\"POST\", \"GET\"]\nretry.idempotency_header = \"\"\nhedge.delay = \"10ms\"\n"));
  compileOk(route("methods = [\"POST\"]\nhedge.delay = \"10ms\"\n"));
  compileOk(route("methods = [\"CONNECT\"]\nhedge.delay = \"0s\"\n"));
  compileOk(svc + "[[service.route]]\ngrpc = \"pkg.S\"\nmethods = [\"POST\"]\nretry.idempotency_header = \"\"\n"
                  "hedge.delay = \"p99\"\n");
  compileOk("[defaults.hedge]\ndelay = \"p99\"\n" + svc + "hedge.delay = \"5ms\"\n" +
            "[[service.route]]\npath_prefix = \"/\"\nmethods = [\"CONNECT\"]\n");
  // A route that writes the delay its service has decides nothing of its
  // own (and it is what `dump` writes, which must compile back).
  compileOk(svc + "hedge.delay = \"5ms\"\n[[service.route]]\npath_prefix = \"/\"\nmethods = [\"CONNECT\"]\n"
                  "hedge.delay = \"5ms\"\n");
}

TEST(CompilerFieldsTest, BudgetRatioAcceptsFloatsAndIntegers) {
  pfc::TableModel m = compileOk(
      "[defaults.budget]\nretry_ratio = 0\n[[service]]\nname = \"s\"\nhosts = [\"s\"]\n"
      "budget = { retry_ratio = 2.5e-1 }\n");
  EXPECT_EQ(m.defaults.budget.retry_ratio, 0.0);
  EXPECT_EQ(m.services[0].policy.budget.retry_ratio, 0.25);
  EXPECT_EQ(m.services[0].policy.budget.min_retries_per_second, 10u);  // untouched: built-in
}

}  // namespace
}  // namespace mulligan::agent
