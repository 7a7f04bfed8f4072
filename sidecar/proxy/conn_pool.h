// ConnPool: one worker's idle upstream HTTP/1 connections, per destination.
//
// A connection is lent out with take() and given back with put() after a
// response that left it reusable. While idle, the pool watches it: any byte
// or EOF from the upstream means the upstream closed it (or broke HTTP), so
// the pool drops it at once, before anyone can send a request on it. An idle
// connection also closes after the policy's idle_timeout. Not thread-safe:
// each worker has its own pool (no locks on the request path).
#pragma once

#include <event2/bufferevent.h>

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>

#include "sidecar/event/event_loop.h"

namespace mulligan::proxy {

class ConnPool {
 public:
  struct Limits {
    size_t max_idle_per_destination = 64;
    size_t max_idle_total = 1024;
  };

  ConnPool(event_base* base, Limits limits) : base_(base), limits_(limits) {}
  ~ConnPool();
  ConnPool(const ConnPool&) = delete;
  ConnPool& operator=(const ConnPool&) = delete;

  // An idle connection to `key` ("1.2.3.4:80"), or null. The caller owns it
  // and must set its own callbacks.
  bufferevent* take(const std::string& key);
  // Returns a connection that finished a response cleanly; it is closed at
  // once when limits are reached or idle_timeout_us is 0.
  void put(const std::string& key, bufferevent* bev, int64_t idle_timeout_us);

  size_t idleCount() const { return total_idle_; }
  uint64_t reused() const { return reused_; }
  uint64_t closedWhileIdle() const { return closed_while_idle_; }

 private:
  struct Idle;
  struct IdleDeleter {
    void operator()(Idle* i) const;
  };
  using IdleList = std::list<std::unique_ptr<Idle, IdleDeleter>>;
  static void onIdleEvent(bufferevent* bev, short what, void* arg);
  static void onIdleRead(bufferevent* bev, void* arg);
  static void onIdleTimeout(evutil_socket_t, short, void* arg);
  void drop(Idle* idle);

  event_base* base_;
  Limits limits_;
  std::unordered_map<std::string, IdleList> idle_;
  size_t total_idle_ = 0;
  uint64_t reused_ = 0;
  uint64_t closed_while_idle_ = 0;
};

}  // namespace mulligan::proxy
