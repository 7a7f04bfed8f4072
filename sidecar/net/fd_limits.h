// The process's file-descriptor limit and what it allows: the default bound
// on downstream connections per worker (--max-connections) is derived from
// RLIMIT_NOFILE so that the sidecar runs out of connections it is willing to
// take long before it runs out of descriptors (HAProxy derives its maxconn
// from the limit the same way).
#pragma once

#include <cstddef>
#include <cstdint>

namespace mulligan::net {

// What is set aside before the rest is split into connections: stdio, logs,
// the admin endpoint and its connections, each worker's loop, eventfd,
// io_uring and DNS sockets, the policy segment while it is read, and a
// sixteenth of the limit for pooled upstream connections left idle, tunnels'
// and hedges' extra upstream sockets and whatever the limit did not foresee.
uint64_t reservedDescriptors(uint64_t nofile, int workers);

// Downstream connections one worker accepts before it stops accepting (the
// rest wait in the kernel's listen backlog): each proxied connection needs
// two descriptors (its own and its upstream's), after the reserve above,
// shared evenly between the workers. At least 1. `nofile` is the soft
// RLIMIT_NOFILE (RLIM_INFINITY or huge: treated as 2^20).
size_t defaultMaxConnectionsPerWorker(uint64_t nofile, int workers);

// Raises the soft RLIMIT_NOFILE to the hard limit (as Go's runtime and
// HAProxy do: the soft limit's usual 1024 is a relic of select(2), which
// nothing here uses) and returns the soft limit in force afterwards.
uint64_t raiseDescriptorLimit();

}  // namespace mulligan::net
