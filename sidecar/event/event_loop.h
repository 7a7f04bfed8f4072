// Small RAII owners for libevent objects, and the one-shot "call later" that
// keeps callbacks from running inline and objects from being deleted inside
// their own callbacks (STYLE.md: defer destruction to the loop).
#pragma once

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include <cstdint>
#include <functional>
#include <memory>

namespace mulligan::event {

struct EventFree {
  void operator()(::event* e) const { event_free(e); }
};
struct BuffereventFree {
  void operator()(::bufferevent* b) const { bufferevent_free(b); }
};
using EventPtr = std::unique_ptr<::event, EventFree>;
using BuffereventPtr = std::unique_ptr<::bufferevent, BuffereventFree>;

// A re-armable timer owned by one object; the callback runs on the loop.
// The libevent event is embedded (event_struct.h), not allocated: timers are
// made per request and per attempt, and a malloc/free pair each is hot-path
// churn (STYLE.md "Hot path").
class Timer {
 public:
  Timer(event_base* base, std::function<void()> cb);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  void armUs(int64_t us);  // (re)arms; a negative value fires at once
  void cancel();
  bool armed() const { return added_; }

 private:
  static void trampoline(evutil_socket_t, short, void* arg);
  event_base* base_;
  std::function<void()> cb_;
  ::event ev_;
  bool assigned_ = false;  // ev_ is assigned (on the first armUs)
  bool added_ = false;     // ev_ is added (armed and not yet fired or cancelled)
};

// ExpiryTimer: fires at an instant that mostly moves later — an idle timeout
// pushed back by every read, a pooled connection's expiry pushed back by
// every reuse. Moving it later only records the new instant: the libevent
// timer, armed for an earlier one, re-arms itself for the rest when it
// fires. So the common case is a compare and a store, not a timer-heap
// update (an event_add) each time. Moving it earlier re-arms at once.
class ExpiryTimer {
 public:
  ExpiryTimer(event_base* base, std::function<void()> cb);
  ExpiryTimer(const ExpiryTimer&) = delete;
  ExpiryTimer& operator=(const ExpiryTimer&) = delete;

  // Fires `cb` at `due_us` (monotonicNowUs() time) unless set again or
  // cancelled first. Inline: it runs per read.
  void setDue(int64_t due_us) {
    due_us_ = due_us;
    if (!timer_.armed() || armed_for_us_ > due_us) armFor(due_us);
  }
  void cancel() { timer_.cancel(); }
  bool armed() const { return timer_.armed(); }

 private:
  // libevent adds a timeout to its cached loop time, which lags the clock by
  // the current iteration's work, so the timer may run a little before the
  // instant it was armed for. Firing up to this much early saves a second
  // wake-up for the last few microseconds.
  static constexpr int64_t kSlackUs = 1000;
  void armFor(int64_t due_us);
  void onTimer();

  Timer timer_;
  std::function<void()> cb_;
  int64_t due_us_ = 0;
  int64_t armed_for_us_ = 0;  // the instant timer_ was armed for
};

// Objects that must not be destroyed inside their own callback are handed to
// a DeferredDeleter, which destroys them on the next loop iteration.
class Deletable {
 public:
  virtual ~Deletable() = default;
};

class DeferredDeleter {
 public:
  explicit DeferredDeleter(event_base* base);
  ~DeferredDeleter();
  void defer(std::unique_ptr<Deletable> obj);

 private:
  static void run(evutil_socket_t, short, void* arg);
  std::vector<std::unique_ptr<Deletable>> pending_;
  std::vector<std::unique_ptr<Deletable>> batch_;  // being destroyed; capacity kept
  EventPtr ev_;
};

// Monotonic microseconds (CLOCK_MONOTONIC through the vDSO: no syscall).
// Deadlines use it, never wall-clock time, which can jump. Inside a
// ClockScope it is the instant the outermost scope began.
int64_t monotonicNowUs();

// One "now" for one burst of work. A request's arrival takes the clock
// several times (its start, the policy snapshot, the attempt, the send); on
// this hot path each read is a vDSO call that reads the hypervisor's clock
// (kvm-clock), so a loop callback that starts such work opens a scope and
// everything it calls sees the instant the scope began — as libevent's own
// cached time does for its timers. Scopes nest (the outermost one's instant
// holds); outside any scope monotonicNowUs() reads the clock. Only for code
// that runs briefly: a scope must not span a wait.
class ClockScope {
 public:
  ClockScope();
  ~ClockScope();
  ClockScope(const ClockScope&) = delete;
  ClockScope& operator=(const ClockScope&) = delete;

 private:
  bool outermost_;
};

}  // namespace mulligan::event
