// TimerQueues: timers that many requests arm with one duration (a policy's
// request_timeout), armed and cancelled in O(1) without touching libevent.
//
// Every proxied call arms its deadline timer when it starts and cancels it
// when the answer comes, almost always long before it fires. With a plain
// libevent timer that is an event_add (a min-heap insert) and an event_del
// per call, about 3% of a keep-alive request's instructions. But timers of
// ONE duration, armed as time goes by, fall due in the order they were armed:
// a FIFO list keeps them sorted by construction. So each duration gets a
// list (the queue) and ONE libevent timer, armed for the list's head; arming
// appends, cancelling unlinks, and the libevent timer is left alone. It may
// fire for a head cancelled meanwhile: it then fires what is due (nothing)
// and re-arms for the new head — once per duration per expiry, not per call.
// (libevent's "common timeouts" are the same idea, behind event_add's cost.)
//
// A QueuedTimer arms through its worker's TimerQueues when its duration has
// a queue (or there is room for a new one: kMaxQueues durations per worker),
// and as a plain libevent timer otherwise. Only durations that repeat (policy
// timeouts) should take a queue; a one-off duration (a deadline propagated
// from the caller's own header) is armed with repeating = false.
//
// Threading: one TimerQueues per worker thread, like the event_base.
#pragma once

#include <event2/event.h>
#include <event2/event_struct.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "sidecar/event/event_loop.h"

namespace mulligan::event {

class QueuedTimer;

class TimerQueues {
 public:
  static constexpr size_t kMaxQueues = 32;

  explicit TimerQueues(event_base* base) : base_(base) {}
  ~TimerQueues();
  TimerQueues(const TimerQueues&) = delete;
  TimerQueues& operator=(const TimerQueues&) = delete;

  size_t queueCount() const { return queues_.size(); }

 private:
  friend class QueuedTimer;
  struct Queue {
    TimerQueues* owner = nullptr;
    int64_t duration_us = 0;
    QueuedTimer* head = nullptr;
    QueuedTimer* tail = nullptr;
    ::event ev;
    bool pending = false;  // ev is added
    int64_t armed_due_us = 0;  // ...for this instant
  };
  // The queue for `duration_us`, made if there is room; null otherwise.
  Queue* queueFor(int64_t duration_us);
  static void onFire(evutil_socket_t, short, void* arg);
  void arm(Queue* q, int64_t now_us);

  event_base* base_;
  std::vector<std::unique_ptr<Queue>> queues_;  // few: a linear search
};

class QueuedTimer {
 public:
  // `queues` may be null (or set later, setQueues): plain timers only.
  // The callback is `fn(arg)`, or a std::function: a call's timers are made
  // per request, and a plain function pointer costs nothing to make.
  using Callback = void (*)(void* arg);
  QueuedTimer(TimerQueues* queues, event_base* base, Callback fn, void* arg)
      : queues_(queues), base_(base), fn_(fn), arg_(arg) {}
  QueuedTimer(TimerQueues* queues, event_base* base, std::function<void()> cb)
      : queues_(queues), base_(base), fn_(&QueuedTimer::callFunction), arg_(this), cb_(std::move(cb)) {}
  ~QueuedTimer() { cancel(); }
  QueuedTimer(const QueuedTimer&) = delete;
  QueuedTimer& operator=(const QueuedTimer&) = delete;

  // (Re)arms; a negative value fires at once (from the loop). `repeating`:
  // many timers share this duration, so it goes through a queue (when one
  // has room); otherwise, and for 0 or less, a plain timer.
  void armUs(int64_t us, bool repeating = true);
  void cancel() {
    if (queue_ != nullptr) unlink();
    if (added_) cancelPlain();
  }
  bool armed() const { return queue_ != nullptr || added_; }
  // The worker's queues, for a timer made before it knew them (an upstream
  // attempt: Transports gives it its worker's). Only while not armed.
  void setQueues(TimerQueues* queues) { queues_ = queues; }
  // Runs the callback now (a test's fake clock fires timers so).
  void fire() { fn_(arg_); }

 private:
  friend class TimerQueues;
  void unlink();
  // The plain timer: a libevent event embedded here (no allocation),
  // assigned on its first use (most timers only ever take a queue).
  void armPlain(int64_t us);
  void cancelPlain();
  static void onPlain(evutil_socket_t, short, void* arg);
  static void callFunction(void* self) { static_cast<QueuedTimer*>(self)->cb_(); }

  TimerQueues* queues_;
  event_base* base_;
  Callback fn_;
  void* arg_;
  std::function<void()> cb_;  // with the std::function constructor
  TimerQueues::Queue* queue_ = nullptr;  // linked into this queue
  QueuedTimer* prev_ = nullptr;
  QueuedTimer* next_ = nullptr;
  int64_t due_us_ = 0;
  bool assigned_ = false;  // ev_ is assigned
  bool added_ = false;     // ev_ is added (armed, not yet fired or cancelled)
  ::event ev_;
};

}  // namespace mulligan::event
