#include "sidecar/proxy/conn_pool.h"

#include <event2/buffer.h>

namespace mulligan::proxy {

struct ConnPool::Idle {
  ConnPool* pool;
  std::string key;
  bufferevent* bev;
  event::EventPtr timer;
  IdleList::iterator self;
};

void ConnPool::IdleDeleter::operator()(Idle* i) const { delete i; }

ConnPool::~ConnPool() {
  for (auto& [key, list] : idle_) {
    for (auto& idle : list) bufferevent_free(idle->bev);
  }
}

bufferevent* ConnPool::take(const std::string& key) {
  auto it = idle_.find(key);
  if (it == idle_.end() || it->second.empty()) return nullptr;
  // Most recently used first: it is the least likely to have been closed by
  // the upstream's own idle timeout.
  std::unique_ptr<Idle, IdleDeleter> idle = std::move(it->second.back());
  it->second.pop_back();
  --total_idle_;
  ++reused_;
  bufferevent* bev = idle->bev;
  bufferevent_setcb(bev, nullptr, nullptr, nullptr, nullptr);
  return bev;
}

void ConnPool::put(const std::string& key, bufferevent* bev, int64_t idle_timeout_us) {
  IdleList& list = idle_[key];
  if (idle_timeout_us <= 0 || list.size() >= limits_.max_idle_per_destination ||
      total_idle_ >= limits_.max_idle_total || evbuffer_get_length(bufferevent_get_input(bev)) != 0) {
    bufferevent_free(bev);
    return;
  }
  std::unique_ptr<Idle, IdleDeleter> idle(new Idle());
  Idle* raw = idle.get();
  raw->pool = this;
  raw->key = key;
  raw->bev = bev;
  raw->timer.reset(evtimer_new(base_, &ConnPool::onIdleTimeout, raw));
  timeval tv{static_cast<time_t>(idle_timeout_us / 1000000), static_cast<suseconds_t>(idle_timeout_us % 1000000)};
  evtimer_add(raw->timer.get(), &tv);
  list.push_back(std::move(idle));
  raw->self = std::prev(list.end());
  ++total_idle_;
  bufferevent_setcb(bev, &ConnPool::onIdleRead, nullptr, &ConnPool::onIdleEvent, raw);
  bufferevent_enable(bev, EV_READ);
}

void ConnPool::drop(Idle* idle) {
  ++closed_while_idle_;
  auto it = idle_.find(idle->key);
  bufferevent_free(idle->bev);
  --total_idle_;
  it->second.erase(idle->self);  // destroys `idle`
}

// An idle HTTP/1 connection has nothing to say; bytes mean a protocol error
// or an early close notice (e.g. a 408). Either way it is not reusable.
void ConnPool::onIdleRead(bufferevent*, void* arg) {
  auto* idle = static_cast<Idle*>(arg);
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
