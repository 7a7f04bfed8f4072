#include "sidecar/event/event_loop.h"

#include <sys/time.h>

#include <ctime>

namespace mulligan::event {

Timer::Timer(event_base* base, std::function<void()> cb) : base_(base), cb_(std::move(cb)) {}

Timer::~Timer() { cancel(); }

void Timer::armUs(int64_t us) {
  if (us < 0) us = 0;
  timeval tv{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
  if (!assigned_) {
    // Assigned on first use: most of a request's timers (backoff, an
    // attempt's per-try and read timers) are never armed at all.
    evtimer_assign(&ev_, base_, &Timer::trampoline, this);
    assigned_ = true;
  }
  evtimer_add(&ev_, &tv);
  added_ = true;
}

void Timer::cancel() {
  // Most cancels find the timer idle (each state transition cancels, and
  // every timer is cancelled again on destruction): skip libevent's
  // event_del, its lock and its lookups then.
  if (!added_) return;
  evtimer_del(&ev_);
  added_ = false;
}

void Timer::trampoline(evutil_socket_t, short, void* arg) {
  auto* t = static_cast<Timer*>(arg);
  t->added_ = false;  // a fired (non-persistent) timer is no longer added
  t->cb_();
}

ExpiryTimer::ExpiryTimer(event_base* base, std::function<void()> cb)
    : timer_(base, [this] { onTimer(); }), cb_(std::move(cb)) {}

void ExpiryTimer::armFor(int64_t due_us) {
  timer_.armUs(due_us - monotonicNowUs());
  armed_for_us_ = due_us;
}

void ExpiryTimer::onTimer() {
  // Moved later since the timer was armed: wait for the rest.
  if (monotonicNowUs() + kSlackUs < due_us_) {
    armFor(due_us_);
    return;
  }
  cb_();  // may destroy this object: nothing after
}

DeferredDeleter::DeferredDeleter(event_base* base) : ev_(event_new(base, -1, 0, &DeferredDeleter::run, this)) {}

DeferredDeleter::~DeferredDeleter() { pending_.clear(); }

void DeferredDeleter::defer(std::unique_ptr<Deletable> obj) {
  // One activation per batch: the event is already active while pending_
  // holds something (run() swaps it out whole), and an HTTP/2 burst defers
  // many streams in one loop iteration.
  if (pending_.empty()) event_active(ev_.get(), 0, 0);
  pending_.push_back(std::move(obj));
}

void DeferredDeleter::run(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<DeferredDeleter*>(arg);
  // Destructors may defer more objects; those wait for the next round. The
  // two vectors swap roles, keeping their capacity: no allocation per round.
  self->batch_.swap(self->pending_);
  self->batch_.clear();
}

namespace {
int64_t readMonotonicUs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}
// The open scope's instant; 0 = no scope open on this thread.
thread_local int64_t t_scope_now_us = 0;
}  // namespace

int64_t monotonicNowUs() { return t_scope_now_us != 0 ? t_scope_now_us : readMonotonicUs(); }

ClockScope::ClockScope() : outermost_(t_scope_now_us == 0) {
  if (outermost_) t_scope_now_us = readMonotonicUs();
}

ClockScope::~ClockScope() {
  if (outermost_) t_scope_now_us = 0;
}

}  // namespace mulligan::event
