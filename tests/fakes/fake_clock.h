// FakeClock: a core::Clock that moves only when a test tells it to, so tests
// of deadlines, backoff and budgets never sleep.
#pragma once

#include <atomic>
#include <cstdint>

#include "sidecar/core/clock.h"

namespace mulligan::core {

// advance() moves both the monotonic and the wall clock, as real time would.
// Atomic, so a test may read it from several threads while one thread
// advances it.
class FakeClock final : public Clock {
 public:
  // Defaults: an arbitrary non-zero monotonic start (real monotonic clocks
  // are not 0 either) and 2023-11-14T22:13:20Z on the wall clock.
  static constexpr int64_t kDefaultStartUs = 1'000'000'000;
  static constexpr int64_t kDefaultUnixSeconds = 1'700'000'000;

  explicit FakeClock(int64_t start_us = kDefaultStartUs, int64_t unix_seconds = kDefaultUnixSeconds)
      : now_us_(start_us), unix_us_(unix_seconds * 1'000'000) {}

  int64_t nowUs() const override { return now_us_.load(std::memory_order_relaxed); }
  int64_t systemNowUnixSeconds() const override {
    // Floor division: a wall clock set before 1970 still counts whole seconds.
    int64_t us = unix_us_.load(std::memory_order_relaxed);
    int64_t s = us / 1'000'000;
    return (us % 1'000'000 < 0) ? s - 1 : s;
  }

  // Moves both clocks forward by `us` (>= 0; a negative step is a test bug
  // for a monotonic clock and is ignored).
  void advance(int64_t us) {
    if (us <= 0) return;
    now_us_.fetch_add(us, std::memory_order_relaxed);
    unix_us_.fetch_add(us, std::memory_order_relaxed);
  }
  void advanceMs(int64_t ms) { advance(ms * 1000); }
  // Sets the wall clock alone (e.g. to test an HTTP-date in the past).
  void setUnixSeconds(int64_t s) { unix_us_.store(s * 1'000'000, std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> now_us_;
  std::atomic<int64_t> unix_us_;
};

}  // namespace mulligan::core
