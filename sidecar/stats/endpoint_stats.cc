#include "sidecar/stats/endpoint_stats.h"

#include <algorithm>
#include <tuple>

namespace mulligan::stats {

void EndpointStats::publish(const DestinationRows& d) {
  std::lock_guard<std::mutex> lock(mu_);
  dests_[{d.service, d.destination}] = d;
}

void EndpointStats::remove(const std::string& service, const std::string& destination) {
  std::lock_guard<std::mutex> lock(mu_);
  dests_.erase({service, destination});
}

EndpointSetTotals collectEndpointSets(const std::vector<const EndpointStats*>& workers) {
  EndpointSetTotals t;
  for (const EndpointStats* w : workers) {
    t.sets += w->sets.load(std::memory_order_relaxed);
    t.forgotten += w->forgotten.load(std::memory_order_relaxed);
  }
  return t;
}

std::vector<DestinationRows> EndpointStats::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<DestinationRows> out;
  out.reserve(dests_.size());
  for (const auto& [key, d] : dests_) out.push_back(d);
  return out;
}

std::vector<EndpointTotals> collectEndpoints(const std::vector<const EndpointStats*>& workers, int64_t now_us) {
  std::map<std::tuple<std::string, std::string, std::string>, EndpointTotals> by_key;
  for (const EndpointStats* w : workers) {
    for (const DestinationRows& d : w->snapshot()) {
      for (const EndpointRow& r : d.rows) {
        EndpointTotals& t = by_key[{d.service, d.destination, r.address}];
        t.service = d.service;
        t.destination = d.destination;
        t.address = r.address;
        t.ejections += r.ejections;
        if (r.ejected_until_us > now_us) {
          ++t.ejected_workers;
          t.ejected_for_us = std::max(t.ejected_for_us, r.ejected_until_us - now_us);
        }
        t.current = t.current || r.current;
        t.last_ejection_us = std::max(t.last_ejection_us, r.last_ejection_us);
      }
    }
  }
  std::vector<EndpointTotals> out;
  out.reserve(by_key.size());
  for (auto& [key, t] : by_key) out.push_back(std::move(t));
  return out;
}

}  // namespace mulligan::stats
