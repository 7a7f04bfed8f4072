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
// Connections are UpstreamConn objects (upstream_conn.h), one per TCP
// connection: lending one out and taking it back switches the holder
// pointer and moves it between intrusive lists — no allocation, no event
// added or deleted, no bufferevent callback or enable change per request.
// The connection's read event stays added while it is idle; the pool sees
// its readiness as the holder.
//
// The idle timer is lazy (STYLE.md "Hot path"): an event::ExpiryTimer that
// stays armed across take/put. put() sets the new expiry (idle_timeout after
// THIS put), which re-arms libevent only when it is earlier than the armed
// one. At the expiry: idle -> closed; lent out -> nothing (the next put sets
// it again). The same timer bounds a drain (kDrainTimeoutUs).
//
// Not thread-safe: each worker has its own pool (no locks on the request
// path). Slots must not outlive their pool (the worker frees the pool last).
// A connection lent out may outlive the pool (its timer then does nothing).
#pragma once

#include <event2/bufferevent.h>

#include <cstdint>
#include <string>
#include <unordered_map>

#include "sidecar/upstream/upstream_conn.h"

namespace mulligan::proxy {

// Connections of one list (idle or draining), linked through their own
// prev_/next_: no node allocation per put().
struct ConnList {
  UpstreamConn* head = nullptr;
  UpstreamConn* tail = nullptr;
  size_t size = 0;
  void pushBack(UpstreamConn* c);
  void remove(UpstreamConn* c);
};

// One destination's pooled connections and its count of open ones. Lives in
// ConnPool's map, whose nodes never move: Slots and connections point here.
struct PoolDestination {
  ConnList idle;
  ConnList draining;
  size_t open = 0;  // Slots outstanding, plus idle and draining connections
};

class ConnPool final : private UpstreamConn::User {
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
    Slot(Slot&& o) noexcept : dest_(o.dest_) { o.dest_ = nullptr; }
    Slot& operator=(Slot&& o) noexcept {
      if (this != &o) {
        release();
        dest_ = o.dest_;
        o.dest_ = nullptr;
      }
      return *this;
    }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    void release() {
      if (dest_) --dest_->open;
      dest_ = nullptr;
    }
    explicit operator bool() const { return dest_ != nullptr; }

   private:
    friend class ConnPool;
    PoolDestination* dest_ = nullptr;
  };

  ConnPool(event_base* base, Limits limits) : base_(base), limits_(limits) {}
  ~ConnPool();
  ConnPool(const ConnPool&) = delete;
  ConnPool& operator=(const ConnPool&) = delete;

  // An idle connection to `key` (any string naming one destination;
  // Http1Attempt uses a compact binary form) with its slot in `*slot`, or
  // null; most recently used first. The caller owns it and must make itself
  // its User (setUser) before the loop runs again. Its read event is still
  // added (reading); unread bytes, if any, are in its bufferevent's input.
  UpstreamConn* take(const std::string& key, Slot* slot);
  // A slot for a new connection to `key`; false (and `*slot` untouched) when
  // the destination already has max_connections_per_destination open.
  bool reserve(const std::string& key, Slot* slot);
  // Takes back a connected connection that finished a response cleanly,
  // with the slot it was taken or reserved with (which names its
  // destination). It is closed at once (releasing its slot) when limits are
  // reached, idle_timeout_us is 0, or unread bytes wait in its input. It
  // idles until idle_timeout_us after this put, and is closed earlier on any
  // byte, EOF or error from the upstream.
  void put(UpstreamConn* conn, Slot slot, int64_t idle_timeout_us);
  // Takes back a connection once `remaining` more body bytes
  // (1..kMaxDrainBytes) have arrived and been discarded (see the header
  // comment); bytes already in its input count. Its output must be empty:
  // the request was sent in full. Otherwise it is closed at once.
  void putDraining(UpstreamConn* conn, Slot slot, uint64_t remaining, int64_t idle_timeout_us);

  size_t idleCount() const { return total_idle_; }
  // Open connections to `key` (in use + idle + draining).
  size_t openCount(const std::string& key) const;
  uint64_t reused() const { return reused_; }
  uint64_t closedWhileIdle() const { return closed_while_idle_; }
  uint64_t drained() const { return drained_; }

 private:
  // UpstreamConn::User, for idle and draining connections.
  void onConnReadable(UpstreamConn* c) override;
  void onConnEvent(UpstreamConn* c, short what) override;
  void onConnWritten(UpstreamConn*) override {}

  friend class UpstreamConn;  // its expiry timer calls onExpired
  // `c`, idle or draining, reached its expiry: closed.
  void onExpired(UpstreamConn* c) { drop(c); }
  // Makes `c` (already on a list of `d`) close at now + timeout_us.
  void armExpiry(UpstreamConn* c, int64_t timeout_us) { c->expiry_.setDue(event::monotonicNowUs() + timeout_us); }
  void drop(UpstreamConn* c);
  void drainRead(UpstreamConn* c);
  bool idleFull(const PoolDestination& d) const {
    return d.idle.size >= limits_.max_idle_per_destination || total_idle_ >= limits_.max_idle_total;
  }

  event_base* base_;
  Limits limits_;
  std::unordered_map<std::string, PoolDestination> dests_;
  size_t total_idle_ = 0;
  uint64_t reused_ = 0;
  uint64_t closed_while_idle_ = 0;
  uint64_t drained_ = 0;
};

}  // namespace mulligan::proxy
