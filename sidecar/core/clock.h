// Clock: where the sidecar asks what time it is. Injected everywhere time
// matters (deadlines, backoff, budgets), so tests run on a fake clock
// (tests/fakes/fake_clock.h) and never sleep.
//
// Two different clocks hide behind one interface, on purpose:
//   - nowUs(): MONOTONIC microseconds, for every duration and deadline. It
//     never jumps with NTP or the admin's `date`; its epoch is arbitrary (boot).
//   - systemNowUnixSeconds(): wall-clock seconds since 1970, only to turn an
//     HTTP-date (Retry-After) into a delay. Never used to measure durations.
//
// Threading: both implementations are safe to call from any thread.
#pragma once

#include <cstdint>

namespace mulligan::core {

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time in microseconds; never decreases.
  virtual int64_t nowUs() const = 0;
  // Wall-clock Unix time in whole seconds (for HTTP-dates only).
  virtual int64_t systemNowUnixSeconds() const = 0;
};

// The real clocks: CLOCK_MONOTONIC and CLOCK_REALTIME. Stateless.
class MonotonicClock final : public Clock {
 public:
  int64_t nowUs() const override;
  int64_t systemNowUnixSeconds() const override;
};

// A process-wide MonotonicClock, for code that has no clock injected.
const Clock& systemClock();

}  // namespace mulligan::core
