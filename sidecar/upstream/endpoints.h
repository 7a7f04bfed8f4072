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
// Threading: the worker's thread only. What the admin shows is published to
// the worker's stats::EndpointStats on the rare events (a new address set,
// an ejection).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proto-free-config/policy.h"
#include "sidecar/net/address.h"
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

  EndpointSet(std::string service, std::string destination, uint16_t port, stats::EndpointStats* sink)
      : service_(std::move(service)), destination_(std::move(destination)), port_(port), sink_(sink) {}

  // The resolver's answer version applied last (0 before any).
  uint64_t version() const { return version_; }
  // Applies a resolver answer (`addrs` with port 0) unless `version` is the
  // one applied already. Addresses that stay keep their id and state.
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

 private:
  void publish();

  std::string service_;
  std::string destination_;
  uint16_t port_;
  stats::EndpointStats* sink_;  // null in unit tests
  std::vector<Endpoint> eps_;
  // Addresses that left the set after being ejected: their counts stay
  // visible (and come back if the address does).
  std::vector<stats::EndpointRow> gone_;
  size_t cursor_ = 0;
  uint32_t next_id_ = 1;
  uint64_t version_ = 0;
};

// The worker's endpoint sets, by (service, host, port). A set is made the
// first time its key is seen and lives as long as the worker (calls hold
// pointers to it): bounded by the destination names the policies and
// proxy-style requests use.
class Endpoints {
 public:
  explicit Endpoints(stats::EndpointStats* sink = nullptr) : sink_(sink) {}
  Endpoints(const Endpoints&) = delete;
  Endpoints& operator=(const Endpoints&) = delete;

  // `host` without brackets.
  EndpointSet& get(std::string_view service, std::string_view host, uint16_t port);
  size_t size() const { return sets_.size(); }

 private:
  stats::EndpointStats* sink_;
  std::unordered_map<std::string, std::unique_ptr<EndpointSet>> sets_;
  std::string key_;  // get()'s lookup key, reused
};

}  // namespace mulligan::proxy
