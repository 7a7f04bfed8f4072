// Clock: where the sidecar asks what time it is. Injected everywhere time
// matters (deadlines, backoff, budgets), so tests run on a FakeClock and never
// sleep.
//
// Two different clocks hide behind one interface, on purpose:
//   - nowUs(): MONOTONIC microseconds, for every duration and deadline. It
//     never jumps with NTP or the admin's `date`; its epoch is arbitrary (boot).
//   - systemNowUnixSeconds(): wall-clock seconds since 1970, only to turn an
//     HTTP-date (Retry-After) into a delay. Never used to measure durations.
//
// Threading: both implementations are safe to call from any thread.
#pragma once

#include <atomic>
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

// A clock that moves only when told to. advance() moves both the monotonic
// and the wall clock, as real time would. Atomic, so a test may read it from
// several threads while one thread advances it.
class FakeClock final : public Clock {
 public:
  // Defaults: an arbitrary non-zero monotonic start (real monotonic clocks
  // are not 0 either) and 2023-11-14T22:13:20Z on the wall clock.
  static constexpr int64_t kDefaultStartUs = 1'000'000'000;
  static constexpr int64_t kDefaultUnixSeconds = 1'700'000'000;

  explicit FakeClock(int64_t start_us = kDefaultStartUs, int64_t unix_seconds = kDefaultUnixSeconds)
      : now_us_(start_us), unix_us_(unix_seconds * 1'000'000) {}

  int64_t nowUs() const override { return now_us_.load(std::memory_order_relaxed); }
  int64_t systemNowUnixSeconds() const override;

  // Moves both clocks forward by `us` (>= 0; a negative step is a test bug
  // for a monotonic clock and is ignored).
  void advance(int64_t us);
  void advanceMs(int64_t ms) { advance(ms * 1000); }
  // Sets the wall clock alone (e.g. to test an HTTP-date in the past).
  void setUnixSeconds(int64_t s) { unix_us_.store(s * 1'000'000, std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> now_us_;
  std::atomic<int64_t> unix_us_;
};

}  // namespace mulligan::core
