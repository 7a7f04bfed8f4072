#include "sidecar/core/random.h"

#include <pthread.h>

#include <atomic>
#include <ctime>

namespace mulligan::core {

uint64_t SplitMix64::nextU64() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

namespace {

uint64_t freshSeed() {
  // Not secret, only distinct: two threads (or two sidecars started in the
  // same nanosecond) differ by the counter and the thread id.
  static std::atomic<uint64_t> counter{0};
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t seed = (uint64_t(ts.tv_sec) * 1'000'000'000ULL + uint64_t(ts.tv_nsec)) ^
                  (uint64_t(pthread_self()) * 0x9E3779B97F4A7C15ULL) ^
                  (counter.fetch_add(1, std::memory_order_relaxed) << 48);
  // One round of mixing so close seeds start far apart.
  return SplitMix64(seed).nextU64();
}

}  // namespace

Random& threadRandom() {
  thread_local SplitMix64 rng(freshSeed());
  return rng;
}

}  // namespace mulligan::core
