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
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>

#include "proto-free-config/publish.h"
#include "proto-free-config/table_reader.h"

namespace mulligan::policy {

// Policy propagation: from the agent publishing a generation (its stamp in
// the segment, pfc::PublishStamp) — or from the start of the first request
// after the publish, when that came later — to a worker loading it for that
// request, which enforces it. Every request that started in that window got
// the old table; before the first request came, none could (a worker idle
// in epoll_wait, every call in flight upstream, is no delay). One observation
// per worker and generation; published by /stats and /metrics. No
// observation when no request was waiting: a table the idle tick loaded
// first (no request came within its 250 ms), one published before the worker
// started (start-up, not propagation), or one whose publish time the segment
// does not record (an agent older than the stamp).
struct Propagation {
  // Upper bounds in µs; one more bucket counts everything above the last.
  static constexpr int64_t kBoundsUs[] = {50, 100, 250, 500, 1'000, 2'500, 5'000, 10'000, 25'000,
                                          50'000, 100'000, 250'000, 500'000, 1'000'000};
  static constexpr size_t kBuckets = std::size(kBoundsUs) + 1;
  uint64_t buckets[kBuckets] = {};  // per bucket, not cumulative
  uint64_t count = 0;
  int64_t sum_us = 0;
  int64_t last_us = -1;             // the newest observation; -1 = none yet
  uint64_t last_generation = 0;
  int64_t last_published_unix_us = 0;
};

class PolicyStatus {
 public:
  // Called by views (any worker) when they load or refuse a generation.
  // published_unix_us: when the agent published it, if this load is a
  // propagation observation (see Propagation); 0 otherwise.
  // from_unix_us: when the observation starts (the later of the publish and
  // the first request's start; the publish when earlier or 0).
  void recordLoaded(const std::shared_ptr<const pfc::Table>& t, int64_t unix_us, int64_t published_unix_us = 0,
                    int64_t from_unix_us = 0);
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
    Propagation propagation;
  };
  Snapshot snapshot() const;
  bool loaded() const { return loaded_generation_.load(std::memory_order_acquire) != 0; }
  // The newest table any worker loaded (null before the first), kept alive
  // for the admin endpoint's /config, /explain and page. Takes the mutex
  // that only reloads take, never a request.
  std::shared_ptr<const pfc::Table> table() const;
  // The newest table when it is `generation` (loaded by some worker), else
  // null: a worker that sees that generation next takes it from here
  // instead of copying and indexing the segment again.
  std::shared_ptr<const pfc::Table> tableOfGeneration(uint64_t generation) const;

 private:
  std::atomic<uint64_t> loaded_generation_{0};
  std::atomic<uint64_t> reloads_{0};
  std::atomic<uint64_t> refused_{0};
  mutable std::mutex mu_;  // guards the fields below; never taken per request
  int64_t loaded_unix_us_ = 0;
  uint64_t refused_generation_ = 0;
  int64_t refused_unix_ms_ = 0;
  std::string refused_why_;
  Propagation propagation_;
  std::shared_ptr<const pfc::Table> table_;
};

class PolicyView {
 public:
  PolicyView(std::string shm_name, PolicyStatus* status);

  // The table to enforce for a request starting now (monotonic µs), or null
  // when none has been loaded. Holding the returned shared_ptr keeps that
  // snapshot alive for the request, whatever gets published meanwhile.
  const std::shared_ptr<const pfc::Table>& current(int64_t now_us) { return check(now_us, /*for_request=*/true); }

  // The same check for the idle tick and start-up: a newer table is loaded
  // (so /ready and the admin endpoint stay current), but no request waited
  // for it, so it is no propagation observation.
  void refresh(int64_t now_us) { check(now_us, /*for_request=*/false); }

 private:
  const std::shared_ptr<const pfc::Table>& check(int64_t now_us, bool for_request);
  void reload(uint64_t generation, bool for_request, int64_t now_us);

  std::string shm_name_;
  PolicyStatus* status_;
  std::unique_ptr<pfc::Subscriber> subscriber_;
  std::shared_ptr<const pfc::Table> table_;
  uint64_t seen_generation_ = 0;     // last generation loaded or refused
  int64_t next_open_attempt_us_ = 0; // retry opening a missing segment at most 1/s
  int64_t created_unix_us_;          // tables published before this are start-up loads
  bool warned_missing_ = false;
};

}  // namespace mulligan::policy
