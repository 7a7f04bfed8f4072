#include "sidecar/net/fd_limits.h"

#include <gtest/gtest.h>

namespace mulligan::net {
namespace {

TEST(FdLimitsTest, UlimitOf256LeavesRoomForUpstreamsAndTheAdmin) {
  // 256 - (32 + 8 + 16) reserved = 200 descriptors, two per connection.
  EXPECT_EQ(reservedDescriptors(256, 1), 56u);
  EXPECT_EQ(defaultMaxConnectionsPerWorker(256, 1), 100u);
  // Every connection and its upstream fit beside the reserve.
  EXPECT_LE(2 * defaultMaxConnectionsPerWorker(256, 1) + reservedDescriptors(256, 1), 256u);
}

TEST(FdLimitsTest, WorkersShareTheBudget) {
  EXPECT_EQ(defaultMaxConnectionsPerWorker(1024, 1), (1024u - 104u) / 2);
  EXPECT_EQ(defaultMaxConnectionsPerWorker(1024, 4), (1024u - 128u) / 2 / 4);
  for (int workers : {1, 2, 3, 8, 64}) {
    for (uint64_t nofile : {256u, 1024u, 4096u, 65536u}) {
      if (reservedDescriptors(nofile, workers) + 2 * workers > nofile) {
        EXPECT_EQ(defaultMaxConnectionsPerWorker(nofile, workers), 1u);  // too many workers for the limit
        continue;
      }
      EXPECT_LE(2 * defaultMaxConnectionsPerWorker(nofile, workers) * workers + reservedDescriptors(nofile, workers),
                nofile)
          << nofile << " " << workers;
    }
  }
}

TEST(FdLimitsTest, TinyLimitStillAcceptsOne) {
  EXPECT_EQ(defaultMaxConnectionsPerWorker(16, 1), 1u);
  EXPECT_EQ(defaultMaxConnectionsPerWorker(0, 1), 1u);
  EXPECT_EQ(defaultMaxConnectionsPerWorker(256, 0), 100u);  // 0 workers read as 1
}

TEST(FdLimitsTest, UnlimitedIsTreatedAsAMillion) {
  uint64_t huge = ~uint64_t{0};
  EXPECT_EQ(defaultMaxConnectionsPerWorker(huge, 1), defaultMaxConnectionsPerWorker(uint64_t{1} << 20, 1));
  EXPECT_GT(defaultMaxConnectionsPerWorker(huge, 1), 400'000u);
}

}  // namespace
}  // namespace mulligan::net
