#include "sidecar/net/resolver.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace mulligan::net {

Resolver::~Resolver() = default;

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
  // IP literals never touch DNS (parsed in place: no strings built per request).
  if (port != 0 && !last_literal_.empty() && host == last_literal_) {
    Address a = last_literal_addr_;
    a.setPort(port);
    cb(&a, nullptr);
    return nullptr;
  }
  if (port != 0 && host.size() < INET6_ADDRSTRLEN) {
    Address a;
    auto* sin = reinterpret_cast<sockaddr_in*>(&a.storage);
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
    if (inet_pton(AF_INET, host.c_str(), &sin->sin_addr) == 1) {
      sin->sin_family = AF_INET;
      a.len = sizeof(sockaddr_in);
    } else if (inet_pton(AF_INET6, host.c_str(), &sin6->sin6_addr) == 1) {
      sin6->sin6_family = AF_INET6;
      a.len = sizeof(sockaddr_in6);
    }
    if (a.len != 0) {
      last_literal_ = host;
      last_literal_addr_ = a;
      a.setPort(port);
      cb(&a, nullptr);
      return nullptr;
    }
  }
  if (auto it = cache_.find(host); it != cache_.end()) {
    if (it->second.expires_us > now_us) {
      Address a = it->second.addr;
      a.setPort(port);
      cb(&a, nullptr);
      return nullptr;
    }
    cache_.erase(it);
  }
  if (!dns_) {
    cb(nullptr, "no DNS resolver configured");
    return nullptr;
  }
  std::unique_ptr<Request> r(new Request());
  r->resolver_ = this;
  r->key_ = host;
  r->port_ = port;
  r->now_us_ = now_us;
  r->cb_ = std::move(cb);
  r->pending_ = new Request::Pending{r.get()};
  evutil_addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
  Request::Pending* pending = r->pending_;
  // May call back inline (e.g. /etc/hosts); then `pending` is already freed
  // and the request has delivered its answer.
  evdns_getaddrinfo_request* req =
      evdns_getaddrinfo(dns_, host.c_str(), nullptr, &hints, &Request::onAnswer, pending);
  if (r->pending_ == nullptr) return nullptr;
  r->req_ = req;
  return r;
}

Resolver::Request::~Request() {
  if (pending_) {
    pending_->owner = nullptr;
    if (req_) evdns_getaddrinfo_cancel(req_);
  }
}

void Resolver::Request::onAnswer(int err, evutil_addrinfo* res, void* arg) {
  auto* pending = static_cast<Pending*>(arg);
  Request* r = pending->owner;
  delete pending;
  if (!r) {
    if (res) evutil_freeaddrinfo(res);
    return;
  }
  r->pending_ = nullptr;
  r->req_ = nullptr;
  std::optional<Address> addr;
  // Prefer IPv4 when both exist: pod networks are mostly v4, and the first
  // answer of the family we can reach is what a plain client would use.
  for (int pass = 0; pass < 2 && !addr && err == 0; ++pass) {
    for (evutil_addrinfo* ai = res; ai; ai = ai->ai_next) {
      if ((pass == 0) != (ai->ai_family == AF_INET)) continue;
      addr = Address::fromSockaddr(ai->ai_addr, static_cast<socklen_t>(ai->ai_addrlen));
      if (addr) break;
    }
  }
  if (res) evutil_freeaddrinfo(res);
  Callback cb = std::move(r->cb_);
  if (!addr) {
    std::string why = std::string("cannot resolve \"") + r->key_ + "\": " +
                      (err ? evutil_gai_strerror(err) : "no usable address");
    cb(nullptr, why.c_str());
    return;
  }
  addr->setPort(r->port_);
  r->resolver_->cache_[r->key_] = CacheEntry{*addr, r->now_us_ + r->resolver_->ttl_us_};
  cb(&*addr, nullptr);
}

}  // namespace mulligan::net
