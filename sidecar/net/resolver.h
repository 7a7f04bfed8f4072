// Resolver: "host:port" -> socket address, without ever blocking the loop.
// Numeric addresses answer at once; names go through libevent's evdns
// (the pod's /etc/resolv.conf) and are cached per worker for a short TTL so
// that a busy destination costs one lookup per TTL, not one per request.
// One per worker; not thread-safe.
#pragma once

#include <event2/dns.h>

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "sidecar/net/address.h"

namespace mulligan::net {

class Resolver {
 public:
  using Callback = std::function<void(const Address* addr, const char* error)>;
  // A pending lookup; destroying it cancels the callback.
  class Request;

  Resolver(evdns_base* dns, int64_t ttl_us = 5'000'000) : dns_(dns), ttl_us_(ttl_us) {}
  ~Resolver();

  // Resolves `host` (a name or IP literal, IPv6 without brackets) and `port`.
  // Calls `cb` inline when the answer is known now (numeric or cached) and
  // returns null; otherwise returns a Request and calls `cb` from the loop.
  std::unique_ptr<Request> resolve(const std::string& host, uint16_t port, int64_t now_us, Callback cb);
  // The address of a numeric "host:port" ("[v6]:port" for IPv6), or null
  // when it names a host (or is malformed): then resolve() it. The last
  // answer is remembered — a policy's upstream is the same string request
  // after request, and one compare beats splitting and parsing it each time.
  const Address* numericHostPort(std::string_view host_port);

 private:
  struct CacheEntry {
    Address addr;
    int64_t expires_us;
  };
  friend class Request;
  evdns_base* dns_;
  int64_t ttl_us_;
  // The last IP literal parsed and its address: a policy's upstream
  // ("127.0.0.1:9000") is the same literal request after request, and a
  // string compare is cheaper than inet_pton each time.
  std::string last_literal_;
  Address last_literal_addr_;
  std::unordered_map<std::string, CacheEntry> cache_;
  std::string last_host_port_;  // numericHostPort's last numeric answer
  Address last_host_port_addr_;
};

class Resolver::Request {
 public:
  ~Request();

 private:
  friend class Resolver;
  // What evdns calls back with. evdns always calls back exactly once, also
  // after a cancel, so the Pending frees itself there; a cancelled Request
  // has cleared `owner` first.
  struct Pending {
    Request* owner;
  };
  static void onAnswer(int err, evutil_addrinfo* res, void* arg);
  Resolver* resolver_ = nullptr;
  evdns_getaddrinfo_request* req_ = nullptr;
  Pending* pending_ = nullptr;
  std::string key_;
  uint16_t port_ = 0;
  int64_t now_us_ = 0;
  Callback cb_;
};

}  // namespace mulligan::net
