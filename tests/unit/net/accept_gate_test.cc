#include "sidecar/net/accept_gate.h"

#include <gtest/gtest.h>

namespace mulligan::net {
namespace {

TEST(AcceptGateTest, BackoffDoublesFromTenMillisecondsUpToOneSecond) {
  EXPECT_EQ(AcceptGate::backoffUs(0), 10'000);
  EXPECT_EQ(AcceptGate::backoffUs(1), 20'000);
  EXPECT_EQ(AcceptGate::backoffUs(2), 40'000);
  EXPECT_EQ(AcceptGate::backoffUs(6), 640'000);
  EXPECT_EQ(AcceptGate::backoffUs(7), 1'000'000);
  EXPECT_EQ(AcceptGate::backoffUs(1000), 1'000'000);
}

TEST(AcceptGateTest, BoundEpisodeIsReportedOnceWhileLoadHoversAtTheBound) {
  event_base* base = event_base_new();
  int begun = 0, ended = 0;
  {
    AcceptGate gate(base, "test", false, [&](AcceptGate::Reason r, bool paused) {
      ASSERT_EQ(r, AcceptGate::Reason::kBound);
      (paused ? begun : ended)++;
    });
    gate.setOpen(7, 8);
    EXPECT_TRUE(gate.accepting());
    gate.setOpen(8, 8);
    EXPECT_FALSE(gate.accepting());
    for (int i = 0; i < 5; ++i) {  // one leaves, one more is taken
      gate.setOpen(7, 8);
      EXPECT_TRUE(gate.accepting());
      gate.setOpen(8, 8);
      EXPECT_FALSE(gate.accepting());
    }
    EXPECT_EQ(begun, 1);
    EXPECT_EQ(ended, 0);
    gate.setOpen(6, 8);  // a quarter below: the episode ends
    EXPECT_EQ(ended, 1);
    gate.setOpen(100, 0);  // no bound
    EXPECT_TRUE(gate.accepting());
    EXPECT_EQ(begun, 1);
  }
  event_base_free(base);
}

}  // namespace
}  // namespace mulligan::net
