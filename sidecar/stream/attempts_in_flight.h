// AttemptsInFlight: the attempts of one call that are in flight: one, or
// several when hedging (a later attempt starts while an earlier one still
// waits, and the first response head that is not a retry_on condition wins:
// the others are cancelled). Each is kept with its number (N of
// x-envoy-attempt-count) and whether it was a hedge, for the access log's
// winner and the hedge-win counter.
// Fixed capacity, embedded in ProxyStream: no allocation per call.
//
// Taking an attempt out hands back its ownership: the caller cancels it if
// needed and defers its deletion (it may be inside its own callback).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "proto-free-config/policy.h"
#include "sidecar/upstream/attempt.h"

namespace mulligan::proxy {

class AttemptsInFlight {
 public:
  // hedge.max_attempts is at most this (the agent refuses more).
  static constexpr size_t kMax = pfc::kMaxHedgeAttempts;

  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  bool full() const { return size_ == kMax; }

  // Adds an attempt (not full()); returns it.
  Attempt& add(std::unique_ptr<Attempt> a, uint32_t number = 0, bool hedge = false) {
    numbers_[size_] = number;
    hedge_[size_] = hedge;
    slots_[size_] = std::move(a);
    return *slots_[size_++];
  }
  // The number and hedge flag given to add(); 0 / false if not here.
  uint32_t numberOf(const Attempt* a) const {
    for (size_t i = 0; i < size_; ++i) {
      if (slots_[i].get() == a) return numbers_[i];
    }
    return 0;
  }
  bool isHedge(const Attempt* a) const {
    for (size_t i = 0; i < size_; ++i) {
      if (slots_[i].get() == a) return hedge_[i];
    }
    return false;
  }
  Attempt* at(size_t i) const { return slots_[i].get(); }
  // The newest attempt (the one a streamed request body goes to); null when none.
  Attempt* newest() const { return size_ ? slots_[size_ - 1].get() : nullptr; }
  // Takes `a` out, keeping the others in start order; null if not here.
  std::unique_ptr<Attempt> take(const Attempt* a) {
    for (size_t i = 0; i < size_; ++i) {
      if (slots_[i].get() != a) continue;
      std::unique_ptr<Attempt> out = std::move(slots_[i]);
      for (size_t j = i + 1; j < size_; ++j) {
        slots_[j - 1] = std::move(slots_[j]);
        numbers_[j - 1] = numbers_[j];
        hedge_[j - 1] = hedge_[j];
      }
      --size_;
      return out;
    }
    return nullptr;
  }
  // Every attempt in flight, oldest first.
  template <typename F>
  void forEach(F&& f) const {
    for (size_t i = 0; i < size_; ++i) f(*slots_[i]);
  }
  // Destroys them all now (the call itself is being destroyed).
  void clear() {
    while (size_ > 0) slots_[--size_].reset();
  }

 private:
  std::unique_ptr<Attempt> slots_[kMax];
  uint32_t numbers_[kMax] = {};
  bool hedge_[kMax] = {};
  size_t size_ = 0;
};

}  // namespace mulligan::proxy
