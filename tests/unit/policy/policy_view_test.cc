// PolicyView over a real segment (pfc::Publisher, shm): what a worker
// enforces after a publish, and that the workers of one process share one
// snapshot of a generation instead of each copying and indexing the segment.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "proto-free-config/layout.h"
#include "proto-free-config/publish.h"
#include "proto-free-config/segment.h"
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

  // The segment's header, writable: to hold a slot "being rewritten" or the
  // announced generation back, as a writer caught mid-publish would.
  pfc::SegmentHeader* header() {
    if (!raw_) {
      std::string err;
      raw_ = pfc::Segment::open(name_, pfc::Segment::Mode::kReadWrite, &err);
      EXPECT_TRUE(raw_) << err;
    }
    return reinterpret_cast<pfc::SegmentHeader*>(raw_->data());
  }

  std::string name_;
  std::unique_ptr<pfc::Publisher> publisher_;
  std::unique_ptr<pfc::Segment> raw_;
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

// Issue 18, bench/propagation.py's "missed: 1 publishes without a record": the
// worker's idle tick saw the new generation before any request did and
// loaded it, and the requests after it found it loaded and recorded
// nothing. The first request that enforces it records it, with 0 µs: it
// started after the table was loaded, so nothing was waited for.
TEST_F(PolicyViewTest, ATableTheIdleTickLoadedFirstIsRecordedByTheFirstRequestThatEnforcesIt) {
  PolicyStatus status;
  PolicyView view(name_, &status);
  uint64_t g = publish(3);
  view.refresh(steadyUs());  // the tick
  EXPECT_EQ(status.snapshot().loaded_generation, g);
  EXPECT_EQ(status.snapshot().propagation.count, 0u);  // no request has enforced it yet
  ASSERT_TRUE(view.current(steadyUs()));               // a request
  auto prop = status.snapshot().propagation;
  ASSERT_EQ(prop.count, 1u);
  EXPECT_EQ(prop.last_generation, g);
  EXPECT_EQ(prop.last_us, 0);
  EXPECT_GT(prop.last_published_unix_us, 0);
  // Once per worker and generation: later requests and ticks add nothing.
  view.current(steadyUs());
  view.refresh(steadyUs());
  view.current(steadyUs());
  EXPECT_EQ(status.snapshot().propagation.count, 1u);
  EXPECT_EQ(status.snapshot().reloads, 1u);
}

// A generation replaced before any request enforced it is no observation;
// the one a request enforces is, whoever loaded it.
TEST_F(PolicyViewTest, AGenerationSupersededBeforeAnyRequestSawItIsNotRecorded) {
  PolicyStatus status;
  PolicyView view(name_, &status);
  publish(3);
  view.refresh(steadyUs());
  uint64_t g2 = publish(4);
  view.refresh(steadyUs());
  uint64_t g3 = publish(5);
  ASSERT_EQ(view.current(steadyUs())->generation(), g3);  // the request loads g3 itself
  auto prop = status.snapshot().propagation;
  EXPECT_EQ(prop.count, 1u);
  EXPECT_EQ(prop.last_generation, g3);
  (void)g2;
  // And one the tick loaded after another the request loaded.
  uint64_t g4 = publish(6);
  view.refresh(steadyUs());
  ASSERT_EQ(view.current(steadyUs())->generation(), g4);
  prop = status.snapshot().propagation;
  EXPECT_EQ(prop.count, 2u);
  EXPECT_EQ(prop.last_generation, g4);
  EXPECT_EQ(prop.last_us, 0);
}

// Several workers: each records the generation once, when its own first
// request enforces it — also the worker whose tick took the table another
// worker's request had loaded.
TEST_F(PolicyViewTest, EachWorkerRecordsAGenerationOnceWhenItsFirstRequestEnforcesIt) {
  PolicyStatus status;
  PolicyView a(name_, &status), b(name_, &status);
  uint64_t g = publish(3);
  ASSERT_TRUE(a.current(steadyUs()));
  EXPECT_EQ(status.snapshot().propagation.count, 1u);
  b.refresh(steadyUs());  // takes a's table
  EXPECT_EQ(status.snapshot().propagation.count, 1u);
  ASSERT_TRUE(b.current(steadyUs()));
  auto prop = status.snapshot().propagation;
  EXPECT_EQ(prop.count, 2u);
  EXPECT_EQ(prop.last_generation, g);
  EXPECT_EQ(prop.last_us, 0);
  a.current(steadyUs());
  b.current(steadyUs());
  a.refresh(steadyUs());
  EXPECT_EQ(status.snapshot().propagation.count, 2u);
}

// A request that found the slot being rewritten (kTorn) was served the old
// table although the new one was published: the observation counts from
// its start, whoever loads the table next (a later request or the tick).
TEST_F(PolicyViewTest, ARequestThatFoundTheTableTornIsWaitedForUntilTheTableIsLoaded) {
  for (bool tick_loads : {false, true}) {
    SCOPED_TRACE(tick_loads ? "the tick loads it" : "a later request loads it");
    PolicyStatus status;
    PolicyView view(name_, &status);
    uint64_t g = publish(3);
    auto& seq = header()->slots[header()->active_slot.load()].seq;
    uint64_t even = seq.load();
    seq.store(even | 1);  // a writer mid-copy, as long as we look
    int64_t waited_from = steadyUs();
    EXPECT_FALSE(view.current(waited_from));  // torn: nothing to enforce yet
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(status.snapshot().propagation.count, 0u);
    seq.store(even);
    if (tick_loads) view.refresh(steadyUs());
    ASSERT_TRUE(view.current(steadyUs()));
    auto prop = status.snapshot().propagation;
    ASSERT_EQ(prop.count, 1u);
    EXPECT_EQ(prop.last_generation, g);
    EXPECT_GE(prop.last_us, 50'000);  // at least the sleep
    view.current(steadyUs());
    EXPECT_EQ(status.snapshot().propagation.count, 1u);
  }
}

// The agent stores the active slot before the new generation: a reader
// between the two stores sees the old generation announced and copies the
// new table. That table is recorded once, not again when the announcement
// catches up.
TEST_F(PolicyViewTest, ATableNewerThanTheAnnouncedGenerationIsRecordedOnce) {
  PolicyStatus status;
  PolicyView view(name_, &status);
  publish(3);
  ASSERT_TRUE(view.current(steadyUs()));
  uint64_t g2 = publish(4);
  uint64_t g3 = publish(5);
  header()->generation.store(g2);  // g3's slot is active, its announcement not yet stored
  ASSERT_EQ(view.current(steadyUs())->generation(), g3);
  auto prop = status.snapshot().propagation;
  EXPECT_EQ(prop.count, 2u);
  EXPECT_EQ(prop.last_generation, g3);
  header()->generation.store(g3);  // the announcement lands
  ASSERT_EQ(view.current(steadyUs())->generation(), g3);
  EXPECT_EQ(status.snapshot().propagation.count, 2u);
  EXPECT_EQ(status.snapshot().reloads, 2u);
}

}  // namespace
}  // namespace mulligan::policy
