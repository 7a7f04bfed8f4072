#include "sidecar/net/resolver.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

#include "sidecar/event/event_loop.h"

namespace mulligan::net {
namespace {

// The address bytes (no port) of an IPv4 or IPv6 address, for ordering.
std::string_view addrBytes(const Address& a) {
  if (a.family() == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(a.sa());
    return {reinterpret_cast<const char*>(&sin->sin_addr), sizeof sin->sin_addr};
  }
  const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(a.sa());
  return {reinterpret_cast<const char*>(&sin6->sin6_addr), sizeof sin6->sin6_addr};
}

bool addrLess(const Address& a, const Address& b) {
  if (a.family() != b.family()) return a.family() == AF_INET;  // IPv4 first
  return addrBytes(a) < addrBytes(b);
}

std::optional<Address> parseLiteral(const std::string& host) {
  if (host.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  Address a;
  auto* sin = reinterpret_cast<sockaddr_in*>(&a.storage);
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
  if (inet_pton(AF_INET, host.c_str(), &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    a.len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &sin6->sin6_addr) == 1) {
    sin6->sin6_family = AF_INET6;
    a.len = sizeof(sockaddr_in6);
  } else {
    return std::nullopt;
  }
  return a;
}

}  // namespace

HostFamilies hostFamiliesOf(const ifaddrs* list) {
  HostFamilies f;
  for (const ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr) continue;
    if (i->ifa_addr->sa_family == AF_INET) {
      uint32_t a = ntohl(reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr);
      if (a != 0 && (a >> 24) != 127) f.ipv4 = true;
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      const in6_addr& a = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr)->sin6_addr;
      if (!IN6_IS_ADDR_LOOPBACK(&a) && !IN6_IS_ADDR_UNSPECIFIED(&a) && !IN6_IS_ADDR_LINKLOCAL(&a) &&
          !IN6_IS_ADDR_MULTICAST(&a)) {
        f.ipv6 = true;  // ULA (fc00::/7) included: see the header
      }
    }
  }
  return f;
}

HostFamilies hostFamilies() {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return {};
  HostFamilies f = hostFamiliesOf(list);
  freeifaddrs(list);
  return f;
}

int familiesToAsk(HostFamilies f) {
  if (f.ipv4 && !f.ipv6) return AF_INET;
  if (f.ipv6 && !f.ipv4) return AF_INET6;
  return AF_UNSPEC;
}

int preferredFamily() {
  HostFamilies f = hostFamilies();
  return !f.ipv4 && f.ipv6 ? AF_INET6 : AF_INET;
}

namespace {

// Runs the callbacks due on `base` until none is (a callback may schedule
// another: evdns finishing the other half of an A+AAAA lookup). Bounded,
// should a callback keep rescheduling itself.
void runDueCallbacks(event_base* base) {
  for (int turn = 0; turn < 16 && event_base_get_num_events(base, EVENT_BASE_COUNT_ACTIVE) > 0; ++turn) {
    event_base_loop(base, EVLOOP_NONBLOCK);
  }
}

}  // namespace

evdns_base* newDnsBase(event_base* base, const std::string& server, bool* server_ok) {
  *server_ok = true;
  evdns_base* dns = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
  if (!dns) return nullptr;
  evdns_base_set_option(dns, "timeout:", "2");
  evdns_base_set_option(dns, "getaddrinfo-allow-skew:", "5");
  if (!server.empty()) {
    *server_ok = evdns_base_nameserver_ip_add(dns, server.c_str()) == 0;
  } else if (evdns_base_resolv_conf_parse(dns, DNS_OPTIONS_ALL, "/etc/resolv.conf") != 0) {
    evdns_base_free(dns, 0);
    dns = evdns_base_new(base, 0);
  }
  return dns;
}

void shutdownDns(event_base* base, evdns_base* dns) {
  if (base) runDueCallbacks(base);
  if (dns) evdns_base_free(dns, 0);
}

Resolver::Resolver(evdns_base* dns, int64_t ttl_us, Clock clock, Interfaces interfaces)
    : dns_(dns),
      ttl_us_(ttl_us),
      negative_ttl_us_(std::min(ttl_us, kNegativeTtlUs)),
      clock_(clock ? clock : &event::monotonicNowUs),
      interfaces_(interfaces ? interfaces : &hostFamilies) {
  if (dns_) {
    family_asked_ = familiesToAsk(interfaces_());
    interfaces_read_us_ = clock_();
  }
}

Resolver::~Resolver() {
  // Lookups not called back yet (refreshes, first lookups whose Requests
  // outlive us, cancelled ones): evdns calls them back later, from the loop
  // (at shutdown: shutdownDns), and they must find no resolver. Those still
  // out are cancelled: nobody is left to use their answer.
  for (Pending* p : pending_) {
    p->resolver = nullptr;
    if (p->req) evdns_getaddrinfo_cancel(p->req);
    p->req = nullptr;
  }
}

const Address* Resolver::numericHostPort(std::string_view host_port) {
  if (!last_host_port_.empty() && host_port == last_host_port_) return &last_host_port_addr_;
  std::optional<Address> a = Address::parseNumeric(host_port);
  if (!a) return nullptr;
  last_host_port_.assign(host_port);
  last_host_port_addr_ = *a;
  return &last_host_port_addr_;
}

std::unique_ptr<Resolver::Request> Resolver::resolve(const std::string& host, uint16_t port, int64_t now_us,
                                                     Callback cb) {
  if (port == 0) {
    cb(nullptr, "no port");
    return nullptr;
  }
  return resolveAll(host, now_us, [port, cb = std::move(cb)](const Answer* answer, const char* error) {
    if (!answer || answer->addrs->empty()) {
      cb(nullptr, error ? error : "no usable address");
      return;
    }
    Address a = answer->addrs->front();  // sorted: IPv4 first
    a.setPort(port);
    cb(&a, nullptr);
  });
}

std::unique_ptr<Resolver::Request> Resolver::resolveAll(const std::string& host, int64_t now_us, ListCallback cb) {
  // IP literals never touch DNS (the last one is remembered: no parse).
  if (!last_literal_.empty() && host == last_literal_) {
    Answer a{&last_literal_addrs_, 0};
    cb(&a, nullptr);
    return nullptr;
  }
  if (std::optional<Address> lit = parseLiteral(host)) {
    last_literal_ = host;
    last_literal_addrs_.assign(1, *lit);
    Answer a{&last_literal_addrs_, 0};
    cb(&a, nullptr);
    return nullptr;
  }
  if (auto it = cache_.find(host); it != cache_.end()) {
    Entry& e = it->second;
    if (!e.error.empty()) {
      // A failed name: the same error, no query, until it expires; then
      // this call looks it up again below (it may exist now) and waits.
      if (e.expires_us > now_us) {
        std::string error = e.error;  // (the callback may look up names that trim the cache)
        cb(nullptr, error.c_str());
        return nullptr;
      }
    } else {
      if (e.expires_us <= now_us && !e.refreshing && dns_) {
        // Stale: this call (and every one until the answer) gets the set we
        // have; one lookup refreshes it in the background.
        auto* p = new Pending();
        p->resolver = this;
        p->refresh = true;
        p->host = host;
        p->started_us = now_us;
        bool answered = false;
        lookup(p, &answered);
        ++refreshes_;
        // (lookup() marked the entry refreshing; an inline answer cleared it.)
        it = cache_.find(host);  // an inline answer may have replaced the entry
      }
      Answer a{&it->second.addrs, it->second.version};
      cb(&a, nullptr);
      return nullptr;
    }
  }
  if (!dns_) {
    cb(nullptr, "no DNS resolver configured");
    return nullptr;
  }
  std::unique_ptr<Request> r(new Request());
  r->resolver_ = this;
  r->cb_ = std::move(cb);
  if (auto it = lookups_.find(host); it != lookups_.end()) {
    // The name is being looked up already: wait for that answer.
    r->pending_ = it->second;
    it->second->owners.push_back(r.get());
    return r;
  }
  auto* p = new Pending();
  p->resolver = this;
  p->host = host;
  p->started_us = now_us;
  p->owners.push_back(r.get());
  r->pending_ = p;
  lookups_[host] = p;
  bool answered = false;
  lookup(p, &answered);
  if (answered) return nullptr;  // e.g. /etc/hosts: `cb` has run
  return r;
}

void Resolver::recheckInterfaces(int64_t now_us) {
  if (now_us - interfaces_read_us_ < kInterfacesRecheckUs) return;
  family_asked_ = familiesToAsk(interfaces_());
  interfaces_read_us_ = now_us;
}

evdns_getaddrinfo_request* Resolver::lookup(Pending* p, bool* answered_inline) {
  recheckInterfaces(p->started_us);
  evutil_addrinfo hints{};
  // The families this host can reach (familiesToAsk), decided here: NOT
  // EVUTIL_AI_ADDRCONFIG, which would turn AF_UNSPEC into AF_INET on a host
  // with IPv4 and only unique-local IPv6 (see the header) and skip AAAA.
  hints.ai_family = family_asked_;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  // An inline answer frees `p`; it shows as the first owner's pending_
  // cleared (a first lookup) or the entry no longer refreshing with `p`.
  Request* owner = p->refresh ? nullptr : p->owners.front();
  std::string host = p->host;
  bool refresh = p->refresh;
  if (refresh) cache_[host].refreshing = p;
  pending_.insert(p);
  evdns_getaddrinfo_request* req = evdns_getaddrinfo(dns_, host.c_str(), nullptr, &hints, &Resolver::onAnswer, p);
  if (!refresh) {
    *answered_inline = owner->pending_ == nullptr;
  } else {
    auto it = cache_.find(host);
    *answered_inline = it == cache_.end() || it->second.refreshing != p;
  }
  if (!*answered_inline) p->req = req;
  return req;
}

std::vector<Address> Resolver::addresses(int err, evutil_addrinfo* res) {
  std::vector<Address> out;
  if (err != 0) return out;
  for (evutil_addrinfo* ai = res; ai; ai = ai->ai_next) {
    std::optional<Address> a = Address::fromSockaddr(ai->ai_addr, static_cast<socklen_t>(ai->ai_addrlen));
    if (!a) continue;
    a->setPort(0);
    if (std::find(out.begin(), out.end(), *a) == out.end()) out.push_back(*a);
  }
  std::sort(out.begin(), out.end(), addrLess);
  return out;
}

Resolver::Entry& Resolver::store(const std::string& host, std::vector<Address> addrs, int64_t now_us) {
  auto [it, inserted] = cache_.try_emplace(host);
  Entry& e = it->second;
  if (inserted || e.addrs != addrs) {
    e.addrs = std::move(addrs);
    e.version = next_version_++;
  }
  e.error.clear();
  e.expires_us = now_us + ttl_us_;
  if (inserted && cache_.size() > kMaxNames) trim(now_us, host);
  return cache_.find(host)->second;
}

void Resolver::storeFailure(const std::string& host, const std::string& error, int64_t now_us) {
  auto [it, inserted] = cache_.try_emplace(host);
  Entry& e = it->second;
  if (!inserted && e.error.empty()) return;  // its addresses stay (see refreshed())
  e.error = error;
  e.expires_us = now_us + negative_ttl_us_;
  if (inserted && cache_.size() > kMaxNames) trim(now_us, host);
}

void Resolver::trim(int64_t now_us, const std::string& keep) {
  // Down to 7/8 of the cap, so that a flood of new names pays one scan per
  // kMaxNames/8 names, not one per name. Expired names go first; if that is
  // not enough (every name fresh: more new names within a TTL than the
  // cap), any others, in the map's order: a forgotten name is looked up
  // again by its next call. Never `keep` (the name just stored: its caller
  // answers from the entry), nor a name whose refresh is in flight (its
  // Pending points at the entry's resolver, which ~Resolver must reach).
  size_t target = kMaxNames - kMaxNames / 8;
  for (int pass = 0; pass < 2 && cache_.size() > target; ++pass) {
    for (auto it = cache_.begin(); it != cache_.end() && cache_.size() > target;) {
      if (!it->second.refreshing && (pass == 1 || it->second.expires_us <= now_us) && it->first != keep) {
        it = cache_.erase(it);
      } else {
        ++it;
      }
    }
  }
}

void Resolver::refreshed(const std::string& host, int err, std::vector<Address> addrs, int64_t started_us) {
  auto it = cache_.find(host);
  if (it == cache_.end()) return;
  it->second.refreshing = nullptr;
  if (addrs.empty()) {
    // The name's server failed us (or says it has none): keep serving the
    // last set rather than fail every call; ask again a TTL later.
    (void)err;
    it->second.expires_us = started_us + ttl_us_;
    return;
  }
  store(host, std::move(addrs), started_us);
}

Resolver::Request::~Request() {
  if (!pending_) return;
  std::vector<Request*>& owners = pending_->owners;
  owners.erase(std::find(owners.begin(), owners.end(), this));
  if (!owners.empty() || !pending_->req) return;
  // Nobody waits for the answer any more: cancel the query (evdns calls
  // back with EVUTIL_EAI_CANCEL, which is cached as nothing). A later call
  // starts a lookup of its own.
  if (Resolver* r = pending_->resolver) {
    auto it = r->lookups_.find(pending_->host);
    if (it != r->lookups_.end() && it->second == pending_) r->lookups_.erase(it);
  }
  evdns_getaddrinfo_cancel(pending_->req);
  pending_->req = nullptr;  // (its callback comes from the loop: no second cancel, from ~Resolver)
}

void Resolver::onAnswer(int err, evutil_addrinfo* res, void* arg) {
  std::unique_ptr<Pending> p(static_cast<Pending*>(arg));
  p->req = nullptr;  // answered: a Request destroyed from here on cancels nothing
  if (p->resolver) p->resolver->pending_.erase(p.get());
  std::vector<Address> addrs = addresses(err, res);
  if (res) evutil_freeaddrinfo(res);
  if (!p->resolver) {
    for (Request* r : p->owners) r->pending_ = nullptr;  // (the resolver is gone)
    return;
  }
  if (p->refresh) {
    p->resolver->refreshed(p->host, err, std::move(addrs), p->started_us);
    return;
  }
  p->resolver->answered(p.get(), err, std::move(addrs));
}

void Resolver::answered(Pending* p, int err, std::vector<Address> addrs) {
  if (auto it = lookups_.find(p->host); it != lookups_.end() && it->second == p) lookups_.erase(it);
  if (err == EVUTIL_EAI_CANCEL) {
    for (Request* r : p->owners) r->pending_ = nullptr;  // (none: the last one cancelled)
    return;
  }
  std::string why;
  Answer a{nullptr, 0};
  std::vector<Address> answer;
  if (addrs.empty()) {
    why = "cannot resolve \"" + p->host + "\": " + (err ? evutil_gai_strerror(err) : "no usable address");
    // Timed from the answer, not the query: a timeout took seconds.
    storeFailure(p->host, why, clock_());
  } else {
    Entry& e = store(p->host, std::move(addrs), p->started_us);
    // A copy: a callback below may look up other names and trim the cache.
    answer = e.addrs;
    a = {&answer, e.version};
  }
  // One by one: a callback may destroy another waiting Request (it leaves
  // `owners` then) or its own.
  while (!p->owners.empty()) {
    Request* r = p->owners.front();
    p->owners.erase(p->owners.begin());
    r->pending_ = nullptr;
    ListCallback cb = std::move(r->cb_);
    cb(a.addrs ? &a : nullptr, a.addrs ? nullptr : why.c_str());
  }
}

}  // namespace mulligan::net
