// Random: the one source of randomness the retry engine uses (backoff
// jitter). Injected, so tests script the exact draws with a fake
// (tests/fakes/fake_random.h) and assert exact waits.
//
// Threading: an instance is NOT thread-safe; each worker thread uses its own
// (threadRandom() hands out one per thread). Quality: statistical, not
// cryptographic — jitter needs spread, not secrecy.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mulligan::core {

class Random {
 public:
  virtual ~Random() = default;
  // A uniformly distributed 64-bit value.
  virtual uint64_t nextU64() = 0;
  // Uniform in [0, 1): the top 53 bits of nextU64(), so exactly one draw.
  double nextDouble() { return static_cast<double>(nextU64() >> 11) * 0x1.0p-53; }
};

// SplitMix64 (Steele, Lea, Flood 2014): one 64-bit state word, one add and
// three xor-shift-multiplies per draw; passes BigCrush. Plenty for jitter.
class SplitMix64 final : public Random {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t nextU64() override;

 private:
  uint64_t state_;
};

// This thread's generator, seeded on first use from the time, the thread's
// identity and a process-wide counter (distinct per thread and per process).
// Never share the returned reference with another thread.
Random& threadRandom();

}  // namespace mulligan::core
