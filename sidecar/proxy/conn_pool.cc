#include "sidecar/proxy/conn_pool.h"

#include <event2/buffer.h>

namespace mulligan::proxy {


namespace {
timeval toTimeval(int64_t us) {
  return timeval{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
}
}  // namespace

ConnPool::~ConnPool() {
  for (auto& [key, d] : dests_) {
    for (IdleList* list : {&d.idle, &d.draining}) {
      for (Idle& idle : *list) {
        idle.slot.release();  // before `d` goes
        bufferevent_free(idle.bev);
      }
      list->clear();
    }
  }
}

size_t ConnPool::openCount(const std::string& key) const {
  auto it = dests_.find(key);
  return it == dests_.end() ? 0 : it->second.open;
}

bufferevent* ConnPool::take(const std::string& key, Slot* slot) {
  auto it = dests_.find(key);
  if (it == dests_.end() || it->second.idle.empty()) return nullptr;
  IdleList& list = it->second.idle;
  // Most recently used first: it is the least likely to have been closed by
  // the upstream's own idle timeout.
  Idle& idle = list.back();
  bufferevent* bev = idle.bev;
  *slot = std::move(idle.slot);
  event_del(&idle.timer);
  idle.bev = nullptr;
  // The node goes to spare_ for the next put(): no allocation per request.
  spare_.splice(spare_.end(), list, idle.self);
  --total_idle_;
  ++reused_;
  bufferevent_setcb(bev, nullptr, nullptr, nullptr, nullptr);
  return bev;
}

bool ConnPool::reserve(const std::string& key, Slot* slot) {
  Destination& d = dests_[key];
  if (limits_.max_connections_per_destination != 0 && d.open >= limits_.max_connections_per_destination) {
    return false;
  }
  *slot = Slot(&d.open);
  return true;
}

ConnPool::Idle* ConnPool::newEntry(Destination& d, IdleList& list, bufferevent* bev, Slot slot, int64_t timeout_us) {
  if (spare_.empty()) spare_.emplace_back();
  list.splice(list.end(), spare_, std::prev(spare_.end()));
  Idle* raw = &list.back();
  raw->drain_left = 0;
  raw->idle_timeout_us = 0;
  raw->pool = this;
  raw->dest = &d;
  raw->list = &list;
  raw->bev = bev;
  raw->slot = std::move(slot);
  // A node keeps its address through splices and is reused (spare_), so its
  // timer is assigned once, not on every put (take() deletes it, so it is
  // never pending here).
  if (!raw->timer_assigned) {
    evtimer_assign(&raw->timer, base_, &ConnPool::onIdleTimeout, raw);
    raw->timer_assigned = true;
  }
  timeval tv = toTimeval(timeout_us);
  evtimer_add(&raw->timer, &tv);
  raw->self = std::prev(list.end());
  bufferevent_setcb(bev, &ConnPool::onIdleRead, nullptr, &ConnPool::onIdleEvent, raw);
  // Http1Attempt hands its connections over with the read side on already
  // (see ~Http1Attempt); enabling it again would be one more event_add.
  if (!(bufferevent_get_enabled(bev) & EV_READ)) bufferevent_enable(bev, EV_READ);
  return raw;
}

void ConnPool::put(const std::string& key, bufferevent* bev, Slot slot, int64_t idle_timeout_us) {
  Destination& d = dests_[key];
  if (idle_timeout_us <= 0 || d.idle.size() >= limits_.max_idle_per_destination ||
      total_idle_ >= limits_.max_idle_total || evbuffer_get_length(bufferevent_get_input(bev)) != 0) {
    bufferevent_free(bev);
    return;  // `slot` released here
  }
  newEntry(d, d.idle, bev, std::move(slot), idle_timeout_us);
  ++total_idle_;
}

void ConnPool::putDraining(const std::string& key, bufferevent* bev, Slot slot, uint64_t remaining,
                           int64_t idle_timeout_us) {
  Destination& d = dests_[key];
  if (idle_timeout_us <= 0 || remaining == 0 || remaining > kMaxDrainBytes ||
      evbuffer_get_length(bufferevent_get_output(bev)) != 0) {
    bufferevent_free(bev);
    return;
  }
  Idle* idle = newEntry(d, d.draining, bev, std::move(slot), kDrainTimeoutUs);
  idle->drain_left = remaining;
  idle->idle_timeout_us = idle_timeout_us;
  // Bytes may be buffered already; discard them now (the read callback only
  // runs for new ones).
  if (evbuffer_get_length(bufferevent_get_input(bev)) != 0) drainRead(idle);
}

void ConnPool::drop(Idle* idle) {
  if (idle->drain_left == 0) {
    ++closed_while_idle_;
    --total_idle_;
  }
  bufferevent_free(idle->bev);
  idle->list->erase(idle->self);  // destroys `idle`, releasing its slot
}

// Discards the rest of a walked-away response body; at its exact end the
// connection becomes idle, as if the response had been read in full.
void ConnPool::drainRead(Idle* idle) {
  evbuffer* in = bufferevent_get_input(idle->bev);
  size_t n = evbuffer_get_length(in);
  if (n > idle->drain_left) {  // bytes after the response: not HTTP we can reuse
    drop(idle);
    return;
  }
  evbuffer_drain(in, n);
  idle->drain_left -= n;
  if (idle->drain_left != 0) return;
  ++drained_;
  Destination& d = *idle->dest;
  if (d.idle.size() >= limits_.max_idle_per_destination || total_idle_ >= limits_.max_idle_total) {
    bufferevent_free(idle->bev);
    d.draining.erase(idle->self);
    return;
  }
  // Move the entry (and its slot) from the draining list to the idle list.
  d.idle.splice(d.idle.end(), d.draining, idle->self);
  idle->list = &d.idle;
  ++total_idle_;
  timeval tv = toTimeval(idle->idle_timeout_us);
  evtimer_add(&idle->timer, &tv);
}

// An idle HTTP/1 connection has nothing to say; bytes mean a protocol error
// or an early close notice (e.g. a 408). Either way it is not reusable.
void ConnPool::onIdleRead(bufferevent*, void* arg) {
  auto* idle = static_cast<Idle*>(arg);
  if (idle->drain_left != 0) {
    idle->pool->drainRead(idle);
    return;
  }
  idle->pool->drop(idle);
}

void ConnPool::onIdleEvent(bufferevent*, short, void* arg) {
  auto* idle = static_cast<Idle*>(arg);
  idle->pool->drop(idle);
}

void ConnPool::onIdleTimeout(evutil_socket_t, short, void* arg) {
  auto* idle = static_cast<Idle*>(arg);
  idle->pool->drop(idle);
}

}  // namespace mulligan::proxy
