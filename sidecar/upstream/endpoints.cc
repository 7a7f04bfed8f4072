#include "sidecar/upstream/endpoints.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <utility>

namespace mulligan::proxy {

EndpointResult endpointResult(retry::OutcomeKind kind, int status) {
  switch (kind) {
    case retry::OutcomeKind::kConnectFailure:
    case retry::OutcomeKind::kReset:
      return EndpointResult::kFailure;
    case retry::OutcomeKind::kResponse:
      return status >= 500 && status <= 599 ? EndpointResult::kFailure : EndpointResult::kSuccess;
    case retry::OutcomeKind::kRefusedStream:  // not processed: says nothing of its health
    case retry::OutcomeKind::kPerTryTimeout:  // DESIGN.md counts connect-failure, reset and 5xx only
    case retry::OutcomeKind::kOverflow:       // our own limit
      return EndpointResult::kNeutral;
  }
  return EndpointResult::kNeutral;
}

void TriedEndpoints::add(uint32_t id) {
  if (contains(id)) return;
  if (n_ == kMax) {
    for (size_t i = 1; i < kMax; ++i) ids_[i - 1] = ids_[i];
    --n_;
  }
  ids_[n_++] = id;
}

EndpointSet::~EndpointSet() = default;

void EndpointSet::update(const std::vector<net::Address>& addrs, uint64_t version) {
  if (version == version_ && !eps_.empty()) return;
  version_ = version;
  // One address per pod (header comment): the family this host prefers,
  // when the name has any.
  bool any = std::any_of(addrs.begin(), addrs.end(), [&](const net::Address& a) { return a.family() == family_; });
  std::vector<Endpoint> next;
  next.reserve(addrs.size());
  for (const net::Address& a : addrs) {
    if (any && a.family() != family_) continue;
    net::Address with_port = a;
    with_port.setPort(port_);
    auto old = std::find_if(eps_.begin(), eps_.end(), [&](const Endpoint& e) { return e.addr == with_port; });
    if (old != eps_.end()) {
      next.push_back(*old);
      continue;
    }
    Endpoint e;
    e.addr = with_port;
    e.id = next_id_++;
    // An address that comes back keeps its count (the counter never goes back).
    std::string text = with_port.toString();
    auto g = std::find_if(gone_.begin(), gone_.end(), [&](const stats::EndpointRow& r) { return r.address == text; });
    if (g != gone_.end()) {
      e.ejections_total = g->ejections;
      gone_.erase(g);
    }
    next.push_back(e);
  }
  for (const Endpoint& e : eps_) {
    bool stays = std::any_of(next.begin(), next.end(), [&](const Endpoint& n) { return n.id == e.id; });
    if (!stays && e.ejections_total > 0) {
      gone_.push_back({e.addr.toString(), e.ejections_total, 0, false, e.last_ejection_us});
    }
  }
  eps_ = std::move(next);
  if (cursor_ >= eps_.size()) cursor_ = 0;
  publish();
}

const EndpointSet::Endpoint* EndpointSet::pick(const TriedEndpoints& tried, int64_t now_us) {
  size_t n = eps_.size();
  if (n == 0) return nullptr;
  // The passes of the header comment: untried and healthy, healthy,
  // untried, any.
  for (int pass = 0; pass < 4; ++pass) {
    bool need_untried = pass == 0 || pass == 2;
    bool need_healthy = pass <= 1;
    for (size_t k = 0; k < n; ++k) {
      size_t i = (cursor_ + k) % n;
      const Endpoint& e = eps_[i];
      if (need_untried && tried.contains(e.id)) continue;
      if (need_healthy && ejected(e, now_us)) continue;
      // Only a call's first attempt moves the cursor: a retry picked from
      // it must not make the next call start where the retry went (with
      // two addresses, one failing, every call would start on the failing
      // one).
      if (tried.size() == 0) cursor_ = (i + 1) % n;
      return &e;
    }
  }
  return nullptr;  // unreachable: pass 4 takes any
}

size_t EndpointSet::ejectedCount(int64_t now_us) const {
  size_t k = 0;
  for (const Endpoint& e : eps_) k += ejected(e, now_us) ? 1 : 0;
  return k;
}

void EndpointSet::report(uint32_t id, EndpointResult r, const pfc::OutlierPolicy& p, int64_t now_us) {
  if (r == EndpointResult::kNeutral || p.consecutive_failures == 0) return;
  auto it = std::find_if(eps_.begin(), eps_.end(), [&](const Endpoint& e) { return e.id == id; });
  if (it == eps_.end()) return;
  Endpoint& e = *it;
  if (r == EndpointResult::kSuccess) {
    e.failures = 0;
    // Back and serving for max_ejection since its last ejection ended: the
    // next ejection starts from `ejection` again.
    if (e.ejections > 0 && e.ejected_until_us + p.max_ejection_us <= now_us) e.ejections = 0;
    return;
  }
  if (ejected(e, now_us)) return;  // an attempt sent before the ejection: it is out already
  if (e.failures < p.consecutive_failures) ++e.failures;
  if (e.failures < p.consecutive_failures) return;
  // The max_ejected guard: floor(fraction x addresses) at once (a tiny
  // epsilon so that 0.5 x 4 is 2, whatever the double's rounding).
  double cap = std::floor(p.max_ejected * static_cast<double>(eps_.size()) + 1e-9);
  if (cap < 0) cap = 0;
  if (static_cast<double>(ejectedCount(now_us)) >= cap) return;  // stays at the threshold
  int64_t us = p.ejection_us > 0 ? p.ejection_us : 0;
  for (uint32_t k = 0; k < e.ejections && us < p.max_ejection_us; ++k) us *= 2;
  if (p.max_ejection_us > 0 && us > p.max_ejection_us) us = p.max_ejection_us;
  if (us <= 0) return;
  e.failures = 0;
  ++e.ejections;
  ++e.ejections_total;
  e.ejected_until_us = now_us + us;
  e.last_ejection_us = us;
  publish();
}

void EndpointSet::publish() {
  if (!sink_) return;
  stats::DestinationRows d;
  d.service = service_;
  d.destination = destination_;
  d.rows.reserve(eps_.size() + gone_.size());
  for (const Endpoint& e : eps_) {
    d.rows.push_back({e.addr.toString(), e.ejections_total, e.ejected_until_us, true, e.last_ejection_us});
  }
  for (const stats::EndpointRow& g : gone_) d.rows.push_back(g);
  sink_->publish(d);
}

Endpoints::~Endpoints() {
  // The worker frees its calls (and their EndpointSetRefs) first.
  sets_.clear();
}

EndpointSetRef Endpoints::get(std::string_view service, std::string_view host, uint16_t port, int64_t now_us) {
  if (now_us >= next_sweep_us_) {
    next_sweep_us_ = now_us + kSweepEveryUs;
    sweepIdle(now_us);
  }
  key_.assign(service);
  key_ += '\n';
  key_ += host;
  key_ += ':';
  key_ += std::to_string(port);
  auto it = sets_.find(key_);
  if (it == sets_.end()) {
    if (sets_.size() >= max_sets_) evictLeastRecentlyUsed();
    std::string destination = host.find(':') != std::string_view::npos
                                  ? "[" + std::string(host) + "]:" + std::to_string(port)
                                  : std::string(host) + ":" + std::to_string(port);
    it = sets_
             .emplace(key_,
                      std::make_unique<EndpointSet>(std::string(service), std::move(destination), port, sink_, family_))
             .first;
    if (sink_) sink_->sets.store(sets_.size(), std::memory_order_relaxed);
  }
  EndpointSet& set = *it->second;
  set.last_use_ = ++uses_;
  set.last_use_us_ = now_us;
  return EndpointSetRef(&set);
}

void Endpoints::forget(std::unordered_map<std::string, std::unique_ptr<EndpointSet>>::iterator it) {
  if (sink_) sink_->remove(it->second->service(), it->second->destination());
  sets_.erase(it);
  ++forgotten_;
  if (sink_) {
    sink_->sets.store(sets_.size(), std::memory_order_relaxed);
    sink_->forgotten.store(forgotten_, std::memory_order_relaxed);
  }
}

void Endpoints::sweepIdle(int64_t now_us) {
  for (auto it = sets_.begin(); it != sets_.end();) {
    const EndpointSet& s = *it->second;
    if (s.pins_ == 0 && s.last_use_us_ + kIdleUs <= now_us && s.ejectedCount(now_us) == 0) {
      auto next = std::next(it);
      forget(it);
      it = next;
    } else {
      ++it;
    }
  }
}

void Endpoints::evictLeastRecentlyUsed() {
  // Down to 7/8 of the cap, least recently used first, never a held set.
  size_t target = max_sets_ - max_sets_ / 8;
  if (target >= max_sets_) target = max_sets_ - 1;
  std::vector<std::pair<uint64_t, const std::string*>> free;
  free.reserve(sets_.size());
  for (const auto& [key, set] : sets_) {
    if (set->pins_ == 0) free.emplace_back(set->last_use_, &key);
  }
  size_t excess = sets_.size() - target;
  if (excess > free.size()) excess = free.size();
  std::partial_sort(free.begin(), free.begin() + static_cast<std::ptrdiff_t>(excess), free.end());
  // Keys copied out first: forget() erases the strings `free` points to.
  std::vector<std::string> keys;
  keys.reserve(excess);
  for (size_t i = 0; i < excess; ++i) keys.push_back(*free[i].second);
  for (const std::string& k : keys) forget(sets_.find(k));
}

}  // namespace mulligan::proxy
