// PolicyView over a real segment (pfc::Publisher, shm): what a worker
// enforces after a publish, and that the workers of one process share one
// snapshot of a generation instead of each copying and indexing the segment.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

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

int64_t steadyUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Propagation counts from the publish or from the first request's start,
// whichever came later: a worker with no request for a while after a
// publish (idle in epoll_wait) served nobody the old policy meanwhile. The
// observation is then at most the time the request's own load took, which
// the test brackets with the clock (no bound on how long anything takes).
TEST_F(PolicyViewTest, PropagationDoesNotCountTheWaitForTheFirstRequest) {
  PolicyStatus status;
  PolicyView view(name_, &status);
  publish(3);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // no request meanwhile
  int64_t start = steadyUs();  // the request starts
  ASSERT_TRUE(view.current(start));
  int64_t took = steadyUs() - start;
  auto prop = status.snapshot().propagation;
  ASSERT_EQ(prop.count, 1u);
  EXPECT_LE(prop.last_us, took);  // counted the old way, it was >= 200 ms
  EXPECT_GT(prop.last_published_unix_us, 0);
}

// A request that started before the publish was stamped (its head read, the
// publish landing while it was parsed) counts from the publish.
TEST_F(PolicyViewTest, PropagationOfARequestStartedBeforeThePublishCountsFromThePublish) {
  PolicyStatus status;
  PolicyView view(name_, &status);
  int64_t start = steadyUs() - 5'000'000;  // 5 s ago, before the publish
  auto before = std::chrono::system_clock::now();
  publish(3);
  ASSERT_TRUE(view.current(start));
  auto after = std::chrono::system_clock::now();
  auto prop = status.snapshot().propagation;
  ASSERT_EQ(prop.count, 1u);
  EXPECT_LE(prop.last_us, std::chrono::duration_cast<std::chrono::microseconds>(after - before).count() + 2);  // (µs truncation)
}

}  // namespace
}  // namespace mulligan::policy
