// Endpoints: the addresses behind one destination name (a headless
// Service's pods), how a call's attempts are spread over them, and passive
// outlier ejection (DESIGN.md "Endpoints", [defaults.outlier]).
//
// EndpointSet: one per (service, name:port) per worker. Its addresses come
// from the worker's net::Resolver (every A and AAAA record); update() applies
// a new answer and keeps the state of the addresses that stay.
//
// Spreading: round robin. A per-worker cursor moves past each address picked,
// so consecutive calls go to consecutive addresses. Least-loaded was the
// other choice; it needs every attempt's end (completion, cancel, a hedge
// lost, a deferred delete) to come back here to count calls in flight, on
// paths that several owners are changing, and it pays off with uneven
// upstream latency, which hedging (and ejection, for the worst case)
// already answer. Round robin needs nothing back, costs one compare per
// address skipped, and makes the spread exact, which tests can assert.
//
// pick(tried, now): the first address, from the cursor on (only a call's
// first attempt moves the cursor on: its retries do not shift where the
// next call starts), that
//   1. this call has not tried and that is not ejected; else
//   2. is not ejected (every healthy address was tried: a retry goes back to
//      one — as for a name with one address); else
//   3. this call has not tried (every address is ejected — only possible
//      when max_ejected allows it — so ejection is ignored rather than fail
//      the call: Envoy's "panic" routing); else
//   4. any.
// So a retry or a hedge goes to an address the call has not tried while one
// is left, and an ejected address gets no attempts until its ejection ends
// while any address is not ejected.
//
// Outlier ejection (report()): a connect failure, a reset before the
// response or a 5xx from an address counts against it, any other response
// resets its count, and the rest (timeouts, refused streams, our own limits)
// say nothing about it. `consecutive_failures` in a row eject it for
// `ejection`, doubled for each earlier ejection of the same address, up to
// `max_ejection`; the doubling starts over once the address has served
// a success after being back for `max_ejection`. Never more than
// floor(max_ejected x addresses) are ejected at once: a name with one
// address (or two at 0.5: one) always keeps one. Failures past the
// threshold while that guard holds leave the address at the threshold: it
// is ejected by its next failure once room frees.
//
// Per worker, not shared: like the pools and the resolver cache, nothing on
// the request path takes a lock or touches another core's cache lines. The
// cost: each worker learns on its own traffic, so a bad address fails up to
// `consecutive_failures` calls on each worker before all of them eject it
// (a sidecar runs few workers: one by default).
//
// One address per pod: when a name has both IPv4 and IPv6 addresses (a
// dual-stack headless Service answers each pod's A and AAAA record), the
// set takes those of the host's preferred family only (net::
// preferredFamily(): IPv4 unless the sidecar's pod has no IPv4 address),
// and the other family's only when the name has none of the preferred one.
// DNS does not say which A and AAAA records are the same pod, so keeping
// both would give every pod two shares of the rotation, let a retry
// "avoid" a pod by going to its other address, and count each pod twice
// against max_ejected. This is Envoy's V4_PREFERRED lookup family (a
// STRICT_DNS cluster with ALL makes each address a host: the double
// count); gRPC keeps both and races them (happy eyeballs, RFC 8305) within
// one subchannel, which needs the address pairs DNS does not give. IPv4
// first matches resolve() (CONNECT) and pod networks, mostly IPv4.
//
// Bounded: a worker keeps at most Endpoints::kMaxSets sets (see Endpoints).
//
// Threading: the worker's thread only. What the admin shows is published to
// the worker's stats::EndpointStats on the rare events (a new address set,
// an ejection, a set forgotten).
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proto-free-config/policy.h"
#include "sidecar/net/address.h"
#include "sidecar/net/resolver.h"
#include "sidecar/retry/outcome.h"
#include "sidecar/stats/endpoint_stats.h"

namespace mulligan::proxy {

// What one attempt at one address says about that address.
enum class EndpointResult {
  kSuccess,  // a response that is not 5xx: the address serves
  kFailure,  // connect failure, reset before the response, or a 5xx
  kNeutral,  // nothing about the address: timeouts, refused stream, our own limits
};
EndpointResult endpointResult(retry::OutcomeKind kind, int status);

// The endpoints one call has tried (their ids), oldest first. Fixed size,
// embedded in the call: no allocation. Past kMax the oldest is forgotten
// (a call with that many attempts has tried every address of most names).
class TriedEndpoints {
 public:
  static constexpr size_t kMax = 8;
  bool contains(uint32_t id) const {
    for (size_t i = 0; i < n_; ++i) {
      if (ids_[i] == id) return true;
    }
    return false;
  }
  void add(uint32_t id);
  size_t size() const { return n_; }

 private:
  uint32_t ids_[kMax] = {};
  size_t n_ = 0;
};

class EndpointSetRef;

class EndpointSet {
 public:
  struct Endpoint {
    net::Address addr;             // with the destination's port
    uint32_t id = 0;               // stable while the address stays in the set; never 0
    uint32_t failures = 0;         // consecutive failures (EndpointResult::kFailure)
    uint32_t ejections = 0;        // ejections so far: the next one lasts ejection x 2^ejections
    uint64_t ejections_total = 0;  // for the admin; never goes back
    int64_t ejected_until_us = 0;  // ejected while now < this
    int64_t last_ejection_us = 0;  // how long the latest ejection was (for the admin)
  };

  // `family`: the address family kept when a name has both (AF_INET or AF_INET6).
  EndpointSet(std::string service, std::string destination, uint16_t port, stats::EndpointStats* sink,
              int family = AF_INET)
      : service_(std::move(service)), destination_(std::move(destination)), port_(port), sink_(sink), family_(family) {}

  ~EndpointSet();
  EndpointSet(const EndpointSet&) = delete;
  EndpointSet& operator=(const EndpointSet&) = delete;

  // The resolver's answer version applied last (0 before any).
  uint64_t version() const { return version_; }
  // Applies a resolver answer (`addrs` with port 0) unless `version` is the
  // one applied already: its addresses of the set's family, or all when it
  // has none of that family (the header comment). Addresses that stay keep
  // their id and state.
  void update(const std::vector<net::Address>& addrs, uint64_t version);

  // An address for an attempt (the rules in the header comment); null only
  // when the set is empty. Moves the round-robin cursor past it.
  const Endpoint* pick(const TriedEndpoints& tried, int64_t now_us);
  // The outcome of an attempt at endpoint `id` (ignored when it left the
  // set), under the route's outlier policy.
  void report(uint32_t id, EndpointResult r, const pfc::OutlierPolicy& p, int64_t now_us);

  const std::vector<Endpoint>& endpoints() const { return eps_; }
  static bool ejected(const Endpoint& e, int64_t now_us) { return e.ejected_until_us > now_us; }
  size_t ejectedCount(int64_t now_us) const;
  const std::string& service() const { return service_; }
  const std::string& destination() const { return destination_; }
  // Calls in flight holding the set (EndpointSetRef): the registry never
  // forgets a set while one does.
  uint32_t pins() const { return pins_; }

 private:
  friend class EndpointSetRef;
  friend class Endpoints;
  void publish();

  std::string service_;
  std::string destination_;
  uint16_t port_;
  stats::EndpointStats* sink_;  // null in unit tests
  int family_;
  std::vector<Endpoint> eps_;
  // Addresses that left the set after being ejected: their counts stay
  // visible (and come back if the address does).
  std::vector<stats::EndpointRow> gone_;
  size_t cursor_ = 0;
  uint32_t next_id_ = 1;
  uint64_t version_ = 0;
  uint32_t pins_ = 0;
  uint64_t last_use_ = 0;    // Endpoints' use count at the last get(): least recently used first
  int64_t last_use_us_ = 0;  // when (for the idle sweep)
};

// A call's hold on an EndpointSet: while it exists the registry does not
// forget the set, so the pointer cannot dangle. A count in the set, not a
// shared_ptr: one worker thread, no atomics on the request path. Moves,
// does not copy.
class EndpointSetRef {
 public:
  EndpointSetRef() = default;
  explicit EndpointSetRef(EndpointSet* s) : s_(s) {
    if (s_) ++s_->pins_;
  }
  EndpointSetRef(EndpointSetRef&& o) noexcept : s_(o.s_) { o.s_ = nullptr; }
  EndpointSetRef& operator=(EndpointSetRef&& o) noexcept {
    if (this != &o) {
      release();
      s_ = o.s_;
      o.s_ = nullptr;
    }
    return *this;
  }
  EndpointSetRef(const EndpointSetRef&) = delete;
  EndpointSetRef& operator=(const EndpointSetRef&) = delete;
  ~EndpointSetRef() { release(); }

  void release() {
    if (s_) --s_->pins_;
    s_ = nullptr;
  }
  EndpointSet* get() const { return s_; }
  EndpointSet* operator->() const { return s_; }
  EndpointSet& operator*() const { return *s_; }
  explicit operator bool() const { return s_ != nullptr; }

 private:
  EndpointSet* s_ = nullptr;
};

// The worker's endpoint sets, by (service, host, port). A set is made the
// first time its key is seen. Policy services name few hosts, but
// proxy-style requests (absolute-form, "GET http://any-host/") can name
// any number: the registry is bounded.
//
//  - At most kMaxSets sets. Making one more forgets the least recently used
//    sets that no call in flight holds (EndpointSetRef), an eighth of the cap
//    at a time (so a flood of new names pays one sort per kMaxSets/8 names,
//    not one per name). Sets held by calls are never forgotten: past the cap
//    only by the calls in flight, themselves bounded by the connection and
//    stream limits.
//  - A set that no call used for kIdleUs, that no call holds and with no
//    address ejected now, is forgotten too (checked at most every
//    kSweepEveryUs, by the get() that finds the time has come: no timer).
// A forgotten set's rows leave the admin (/stats "endpoints", /metrics
// mulligan_outlier_*) and its outlier state is lost: its next call starts a
// new set (with the resolver's cached addresses) whose addresses are all
// healthy and whose ejection counts start at 0.
class Endpoints {
 public:
  static constexpr size_t kMaxSets = 1024;
  static constexpr int64_t kIdleUs = 600'000'000;       // 10 minutes
  static constexpr int64_t kSweepEveryUs = 60'000'000;  // 1 minute

  // `family`: what a dual-stack name's sets keep (net::preferredFamily()).
  explicit Endpoints(stats::EndpointStats* sink = nullptr, size_t max_sets = kMaxSets,
                     int family = net::preferredFamily())
      : sink_(sink), max_sets_(max_sets == 0 ? 1 : max_sets), family_(family) {}
  ~Endpoints();
  Endpoints(const Endpoints&) = delete;
  Endpoints& operator=(const Endpoints&) = delete;

  // The set of (service, host, port), held for the caller. `host` without
  // brackets. May forget other sets (above).
  EndpointSetRef get(std::string_view service, std::string_view host, uint16_t port, int64_t now_us);
  size_t size() const { return sets_.size(); }
  // Sets forgotten so far (the cap and the idle sweep).
  uint64_t forgotten() const { return forgotten_; }

 private:
  void sweepIdle(int64_t now_us);
  void evictLeastRecentlyUsed();
  void forget(std::unordered_map<std::string, std::unique_ptr<EndpointSet>>::iterator it);

  stats::EndpointStats* sink_;
  size_t max_sets_;
  int family_;
  std::unordered_map<std::string, std::unique_ptr<EndpointSet>> sets_;
  std::string key_;  // get()'s lookup key, reused
  uint64_t uses_ = 0;
  int64_t next_sweep_us_ = 0;
  uint64_t forgotten_ = 0;
};

}  // namespace mulligan::proxy
