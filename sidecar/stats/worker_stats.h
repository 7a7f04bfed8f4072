// WorkerStats: everything one worker counts, in one place — the
// process-wide families (WorkerCounters: connections, requests, attempts,
// accept pauses, HTTP/2 GOAWAYs, ...) and the per-service, per-route ones
// (RouteStats, route_stats.h). It is the sidecar's one counter system:
// every counter is a stats::Counter with the worker as its only writer, and
// collect() is the one place they are summed over workers (for /stats,
// /metrics and the / page, admin/stats_render.h).
//
// Threading: each worker writes its own WorkerStats on its thread and never
// reads another's; the admin thread calls collect() at any time without
// stopping anyone (see counter.h for what a reader may see). A WorkerStats
// outlives every reader (the workers outlive the admin thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "sidecar/codec/http2/http2_offence.h"
#include "sidecar/stats/counter.h"
#include "sidecar/stats/endpoint_stats.h"
#include "sidecar/stats/route_stats.h"

namespace mulligan::stats {

// The process-wide families of one worker (the top level of /stats).
struct WorkerCounters {
  Counter downstream_accepted;
  Counter downstream_active;
  Counter tunnels;          // opaque TCP, CONNECT and upgraded connections
  Counter requests;         // HTTP requests answered
  Counter responses_by_class[6];  // index = status / 100 (0 unused)
  Counter attempts;
  Counter retries;
  Counter upstream_connects;
  Counter upstream_connect_failures;
  Counter upstream_reused;
  Counter upstream_overflow;  // calls answered 503: max upstream connections reached
  Counter bad_requests;     // 400 / 431 / 414 answered by us
  Counter io_uring;         // 1 while the worker's HTTP/1 sockets go through io_uring (net::IoRing)
  Counter aio;              // 1 while the worker's HTTP/1 sends are batched through Linux AIO (net::AioSendBatch)
  // Accept pauses (net::AcceptGate): episodes, and 1 while one lasts.
  Counter accept_paused_resources;      // accept(2) failed: EMFILE, ENFILE, ENOBUFS, ENOMEM
  Counter accept_paused_resources_now;
  Counter accept_paused_bound;          // --max-connections reached
  Counter accept_paused_bound_now;
  // Connections cut because a request head (or the first bytes of a new
  // connection) took longer than --request-header-timeout.
  Counter request_header_timeouts;
  // HTTP/2 peers sent GOAWAY for going beyond a limit (http2_limits.h), by
  // [Http2Side][Http2Offence].
  Counter http2_goaways[2][proxy::kHttp2OffenceCount];
  // HTTP/2 request streams refused (REFUSED_STREAM): the worker had
  // Http2ServerSession::kMaxStreamsPerWorker open.
  Counter http2_streams_refused;
};

// Everything one worker counts; the worker is the only writer.
struct WorkerStats {
  WorkerCounters counters;  // process-wide families
  RouteStats routes;        // per (service, route)
  EndpointStats endpoints;  // names' addresses and outlier ejections (endpoint_stats.h)
};

// WorkerCounters summed over workers (CallTotals: requests, responses,
// attempts, upstream connects, reuses and connect failures).
struct GlobalTotals : CallTotals {
  uint64_t downstream_accepted = 0;
  uint64_t downstream_active = 0;
  uint64_t tunnels = 0;
  uint64_t retries = 0;
  uint64_t bad_requests = 0;
  uint64_t upstream_overflow = 0;  // calls refused at --max-upstream-connections
  uint64_t io_uring_workers = 0;   // workers whose HTTP/1 sockets go through io_uring
  uint64_t aio_workers = 0;        // workers whose HTTP/1 sends are batched through Linux AIO
  uint64_t accept_paused_resources = 0;  // episodes: accept(2) out of descriptors or memory
  uint64_t accept_paused_max_connections = 0;  // episodes: --max-connections reached
  uint64_t accept_paused_workers = 0;    // workers not accepting now (either reason)
  uint64_t request_header_timeouts = 0;
  // HTTP/2 GOAWAYs for a peer's offence, [proxy::Http2Side][proxy::Http2Offence].
  uint64_t http2_goaways[2][proxy::kHttp2OffenceCount] = {};
  uint64_t http2_streams_refused = 0;  // REFUSED_STREAM: a worker's open-stream limit
};

struct Totals {
  GlobalTotals globals;
  // Every (service, route) that had traffic, by service name, then route
  // (-1, the service level, first).
  std::vector<RouteTotals> routes;
};

// Sums every worker's counters. Safe on any thread while the workers run.
Totals collect(const std::vector<const WorkerStats*>& workers);

}  // namespace mulligan::stats
