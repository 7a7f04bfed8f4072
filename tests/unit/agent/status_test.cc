// `mulligan-agent status`: the JSON reader it needs and the report it prints
// from canned /config and /stats documents (the live sidecar is exercised by
// tests/integration/agent_cli_test.py).
#include <gtest/gtest.h>

#include "agent/json.h"
#include "agent/status.h"

namespace mulligan::agent {
namespace {

Json parsed(std::string_view text) {
  std::string error;
  auto j = Json::parse(text, &error);
  EXPECT_TRUE(j) << error;
  return j ? *j : Json();
}

TEST(JsonTest, ParsesEveryKindAndKeeps64BitCountersExact) {
  Json j = parsed(R"( {"a": [1, -2.5e1, true, false, null], "big": 18446744073709551615,
                      "s": "q\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00", "o": {}} )");
  EXPECT_EQ(j["a"].size(), 5u);
  EXPECT_EQ(j["a"][0].u64(), 1u);
  EXPECT_EQ(j["a"][1].number(), -25.0);
  EXPECT_EQ(j["a"][1].u64(), 0u);  // negative: not a counter
  EXPECT_TRUE(j["a"][2].boolean());
  EXPECT_FALSE(j["a"][3].boolean());
  EXPECT_TRUE(j["a"][4].isNull());
  EXPECT_EQ(j["big"].u64(), 18446744073709551615ULL);
  EXPECT_EQ(j["s"].str(), "q\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_TRUE(j["o"].isObject());
  EXPECT_TRUE(j["missing"]["deeper"][3].isNull());  // lookups chain through absence
  EXPECT_EQ(j["missing"].str(), "");
}

TEST(JsonTest, RefusesWhatIsNotJsonAndSaysWhere) {
  for (const char* bad : {"", "{", "[1,]", "{\"a\" 1}", "\"unterminated", "tru", "01x", "{} {}", "\"\\x\"",
                          "\"a\nb\"", "-"}) {
    std::string error;
    EXPECT_FALSE(Json::parse(bad, &error)) << bad;
    EXPECT_EQ(error.rfind("offset ", 0), 0u) << bad << ": " << error;
  }
  std::string deep(100, '[');
  std::string error;
  EXPECT_FALSE(Json::parse(deep + std::string(100, ']'), &error));
  EXPECT_NE(error.find("nested too deeply"), std::string::npos);
}

constexpr const char* kConfig = R"({"enforced":true,"generation":3,"loaded_at":"2026-12-03T06:00:00.000Z",
  "layout":"pfc/2","table":{"source":{"path":"/etc/mulligan/policy.toml"}},
  "last_refused":{"by":"agent","why":"/etc/mulligan/policy.toml:6:19: request_timeout: bad","errors":2,"count":4,
                  "at":"2026-12-03T06:01:00.000Z","kept_generation":3,"superseded":false},
  "agent_refused":{"by":"agent"}})";

constexpr const char* kStats = R"({"draining":false,"routes":[
  {"service":"web","route":0,"match":"path_prefix = /api/","requests":7,"responses":{"5xx":1},"retries":3,
   "retries_by_reason":{"503":2,"reset":1},"retries_refused":{"budget":1,"deadline":0},"timeouts":{"per-try":2,"request":0}},
  {"service":"web","route":null,"requests":5,"responses":{"5xx":0},"retries":0,"retries_by_reason":{},
   "retries_refused":{"budget":0},"timeouts":{"request":0}},
  {"service":"","route":null,"requests":1,"responses":{"5xx":1},"retries":0,"retries_by_reason":{},
   "retries_refused":{},"timeouts":{}}]})";

TEST(StatusTest, ReportsGenerationSourceRefusalTotalsAndOneRowPerServiceAndRoute) {
  std::string out = renderStatus("127.0.0.1:15000", parsed(kConfig), parsed(kStats));
  EXPECT_NE(out.find("sidecar   127.0.0.1:15000 (ready)\n"), std::string::npos) << out;
  EXPECT_NE(out.find("policy    generation 3 from /etc/mulligan/policy.toml, enforced since 2026-12-03T06:00:00.000Z"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("refused   policy file refused by the agent: /etc/mulligan/policy.toml:6:19: request_timeout: "
                     "bad (and 1 more)\n          at 2026-12-03T06:01:00.000Z; generation 3 stays enforced until the "
                     "file is fixed (4 files refused in all)"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("traffic   13 requests, 3 retries, 1 refused retry, 2 timeouts\n"), std::string::npos) << out;
  // Sorted: the unmatched row first, then web's service level before route 0.
  size_t none = out.find("(no service)"), level = out.find("(service level)"), route = out.find("0: path_prefix");
  ASSERT_NE(route, std::string::npos) << out;
  EXPECT_LT(none, level);
  EXPECT_LT(level, route);
  std::string row = out.substr(out.rfind('\n', route) + 1);
  row = row.substr(0, row.find('\n'));
  EXPECT_EQ(row,
            "web                  0: path_prefix = /api/               7      1        3        1         2  "
            "retried on 503:2 reset:1; refused by budget:1; timeouts per-try:2");
}

TEST(StatusTest, WithoutPolicyOrTrafficSaysSo) {
  std::string out = renderStatus("[::1]:15000", parsed(R"({"enforced":false,"last_refused":null,"agent_refused":null})"),
                                 parsed(R"({"draining":false,"routes":[]})"));
  EXPECT_NE(out.find("(not ready: no policy loaded, enforcing built-in defaults)"), std::string::npos) << out;
  EXPECT_NE(out.find("refused   none\n"), std::string::npos) << out;
  EXPECT_NE(out.find("no traffic yet"), std::string::npos) << out;
}

}  // namespace
}  // namespace mulligan::agent
