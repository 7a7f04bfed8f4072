#include "sidecar/stats/route_stats.h"
#include "sidecar/stats/worker_stats.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "proto-free-config/table_model.h"
#include "tests/unit/pfc/test_tables.h"

namespace mulligan::stats {
namespace {

std::shared_ptr<const pfc::Table> tableOf(const pfc::TableModel& m, uint64_t generation) {
  std::string why;
  auto t = pfc::Table::fromImage(pfc::buildImage(m, generation), &why);
  EXPECT_TRUE(t) << why;
  return t;
}

pfc::Match lookup(const pfc::Table& t, std::string_view host, std::string_view path) {
  return t.lookup(pfc::RequestKey{host, 80, "GET", path, false});
}

TEST(RouteStatsTest, RequestsAreCountedByServiceAndRouteOrdinalNeverByPath) {
  auto t = tableOf(pfc::testing::makeModel(2, 2), 1);
  WorkerStats w;
  w.routes.forMatch(t.get(), lookup(*t, "svc-1", "/api/1/0/items?id=7")).request();
  w.routes.forMatch(t.get(), lookup(*t, "svc-1", "/api/1/0/other")).request();
  w.routes.forMatch(t.get(), lookup(*t, "svc-1", "/elsewhere")).request();
  w.routes.forMatch(t.get(), lookup(*t, "nobody", "/")).request();
  w.routes.forMatch(nullptr, pfc::Match{}).request();  // no policy loaded: the unmatched series

  auto totals = collect({&w}).routes;
  ASSERT_EQ(totals.size(), 3u);
  EXPECT_EQ(totals[0].service, "");
  EXPECT_EQ(totals[0].requests, 2u);
  EXPECT_EQ(totals[1].service, "svc-1");
  EXPECT_EQ(totals[1].route, -1);
  EXPECT_EQ(totals[1].requests, 1u);
  EXPECT_EQ(totals[2].service, "svc-1");
  EXPECT_EQ(totals[2].route, 0);
  EXPECT_EQ(totals[2].requests, 2u);
}

TEST(RouteStatsTest, AReloadThatReordersServicesKeepsEachSeriesByName) {
  auto m = pfc::testing::makeModel(3, 1);
  auto t1 = tableOf(m, 1);
  WorkerStats w;
  RouteCounters& a = w.routes.forMatch(t1.get(), lookup(*t1, "svc-2", "/"));
  a.request();
  std::swap(m.services[0], m.services[2]);  // svc-2 is now index 0
  auto t2 = tableOf(m, 2);
  t1.reset();  // the old table is gone; the counters must not care
  RouteCounters& b = w.routes.forMatch(t2.get(), lookup(*t2, "svc-2", "/"));
  EXPECT_EQ(&a, &b);
  b.request();
  auto totals = collect({&w}).routes;
  ASSERT_EQ(totals.size(), 1u);
  EXPECT_EQ(totals[0].service, "svc-2");
  EXPECT_EQ(totals[0].requests, 2u);
}

TEST(RouteStatsTest, WorkersAreSummedAndRetriesKeptByReason) {
  auto t = tableOf(pfc::testing::makeModel(1, 0), 1);
  WorkerStats w1, w2;
  auto m = lookup(*t, "svc-0", "/");
  RouteCounters& c1 = w1.routes.forMatch(t.get(), m);
  RouteCounters& c2 = w2.routes.forMatch(t.get(), m);
  c1.retried(retry::Outcome::response(503));
  c2.retried(retry::Outcome::response(503));
  c2.retried(retry::Outcome::connectFailure());
  c1.refused(retry::Refusal::kBudget);
  c1.refused(retry::Refusal::kNotRetriable);  // the policy never asked: not a refusal
  c2.refused(retry::Refusal::kNone);
  c1.attemptFailed(retry::OutcomeKind::kConnectFailure, /*connect_timed_out=*/true);
  c1.attemptFailed(retry::OutcomeKind::kPerTryTimeout, false);
  c2.attemptAborted(/*read_timed_out=*/true);
  c2.timeout(TimeoutKind::kRequest);
  auto totals = collect({&w1, &w2}).routes;
  ASSERT_EQ(totals.size(), 1u);
  const RouteTotals& r = totals[0];
  ASSERT_EQ(r.retries.size(), 2u);
  EXPECT_EQ(r.retries[0].first, "503");
  EXPECT_EQ(r.retries[0].second, 2u);
  EXPECT_EQ(r.retries[1].first, "connect-failure");
  EXPECT_EQ(r.retriesTotal(), 3u);
  EXPECT_EQ(r.refusals[static_cast<size_t>(retry::Refusal::kBudget)], 1u);
  EXPECT_EQ(r.refusals[static_cast<size_t>(retry::Refusal::kNotRetriable)], 0u);
  EXPECT_EQ(r.upstream_connect_failures, 1u);
  EXPECT_EQ(r.timeouts[static_cast<size_t>(TimeoutKind::kConnect)], 1u);
  EXPECT_EQ(r.timeouts[static_cast<size_t>(TimeoutKind::kPerTry)], 1u);
  EXPECT_EQ(r.timeouts[static_cast<size_t>(TimeoutKind::kRead)], 1u);
  EXPECT_EQ(r.timeouts[static_cast<size_t>(TimeoutKind::kRequest)], 1u);
}

TEST(RouteStatsTest, ReasonsBeyondTheSlotsAreCountedAsOther) {
  ReasonCounters rc;
  for (int code = 500; code < 500 + static_cast<int>(ReasonCounters::kReasonSlots) + 3; ++code) {
    rc.add(retry::httpStatusText(code));
  }
  size_t seen = 0;
  uint64_t other = 0;
  rc.forEach([&](std::string_view reason, uint64_t n) {
    if (reason == "other") other = n;
    ++seen;
  });
  EXPECT_EQ(seen, ReasonCounters::kReasonSlots + 1);
  EXPECT_EQ(other, 3u);
}

TEST(RouteStatsTest, LatencyLandsInTheFirstBucketItFits) {
  RouteCounters c("s", -1);
  c.upstreamLatency(400);        // <= 0.5 ms
  c.upstreamLatency(500);        // <= 0.5 ms (bounds are inclusive, as Prometheus' le)
  c.upstreamLatency(501);        // <= 1 ms
  c.upstreamLatency(60'000'000);  // +Inf
  EXPECT_EQ(c.latency_buckets[0].get(), 2u);
  EXPECT_EQ(c.latency_buckets[1].get(), 1u);
  EXPECT_EQ(c.latency_buckets[kLatencyBuckets - 1].get(), 1u);
  EXPECT_EQ(c.latency_sum_us.get(), 60'001'401u);
}

TEST(RouteStatsTest, AReaderWalkingTheListWhileTheWorkerAddsRoutesSeesOnlyCompleteNodes) {
  auto t = tableOf(pfc::testing::makeModel(200, 2), 1);
  WorkerStats w;
  std::atomic<bool> done{false};
  std::thread reader([&] {
    while (!done.load()) {
      for (const RouteCounters* c = w.routes.first(); c; c = c->next) {
        ASSERT_EQ(c->service.rfind("svc-", 0), 0u);
        ASSERT_GE(c->route, -1);
      }
    }
  });
  for (int s = 0; s < 200; ++s) {
    std::string host = "svc-" + std::to_string(s);
    w.routes.forMatch(t.get(), lookup(*t, host, "/")).request();
    w.routes.forMatch(t.get(), lookup(*t, host, "/api/" + std::to_string(s) + "/0/")).request();
  }
  done.store(true);
  reader.join();
  EXPECT_EQ(collect({&w}).routes.size(), 400u);
}

}  // namespace
}  // namespace mulligan::stats
