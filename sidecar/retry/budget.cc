#include "sidecar/retry/budget.h"

#include <algorithm>

namespace mulligan::retry {

RetryBudget::Bucket& RetryBudget::current(int64_t now_us) {
  int64_t sec = now_us / 1000000;
  Bucket& b = buckets_[sec % kBuckets];
  int64_t seen = b.second.load(std::memory_order_acquire);
  if (seen != sec) {
    // First touch this second: the winner of the CAS resets the counts (a
    // racing increment may land just before the reset and be lost: one
    // request's worth of error per second, harmless for a budget).
    if (b.second.compare_exchange_strong(seen, sec, std::memory_order_acq_rel)) {
      b.requests.store(0, std::memory_order_relaxed);
      b.retries.store(0, std::memory_order_relaxed);
    }
  }
  return b;
}

void RetryBudget::recordRequest(int64_t now_us) {
  current(now_us).requests.fetch_add(1, std::memory_order_relaxed);
}

void RetryBudget::sum(int64_t now_us, int64_t window_s, uint64_t* requests, uint64_t* retries) const {
  int64_t sec = now_us / 1000000;
  window_s = std::clamp<int64_t>(window_s, 1, kBuckets);
  *requests = *retries = 0;
  for (int64_t s = sec - window_s + 1; s <= sec; ++s) {
    const Bucket& b = buckets_[((s % kBuckets) + kBuckets) % kBuckets];
    if (b.second.load(std::memory_order_acquire) != s) continue;
    *requests += b.requests.load(std::memory_order_relaxed);
    *retries += b.retries.load(std::memory_order_relaxed);
  }
}

bool RetryBudget::tryAcquireRetry(int64_t now_us, const pfc::BudgetPolicy& p) {
  uint64_t requests, retries;
  int64_t window_s = std::max<int64_t>(1, p.window_us / 1000000);
  sum(now_us, window_s, &requests, &retries);
  double allowed = p.retry_ratio * static_cast<double>(requests) +
                   static_cast<double>(p.min_retries_per_second) * static_cast<double>(window_s);
  if (static_cast<double>(retries) + 1 > allowed) return false;
  current(now_us).retries.fetch_add(1, std::memory_order_relaxed);
  return true;
}

RetryBudget::Snapshot RetryBudget::snapshot(int64_t now_us, const pfc::BudgetPolicy& p) const {
  Snapshot s{};
  int64_t window_s = std::max<int64_t>(1, p.window_us / 1000000);
  sum(now_us, window_s, &s.requests, &s.retries);
  s.allowed = p.retry_ratio * static_cast<double>(s.requests) +
              static_cast<double>(p.min_retries_per_second) * static_cast<double>(window_s);
  return s;
}

BudgetRegistry::BudgetRegistry() : slots_(new Slot[kSlots]) {}

RetryBudget& BudgetRegistry::get(std::string_view service) {
  // FNV-1a; 0 is reserved for "empty slot".
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : service) h = (h ^ c) * 1099511628211ULL;
  if (h == 0) h = 1;
  for (size_t i = 0; i < kSlots; ++i) {
    Slot& s = slots_[(h + i) & (kSlots - 1)];
    uint64_t k = s.key.load(std::memory_order_acquire);
    if (k == h) return s.budget;
    if (k == 0) {
      if (s.key.compare_exchange_strong(k, h, std::memory_order_acq_rel) || k == h) return s.budget;
    }
  }
  return overflow_;
}

}  // namespace mulligan::retry
