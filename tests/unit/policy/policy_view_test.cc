// PolicyView over a real segment (pfc::Publisher, shm): what a worker
// enforces after a publish, and that the workers of one process share one
// snapshot of a generation instead of each copying and indexing the segment.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string>

#include "proto-free-config/publish.h"
#include "sidecar/policy/policy_view.h"
#include "tests/unit/pfc/test_tables.h"

namespace mulligan::policy {
namespace {

class PolicyViewTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    name_ = "/mulligan-test-view-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    std::string err;
    publisher_ = pfc::Publisher::open(name_, &err);
    ASSERT_TRUE(publisher_) << err;
  }
  void TearDown() override { ::shm_unlink(name_.c_str()); }
  uint64_t publish(int services) {
    std::string err;
    uint64_t g = publisher_->publish(pfc::testing::makeModel(services, 2), &err);
    EXPECT_NE(g, 0u) << err;
    return g;
  }

  std::string name_;
  std::unique_ptr<pfc::Publisher> publisher_;
};

TEST_F(PolicyViewTest, WorkersShareOneSnapshotOfAGeneration) {
  PolicyStatus status;
  PolicyView a(name_, &status), b(name_, &status);
  uint64_t g1 = publish(3);
  auto t1 = a.current(1);
  ASSERT_TRUE(t1);
  EXPECT_EQ(t1->generation(), g1);
  // The second worker takes the first one's table: the same object.
  auto t1b = b.current(1);
  ASSERT_TRUE(t1b);
  EXPECT_EQ(t1b.get(), t1.get());
  // A newer generation: whoever sees it first loads it, the other shares it.
  uint64_t g2 = publish(4);
  auto t2b = b.current(2);
  ASSERT_TRUE(t2b);
  EXPECT_EQ(t2b->generation(), g2);
  EXPECT_NE(t2b.get(), t1.get());
  auto t2 = a.current(2);
  EXPECT_EQ(t2.get(), t2b.get());
  EXPECT_EQ(status.snapshot().loaded_generation, g2);
  EXPECT_EQ(status.snapshot().reloads, 4u);  // each worker still counts its own load
}

TEST_F(PolicyViewTest, AViewBehindTheNewestStillLoadsTheGenerationItSees) {
  PolicyStatus status;
  PolicyView a(name_, &status), b(name_, &status);
  publish(3);
  auto t1 = a.current(1);
  ASSERT_TRUE(t1);
  // Published again before b looked: b reads the segment (generation 2),
  // and a, next, takes b's.
  uint64_t g2 = publish(5);
  auto t2b = b.current(2);
  ASSERT_TRUE(t2b);
  EXPECT_EQ(t2b->generation(), g2);
  EXPECT_EQ(t2b->services().size(), 5u);
  EXPECT_EQ(a.current(3).get(), t2b.get());
}

}  // namespace
}  // namespace mulligan::policy
