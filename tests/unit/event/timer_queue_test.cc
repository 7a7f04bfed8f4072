// TimerQueues: timers of one duration fire in order, never early, never
// after a cancel; odd durations and full queues fall back to plain timers.
#include "sidecar/event/timer_queue.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace mulligan::event {
namespace {

// A loop and its queues; the queues go first (their events live on the base).
struct Loop {
  event_base* base = event_base_new();
  std::unique_ptr<TimerQueues> owned = std::make_unique<TimerQueues>(base);
  TimerQueues& queues = *owned;
  ~Loop() {
    owned.reset();
    event_base_free(base);
  }
  void run() { event_base_dispatch(base); }
};

TEST(TimerQueueTest, OneDurationFiresInOrderAndNeverEarly) {
  Loop loop;
  constexpr int64_t kUs = 20'000;
  std::vector<int> fired;
  std::vector<int64_t> armed_at(5), fired_at(5);
  std::vector<std::unique_ptr<QueuedTimer>> timers;
  for (int i = 0; i < 5; ++i) {
    timers.push_back(std::make_unique<QueuedTimer>(&loop.queues, loop.base, [&, i] {
      fired.push_back(i);
      fired_at[i] = monotonicNowUs();
    }));
  }
  for (int i = 0; i < 5; ++i) {
    armed_at[i] = monotonicNowUs();
    timers[i]->armUs(kUs);
    EXPECT_TRUE(timers[i]->armed());
  }
  EXPECT_EQ(loop.queues.queueCount(), 1u);
  loop.run();
  EXPECT_EQ(fired, (std::vector<int>{0, 1, 2, 3, 4}));
  for (int i = 0; i < 5; ++i) {
    EXPECT_GE(fired_at[i] - armed_at[i], kUs) << i;
    EXPECT_FALSE(timers[i]->armed());
  }
}

TEST(TimerQueueTest, CancelledAndDestroyedTimersNeverFireAndTheNextStillDoes) {
  Loop loop;
  int a = 0, b = 0, c = 0;
  QueuedTimer ta(&loop.queues, loop.base, [&] { ++a; });
  auto tb = std::make_unique<QueuedTimer>(&loop.queues, loop.base, [&] { ++b; });
  QueuedTimer tc(&loop.queues, loop.base, [&] { ++c; });
  ta.armUs(30'000);
  tb->armUs(30'000);
  tc.armUs(30'000);
  ta.cancel();   // the head: the queue's libevent timer stays armed for it
  tb.reset();    // the middle: unlinked by its destructor
  EXPECT_FALSE(ta.armed());
  int64_t start = monotonicNowUs();
  loop.run();
  EXPECT_EQ(a, 0);
  EXPECT_EQ(b, 0);
  EXPECT_EQ(c, 1);
  EXPECT_GE(monotonicNowUs() - start, 30'000);
}

TEST(TimerQueueTest, ReArmedAfterTheHeadWasCancelledFiresAtItsOwnTime) {
  Loop loop;
  int fired = 0;
  int64_t armed_at = 0, fired_at = 0;
  QueuedTimer first(&loop.queues, loop.base, [] { FAIL() << "cancelled timer fired"; });
  QueuedTimer second(&loop.queues, loop.base, [&] {
    ++fired;
    fired_at = monotonicNowUs();
  });
  first.armUs(20'000);
  first.cancel();
  // A one-shot helper arms `second` 10 ms later: the queue's pending libevent
  // timer (for the cancelled head) fires first, finds nothing due, re-arms.
  Timer later(loop.base, [&] {
    armed_at = monotonicNowUs();
    second.armUs(20'000);
  });
  later.armUs(10'000);
  loop.run();
  EXPECT_EQ(fired, 1);
  EXPECT_GE(fired_at - armed_at, 20'000);
}

TEST(TimerQueueTest, ACallbackMayReArmItsOwnTimer) {
  Loop loop;
  int fired = 0;
  std::unique_ptr<QueuedTimer> t;
  t = std::make_unique<QueuedTimer>(&loop.queues, loop.base, [&] {
    if (++fired < 3) t->armUs(5'000);
  });
  t->armUs(5'000);
  loop.run();
  EXPECT_EQ(fired, 3);
}

TEST(TimerQueueTest, APlainFunctionCallbackFiresWithItsArgumentQueuedOrPlain) {
  Loop loop;
  int fired[3] = {};
  auto bump = [](void* p) { ++*static_cast<int*>(p); };
  QueuedTimer queued(&loop.queues, loop.base, bump, &fired[0]);
  QueuedTimer plain(&loop.queues, loop.base, bump, &fired[1]);
  QueuedTimer no_queues(nullptr, loop.base, bump, &fired[2]);
  queued.armUs(2'000);
  plain.armUs(2'000, /*repeating=*/false);
  no_queues.armUs(2'000);  // no queues: a plain timer whatever it asks
  EXPECT_EQ(loop.queues.queueCount(), 1u);
  loop.run();
  EXPECT_EQ(fired[0], 1);
  EXPECT_EQ(fired[1], 1);
  EXPECT_EQ(fired[2], 1);
  queued.fire();  // what a test's fake clock does
  EXPECT_EQ(fired[0], 2);
}

TEST(TimerQueueTest, OneOffDurationsZeroAndFullQueuesUsePlainTimers) {
  Loop loop;
  int fired = 0;
  std::vector<std::unique_ptr<QueuedTimer>> timers;
  auto add = [&] {
    timers.push_back(std::make_unique<QueuedTimer>(&loop.queues, loop.base, [&] { ++fired; }));
    return timers.back().get();
  };
  add()->armUs(7'000, /*repeating=*/false);
  add()->armUs(0);
  add()->armUs(-5);
  EXPECT_EQ(loop.queues.queueCount(), 0u);
  for (size_t i = 0; i < TimerQueues::kMaxQueues + 3; ++i) add()->armUs(1'000 + static_cast<int64_t>(i));
  EXPECT_EQ(loop.queues.queueCount(), TimerQueues::kMaxQueues);
  for (auto& t : timers) EXPECT_TRUE(t->armed());
  loop.run();
  EXPECT_EQ(fired, static_cast<int>(timers.size()));
}

}  // namespace
}  // namespace mulligan::event
