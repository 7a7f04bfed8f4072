#include "sidecar/core/clock.h"

#include <ctime>

namespace mulligan::core {

int64_t MonotonicClock::nowUs() const {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000 + ts.tv_nsec / 1000;
}

int64_t MonotonicClock::systemNowUnixSeconds() const {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec};
}

const Clock& systemClock() {
  static const MonotonicClock clock;
  return clock;
}

int64_t FakeClock::systemNowUnixSeconds() const {
  // Floor division: a wall clock set before 1970 still counts whole seconds.
  int64_t us = unix_us_.load(std::memory_order_relaxed);
  int64_t s = us / 1'000'000;
  return (us % 1'000'000 < 0) ? s - 1 : s;
}

void FakeClock::advance(int64_t us) {
  if (us <= 0) return;
  now_us_.fetch_add(us, std::memory_order_relaxed);
  unix_us_.fetch_add(us, std::memory_order_relaxed);
}

}  // namespace mulligan::core
