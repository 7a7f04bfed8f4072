// AcceptGate: when a set of listeners accepts. Two things stop it, each for
// an episode that is logged once when it begins and once when it ends:
//
//  - out of resources: accept(2) failed with EMFILE, ENFILE, ENOBUFS or
//    ENOMEM. The pending connection stays in the kernel's queue, so a
//    level-triggered listener would be woken again at once, for ever (a CPU
//    spin, and libevent's "Error from accept() call" per wake-up). The gate
//    disables the listeners and tries again after a back-off (10 ms,
//    doubling, at most 1 s) or as soon as one of the owner's connections
//    closes, whichever comes first — as nginx and HAProxy pause accepting.
//    The episode ends once accepts have gone a second without failing.
//  - at the bound: the owner has `bound` connections open
//    (--max-connections). New connections wait, completed by the kernel, in
//    the listen backlog until one closes. For logging, the episode lasts
//    until the owner is down to three quarters of the bound, so that a load
//    that hovers at the bound gives two lines, not two per connection.
//
// With `keep_spare`, the gate holds one descriptor in reserve (/dev/null)
// and gives it up the first time accept fails for lack of descriptors, so
// that the connection waiting can be accepted — the admin endpoint, which
// must answer precisely when the workers cannot. It takes the spare back as
// soon as the owner reports a connection closed (and every 100 ms while it
// is missing); its episode ends when an accept no longer needs it.
//
// One thread: the loop of `base`. The owner reports accepted() and
// setOpen() from its accept callback and setOpen()/connectionClosed() when a
// connection ends.
#pragma once

#include <event2/listener.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "sidecar/event/event_loop.h"

namespace mulligan::net {

class AcceptGate {
 public:
  enum class Reason {
    kResources,  // accept(2) failed: descriptors or kernel memory exhausted
    kBound,      // the owner has --max-connections open
  };
  // Called when an episode of `reason` begins (paused = true) and ends, as
  // logged: for kResources from the first failed accept to the next
  // accepted connection (the listeners go on and off in between, per
  // retry), for kBound from reaching the bound to being a quarter below it
  // (the listeners go on and off in between, per connection).
  using OnPause = std::function<void(Reason reason, bool paused)>;

  // `who` names the owner in log lines ("worker 0", "admin").
  AcceptGate(event_base* base, std::string who, bool keep_spare, OnPause on_pause = {});
  ~AcceptGate();
  AcceptGate(const AcceptGate&) = delete;
  AcceptGate& operator=(const AcceptGate&) = delete;

  // Takes charge of `l` (sets its error callback); the caller still owns it.
  void add(evconnlistener* l);
  // Forgets every listener (they are being freed) and stops the timers.
  void clear();
  // A connection was accepted: ends a resources episode once accepts have
  // gone a second without failing (one logged end, not one per connection
  // let through at the limit).
  void accepted();
  // The owner has `open` connections; `bound` 0 means no bound.
  void setOpen(size_t open, size_t bound);
  // One of the owner's connections closed (a descriptor came free):
  // retries at once when paused for resources.
  void connectionClosed();

  bool accepting() const { return enabled_; }

  // Back-off after a failed accept: 10 ms, doubling, at most 1 s.
  static int64_t backoffUs(int retries);

 private:
  static void onError(evconnlistener* l, void* arg);
  void onAcceptError(int err);
  void onRetryTimer();
  void onSpareTimer();
  void onCalmTimer();
  bool takeSpare();
  void apply();  // listeners enabled exactly when nothing stops them

  std::string who_;
  OnPause on_pause_;
  std::vector<evconnlistener*> listeners_;
  bool enabled_ = true;

  bool want_spare_;
  int spare_fd_ = -1;
  event::Timer spare_timer_;

  bool resources_paused_ = false;  // listeners off until the retry timer
  bool resources_episode_ = false; // from the first failure to the next accept
  int64_t resources_since_us_ = 0;
  int retries_ = 0;
  int last_error_ = 0;
  event::Timer retry_timer_;
  event::Timer calm_timer_;  // armed by an accept during an episode; a failure cancels it

  bool at_bound_ = false;
  bool bound_episode_ = false;
  int64_t bound_since_us_ = 0;
};

}  // namespace mulligan::net
