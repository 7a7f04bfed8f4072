// RetryBudget: caps retries per service, as Linkerd and Finagle do. Over a
// sliding window (one-second buckets), a retry is allowed while
//   retries <= retry_ratio * requests + min_retries_per_second * window_seconds.
// Shared by every worker thread: plain atomics, no lock. Two workers may both
// pass the check at the same instant, so the bound can be exceeded by at most
// (workers - 1) retries at any moment — documented, and far below the cost of
// a lock on the request path.
//
// BudgetRegistry: one budget per service name, found without locks.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string_view>

#include "proto-free-config/policy.h"

namespace mulligan::retry {

class RetryBudget {
 public:
  static constexpr int kBuckets = 64;  // windows up to 64 s at one-second resolution

  void recordRequest(int64_t now_us);
  // Counts the retry and returns true when the budget allows it.
  bool tryAcquireRetry(int64_t now_us, const pfc::BudgetPolicy& p);

  struct Snapshot {
    uint64_t requests;
    uint64_t retries;
    double allowed;
  };
  Snapshot snapshot(int64_t now_us, const pfc::BudgetPolicy& p) const;

 private:
  struct Bucket {
    std::atomic<int64_t> second{-1};  // which absolute second it counts
    std::atomic<uint64_t> requests{0};
    std::atomic<uint64_t> retries{0};
  };
  Bucket& current(int64_t now_us);
  void sum(int64_t now_us, int64_t window_s, uint64_t* requests, uint64_t* retries) const;

  Bucket buckets_[kBuckets];
};

class BudgetRegistry {
 public:
  static constexpr size_t kSlots = 4096;
  BudgetRegistry();
  // The budget of `service` ("" for requests that matched no service).
  // Lock-free: slots are claimed with a CAS on the name's hash; beyond
  // kSlots distinct services, the rest share one overflow budget.
  RetryBudget& get(std::string_view service);

 private:
  struct Slot {
    std::atomic<uint64_t> key{0};
    RetryBudget budget;
  };
  std::unique_ptr<Slot[]> slots_;
  RetryBudget overflow_;
};

}  // namespace mulligan::retry
