// ConnPool: one worker's upstream HTTP/1 connections, per destination: the
// idle ones, and a count of all the open ones (Envoy's circuit breaker
// max_connections).
//
// Every open upstream HTTP/1 connection holds a Slot of its destination,
// from before its connect until it is freed: the Http1Attempt using it holds
// the Slot, and hands it to the pool with the connection (put / putDraining);
// an idle or draining connection keeps it; take() gives it back with the
// connection. A Slot is released (the count goes down) when its holder drops
// it, whatever the reason: connect failure, reset, timeout, pool limits,
// tunnel hand-over.
//
// A connection is lent out with take() and given back with put() after a
// response that left it reusable. While idle, the pool watches it: any byte
// or EOF from the upstream means the upstream closed it (or broke HTTP), so
// the pool drops it at once, before anyone can send a request on it. An idle
// connection also closes after the policy's idle_timeout.
//
// putDraining() takes a connection whose response the attempt walked away
// from (a retried 503) while a known, small rest of its body is still on the
// way: the pool reads and discards exactly that many bytes, then keeps the
// connection idle as put() would. Anything else (more bytes, EOF, the drain
// taking longer than its timeout) closes it. A connection being drained is
// not lent out.
//
// Not thread-safe: each worker has its own pool (no locks on the request
// path). Slots must not outlive their pool (the worker frees the pool last).
#pragma once

#include <event2/bufferevent.h>
#include <event2/event_struct.h>

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
    // Open connections (in use + idle + draining) per destination; 0 = no cap.
    size_t max_connections_per_destination = 1024;
  };

  // The largest body rest putDraining() accepts, and how long it waits for it.
  static constexpr uint64_t kMaxDrainBytes = 64 * 1024;
  static constexpr int64_t kDrainTimeoutUs = 1'000'000;

  // A claim on one connection of a destination. Move-only; releases on
  // destruction or release().
  class Slot {
   public:
    Slot() = default;
    ~Slot() { release(); }
    Slot(Slot&& o) noexcept : open_(o.open_) { o.open_ = nullptr; }
    Slot& operator=(Slot&& o) noexcept {
      if (this != &o) {
        release();
        open_ = o.open_;
        o.open_ = nullptr;
      }
      return *this;
    }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    void release() {
      if (open_) --*open_;
      open_ = nullptr;
    }
    explicit operator bool() const { return open_ != nullptr; }

   private:
    friend class ConnPool;
    explicit Slot(size_t* open) : open_(open) { ++*open_; }
    size_t* open_ = nullptr;
  };

  ConnPool(event_base* base, Limits limits) : base_(base), limits_(limits) {}
  ~ConnPool();
  ConnPool(const ConnPool&) = delete;
  ConnPool& operator=(const ConnPool&) = delete;

  // An idle connection to `key` (any string naming one destination;
  // Http1Attempt uses a compact binary form) with its slot in `*slot`, or
  // null. The caller owns it and must set its own callbacks.
  bufferevent* take(const std::string& key, Slot* slot);
  // A slot for a new connection to `key`; false (and `*slot` untouched) when
  // the destination already has max_connections_per_destination open.
  bool reserve(const std::string& key, Slot* slot);
  // Returns a connection that finished a response cleanly; it is closed at
  // once (releasing its slot) when limits are reached or idle_timeout_us is 0.
  void put(const std::string& key, bufferevent* bev, Slot slot, int64_t idle_timeout_us);
  // Returns a connection once `remaining` more body bytes (1..kMaxDrainBytes)
  // have arrived and been discarded (see the header comment). Its output
  // must be empty: the request was sent in full.
  void putDraining(const std::string& key, bufferevent* bev, Slot slot, uint64_t remaining, int64_t idle_timeout_us);

  size_t idleCount() const { return total_idle_; }
  // Open connections to `key` (in use + idle + draining).
  size_t openCount(const std::string& key) const;
  uint64_t reused() const { return reused_; }
  uint64_t closedWhileIdle() const { return closed_while_idle_; }
  uint64_t drained() const { return drained_; }

 private:
  struct Destination;
  // An idle or draining connection. Entries live in the list nodes
  // themselves, timer included: one allocation per put() (a keep-alive
  // request's connection goes back and forth every time).
  struct Idle {
    Idle() = default;
    Idle(const Idle&) = delete;
    Idle& operator=(const Idle&) = delete;
    ~Idle() {
      if (timer_assigned) event_del(&timer);
    }
    ConnPool* pool = nullptr;
    Destination* dest = nullptr;
    std::list<Idle>* list = nullptr;  // dest->idle or dest->draining
    bufferevent* bev = nullptr;
    Slot slot;
    ::event timer;
    bool timer_assigned = false;
    std::list<Idle>::iterator self;
    uint64_t drain_left = 0;  // > 0: body bytes still to discard (on dest->draining)
    int64_t idle_timeout_us = 0;
  };
  using IdleList = std::list<Idle>;
  struct Destination {
    IdleList idle;
    IdleList draining;
    size_t open = 0;  // Slots outstanding; the map's nodes never move
  };
  static void onIdleEvent(bufferevent* bev, short what, void* arg);
  static void onIdleRead(bufferevent* bev, void* arg);
  static void onIdleTimeout(evutil_socket_t, short, void* arg);
  Idle* newEntry(Destination& d, IdleList& list, bufferevent* bev, Slot slot,
                 int64_t timeout_us);
  void drop(Idle* idle);
  void drainRead(Idle* idle);

  event_base* base_;
  Limits limits_;
  std::unordered_map<std::string, Destination> dests_;
  IdleList spare_;  // nodes of taken connections, reused by put() (bounded by the peak idle count)
  size_t total_idle_ = 0;
  uint64_t reused_ = 0;
  uint64_t closed_while_idle_ = 0;
  uint64_t drained_ = 0;
};

}  // namespace mulligan::proxy
