// How the sidecar sees the policy table.
//
// PolicyStatus is process-wide and only for reporting (admin endpoint, logs):
// what generation is enforced, what was refused and why.
//
// PolicyView is per worker thread. current() is called once per request: one
// acquire load of the published generation, compared with the one this view
// holds; only when it differs does the view copy, verify and index the new
// table (then every later request is back to one load). A table that cannot
// be trusted is refused: the view keeps the last good one. With no segment or
// nothing published, current() returns null and the caller enforces the
// built-in defaults (fail open).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "proto-free-config/publish.h"
#include "proto-free-config/table_reader.h"

namespace mulligan::policy {

class PolicyStatus {
 public:
  // Called by views (any worker) when they load or refuse a generation.
  void recordLoaded(const std::shared_ptr<const pfc::Table>& t, int64_t unix_us);
  void recordRefused(uint64_t generation, const std::string& why, int64_t unix_ms);

  struct Snapshot {
    uint64_t loaded_generation = 0;  // 0 = none yet
    int64_t loaded_unix_ms = 0;
    // The same instant in µs: when the first request after a publish loaded
    // the table, i.e. when the policy started being enforced (what the
    // propagation benchmark compares with `publish` returning).
    int64_t loaded_unix_us = 0;
    uint64_t reloads = 0;            // successful loads, summed over workers
    uint64_t refused = 0;            // refused tables, summed over workers
    uint64_t refused_generation = 0;
    int64_t refused_unix_ms = 0;
    std::string refused_why;         // "" if nothing was ever refused
  };
  Snapshot snapshot() const;
  bool loaded() const { return loaded_generation_.load(std::memory_order_acquire) != 0; }
  // The newest table any worker loaded (null before the first), kept alive
  // for the admin endpoint's /config, /explain and page. Takes the mutex
  // that only reloads take, never a request.
  std::shared_ptr<const pfc::Table> table() const;

 private:
  std::atomic<uint64_t> loaded_generation_{0};
  std::atomic<uint64_t> reloads_{0};
  std::atomic<uint64_t> refused_{0};
  mutable std::mutex mu_;  // guards the fields below; never taken per request
  int64_t loaded_unix_us_ = 0;
  uint64_t refused_generation_ = 0;
  int64_t refused_unix_ms_ = 0;
  std::string refused_why_;
  std::shared_ptr<const pfc::Table> table_;
};

class PolicyView {
 public:
  PolicyView(std::string shm_name, PolicyStatus* status) : shm_name_(std::move(shm_name)), status_(status) {}

  // The table to enforce for a request starting now (monotonic µs), or null
  // when none has been loaded. Holding the returned shared_ptr keeps that
  // snapshot alive for the request, whatever gets published meanwhile.
  const std::shared_ptr<const pfc::Table>& current(int64_t now_us);

 private:
  void reload(uint64_t generation);

  std::string shm_name_;
  PolicyStatus* status_;
  std::unique_ptr<pfc::Subscriber> subscriber_;
  std::shared_ptr<const pfc::Table> table_;
  uint64_t seen_generation_ = 0;     // last generation loaded or refused
  int64_t next_open_attempt_us_ = 0; // retry opening a missing segment at most 1/s
  bool warned_missing_ = false;
};

}  // namespace mulligan::policy
