// What the workers of one sidecar process share: configuration (read-only
// after start), the policy status (for reporting), the retry budgets, and
// each worker's counters, which the admin thread sums without stopping anyone.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "sidecar/net/address.h"
#include "sidecar/policy/policy_view.h"
#include "sidecar/retry/budget.h"
#include "sidecar/stats/worker_stats.h"

namespace mulligan::proxy {

class AccessLogWriter;  // sidecar/stream/access_log_writer.h

struct Config {
  std::string shm = "mulligan-policy";
  std::vector<net::Address> outbound;  // --outbound, each listened on by every worker
  std::string admin = "127.0.0.1:15000";
  int workers = 1;
  int64_t drain_timeout_us = 10'000'000;
  AccessLogWriter* access_log = nullptr;  // --access-log; null = off. Owned by main, outlives the workers
  size_t max_header_bytes = 64 * 1024;
  size_t max_headers = 100;
  int64_t downstream_idle_timeout_us = 60'000'000;  // used when no policy gives one
  // Open upstream HTTP/1 connections per destination per worker (in use +
  // idle); for HTTP/2, sessions and calls in flight on them (Http2Pool);
  // 0 = no cap. --max-upstream-connections.
  size_t max_upstream_connections = 1024;
  // Downstream connections per worker before it stops accepting (the rest
  // wait in the listen backlog); 0 = no bound. --max-connections, by
  // default derived from RLIMIT_NOFILE (net::defaultMaxConnectionsPerWorker).
  size_t max_connections = 0;
  uint64_t descriptor_limit = 0;  // the soft RLIMIT_NOFILE in force (reported)
  // From a new connection's accept (and from a later request's first byte)
  // to the end of its request head; 0 = none. --request-header-timeout.
  int64_t request_header_timeout_us = 10'000'000;
  // Receive on downstream HTTP/1 sockets through io_uring (net::IoRing)
  // when the kernel allows it; false: epoll only. --io-uring.
  bool io_uring = true;
  // Where io_uring is not used: the HTTP/1 sends of one loop iteration go
  // to the kernel in one io_submit (net::AioSendBatch); false: one send(2)
  // each. --aio.
  bool aio = true;
  // The name server for upstream names ("127.0.0.1:5353"); empty: the
  // system's (/etc/resolv.conf). --dns-server.
  std::string dns_server;
  // How long a name's addresses serve before a background lookup refreshes
  // them (net::Resolver). --dns-ttl.
  int64_t dns_ttl_us = 5'000'000;
};

struct SharedState {
  Config config;
  policy::PolicyStatus policy_status;
  std::atomic<bool> draining{false};
  // Every worker's counters (stats/worker_stats.h); filled before workers start.
  std::vector<const stats::WorkerStats*> worker_stats;
  retry::BudgetRegistry budgets;                 // per service, shared by all workers
};

}  // namespace mulligan::proxy
