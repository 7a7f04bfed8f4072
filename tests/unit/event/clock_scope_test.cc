// event::ClockScope: one instant for a burst of work, the outermost scope's;
// outside any scope every read is fresh.
#include <gtest/gtest.h>
#include <unistd.h>

#include "sidecar/event/event_loop.h"

namespace mulligan::event {
namespace {

TEST(ClockScopeTest, AScopeHoldsOneInstantAndNestedScopesKeepTheOutermost) {
  int64_t before = monotonicNowUs();
  ::usleep(2000);
  {
    ClockScope outer;
    int64_t t = monotonicNowUs();
    EXPECT_GT(t, before);
    ::usleep(2000);
    EXPECT_EQ(monotonicNowUs(), t);
    {
      ClockScope inner;
      ::usleep(2000);
      EXPECT_EQ(monotonicNowUs(), t);  // the outermost scope's instant holds
    }
    EXPECT_EQ(monotonicNowUs(), t);  // closing the inner scope did not end the outer one
  }
  int64_t after = monotonicNowUs();
  ::usleep(2000);
  EXPECT_GT(monotonicNowUs(), after);  // outside a scope: read each time
  EXPECT_GE(after - before, 6000);
}

}  // namespace
}  // namespace mulligan::event
