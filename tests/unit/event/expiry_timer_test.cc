// ExpiryTimer: fires once at its last due instant (within its 1 ms slack);
// moving the instant later or earlier both hold; cancel holds.
#include <gtest/gtest.h>

#include <functional>

#include "sidecar/event/event_loop.h"

namespace mulligan::event {
namespace {

constexpr int64_t kSlackUs = 1000;  // ExpiryTimer may fire this much early

struct Loop {
  event_base* base = event_base_new();
  ~Loop() { event_base_free(base); }
  void run() { event_base_dispatch(base); }
};

TEST(ExpiryTimerTest, FiresOnceAtItsDueInstant) {
  Loop loop;
  int fired = 0;
  int64_t fired_at = 0;
  ExpiryTimer t(loop.base, [&] {
    ++fired;
    fired_at = monotonicNowUs();
  });
  int64_t due = monotonicNowUs() + 20'000;
  t.setDue(due);
  EXPECT_TRUE(t.armed());
  loop.run();
  EXPECT_EQ(fired, 1);
  EXPECT_GE(fired_at, due - kSlackUs);
  EXPECT_FALSE(t.armed());
}

// Pushed later from inside the loop (as every read pushes an idle timeout):
// the timer armed for the first instant fires, finds the later one, and
// waits for it; the callback runs once, at the last instant only.
TEST(ExpiryTimerTest, MovedLaterFiresOnlyAtTheLastInstant) {
  Loop loop;
  int fired = 0;
  int64_t fired_at = 0;
  ExpiryTimer t(loop.base, [&] {
    ++fired;
    fired_at = monotonicNowUs();
  });
  int64_t last_due = 0;
  int pushes = 0;
  std::function<void()> push;
  Timer pusher(loop.base, [&] { push(); });
  push = [&] {
    last_due = monotonicNowUs() + 30'000;
    t.setDue(last_due);
    if (++pushes < 4) pusher.armUs(10'000);  // before it falls due
  };
  push();
  loop.run();
  EXPECT_EQ(pushes, 4);
  EXPECT_EQ(fired, 1);
  EXPECT_GE(fired_at, last_due - kSlackUs);
}

TEST(ExpiryTimerTest, MovedEarlierFiresAtTheEarlierInstant) {
  Loop loop;
  int64_t fired_at = 0;
  ExpiryTimer t(loop.base, [&] { fired_at = monotonicNowUs(); });
  int64_t start = monotonicNowUs();
  t.setDue(start + 10'000'000);  // 10 s
  t.setDue(start + 20'000);
  loop.run();
  ASSERT_NE(fired_at, 0);
  EXPECT_GE(fired_at, start + 20'000 - kSlackUs);
  EXPECT_LT(fired_at, start + 5'000'000);  // not the 10 s it first had
}

TEST(ExpiryTimerTest, CancelledNeverFiresAndCanBeSetAgain) {
  Loop loop;
  int fired = 0;
  ExpiryTimer t(loop.base, [&] { ++fired; });
  t.setDue(monotonicNowUs() + 10'000);
  t.cancel();
  EXPECT_FALSE(t.armed());
  loop.run();  // nothing pending: returns at once
  EXPECT_EQ(fired, 0);
  t.setDue(monotonicNowUs() + 10'000);
  loop.run();
  EXPECT_EQ(fired, 1);
}

}  // namespace
}  // namespace mulligan::event
