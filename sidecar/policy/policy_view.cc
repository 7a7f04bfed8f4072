#include "sidecar/policy/policy_view.h"

#include <algorithm>
#include <chrono>

#include "sidecar/core/logging.h"

namespace mulligan::policy {
namespace {

constexpr int64_t kReopenIntervalUs = 1'000'000;

int64_t unixUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The clock requests' now_us comes from (event::monotonicNowUs):
// CLOCK_MONOTONIC, which steady_clock reads too.
int64_t monotonicUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void PolicyStatus::recordLoaded(const std::shared_ptr<const pfc::Table>& t, int64_t unix_us,
                                int64_t published_unix_us, int64_t from_unix_us) {
  reloads_.fetch_add(1, std::memory_order_relaxed);
  if (published_unix_us > 0) {
    // The two clocks are the same CLOCK_REALTIME (one kernel); a step of it
    // between the two readings could make this negative: count it as 0.
    recordPropagation(t->generation(), std::max<int64_t>(0, unix_us - std::max(from_unix_us, published_unix_us)),
                      published_unix_us);
  }
  std::lock_guard<std::mutex> lock(mu_);
  // Several workers load the same generation; report the newest (and the
  // time the first worker loaded it).
  uint64_t current = loaded_generation_.load(std::memory_order_relaxed);
  if (t->generation() > current || !table_) {
    loaded_unix_us_ = unix_us;
    table_ = t;
    loaded_generation_.store(t->generation(), std::memory_order_release);
  }
}

void PolicyStatus::recordPropagation(uint64_t generation, int64_t us, int64_t published_unix_us) {
  size_t k = 0;
  while (k < std::size(Propagation::kBoundsUs) && us > Propagation::kBoundsUs[k]) ++k;
  std::lock_guard<std::mutex> lock(mu_);
  ++propagation_.buckets[k];
  ++propagation_.count;
  propagation_.sum_us += us;
  propagation_.last_us = us;
  propagation_.last_generation = generation;
  propagation_.last_published_unix_us = published_unix_us;
}

std::shared_ptr<const pfc::Table> PolicyStatus::table() const {
  std::lock_guard<std::mutex> lock(mu_);
  return table_;
}

void PolicyStatus::recordRefused(uint64_t generation, const std::string& why, int64_t unix_ms) {
  refused_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(mu_);
  refused_generation_ = generation;
  refused_unix_ms_ = unix_ms;
  refused_why_ = why;
}

PolicyStatus::Snapshot PolicyStatus::snapshot() const {
  Snapshot s;
  s.reloads = reloads_.load(std::memory_order_relaxed);
  s.refused = refused_.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(mu_);
  s.loaded_generation = loaded_generation_.load(std::memory_order_relaxed);
  s.loaded_unix_us = loaded_unix_us_;
  s.loaded_unix_ms = loaded_unix_us_ / 1000;
  s.refused_generation = refused_generation_;
  s.refused_unix_ms = refused_unix_ms_;
  s.refused_why = refused_why_;
  s.propagation = propagation_;
  return s;
}

PolicyView::PolicyView(std::string shm_name, PolicyStatus* status)
    : shm_name_(std::move(shm_name)), status_(status), created_unix_us_(unixUs()) {}

bool PolicyView::openSubscriber(int64_t now_us) {
  if (now_us < next_open_attempt_us_) return false;
  next_open_attempt_us_ = now_us + kReopenIntervalUs;
  std::string error;
  subscriber_ = pfc::Subscriber::open(shm_name_, &error);
  if (subscriber_) return true;
  if (!warned_missing_) {
    LOG_WARN("no policy yet (%s); enforcing built-in defaults until one is published", error.c_str());
    warned_missing_ = true;
    // The first miss is normally at start (the workers' constructors),
    // before the agent, started with us in the pod, has published: the
    // next tick or request tries again at once; later misses wait 1 s.
    next_open_attempt_us_ = 0;
  }
  return false;
}

void PolicyView::refresh(int64_t now_us) {
  if (!subscriber_ && !openSubscriber(now_us)) return;
  uint64_t g = subscriber_->generation();
  if (g != read_generation_ && g != 0) load(g);
}

std::shared_ptr<const pfc::Table> PolicyStatus::tableOfGeneration(uint64_t generation) const {
  if (loaded_generation_.load(std::memory_order_acquire) != generation) return nullptr;  // (no lock)
  std::lock_guard<std::mutex> lock(mu_);
  return table_ && table_->generation() == generation ? table_ : nullptr;
}

void PolicyView::enforce(uint64_t g, int64_t now_us) {
  // The tick may have read g already (then only the observation is left).
  if (g != read_generation_) {
    pfc::Subscriber::Status status = load(g);
    if (status == pfc::Subscriber::Status::kTorn || status == pfc::Subscriber::Status::kNothingYet) {
      // This request gets the old table although g is published: the
      // observation, whoever loads g later, counts from here.
      if (!waiting_) waiting_since_us_ = now_us;
      waiting_ = true;
      return;  // (enforced_generation_ unchanged: the next request tries again)
    }
  }
  enforced_generation_ = g;
  if (waiting_) now_us = std::min(now_us, waiting_since_us_);
  waiting_ = false;
  if (unenforced_published_us_ > 0) {
    // Counted from the publish, or from this request's start when it came
    // later: until a request came, no request could be served the old
    // policy, so a worker idle in epoll_wait (every call in flight
    // upstream, the client not sending) adds no propagation delay. On the
    // monotonic clock, where the request started and the table was loaded
    // (so a table the tick loaded before the request started is exactly
    // 0: nobody waited for it); the publish stamp (wall clock) moved onto
    // it by the two clocks' offset now.
    int64_t published_mono = unenforced_published_us_ - (unixUs() - monotonicUs());
    int64_t us = std::max<int64_t>(0, unenforced_loaded_us_ - std::max(published_mono, now_us));
    status_->recordPropagation(table_->generation(), us, unenforced_published_us_);
  }
  unenforced_published_us_ = 0;
}

pfc::Subscriber::Status PolicyView::load(uint64_t generation) {
  std::shared_ptr<const pfc::Table> fresh;
  std::string why;
  // Another worker may have copied, verified and indexed this generation
  // already: a Table is immutable once built, so its snapshot serves every
  // worker. Only the first worker to see a generation pays for it (on its
  // request path: about 18 ms of CPU for 10,000 services x 5 routes,
  // BM_ReadSnapshot), and the process holds one copy of the table, not one
  // per worker.
  fresh = status_->tableOfGeneration(generation);
  auto status = fresh ? pfc::Subscriber::Status::kOk : subscriber_->read(&fresh, &why);
  switch (status) {
    case pfc::Subscriber::Status::kOk: {
      read_generation_ = generation;
      // The table may be newer than `generation`: the agent stores the
      // active slot before it announces the generation, so a reader between
      // the two copies the new table under the old announcement. Once the
      // announcement catches up, it is the table we have: nothing new.
      if (table_ && fresh->generation() == table_->generation()) break;
      table_ = std::move(fresh);
      // Its publish time, for the first request that enforces it.
      int64_t published_us = subscriber_->publishedUnixNs(table_->generation()) / 1000;
      if (published_us < created_unix_us_) published_us = 0;
      unenforced_published_us_ = published_us;
      unenforced_loaded_us_ = monotonicUs();
      status_->recordLoaded(table_, unixUs());
      LOG_DEBUG("loaded policy generation %llu", static_cast<unsigned long long>(table_->generation()));
      break;
    }
    case pfc::Subscriber::Status::kTorn:
      break;  // the writer is busy; the next request or tick tries again
    case pfc::Subscriber::Status::kNothingYet:
      break;
    case pfc::Subscriber::Status::kBadSegment:
    case pfc::Subscriber::Status::kBadTable:
      // Refuse once per generation, not once per request.
      read_generation_ = generation;
      status_->recordRefused(generation, why, unixUs() / 1000);
      LOG_WARN("refused policy generation %llu: %s (%s); keeping generation %llu",
               static_cast<unsigned long long>(generation), pfc::Subscriber::statusName(status), why.c_str(),
               static_cast<unsigned long long>(table_ ? table_->generation() : 0));
      break;
  }
  return status;
}

}  // namespace mulligan::policy
