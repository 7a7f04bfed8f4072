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
// after the publish, when that came later — to the moment a request could
// enforce it (the worker had loaded it). Every request that started in that
// window got the old table; before the first request came, none could (a
// worker idle in epoll_wait, every call in flight upstream, is no delay).
// Recorded once per worker and generation, by the first request of that
// worker that enforces it; published by /stats and /metrics.
// - Loaded by that request: the time until the load.
// - Loaded earlier by the worker's idle tick (every 250 ms), before any
//   request came: 0 µs, since that request waited for nothing — unless an
//   earlier request had found the table being rewritten (kTorn) and got the
//   old one: then from that request's start to the tick's load.
// - Never enforced by a request (replaced by a newer generation first, or
//   refused): no observation; nor for a table published before the worker
//   started (start-up, not propagation), nor one whose publish time the
//   segment does not record (an agent older than the stamp, or a newer
//   publish rewriting the stamp at the moment the table was loaded).
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
  // published_unix_us > 0 makes this load a propagation observation too:
  // from from_unix_us (or the publish, if later) to unix_us, at least 0.
  void recordLoaded(const std::shared_ptr<const pfc::Table>& t, int64_t unix_us, int64_t published_unix_us = 0,
                    int64_t from_unix_us = 0);
  // One propagation observation (see Propagation): `generation`, published
  // at published_unix_us, waited for `us` (>= 0).
  void recordPropagation(uint64_t generation, int64_t us, int64_t published_unix_us);
  void recordRefused(uint64_t generation, const std::string& why, int64_t unix_ms);

  struct Snapshot {
    uint64_t loaded_generation = 0;  // 0 = none yet
    int64_t loaded_unix_ms = 0;
    // The same instant in µs: when a worker first loaded the table (the
    // first request after the publish, or the idle tick when it came first),
    // i.e. from when the policy could be enforced.
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
  // The cost per request: one acquire load and one compare, unless the
  // generation changed since the last request.
  const std::shared_ptr<const pfc::Table>& current(int64_t now_us) {
    if (!subscriber_ && !openSubscriber(now_us)) return table_;
    uint64_t g = subscriber_->generation();  // one acquire load
    if (g != enforced_generation_ && g != 0) [[unlikely]] enforce(g, now_us);
    return table_;
  }

  // The same check for the idle tick and start-up: a newer table is loaded
  // (so /ready and the admin endpoint stay current). No request is served
  // by it here: the first that is records its propagation (see Propagation).
  void refresh(int64_t now_us);

 private:
  // Opens the segment, at most once a second after the first miss; false
  // while it does not exist.
  bool openSubscriber(int64_t now_us);
  // A request sees generation g for the first time.
  void enforce(uint64_t g, int64_t now_us);
  // Reads (or takes from another worker) the table of generation g;
  // kOk or a refusal leave read_generation_ = g. Returns the read's status.
  pfc::Subscriber::Status load(uint64_t g);

  std::string shm_name_;
  PolicyStatus* status_;
  std::unique_ptr<pfc::Subscriber> subscriber_;
  std::shared_ptr<const pfc::Table> table_;
  // The announced generation a request last dealt with (the fast path's
  // compare) and the one the view last read or refused, by a request or
  // the tick. They differ while the tick has loaded a generation that no
  // request has enforced yet.
  uint64_t enforced_generation_ = 0;
  uint64_t read_generation_ = 0;
  // table_'s propagation observation, while no request has enforced it: its
  // publish time (unix µs; 0 = it gets none) and when it was loaded
  // (monotonic µs, the clock requests start by).
  int64_t unenforced_published_us_ = 0;
  int64_t unenforced_loaded_us_ = 0;
  // The start (monotonic µs) of the first request that saw a generation it
  // could not have (the slot being rewritten), while that lasts.
  bool waiting_ = false;
  int64_t waiting_since_us_ = 0;
  int64_t next_open_attempt_us_ = 0; // retry opening a missing segment at most 1/s
  int64_t created_unix_us_;          // tables published before this are start-up loads
  bool warned_missing_ = false;
};

}  // namespace mulligan::policy
