// Random: the one source of randomness the retry engine uses (backoff
// jitter). Injected, so tests script the exact draws with FakeRandom and
// assert exact waits.
//
// Threading: an instance is NOT thread-safe; each worker thread uses its own
// (threadRandom() hands out one per thread). Quality: statistical, not
// cryptographic — jitter needs spread, not secrecy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <vector>

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

// Scripted draws for tests: returns the given values in order, then starts
// over (an empty script returns 0). draws() counts calls, so a test can
// assert that a path drew no randomness at all.
class FakeRandom final : public Random {
 public:
  FakeRandom() = default;
  FakeRandom(std::initializer_list<uint64_t> values) : values_(values) {}

  // The raw draw that maps to `fraction` of a range: floor(fraction * 2^64),
  // clamped to [0, 2^64 - 1]. fraction(0.5) == 2^63.
  static uint64_t fraction(double f);

  void push(uint64_t v) { values_.push_back(v); }
  void pushFraction(double f) { values_.push_back(fraction(f)); }
  uint64_t nextU64() override;
  size_t draws() const { return draws_; }

 private:
  std::vector<uint64_t> values_;
  size_t next_ = 0;
  size_t draws_ = 0;
};

}  // namespace mulligan::core
