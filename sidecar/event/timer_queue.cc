#include "sidecar/event/timer_queue.h"

namespace mulligan::event {

TimerQueues::~TimerQueues() {
  for (auto& q : queues_) {
    if (q->pending) evtimer_del(&q->ev);
    // Timers outliving their queues (they should not) are left unlinked.
    for (QueuedTimer* t = q->head; t != nullptr; t = t->next_) t->queue_ = nullptr;
  }
}

TimerQueues::Queue* TimerQueues::queueFor(int64_t duration_us) {
  for (auto& q : queues_) {
    if (q->duration_us == duration_us) return q.get();
  }
  if (queues_.size() >= kMaxQueues) return nullptr;
  auto q = std::make_unique<Queue>();
  q->owner = this;
  q->duration_us = duration_us;
  evtimer_assign(&q->ev, base_, &TimerQueues::onFire, q.get());
  queues_.push_back(std::move(q));
  return queues_.back().get();
}

void TimerQueues::arm(Queue* q, int64_t now_us) {
  int64_t us = q->head->due_us_ - now_us;
  if (us < 0) us = 0;
  timeval tv{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
  evtimer_add(&q->ev, &tv);
  q->pending = true;
  q->armed_due_us = q->head->due_us_;
}

void TimerQueues::onFire(evutil_socket_t, short, void* arg) {
  auto* q = static_cast<Queue*>(arg);
  q->pending = false;
  int64_t now = monotonicNowUs();
  // Everything due goes, in order. A callback may arm or cancel timers of
  // this queue; each round looks at the head afresh.
  while (q->head != nullptr && q->head->due_us_ <= now) {
    QueuedTimer* t = q->head;
    t->unlink();
    t->fire();
  }
  if (q->head != nullptr && !q->pending) q->owner->arm(q, now);
}

void QueuedTimer::armUs(int64_t us, bool repeating) {
  cancel();
  TimerQueues::Queue* q = repeating && us > 0 && queues_ != nullptr ? queues_->queueFor(us) : nullptr;
  if (q == nullptr) {
    armPlain(us);
    return;
  }
  int64_t now = monotonicNowUs();
  due_us_ = now + us;
  // Append; timers of one duration armed as time goes by are due in order,
  // so the walk back stops at once (it is there for a clock read taken
  // earlier in the same callback).
  QueuedTimer* after = q->tail;
  while (after != nullptr && after->due_us_ > due_us_) after = after->prev_;
  prev_ = after;
  next_ = after ? after->next_ : q->head;
  (prev_ ? prev_->next_ : q->head) = this;
  (next_ ? next_->prev_ : q->tail) = this;
  queue_ = q;
  // A pending libevent timer stays as it is when it fires no later than this
  // one is due (it was armed for an earlier head, maybe cancelled since: it
  // will find nothing due and re-arm). Only an earlier due time re-arms.
  if (!q->pending || due_us_ < q->armed_due_us) q->owner->arm(q, now);
}

void QueuedTimer::unlink() {
  TimerQueues::Queue* q = queue_;
  (prev_ ? prev_->next_ : q->head) = next_;
  (next_ ? next_->prev_ : q->tail) = prev_;
  prev_ = next_ = nullptr;
  queue_ = nullptr;
}

void QueuedTimer::armPlain(int64_t us) {
  if (us < 0) us = 0;
  timeval tv{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
  if (!assigned_) {
    evtimer_assign(&ev_, base_, &QueuedTimer::onPlain, this);
    assigned_ = true;
  }
  evtimer_add(&ev_, &tv);
  added_ = true;
}

void QueuedTimer::cancelPlain() {
  evtimer_del(&ev_);
  added_ = false;
}

void QueuedTimer::onPlain(evutil_socket_t, short, void* arg) {
  auto* t = static_cast<QueuedTimer*>(arg);
  t->added_ = false;  // a fired (non-persistent) timer is no longer added
  t->fire();
}

}  // namespace mulligan::event
