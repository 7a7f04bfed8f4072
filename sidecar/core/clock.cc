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

}  // namespace mulligan::core
