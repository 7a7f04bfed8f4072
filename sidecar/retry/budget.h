// RetryBudget: caps retries per service, as Linkerd and Finagle do. Over a
// sliding window, a retry is admitted while, counting it,
//   retries <= retry_ratio * requests + min_retries_per_second * window_seconds
// where `requests` counts original requests (recordRequest) and `retries`
// counts admitted retries (tryAcquireRetry), both over the window.
//
// The window is a ring of kSlices slices of window/kSlices each (Finagle's
// and tower's budgets slice their TTL the same way): the counted span is the
// current slice plus the kSlices-1 before it, so the window slides in steps
// of window/32 (~0.3 s for the default 10 s). Windows of 1 s to 1 h (the
// agent's limits) all use 32 slices.
//
// Threading: ONE budget per service is SHARED BY ALL WORKER THREADS, with no
// lock. Each slice counter is one 64-bit atomic word holding (slice tag,
// count), updated by compare-and-swap, so a slice is reset and counted in one
// step and no increment is ever lost to a reset. tryAcquireRetry admits by
// CAS on the current slice's retry count, re-checking the limit on every CAS
// failure, so within one slice the bound is EXACT however many threads race.
// The documented overshoot: threads whose clocks straddle a slice boundary
// count into different slices and may each admit one retry the other did not
// see — at most (threads - 1) retries beyond the limit, once per boundary.
// Memory order is relaxed throughout: the counters publish nothing else.
//
// The policy is passed on every call (the request's snapshot): a budget
// outlives policy generations. A changed `window` changes the slice width,
// which restarts the count (old slices no longer match); ratio and floor
// changes apply at once.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string_view>

#include "proto-free-config/policy.h"

namespace mulligan::retry {

class RetryBudget {
 public:
  static constexpr int kSlices = 32;

  struct Snapshot {
    uint64_t requests = 0;  // original requests in the window
    uint64_t retries = 0;   // retries admitted in the window
    double allowed = 0;     // retry_ratio * requests + min_retries_per_second * window_s
    uint64_t refused = 0;   // retries refused since this budget was created
    int64_t window_us = 0;
    int64_t slice_us = 0;
  };

  RetryBudget() = default;
  RetryBudget(const RetryBudget&) = delete;
  RetryBudget& operator=(const RetryBudget&) = delete;

  // Counts one original request (not its retries). Call once per request,
  // when its headers arrive.
  void recordRequest(int64_t now_us, const pfc::BudgetPolicy& p);
  // Admits and counts one retry, or refuses it (and counts the refusal).
  bool tryAcquireRetry(int64_t now_us, const pfc::BudgetPolicy& p);
  // For the admin endpoint and tests; no side effects.
  Snapshot snapshot(int64_t now_us, const pfc::BudgetPolicy& p) const;

  // The slice width for a window: ceil(window / kSlices), at least 1 us.
  static int64_t sliceUs(int64_t window_us);

 private:
  // Counter word: high 32 bits = slice index (mod 2^32) it counts, low 32
  // bits = count (saturating). A zero word counts 0 for any slice.
  static void increment(std::atomic<uint64_t>& w, uint32_t tag);
  static uint64_t countIn(const std::atomic<uint64_t>& w, uint32_t tag);

  struct Window;
  Window windowAt(int64_t now_us, const pfc::BudgetPolicy& p) const;

  std::atomic<uint64_t> requests_[kSlices] = {};
  std::atomic<uint64_t> retries_[kSlices] = {};
  std::atomic<uint64_t> refused_{0};
  std::atomic<int64_t> last_window_us_{0};  // 0 = never seen: builtin defaults
};

// One RetryBudget per service name, found without locks, for the process
// (all workers). Slots are claimed by CAS on a 64-bit FNV-1a hash of the
// name (two names colliding would share a budget: ~n^2/2^65, negligible);
// beyond kSlots distinct names, the rest share one overflow budget.
// Budgets are never freed while the registry lives, so references stay valid.
class BudgetRegistry {
 public:
  static constexpr size_t kSlots = 1024;  // power of two
  BudgetRegistry();
  // The budget of `service` ("" for requests that matched no service).
  RetryBudget& get(std::string_view service);

 private:
  struct Slot {
    std::atomic<uint64_t> key{0};  // 0 = free
    RetryBudget budget;
  };
  std::unique_ptr<Slot[]> slots_;
  RetryBudget overflow_;
};

}  // namespace mulligan::retry
