// EndpointStats: what the admin endpoint shows of a worker's endpoint sets
// (upstream/endpoints.h): for every (service, destination name:port) whose
// name resolved, its addresses, how often each was ejected by outlier
// detection, and until when it is ejected now.
//
// Unlike the counters (counter.h), these rows change only on rare events —
// a name's address set changes, an address is ejected — never per request,
// so the worker publishes a copy under a mutex at those events and the admin
// thread copies them out under the same mutex. An ejection that ends needs
// no event: a row is ejected while its ejected_until_us is after now.
//
// Memory: one row per address a name has, plus the addresses that left the
// set after being ejected (their ejection count stays, so that
// mulligan_outlier_ejections_total never goes backwards while the set
// lives): bounded by the pods a service ever had, not by traffic. A set
// the worker forgets (upstream/endpoints.h: the registry's cap and idle
// sweep) takes its rows with it (remove()), so the rows are bounded by the
// worker's sets, not by the names ever seen.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace mulligan::stats {

struct EndpointRow {
  std::string address;           // "10.1.2.3:8080", "[fd00::1]:8080"
  uint64_t ejections = 0;        // times outlier detection ejected it (this worker)
  int64_t ejected_until_us = 0;  // monotonic (event::monotonicNowUs); ejected while after now
  bool current = true;           // in the name's address set now
  int64_t last_ejection_us = 0;  // the length of its latest ejection (doubling shows here)
};

struct DestinationRows {
  std::string service;      // the policy service ("" = none matched)
  std::string destination;  // the name and port, as the policy or request wrote it
  std::vector<EndpointRow> rows;
};

class EndpointStats {
 public:
  // The worker: replaces the rows of (d.service, d.destination).
  void publish(const DestinationRows& d);
  // The worker: the set of (service, destination) was forgotten.
  void remove(const std::string& service, const std::string& destination);
  // Any thread: a copy of every destination's rows.
  std::vector<DestinationRows> snapshot() const;

  // The worker's endpoint sets now, and forgotten so far (the worker
  // writes, the admin reads: relaxed).
  std::atomic<uint64_t> sets{0};
  std::atomic<uint64_t> forgotten{0};

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, DestinationRows> dests_;
};

// One address over all workers, for /stats, /metrics and /explain.
struct EndpointTotals {
  std::string service;
  std::string destination;
  std::string address;
  uint64_t ejections = 0;        // summed over workers
  uint32_t ejected_workers = 0;  // workers that have it ejected at `now_us`
  int64_t ejected_for_us = 0;    // the longest of their ejections left
  bool current = false;          // in the address set of any worker
  int64_t last_ejection_us = 0;  // the longest of the workers' latest ejections
};

// The workers' endpoint sets, summed.
struct EndpointSetTotals {
  uint64_t sets = 0;       // held now
  uint64_t forgotten = 0;  // forgotten so far (cap, idle)
};
EndpointSetTotals collectEndpointSets(const std::vector<const EndpointStats*>& workers);

// Sums the workers' rows; sorted by service, destination, address.
std::vector<EndpointTotals> collectEndpoints(const std::vector<const EndpointStats*>& workers, int64_t now_us);

}  // namespace mulligan::stats
