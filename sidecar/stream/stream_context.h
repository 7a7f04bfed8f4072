// StreamContext: what a ProxyStream needs from the worker it runs on — and
// nothing more — so that a test builds one (tests/unit/stream/) on a fake
// clock, with fake timers and fake attempts, and no event loop, socket or
// shared memory. The worker's (worker/worker_stream_context.h) forwards to
// the worker's loop, timer queues, policy view, counters, budgets, resolver
// and transports.
//
// Calls are per request or per attempt, never per byte. Threading: the
// worker's thread only.
#pragma once

#include <event2/event.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

#include "proto-free-config/table_reader.h"
#include "sidecar/core/clock.h"
#include "sidecar/core/random.h"
#include "sidecar/event/event_loop.h"
#include "sidecar/event/timer_queue.h"
#include "sidecar/net/address.h"
#include "sidecar/net/resolver.h"
#include "sidecar/retry/budget.h"
#include "sidecar/stats/route_stats.h"
#include "sidecar/stats/worker_stats.h"
#include "sidecar/upstream/attempt.h"
#include "sidecar/upstream/endpoints.h"

namespace mulligan::proxy {

class AccessLogWriter;  // sidecar/stream/access_log_writer.h
class StreamContext;

// One of a call's timers (its deadline, its backoff wait). It arms through
// its StreamContext: the worker's arms the embedded QueuedTimer on the loop
// (no allocation per call), a test's fires it from its fake clock. The
// callback is a plain `fn(arg)`, kept by the QueuedTimer: a call makes its
// timers per request.
class CallTimer {
 public:
  CallTimer(StreamContext& ctx, event::QueuedTimer::Callback fn, void* arg);
  CallTimer(const CallTimer&) = delete;
  CallTimer& operator=(const CallTimer&) = delete;

  // (Re)arms for `us` from now. `repeating`: a duration many calls share
  // (a policy's), so it may go through the worker's timer queue.
  void armUs(int64_t us, bool repeating = false);
  void cancel();

  // For a StreamContext: run the callback; the loop's timer.
  void fire() { loop_.fire(); }
  event::QueuedTimer& loopTimer() { return loop_; }

 private:
  StreamContext* ctx_;
  event::QueuedTimer loop_;
};

class StreamContext {
 public:
  virtual ~StreamContext() = default;

  // --- time, chance, timers ---
  // Monotonic "now" for the call's deadline, attempts and decisions (the
  // worker's is the loop's cached instant, event::monotonicNowUs()).
  virtual const core::Clock& clock() = 0;
  // Backoff jitter.
  virtual core::Random& random() = 0;
  virtual void armTimer(CallTimer& t, int64_t us, bool repeating) = 0;
  virtual void cancelTimer(CallTimer& t) = 0;
  // The loop and its timer queues, for CallTimer's embedded timer and for
  // CONNECT's socket; null in a test.
  virtual event_base* base() = 0;
  virtual event::TimerQueues* timerQueues() = 0;

  // --- policy, budgets, counters ---
  // The table to enforce for a call starting now (null: none published).
  virtual std::shared_ptr<const pfc::Table> policyTable(int64_t now_us) = 0;
  virtual stats::RouteCounters& routeCounters(const pfc::Table* table, const pfc::Match& m) = 0;
  virtual retry::RetryBudget& budget(std::string_view service) = 0;
  virtual stats::WorkerCounters& counters() = 0;
  // Where access log lines go; null = off.
  virtual AccessLogWriter* accessLog() = 0;
  // Which worker this is (0..workers-1): its own ring in the access log.
  virtual int workerIndex() = 0;

  // --- where calls go ---
  // Name lookups (null in a test: destinations come from originalDst).
  virtual net::Resolver* resolver() = 0;
  // The sidecar's own listener (the redirect-loop check).
  virtual const net::Address& listenAddress() = 0;
  virtual AttemptFactory& attempts() = 0;
  // The worker's endpoint sets (names with several addresses, outlier
  // ejection); null: every destination is one address (a test's default).
  virtual Endpoints* endpoints() { return nullptr; }
  // Destroys `obj` from the loop, never inside its own callback.
  virtual void deferDelete(std::unique_ptr<event::Deletable> obj) = 0;
};

inline CallTimer::CallTimer(StreamContext& ctx, event::QueuedTimer::Callback fn, void* arg)
    : ctx_(&ctx), loop_(ctx.timerQueues(), ctx.base(), fn, arg) {}
inline void CallTimer::armUs(int64_t us, bool repeating) { ctx_->armTimer(*this, us, repeating); }
inline void CallTimer::cancel() { ctx_->cancelTimer(*this); }

}  // namespace mulligan::proxy
