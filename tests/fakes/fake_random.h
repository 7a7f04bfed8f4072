// FakeRandom: a core::Random with scripted draws, so a backoff test asserts
// the exact wait for a given random value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "sidecar/core/random.h"

namespace mulligan::core {

// Returns the given values in order, then starts over (an empty script
// returns 0). draws() counts calls, so a test can assert that a path drew no
// randomness at all.
class FakeRandom final : public Random {
 public:
  FakeRandom() = default;
  FakeRandom(std::initializer_list<uint64_t> values) : values_(values) {}

  // The raw draw that maps to `fraction` of a range: floor(fraction * 2^64),
  // clamped to [0, 2^64 - 1]. fraction(0.5) == 2^63.
  static uint64_t fraction(double f) {
    if (!(f > 0)) return 0;  // also NaN
    if (f >= 1) return UINT64_MAX;
    return static_cast<uint64_t>(f * 0x1.0p64);
  }

  void push(uint64_t v) { values_.push_back(v); }
  void pushFraction(double f) { values_.push_back(fraction(f)); }
  uint64_t nextU64() override {
    ++draws_;
    if (values_.empty()) return 0;
    uint64_t v = values_[next_];
    next_ = (next_ + 1) % values_.size();
    return v;
  }
  size_t draws() const { return draws_; }

 private:
  std::vector<uint64_t> values_;
  size_t next_ = 0;
  size_t draws_ = 0;
};

}  // namespace mulligan::core
