// UpstreamContext: what the upstream side of a call — Http1Attempt,
// Http2Attempt, the HTTP/2 sessions and their Http2Pool — needs from the
// worker it runs on: the loop and its timer queues, the two pools, the io_uring ring, the
// worker's counters, deferred deletion and two limits from the command
// line. It is the seam that keeps upstream/ from knowing the Worker
// (worker/ is above it): DownstreamContext (downstream/) extends it for the
// app's connections, and Worker derives from that and fills both in its
// constructor (a ProxyStream sees its worker through StreamContext, an
// interface of its own). A unit test can derive a context of its own and
// fill only what it uses.
//
// The accessors are inline loads, as Worker's own accessors were: no
// virtual call on the request path.
//
// Threading and lifetime: one worker thread; everything it points to
// outlives every attempt and session (the worker frees them first).
#pragma once

#include <cstddef>
#include <memory>

#include "sidecar/event/event_loop.h"
#include "sidecar/stats/worker_stats.h"

struct event_base;

namespace mulligan::net {
class IoRing;
class SendBatch;
}  // namespace mulligan::net

namespace mulligan::event {
class TimerQueues;
}  // namespace mulligan::event

namespace mulligan::proxy {

class ConnPool;
class Http2Pool;

class UpstreamContext {
 public:
  // From the command line (worker/shared_state.h Config).
  struct Limits {
    size_t max_header_bytes = 64 * 1024;     // the header list we announce we accept (64 KiB, fixed)
    size_t max_upstream_connections = 1024;  // per destination; 0 = no cap (--max-upstream-connections)
  };

  event_base* base() const { return upstream_.base; }
  // HTTP/1 connections, per destination.
  ConnPool& pool() { return *upstream_.pool; }
  // HTTP/2 upstream sessions, per destination.
  Http2Pool& h2pool() { return *upstream_.h2pool; }
  // Hot sockets receive through it; null: with epoll (see net::IoRing).
  net::IoRing* ioRing() const { return upstream_.io_ring; }
  // Hot sockets' small sends go through it at the end of the loop
  // iteration: the io_uring, else Linux AIO; null: send(2) at once.
  net::SendBatch* sendBatch() const { return upstream_.send_batch; }
  // The worker's timer queues (event/timer_queue.h), for the attempts'
  // phase timers; null: plain timers.
  event::TimerQueues* timerQueues() const { return upstream_.timer_queues; }
  // The worker's process-wide counters (it is their only writer).
  stats::WorkerCounters& counters() { return *upstream_.counters; }
  // Destroys `obj` on the next loop iteration (never inside its own callback).
  void deferDelete(std::unique_ptr<event::Deletable> obj) { upstream_.deleter->defer(std::move(obj)); }
  const Limits& upstreamLimits() const { return upstream_.limits; }

 protected:
  UpstreamContext() = default;
  ~UpstreamContext() = default;  // never deleted through this type
  UpstreamContext(const UpstreamContext&) = delete;
  UpstreamContext& operator=(const UpstreamContext&) = delete;

  // Filled by the derived owner (Worker) before any attempt starts.
  struct Parts {
    event_base* base = nullptr;
    ConnPool* pool = nullptr;
    Http2Pool* h2pool = nullptr;
    net::IoRing* io_ring = nullptr;
    net::SendBatch* send_batch = nullptr;
    event::TimerQueues* timer_queues = nullptr;
    stats::WorkerCounters* counters = nullptr;
    event::DeferredDeleter* deleter = nullptr;
    Limits limits;
  };
  Parts upstream_;
};

}  // namespace mulligan::proxy
