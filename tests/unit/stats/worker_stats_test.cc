#include "sidecar/stats/worker_stats.h"

#include <gtest/gtest.h>

namespace mulligan::stats {
namespace {

TEST(WorkerStatsTest, CollectSumsTheProcessWideCountersOverWorkers) {
  WorkerStats a, b;
  a.counters.requests.add(3);
  b.counters.requests.add(4);
  a.counters.responses_by_class[5].add();
  b.counters.responses_by_class[5].add(2);
  a.counters.downstream_active.add(2);
  a.counters.downstream_active.sub();
  b.counters.http2_goaways[1][static_cast<size_t>(proxy::Http2Offence::kRapidReset)].add();
  b.counters.io_uring.add();

  Totals t = collect({&a, &b});
  EXPECT_EQ(t.globals.requests, 7u);
  EXPECT_EQ(t.globals.responses[5], 3u);
  EXPECT_EQ(t.globals.downstream_active, 1u);
  EXPECT_EQ(t.globals.http2_goaways[1][static_cast<size_t>(proxy::Http2Offence::kRapidReset)], 1u);
  EXPECT_EQ(t.globals.http2_goaways[0][static_cast<size_t>(proxy::Http2Offence::kRapidReset)], 0u);
  EXPECT_EQ(t.globals.io_uring_workers, 1u);
  EXPECT_TRUE(t.routes.empty());
}

TEST(WorkerStatsTest, AWorkerInEitherAcceptPauseCountsOncePausedEpisodesAddUp) {
  WorkerStats a, b, c;
  a.counters.accept_paused_resources.add();
  a.counters.accept_paused_resources_now.add();
  a.counters.accept_paused_bound.add();
  a.counters.accept_paused_bound_now.add();  // both reasons at once: still one worker
  b.counters.accept_paused_bound.add(2);     // paused twice, accepting again now
  c.counters.accept_paused_bound.add();
  c.counters.accept_paused_bound_now.add();

  Totals t = collect({&a, &b, &c});
  EXPECT_EQ(t.globals.accept_paused_resources, 1u);
  EXPECT_EQ(t.globals.accept_paused_max_connections, 4u);
  EXPECT_EQ(t.globals.accept_paused_workers, 2u);
}

TEST(WorkerStatsTest, RouteAndProcessCountersComeFromOneCollect) {
  WorkerStats a, b;
  a.counters.requests.add();
  a.routes.forMatch(nullptr, pfc::Match{}).request();
  b.counters.requests.add();
  b.routes.forMatch(nullptr, pfc::Match{}).request();

  Totals t = collect({&a, &b});
  EXPECT_EQ(t.globals.requests, 2u);
  ASSERT_EQ(t.routes.size(), 1u);
  EXPECT_EQ(t.routes[0].service, "");
  EXPECT_EQ(t.routes[0].requests, 2u);
}

}  // namespace
}  // namespace mulligan::stats
