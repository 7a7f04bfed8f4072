// The admin endpoint's renderers, without a server: /explain's parsing and
// its dry run of the engine, /metrics and /stats text, /config and the page.
#include <gtest/gtest.h>

#include "proto-free-config/render.h"
#include "sidecar/admin/explain.h"
#include "sidecar/admin/pages.h"
#include "sidecar/admin/stats_render.h"
#include "tests/unit/pfc/test_tables.h"

namespace mulligan::admin {
namespace {

std::shared_ptr<const pfc::Table> tableOf(const pfc::TableModel& m, uint64_t generation) {
  std::string why;
  auto t = pfc::Table::fromImage(pfc::buildImage(m, generation), &why);
  EXPECT_TRUE(t) << why;
  return t;
}

retry::RetryBudget::Snapshot noBudget(std::string_view, const pfc::BudgetPolicy&) { return {}; }

ExplainQuery parse(const char* q) {
  std::string error;
  auto r = parseExplainQuery(q, &error);
  EXPECT_TRUE(r) << q << ": " << error;
  return r ? *r : ExplainQuery{};
}

std::string parseError(const char* q) {
  std::string error;
  EXPECT_FALSE(parseExplainQuery(q, &error)) << q;
  return error;
}

TEST(ExplainTest, BadQueriesAreRefusedWithTheReason) {
  EXPECT_NE(parseError("path=/x").find("host is required"), std::string::npos);
  EXPECT_NE(parseError("host=a&status=99").find("status"), std::string::npos);
  EXPECT_NE(parseError("host=a&status=abc").find("status"), std::string::npos);
  EXPECT_NE(parseError("host=a&port=70000").find("port"), std::string::npos);
  EXPECT_NE(parseError("host=a&method=FETCH").find("method"), std::string::npos);
  EXPECT_NE(parseError("host=a&path=x").find("path"), std::string::npos);
  EXPECT_NE(parseError("host=a&outcome=boom").find("outcome"), std::string::npos);
  EXPECT_NE(parseError("host=a&colour=red").find("unknown parameter \"colour\""), std::string::npos);
}

TEST(ExplainTest, WithoutAPortTheAuthorityPortOrEightyIsUsedAsTheDataPlaneDoes) {
  EXPECT_EQ(parse("host=orders").port, 80);
  EXPECT_EQ(parse("host=orders:8080").port, 8080);
  EXPECT_EQ(parse("host=orders:8080&port=9000").port, 9000);
}

TEST(ExplainTest, MatchesServiceAndRouteAndShowsTheEffectivePolicy) {
  auto t = tableOf(pfc::testing::makeModel(2, 2), 7);
  std::string j = explainJson(t.get(), parse("host=svc-1&port=80&path=/api/1/0/x"), noBudget);
  EXPECT_NE(j.find("\"generation\":7"), std::string::npos) << j;
  EXPECT_NE(j.find("\"service\":{\"name\":\"svc-1\",\"index\":1}"), std::string::npos) << j;
  EXPECT_NE(j.find("\"route\":{\"ordinal\":0,\"path_prefix\":\"/api/1/0/\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"policy_level\":\"route\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"request_timeout\":\"1.000001s\""), std::string::npos) << j;
  EXPECT_EQ(j.find("\"retry\":{\"outcome\""), std::string::npos) << "no outcome asked, no decision shown";
}

TEST(ExplainTest, TheEngineDecidesAndNamesTheRetryOnEntriesThatMatch) {
  pfc::TableModel m = pfc::testing::makeModel(1, 0);
  m.services[0].policy.retry.conditions = pfc::conditionBit(pfc::RetryCondition::k5xx);
  m.services[0].policy.retry.addStatus(503);
  m.services[0].policy.retry.num_retries = 2;
  auto t = tableOf(m, 1);
  std::string get = explainJson(t.get(), parse("host=svc-0&status=503"), noBudget);
  EXPECT_NE(get.find("\"would_retry\":true,\"matched_by\":[\"5xx\",\"503\"]"), std::string::npos) << get;
  EXPECT_NE(get.find("\"decision\":{\"retry\":true,\"refusal\":\"\""), std::string::npos) << get;
  std::string post = explainJson(t.get(), parse("host=svc-0&method=POST&status=503"), noBudget);
  EXPECT_NE(post.find("\"decision\":{\"retry\":false,\"refusal\":\"idempotency\"}"), std::string::npos) << post;
  std::string keyed = explainJson(t.get(), parse("host=svc-0&method=POST&status=503&idempotency_key=1"), noBudget);
  EXPECT_NE(keyed.find("\"decision\":{\"retry\":true"), std::string::npos) << keyed;
  std::string last = explainJson(t.get(), parse("host=svc-0&status=503&attempt=3"), noBudget);
  EXPECT_NE(last.find("\"refusal\":\"retries-exhausted\""), std::string::npos) << last;
  std::string not_named = explainJson(t.get(), parse("host=svc-0&status=404"), noBudget);
  EXPECT_NE(not_named.find("\"would_retry\":false,\"matched_by\":[]"), std::string::npos) << not_named;
  EXPECT_NE(not_named.find("\"refusal\":\"not-retriable\""), std::string::npos) << not_named;
  std::string big = explainJson(t.get(), parse("host=svc-0&method=PUT&status=503&body_size=10000000"), noBudget);
  EXPECT_NE(big.find("\"refusal\":\"body-too-large\""), std::string::npos) << big;
  std::string pushback = explainJson(t.get(), parse("host=svc-0&status=503&retry_after=60"), noBudget);
  EXPECT_NE(pushback.find("\"refusal\":\"pushback-too-long\""), std::string::npos) << pushback;
}

TEST(ExplainTest, WithoutATableTheBuiltInDefaultsDecide) {
  std::string j = explainJson(nullptr, parse("host=x&outcome=connect-failure&method=POST"), noBudget);
  EXPECT_NE(j.find("\"policy_level\":\"built-in defaults\""), std::string::npos) << j;
  // A connect failure never reached the upstream: even a POST is retried.
  EXPECT_NE(j.find("\"matched_by\":[\"connect-failure\"],\"decision\":{\"retry\":true"), std::string::npos) << j;
}

TEST(ExplainTest, AGrpcCallRetriesOnlyTheCodesItsPolicyNames) {
  pfc::TableModel m = pfc::testing::makeModel(1, 0);
  m.services[0].policy.retry.conditions = 0;
  for (uint64_t& w : m.services[0].policy.retry.status_bits) w = 0;
  m.services[0].policy.retry.grpc_codes = pfc::grpcBit(pfc::GrpcCode::kUnavailable);
  auto t = tableOf(m, 1);
  std::string unavailable =
      explainJson(t.get(), parse("host=svc-0&method=POST&path=/pkg.Svc/Get&grpc_status=14"), noBudget);
  EXPECT_NE(unavailable.find("\"outcome\":\"unavailable\""), std::string::npos) << unavailable;
  EXPECT_NE(unavailable.find("\"matched_by\":[\"unavailable\"],\"decision\":{\"retry\":true"), std::string::npos)
      << unavailable;
  std::string internal = explainJson(t.get(), parse("host=svc-0&method=POST&path=/pkg.Svc/Get&grpc_status=13"), noBudget);
  EXPECT_NE(internal.find("\"refusal\":\"not-retriable\""), std::string::npos) << internal;
}

TEST(StatsRenderTest, MetricsAreLabelledByServiceAndRouteWithCumulativeBuckets) {
  StatsSnapshot s;
  stats::RouteTotals t;
  t.service = "we\"b";
  t.route = 1;
  t.requests = 5;
  t.latency_buckets[0] = 2;
  t.latency_buckets[3] = 1;
  t.latency_sum_us = 1500;
  t.retries = {{"503", 4}};
  t.refusals[static_cast<size_t>(retry::Refusal::kBudget)] = 3;
  s.routes.push_back(t);
  std::string m = metricsText(s);
  EXPECT_NE(m.find("mulligan_requests_total{service=\"we\\\"b\",route=\"1\"} 5\n"), std::string::npos) << m;
  EXPECT_NE(m.find("mulligan_retries_total{service=\"we\\\"b\",route=\"1\",reason=\"503\"} 4\n"), std::string::npos);
  EXPECT_NE(m.find("mulligan_retries_refused_total{service=\"we\\\"b\",route=\"1\",reason=\"budget\"} 3\n"),
            std::string::npos);
  EXPECT_NE(m.find("le=\"0.0005\"} 2\n"), std::string::npos) << m;
  EXPECT_NE(m.find("le=\"0.005\"} 3\n"), std::string::npos) << m;
  EXPECT_NE(m.find("le=\"+Inf\"} 3\n"), std::string::npos) << m;
  EXPECT_NE(m.find("mulligan_upstream_latency_seconds_sum{service=\"we\\\"b\",route=\"1\"} 0.0015\n"),
            std::string::npos);
  EXPECT_NE(m.find("# TYPE mulligan_upstream_latency_seconds histogram\n"), std::string::npos);
  std::string j = statsJson(s);
  EXPECT_NE(j.find("\"service\":\"we\\\"b\",\"route\":1,\"requests\":5"), std::string::npos) << j;
}

// Policy propagation (issue 18): PolicyStatus buckets each worker's
// publish -> load time; /metrics shows a cumulative histogram and the newest
// value, /stats the same per bucket. A load that is no observation (0: the
// publish time was not recorded, or came before the worker started) counts
// nowhere.
TEST(StatsRenderTest, PolicyPropagationIsAHistogramAndItsNewestValue) {
  policy::PolicyStatus status;
  status.recordLoaded(tableOf(pfc::testing::makeModel(1, 1), 1), 5'000'000, 0);  // start-up load
  EXPECT_EQ(status.snapshot().propagation.count, 0u);
  EXPECT_EQ(status.snapshot().propagation.last_us, -1);
  status.recordLoaded(tableOf(pfc::testing::makeModel(1, 1), 2), 10'000'040, 10'000'000);   // 40 µs
  status.recordLoaded(tableOf(pfc::testing::makeModel(1, 1), 3), 20'000'700, 20'000'000);   // 700 µs
  status.recordLoaded(tableOf(pfc::testing::makeModel(1, 1), 4), 30'000'000, 30'000'001);   // a clock step: 0
  status.recordLoaded(tableOf(pfc::testing::makeModel(1, 1), 5), 42'000'000, 40'000'000);   // 2 s
  StatsSnapshot s;
  s.policy = status.snapshot();
  EXPECT_EQ(s.policy.propagation.count, 4u);
  EXPECT_EQ(s.policy.propagation.last_us, 2'000'000);
  EXPECT_EQ(s.policy.propagation.last_generation, 5u);
  std::string m = metricsText(s);
  EXPECT_NE(m.find("# TYPE mulligan_policy_propagation_seconds histogram\n"), std::string::npos) << m;
  EXPECT_NE(m.find("mulligan_policy_propagation_seconds_bucket{le=\"5e-05\"} 2\n"), std::string::npos) << m;
  EXPECT_NE(m.find("mulligan_policy_propagation_seconds_bucket{le=\"0.0005\"} 2\n"), std::string::npos) << m;
  EXPECT_NE(m.find("mulligan_policy_propagation_seconds_bucket{le=\"0.001\"} 3\n"), std::string::npos) << m;
  EXPECT_NE(m.find("mulligan_policy_propagation_seconds_bucket{le=\"1\"} 3\n"), std::string::npos) << m;
  EXPECT_NE(m.find("mulligan_policy_propagation_seconds_bucket{le=\"+Inf\"} 4\n"), std::string::npos) << m;
  EXPECT_NE(m.find("mulligan_policy_propagation_seconds_sum 2.00074\n"), std::string::npos) << m;
  EXPECT_NE(m.find("mulligan_policy_propagation_seconds_count 4\n"), std::string::npos) << m;
  EXPECT_NE(m.find("mulligan_policy_propagation_last_seconds 2\n"), std::string::npos) << m;
  std::string j = statsJson(s);
  EXPECT_NE(j.find("\"propagation\":{\"count\":4,\"sum_us\":2000740,\"last_us\":2000000,\"last_generation\":5,"
                   "\"last_published_unix_us\":40000000,\"buckets\":[{\"le_us\":50,\"count\":2},{\"le_us\":100,\"count\":0}"),
            std::string::npos) << j;
  EXPECT_NE(j.find("{\"le_us\":null,\"count\":1}]}"), std::string::npos) << j;
  EXPECT_NE(statsJson(StatsSnapshot{}).find("\"last_us\":null"), std::string::npos);
}

TEST(PagesTest, ConfigEmbedsExactlyWhatTheAgentDumps) {
  StatsSnapshot s;
  s.table = tableOf(pfc::testing::makeModel(2, 1), 4);
  s.policy.loaded_generation = 4;
  std::string c = configJson(s);
  std::string dump = pfc::renderJson(s.table->toModel(), 4);
  EXPECT_NE(c.find("\"table\":" + dump), std::string::npos);
  EXPECT_NE(c.find("\"enforced\":true,\"generation\":4"), std::string::npos);
  EXPECT_NE(c.find("\"last_refused\":null"), std::string::npos);
  s.policy.refused_why = "checksum mismatch";
  s.policy.refused_generation = 5;
  EXPECT_NE(configJson(s).find("\"why\":\"checksum mismatch\",\"after_enforced\":true"), std::string::npos);
  StatsSnapshot none;
  EXPECT_NE(configJson(none).find("\"enforced\":false"), std::string::npos);
  EXPECT_NE(configJson(none).find("\"builtin_defaults\":{"), std::string::npos);
}

TEST(PagesTest, ThePageListsEveryServiceAndEscapesTableStrings) {
  pfc::TableModel m = pfc::testing::makeModel(2, 1);
  m.services[1].routes[0].kind = pfc::MatchKind::kPathPrefix;
  m.services[1].routes[0].match = "/<script>";
  StatsSnapshot s;
  s.table = tableOf(m, 1);
  stats::RouteTotals t;
  t.service = "svc-0";
  t.route = -1;
  t.requests = 42;
  s.routes.push_back(t);
  std::string h = indexHtml(s);
  EXPECT_NE(h.find("data-service=\"svc-0\"><td class=\"l\">svc-0</td><td class=\"l\">(service level)</td><td>42</td>"),
            std::string::npos)
      << h;
  EXPECT_NE(h.find("data-service=\"svc-1\""), std::string::npos);
  EXPECT_EQ(h.find("<script>"), std::string::npos);
  EXPECT_NE(h.find("/&lt;script&gt;"), std::string::npos);
  for (const char* link : {"/ready", "/healthz", "/config", "/explain", "/stats", "/metrics"}) {
    EXPECT_NE(h.find(std::string("href=\"") + link), std::string::npos) << link;
  }
}

}  // namespace
}  // namespace mulligan::admin
