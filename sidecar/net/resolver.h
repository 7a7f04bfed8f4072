// Resolver: "host:port" -> socket addresses, without ever blocking the loop.
// Numeric addresses answer at once; names go through libevent's evdns (the
// pod's /etc/resolv.conf, or --dns-server) and are cached per worker.
//
// A name's answer is EVERY address it has (A and AAAA records: a headless
// Service's pods), sorted (IPv4 first) so that a DNS server rotating its
// answer order does not look like a change. The cache serves an answer for
// `ttl_us`; after that it goes on serving it (stale) while ONE lookup runs in
// the background, and the next answer replaces it when it comes. So only the
// very first call for a name waits for DNS; later ones never do, and a name
// whose server stops answering keeps its last addresses (a failed refresh is
// tried again a TTL later). evdns gives no record TTLs through
// getaddrinfo, so the TTL is ours (--dns-ttl), as Envoy's dns_refresh_rate.
//
// A name whose lookup failed (NXDOMAIN, no address, SERVFAIL, a timeout) is
// remembered too, for kNegativeTtlUs (at most --dns-ttl) from the answer:
// calls in that time get the same error at once, with no query, so one
// client looping on a bad name does not flood the pod's name server (RFC
// 2308 §5 and §7, RFC 9520). After that the next call looks it up again and
// waits for the answer, as a first call does. Calls that come while a
// name's lookup is out wait for that lookup: one query, however many calls.
//
// Each answer carries a version, bumped whenever a name's address set
// changes: an EndpointSet (upstream/endpoints.h) compares it to the one it
// applied, and rebuilds only on a change.
//
// Which records are asked for is decided here, from the host's own
// addresses (HostFamilies), not by libevent's EVUTIL_AI_ADDRCONFIG: that
// heuristic (evutil.c, evutil_check_interfaces / evutil_v6addr_is_local_,
// libevent 2.1) counts no address in fc00::/7 as IPv6, so a pod with IPv4
// and only unique-local IPv6 — what dual-stack Kubernetes clusters commonly
// give pods (kind: fd00:10:244::/56) — was never asked AAAA, and a name
// with only AAAA records did not resolve there. See familiesToAsk().
//
// One per worker; not thread-safe.
#pragma once

#include <event2/dns.h>
#include <event2/event.h>
#include <ifaddrs.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "sidecar/net/address.h"

namespace mulligan::net {

// Which address families this host can reach others by, from its
// interfaces' addresses. IPv4: any address outside 127/8 (and 0.0.0.0);
// 169.254/16 counts, since EKS gives IPv6 pods their IPv4 egress through a
// 169.254.172.0/22 address. IPv6: any address but ::1, ::, fe80::/10
// (link-local: every interface has one, it reaches no routed destination)
// and multicast — unique-local fc00::/7 COUNTS (a pod's address in most
// dual-stack and IPv6-only clusters; libevent's ADDRCONFIG does not count
// it), as does site-local fec0::/10 (deprecated, but routed where used).
struct HostFamilies {
  bool ipv4 = false;
  bool ipv6 = false;
  bool operator==(const HostFamilies&) const = default;
};
// The families of the addresses in `list` (a getifaddrs() list; pure, for tests).
HostFamilies hostFamiliesOf(const ifaddrs* list);
// hostFamiliesOf(getifaddrs()); no family when getifaddrs fails. One netlink
// dump: call it at start and rarely (the Resolver re-reads it at most every
// Resolver::kInterfacesRecheckUs, when a lookup starts).
HostFamilies hostFamilies();
// What a lookup asks for on a host with `f` (the hints' ai_family):
//   both families      AF_UNSPEC: A and AAAA, in parallel;
//   IPv4 only          AF_INET: no AAAA query, whose addresses the host
//                      could not reach (one query per lookup instead of
//                      two, and no wait on a lost AAAA answer: evdns holds
//                      the A answer up to 3 s for the other, its
//                      getaddrinfo-allow-skew);
//   IPv6 only          AF_INET6 (an IPv6-only pod: an A record's address
//                      would fail to connect, and a CONNECT, which tries
//                      the answer's addresses in order, IPv4 first, would
//                      try it first);
//   neither            AF_UNSPEC (loopback only: test rigs, a pod whose
//                      network is not up yet — ask rather than guess).
// This is what RFC 3493's AI_ADDRCONFIG means ("only if ... configured on
// the local system"), with ULA counted as glibc counts it.
int familiesToAsk(HostFamilies f);

// The address family this host reaches others by: AF_INET when it has an
// IPv4 address (HostFamilies), else AF_INET6 when it has an IPv6 one
// (an IPv6-only pod), else AF_INET. For a name with addresses of both
// families (upstream/endpoints.h keeps one family). Reads the interfaces
// (getifaddrs) on every call: call it once, at start.
int preferredFamily();

// A worker's evdns_base: its name servers are those of /etc/resolv.conf
// (as the app in the pod sees them), or only `server` ("IP" or "IP:port")
// when it is not empty; `*server_ok` says whether `server` was usable. No
// resolv.conf: no name server (numeric addresses still work).
//
// Retransmission (why not evdns's defaults): a pod with both families asks
// A and AAAA at once (familiesToAsk), and once one has answered evdns waits
// "getaddrinfo-allow-skew" for the other, then answers with what it has.
// Its defaults wait 3 s there but send a lost query again only after 5 s
// ("timeout"), so one lost A packet failed the lookup with the AAAA's
// "no data" (502 "cannot resolve", and the same for every call during the
// negative TTL). Here an unanswered query goes again after 2 s, and the
// wait for the other family (5 s) outlasts two such sends. resolv.conf's
// own "options timeout:/attempts:" (a pod's dnsConfig) are read after
// these and win.
evdns_base* newDnsBase(event_base* base, const std::string& server, bool* server_ok);

// Frees `dns` with every lookup of ours called back first, so that
// nothing of them is left behind (evdns_base_free alone leaks each lookup
// still out: its evdns request, its deferred callback and our Pending).
// Call it at shutdown, after the Resolvers on `dns` are destroyed (which
// cancels their lookups) and before `base` is freed, on the thread that ran
// `base`'s loop, with that loop stopped. It runs `base`'s loop without
// blocking (EVLOOP_NONBLOCK) until no callback is due, so `base` must hold
// nothing else whose callbacks would touch freed state (the worker calls it
// last). Why this way (libevent 2.1, evdns.c): evdns never calls a lookup
// back inline — a cancel (evdns_getaddrinfo_cancel) only schedules the
// callback on the loop (reply_schedule_callback), and a cancelled lookup's
// callback reads its evdns_base (EVDNS_LOCK), so the loop must run while
// `dns` is alive; then evdns_base_free(dns, 0) has nothing of ours left.
// Not evdns_base_free(dns, 1): it fails what is in flight with
// DNS_ERR_SHUTDOWN through the same deferred callbacks, and the one for a
// name server's probe (the query evdns sends to a server it marked down)
// reads the name server it has just freed (nameserver_probe_callback
// returns early only on DNS_ERR_CANCEL).
void shutdownDns(event_base* base, evdns_base* dns);

class Resolver {
 public:
  static constexpr int64_t kDefaultTtlUs = 5'000'000;
  // How long a failed lookup is answered from the cache (when --dns-ttl is
  // not shorter). Short, because a failure is often transient (a server
  // blip, a Service created a moment later: CoreDNS itself caches a
  // cluster name's NXDOMAIN for its 5 s TTL) and the cost is failed calls;
  // long enough that a looping client costs a name server one query per
  // name and worker every 2 s instead of one per call. BIND caches SERVFAIL
  // for 1 s, nscd a host's failure for 20 s; RFC 9520 asks for at least 1 s.
  static constexpr int64_t kNegativeTtlUs = 2'000'000;
  using Clock = int64_t (*)();
  // How the host's families are read (hostFamilies unless a test scripts it).
  using Interfaces = HostFamilies (*)();
  // The host's families are read again, when a lookup starts, at most this
  // often: a pod's addresses are set before its containers start, so this
  // is for hosts whose IPv6 comes up late (router advertisements, DHCPv6)
  // and costs one netlink dump per worker per 30 s of lookups.
  static constexpr int64_t kInterfacesRecheckUs = 30'000'000;
  // Names cached at most: one more forgets an eighth of them, expired names
  // first, then others (their next call looks them up again).
  static constexpr size_t kMaxNames = 4096;

  // Every address of a name (port 0, sorted, IPv4 first) and the version of
  // that set. Valid during the callback only.
  struct Answer {
    const std::vector<Address>* addrs;
    uint64_t version;
  };
  using Callback = std::function<void(const Address* addr, const char* error)>;
  using ListCallback = std::function<void(const Answer* answer, const char* error)>;
  // A pending lookup; destroying it cancels the callback.
  class Request;

  // `clock` is what answers are timed by (the callers' now_us clock:
  // event::monotonicNowUs unless a test scripts it).
  // `interfaces` is how the host's address families are read
  // (hostFamilies unless a test scripts it): see familiesToAsk().
  explicit Resolver(evdns_base* dns, int64_t ttl_us = kDefaultTtlUs, Clock clock = nullptr,
                    Interfaces interfaces = nullptr);
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // One address of `host` (a name or IP literal, IPv6 without brackets) with
  // `port`: the first of resolveAll's answer (IPv4 preferred: pod networks
  // are mostly v4). For proxy-style requests (a CONNECT takes every address,
  // with resolveAll). Calls `cb` inline when the answer is known now
  // (numeric or cached) and returns null; otherwise returns a Request and
  // calls `cb` from the loop.
  std::unique_ptr<Request> resolve(const std::string& host, uint16_t port, int64_t now_us, Callback cb);
  // Every address of the name `host` (see the header comment), inline when
  // cached (even past its TTL: then a background refresh starts) and null,
  // else a Request and `cb` from the loop. An IP literal answers itself. A
  // name that failed within kNegativeTtlUs gets that failure's error inline.
  std::unique_ptr<Request> resolveAll(const std::string& host, int64_t now_us, ListCallback cb);
  // The address of a numeric "host:port" ("[v6]:port" for IPv6), or null
  // when it names a host (or is malformed): then resolve() it. The last
  // answer is remembered — a policy's upstream is the same string request
  // after request, and one compare beats splitting and parsing it each time.
  const Address* numericHostPort(std::string_view host_port);

  // Background refreshes started (for tests and the admin page).
  uint64_t refreshes() const { return refreshes_; }
  // Names cached now (for tests).
  size_t cachedNames() const { return cache_.size(); }
  // The ai_family the next lookup asks for (familiesToAsk of the host's
  // families as last read; for tests).
  int familyAsked() const { return family_asked_; }
  // Lookups started and not yet called back by evdns, by every Resolver
  // of the process (also those destroyed since): 0 after shutdownDns().
  // For tests: what used to leak at shutdown.
  static int64_t lookupsAlive() { return lookups_alive_.load(std::memory_order_relaxed); }

 private:
  friend class Request;
  // One lookup, what evdns calls back with. evdns always calls back exactly
  // once, also after a cancel — from the loop, so at shutdown only once
  // shutdownDns() has run it — and the Pending frees itself there. A first
  // lookup has the Requests waiting for it in `owners` (a destroyed Request
  // leaves; the last one to leave cancels the lookup); a background refresh
  // has none. Every Pending not yet called back is in its resolver's
  // `pending_`, so that ~Resolver can clear `resolver` in each (a cancelled
  // lookup's callback may come after the Resolver is gone).
  struct Pending {
    Pending() { lookups_alive_.fetch_add(1, std::memory_order_relaxed); }
    ~Pending() { lookups_alive_.fetch_sub(1, std::memory_order_relaxed); }
    Pending(const Pending&) = delete;
    Pending& operator=(const Pending&) = delete;
    Resolver* resolver = nullptr;
    bool refresh = false;
    std::string host;
    int64_t started_us = 0;
    std::vector<Request*> owners;
    // Set once started; cleared when answered or cancelled (no second cancel).
    evdns_getaddrinfo_request* req = nullptr;
  };
  struct Entry {
    std::vector<Address> addrs;  // port 0, sorted; empty for a failed name
    std::string error;           // a failed name: what its caller was told ("" = addresses)
    uint64_t version = 0;
    int64_t expires_us = 0;
    Pending* refreshing = nullptr;  // the background lookup in flight
  };
  static void onAnswer(int err, evutil_addrinfo* res, void* arg);
  // Starts evdns for `p` (which it owns from then on); false when evdns
  // answered inline (then `p` is gone already).
  evdns_getaddrinfo_request* lookup(Pending* p, bool* answered_inline);
  // Stores an answer for `host`; returns its entry.
  Entry& store(const std::string& host, std::vector<Address> addrs, int64_t now_us);
  // Remembers that `host` failed with `error`, until now_us + the negative
  // TTL; a name that has addresses keeps them (a refresh failure).
  void storeFailure(const std::string& host, const std::string& error, int64_t now_us);
  // A first lookup answered: cache it, then call every Request waiting.
  void answered(Pending* p, int err, std::vector<Address> addrs);
  void refreshed(const std::string& host, int err, std::vector<Address> addrs, int64_t started_us);
  // Forgets names down to 7/8 of kMaxNames, never `keep`.
  void trim(int64_t now_us, const std::string& keep);
  static std::vector<Address> addresses(int err, evutil_addrinfo* res);
  // Re-reads the host's families when kInterfacesRecheckUs has passed.
  void recheckInterfaces(int64_t now_us);

  static inline std::atomic<int64_t> lookups_alive_{0};

  evdns_base* dns_;
  int64_t ttl_us_;
  int64_t negative_ttl_us_;
  Clock clock_;
  Interfaces interfaces_;
  int family_asked_ = AF_UNSPEC;
  int64_t interfaces_read_us_ = 0;
  // Every lookup not yet called back (first lookups, refreshes, cancelled ones).
  std::unordered_set<Pending*> pending_;
  uint64_t next_version_ = 1;
  uint64_t refreshes_ = 0;
  std::unordered_map<std::string, Entry> cache_;
  // First lookups in flight, by name: later calls join them.
  std::unordered_map<std::string, Pending*> lookups_;
  // The last IP literal parsed, as an answer of its own (resolveAll).
  std::string last_literal_;
  std::vector<Address> last_literal_addrs_;
  std::string last_host_port_;  // numericHostPort's last numeric answer
  Address last_host_port_addr_;
};

class Resolver::Request {
 public:
  ~Request();

 private:
  friend class Resolver;
  Resolver* resolver_ = nullptr;
  Pending* pending_ = nullptr;  // the lookup waited for; null once answered
  ListCallback cb_;
};

}  // namespace mulligan::net
