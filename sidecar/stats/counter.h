// Counter: the one kind of counter the sidecar keeps (stats/worker_stats.h,
// stats/route_stats.h). Exactly one writer — the worker that owns it — and
// any number of readers (the admin thread).
#pragma once

#include <atomic>
#include <cstdint>

namespace mulligan::stats {

// The writer's increment is a relaxed load + store, not a locked
// read-modify-write: only one thread ever writes. Readers never see a torn
// value; they may see one counter a few increments ahead of another.
class Counter {
 public:
  void add(uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  void sub(uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed); }
  uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

}  // namespace mulligan::stats
