#include "sidecar/net/accept_gate.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

#include "sidecar/core/logging.h"

namespace mulligan::net {
namespace {

constexpr int64_t kFirstBackoffUs = 10'000;
constexpr int64_t kMaxBackoffUs = 1'000'000;
constexpr int64_t kSpareRetryUs = 100'000;
// A resources episode ends (and says so) only after accepts have gone this
// long without failing: at the descriptor limit every closed connection
// lets exactly one accept through before the next fails, and ending the
// episode at each would log two lines per connection — the flood the gate
// exists to prevent.
constexpr int64_t kCalmUs = 1'000'000;

bool outOfDescriptors(int err) { return err == EMFILE || err == ENFILE; }

// The gate of each listener: libevent's error callback gets the listener
// and its owner's user data (a Worker, evhttp), not the gate. Listeners are
// added on the main thread and fail on their loop's: a lock, taken only
// when accept fails or a gate changes hands.
std::mutex g_gates_mu;
std::vector<std::pair<evconnlistener*, AcceptGate*>> g_gates;

double secondsSince(int64_t since_us) {
  return static_cast<double>(event::monotonicNowUs() - since_us) / 1e6;
}

}  // namespace

AcceptGate::AcceptGate(event_base* base, std::string who, bool keep_spare, OnPause on_pause)
    : who_(std::move(who)),
      on_pause_(std::move(on_pause)),
      want_spare_(keep_spare),
      spare_timer_(base, [this] { onSpareTimer(); }),
      retry_timer_(base, [this] { onRetryTimer(); }),
      calm_timer_(base, [this] { onCalmTimer(); }) {
  if (want_spare_) takeSpare();
}

AcceptGate::~AcceptGate() {
  std::lock_guard lock(g_gates_mu);
  std::erase_if(g_gates, [this](const auto& e) { return e.second == this; });
  if (spare_fd_ >= 0) ::close(spare_fd_);
}

int64_t AcceptGate::backoffUs(int retries) {
  int64_t us = kFirstBackoffUs;
  for (int i = 0; i < retries && us < kMaxBackoffUs; ++i) us *= 2;
  return us < kMaxBackoffUs ? us : kMaxBackoffUs;
}

bool AcceptGate::takeSpare() {
  if (spare_fd_ < 0) spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  return spare_fd_ >= 0;
}

void AcceptGate::add(evconnlistener* l) {
  evconnlistener_set_error_cb(l, &AcceptGate::onError);
  listeners_.push_back(l);
  std::lock_guard lock(g_gates_mu);
  g_gates.emplace_back(l, this);
  if (!enabled_) evconnlistener_disable(l);
}

void AcceptGate::clear() {
  std::lock_guard lock(g_gates_mu);
  std::erase_if(g_gates, [this](const auto& e) { return e.second == this; });
  listeners_.clear();
  retry_timer_.cancel();
  spare_timer_.cancel();
  calm_timer_.cancel();
}

void AcceptGate::onError(evconnlistener* l, void*) {
  int err = errno;  // accept(2)'s, as libevent left it
  AcceptGate* found = nullptr;
  {
    std::lock_guard lock(g_gates_mu);
    for (const auto& [listener, gate] : g_gates) {
      if (listener == l) found = gate;
    }
  }
  if (found) found->onAcceptError(err);
}

void AcceptGate::onAcceptError(int err) {
  last_error_ = err;
  bool use_spare = want_spare_ && spare_fd_ >= 0 && outOfDescriptors(err);
  if (!resources_episode_) {
    resources_episode_ = true;
    resources_since_us_ = event::monotonicNowUs();
    retries_ = 0;
    if (use_spare) {
      LOG_WARN("%s: accept failed: %s; accepting with the descriptor kept in reserve", who_.c_str(),
               std::strerror(err));
    } else {
      LOG_WARN("%s: accept paused: %s; new connections wait in the listen backlog, retrying with back-off",
               who_.c_str(), std::strerror(err));
    }
    if (on_pause_) on_pause_(Reason::kResources, true);
  } else {
    ++retries_;
  }
  calm_timer_.cancel();  // not calm yet: the same episode goes on
  if (use_spare) {
    // The waiting connection gets the spare's slot at the next accept (the
    // listener stays on: level-triggered, it is woken again at once).
    ::close(spare_fd_);
    spare_fd_ = -1;
    spare_timer_.armUs(kSpareRetryUs);
    return;
  }
  resources_paused_ = true;
  retry_timer_.armUs(backoffUs(retries_));
  apply();
}

void AcceptGate::onRetryTimer() {
  if (!resources_paused_) return;
  resources_paused_ = false;
  apply();  // a failure pauses again, with a longer back-off
  // Listening again; unless a failure comes within kCalmUs (and cancels
  // this), the episode is over — whether or not anyone connects meanwhile.
  if (resources_episode_ && !calm_timer_.armed()) calm_timer_.armUs(kCalmUs);
}

void AcceptGate::connectionClosed() {
  // The spare first: the slot the connection frees is the one it needs.
  if (want_spare_ && spare_fd_ < 0) spare_timer_.armUs(0);
  if (resources_paused_) {
    retry_timer_.cancel();
    onRetryTimer();
  }
}

void AcceptGate::onSpareTimer() {
  if (!takeSpare()) spare_timer_.armUs(kSpareRetryUs);
}

void AcceptGate::accepted() {
  if (!resources_episode_) return;
  // With a spare, the episode lasts until an accept needs it no more.
  if (want_spare_ && spare_fd_ < 0) return;
  if (!calm_timer_.armed()) calm_timer_.armUs(kCalmUs);
}

void AcceptGate::onCalmTimer() {
  if (!resources_episode_) return;
  resources_episode_ = false;
  if (on_pause_) on_pause_(Reason::kResources, false);
  LOG_WARN("%s: accepting again after %.3fs (%d retr%s after %s)", who_.c_str(), secondsSince(resources_since_us_),
           retries_, retries_ == 1 ? "y" : "ies", std::strerror(last_error_));
}

void AcceptGate::setOpen(size_t open, size_t bound) {
  bool at = bound != 0 && open >= bound;
  if (at && !bound_episode_) {
    bound_episode_ = true;
    bound_since_us_ = event::monotonicNowUs();
    LOG_WARN("%s: %zu connections open (--max-connections): new connections wait in the listen backlog",
             who_.c_str(), open);
    if (on_pause_) on_pause_(Reason::kBound, true);
  } else if (bound_episode_ && (bound == 0 || open + std::max<size_t>(bound / 4, 1) <= bound)) {
    bound_episode_ = false;
    LOG_WARN("%s: down to %zu connections open after %.3fs at --max-connections %zu", who_.c_str(), open,
             secondsSince(bound_since_us_), bound);
    if (on_pause_) on_pause_(Reason::kBound, false);
  }
  at_bound_ = at;
  apply();
}

void AcceptGate::apply() {
  bool want = !resources_paused_ && !at_bound_;
  if (want == enabled_) return;
  enabled_ = want;
  for (evconnlistener* l : listeners_) {
    if (want) {
      evconnlistener_enable(l);
    } else {
      evconnlistener_disable(l);
    }
  }
}

}  // namespace mulligan::net
