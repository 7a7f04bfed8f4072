#include "sidecar/retry/budget.h"

#include <algorithm>

namespace mulligan::retry {
namespace {

constexpr uint64_t kCountMask = 0xFFFF'FFFFull;

uint32_t tagOf(uint64_t w) { return static_cast<uint32_t>(w >> 32); }
uint64_t word(uint32_t tag, uint64_t count) { return (uint64_t{tag} << 32) | count; }

// Floor division: a FakeClock may start anywhere, even below zero.
int64_t floorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0 && (a < 0) != (b < 0)) ? 1 : 0); }

int64_t windowOrDefault(int64_t window_us) {
  return window_us > 0 ? window_us : pfc::builtinDefaults().budget.window_us;
}

}  // namespace

struct RetryBudget::Window {
  int64_t slice = 0;  // absolute index of the current slice
  int64_t slice_us = 0;
  int64_t window_us = 0;
  double floor = 0;  // min_retries_per_second * window_s
};

int64_t RetryBudget::sliceUs(int64_t window_us) {
  window_us = windowOrDefault(window_us);
  return std::max<int64_t>(1, window_us / kSlices + (window_us % kSlices != 0 ? 1 : 0));
}

RetryBudget::Window RetryBudget::windowAt(int64_t now_us, const pfc::BudgetPolicy& p) const {
  Window w;
  w.window_us = windowOrDefault(p.window_us);
  w.slice_us = sliceUs(w.window_us);
  w.slice = floorDiv(now_us, w.slice_us);
  w.floor = static_cast<double>(p.min_retries_per_second) * (static_cast<double>(w.window_us) / 1e6);
  return w;
}

void RetryBudget::increment(std::atomic<uint64_t>& w, uint32_t tag) {
  uint64_t old = w.load(std::memory_order_relaxed);
  uint64_t next;
  do {
    if (tagOf(old) != tag) {
      next = word(tag, 1);  // the slice rolled over: this increment resets it
    } else if ((old & kCountMask) == kCountMask) {
      return;  // saturated (4e9 in one slice): keep the maximum
    } else {
      next = old + 1;
    }
  } while (!w.compare_exchange_weak(old, next, std::memory_order_relaxed));
}

uint64_t RetryBudget::countIn(const std::atomic<uint64_t>& w, uint32_t tag) {
  uint64_t v = w.load(std::memory_order_relaxed);
  return tagOf(v) == tag ? (v & kCountMask) : 0;
}

void RetryBudget::recordRequest(int64_t now_us, const pfc::BudgetPolicy& p) {
  Window w = windowAt(now_us, p);
  last_window_us_.store(w.window_us, std::memory_order_relaxed);
  int64_t i = ((w.slice % kSlices) + kSlices) % kSlices;
  increment(requests_[i], static_cast<uint32_t>(w.slice));
}

bool RetryBudget::tryAcquireRetry(int64_t now_us, const pfc::BudgetPolicy& p) {
  Window w = windowAt(now_us, p);
  last_window_us_.store(w.window_us, std::memory_order_relaxed);
  // Sum the window. Requests only ever raise the limit, so a stale read is
  // conservative; retries of past slices no longer change.
  uint64_t requests = 0, past_retries = 0;
  int64_t cur = ((w.slice % kSlices) + kSlices) % kSlices;
  for (int64_t k = 0; k < kSlices; ++k) {
    int64_t s = w.slice - k;
    int64_t i = ((s % kSlices) + kSlices) % kSlices;
    auto tag = static_cast<uint32_t>(s);
    requests += countIn(requests_[i], tag);
    if (k > 0) past_retries += countIn(retries_[i], tag);
  }
  double allowed = p.retry_ratio * static_cast<double>(requests) + w.floor;
  auto tag = static_cast<uint32_t>(w.slice);
  std::atomic<uint64_t>& slot = retries_[cur];
  uint64_t old = slot.load(std::memory_order_relaxed);
  for (;;) {
    uint64_t current = tagOf(old) == tag ? (old & kCountMask) : 0;
    if (static_cast<double>(past_retries + current + 1) > allowed || current == kCountMask) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    if (slot.compare_exchange_weak(old, word(tag, current + 1), std::memory_order_relaxed)) return true;
  }
}

RetryBudget::Snapshot RetryBudget::snapshot(int64_t now_us, const pfc::BudgetPolicy& p) const {
  Window w = windowAt(now_us, p);
  Snapshot s;
  for (int64_t k = 0; k < kSlices; ++k) {
    int64_t slice = w.slice - k;
    int64_t i = ((slice % kSlices) + kSlices) % kSlices;
    auto tag = static_cast<uint32_t>(slice);
    s.requests += countIn(requests_[i], tag);
    s.retries += countIn(retries_[i], tag);
  }
  s.allowed = p.retry_ratio * static_cast<double>(s.requests) + w.floor;
  s.refused = refused_.load(std::memory_order_relaxed);
  s.window_us = w.window_us;
  s.slice_us = w.slice_us;
  return s;
}

BudgetRegistry::BudgetRegistry() : slots_(new Slot[kSlots]) {}

RetryBudget& BudgetRegistry::get(std::string_view service) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a 64
  for (unsigned char c : service) h = (h ^ c) * 1099511628211ULL;
  if (h == 0) h = 1;  // 0 marks a free slot
  for (size_t i = 0; i < kSlots; ++i) {
    Slot& s = slots_[(h + i) & (kSlots - 1)];
    uint64_t k = s.key.load(std::memory_order_acquire);
    if (k == h) return s.budget;
    if (k == 0) {
      if (s.key.compare_exchange_strong(k, h, std::memory_order_acq_rel)) return s.budget;
      if (k == h) return s.budget;  // another thread claimed it for the same name
    }
  }
  return overflow_;
}

}  // namespace mulligan::retry
