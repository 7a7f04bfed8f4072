// Resolver: IP literals answer at once (and are remembered); names go to
// a name server of the test's own (TinyDns) through evdns, asking for the
// address families the (scripted) host has; lookups still out at shutdown
// are called back and freed.
#include "sidecar/net/resolver.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace mulligan::net {
namespace {

TEST(ResolverTest, NumericHostPortAnswersLiteralsAndRemembersTheLast) {
  Resolver r(nullptr);
  const Address* a = r.numericHostPort("127.0.0.1:9000");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->toString(), "127.0.0.1:9000");
  EXPECT_EQ(r.numericHostPort("127.0.0.1:9000"), a);  // the remembered answer
  const Address* b = r.numericHostPort("10.1.2.3:80");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->toString(), "10.1.2.3:80");
  const Address* v6 = r.numericHostPort("[::1]:8443");
  ASSERT_NE(v6, nullptr);
  EXPECT_EQ(v6->port(), 8443);
  EXPECT_EQ(v6->family(), AF_INET6);
}

TEST(ResolverTest, NumericHostPortLeavesNamesAndNonsenseAlone) {
  Resolver r(nullptr);
  ASSERT_NE(r.numericHostPort("127.0.0.1:9000"), nullptr);
  for (const char* s : {"backend.svc:80", "localhost:80", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:70000",
                        "::1:80", "[::1]", ""}) {
    EXPECT_EQ(r.numericHostPort(s), nullptr) << s;
  }
  // A miss does not disturb the remembered answer.
  const Address* a = r.numericHostPort("127.0.0.1:9000");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->port(), 9000);
}

TEST(ResolverTest, ResolveAllAnswersAnIpLiteralInlineAsASetOfOne) {
  Resolver r(nullptr);
  int calls = 0;
  auto req = r.resolveAll("10.1.2.3", 0, [&](const Resolver::Answer* a, const char* error) {
    ++calls;
    ASSERT_NE(a, nullptr) << error;
    ASSERT_EQ(a->addrs->size(), 1u);
    EXPECT_EQ((*a->addrs)[0].toString(), "10.1.2.3:0");
  });
  EXPECT_EQ(req, nullptr);
  EXPECT_EQ(calls, 1);
  // resolve(): one address, with the port.
  req = r.resolve("fd00::7", 8080, 0, [&](const Address* a, const char* error) {
    ++calls;
    ASSERT_NE(a, nullptr) << error;
    EXPECT_EQ(a->toString(), "[fd00::7]:8080");
  });
  EXPECT_EQ(calls, 2);
}

TEST(ResolverTest, ANameWithoutADnsBaseFailsInline) {
  Resolver r(nullptr);
  const char* why = nullptr;
  auto req = r.resolveAll("svc.test", 0, [&](const Resolver::Answer* a, const char* error) {
    EXPECT_EQ(a, nullptr);
    why = error;
  });
  EXPECT_EQ(req, nullptr);
  ASSERT_NE(why, nullptr);
}

// Names from an /etc/hosts-style file answer inline (evdns reads it first),
// so every one is cached at once, all fresh (one instant, a TTL of 5 s).
TEST(ResolverTest, ManyFreshNamesNeverGrowTheCachePastTheCap) {
  char path[] = "/tmp/mulligan-resolver-hosts-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  FILE* f = fdopen(fd, "w");
  constexpr size_t kNames = Resolver::kMaxNames + Resolver::kMaxNames / 2;
  for (size_t i = 0; i < kNames; ++i) std::fprintf(f, "10.0.%zu.%zu h%zu.test\n", i / 250, i % 250 + 1, i);
  std::fclose(f);
  event_base* base = event_base_new();
  evdns_base* dns = evdns_base_new(base, 0);
  ASSERT_EQ(evdns_base_load_hosts(dns, path), 0);
  ::unlink(path);
  {
    Resolver r(dns);
    size_t answered = 0;
    size_t most = 0;
    for (size_t i = 0; i < kNames; ++i) {
      auto req = r.resolveAll("h" + std::to_string(i) + ".test", 1'000'000,
                              [&](const Resolver::Answer* a, const char*) { answered += a ? 1 : 0; });
      EXPECT_EQ(req, nullptr);  // inline
      most = std::max(most, r.cachedNames());
    }
    EXPECT_EQ(answered, kNames);
    EXPECT_LE(most, Resolver::kMaxNames);
    // Forgotten an eighth at a time, not down to nothing.
    EXPECT_GT(r.cachedNames(), Resolver::kMaxNames / 2);
  }
  evdns_base_free(dns, 0);
  event_base_free(base);
}

// A name server of the test's own, on a UDP socket in the test's event loop
// (evdns queries it for real): A queries for a name in `a` answer its
// IPv4 address, AAAA queries for a name in `aaaa` its IPv6 one; a name in
// one map only answers the other type with nothing (NOERROR), any other
// name NXDOMAIN — or SERVFAIL for every name while `servfail` is set.
// While `hold` is set, queries are kept unanswered until release(). Counts
// the A and AAAA queries per name (lower case: evdns randomises the case,
// RFC draft 0x20).
class TinyDns {
 public:
  explicit TinyDns(event_base* base) {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
    socklen_t len = sizeof sin;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sin), &len);
    port_ = ntohs(sin.sin_port);
    ev_ = event_new(base, fd_, EV_READ | EV_PERSIST, &TinyDns::onRead, this);
    event_add(ev_, nullptr);
  }
  ~TinyDns() {
    event_free(ev_);
    ::close(fd_);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int aQueries(const std::string& name) const {
    auto it = a_queries_.find(name);
    return it == a_queries_.end() ? 0 : it->second;
  }
  int aaaaQueries(const std::string& name) const {
    auto it = aaaa_queries_.find(name);
    return it == aaaa_queries_.end() ? 0 : it->second;
  }
  // Queries seen, of any type.
  int queries() const { return queries_; }
  void release() {
    hold = false;
    for (auto& [q, peer] : held_) answer(q, peer);
    held_.clear();
  }

  std::map<std::string, std::string> a;
  std::map<std::string, std::string> aaaa;
  bool servfail = false;
  bool hold = false;

 private:
  static void onRead(evutil_socket_t, short, void* arg) { static_cast<TinyDns*>(arg)->read(); }
  void read() {
    for (;;) {
      uint8_t buf[512];
      sockaddr_in peer{};
      socklen_t len = sizeof peer;
      ssize_t n = ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&peer), &len);
      if (n < 12) return;
      std::vector<uint8_t> q(buf, buf + n);
      auto [name, qtype, end] = question(q);
      ++queries_;
      if (qtype == 1) ++a_queries_[name];
      if (qtype == 28) ++aaaa_queries_[name];
      if (hold) {
        held_.emplace_back(std::move(q), peer);
      } else {
        answer(q, peer);
      }
    }
  }
  static std::tuple<std::string, int, size_t> question(const std::vector<uint8_t>& q) {
    std::string name;
    size_t i = 12;
    while (i < q.size() && q[i] != 0) {
      if (!name.empty()) name += '.';
      for (size_t k = 1; k <= q[i] && i + k < q.size(); ++k) name += static_cast<char>(std::tolower(q[i + k]));
      i += 1 + q[i];
    }
    int qtype = i + 2 < q.size() ? (q[i + 1] << 8 | q[i + 2]) : 0;
    return {name, qtype, std::min(i + 5, q.size())};
  }
  void answer(const std::vector<uint8_t>& q, const sockaddr_in& peer) {
    auto [name, qtype, end] = question(q);
    // The question as asked (evdns checks that the answer repeats it).
    std::vector<uint8_t> r(q.begin(), q.begin() + end);
    r[4] = 0, r[5] = 1;                                   // QDCOUNT 1
    r[6] = r[7] = r[8] = r[9] = r[10] = r[11] = 0;        // no answers yet
    auto it = a.find(name);
    auto it6 = aaaa.find(name);
    if (servfail) {
      r[2] = 0x81, r[3] = 0x82;  // SERVFAIL
    } else if (it == a.end() && it6 == aaaa.end()) {
      r[2] = 0x81, r[3] = 0x83;  // NXDOMAIN
    } else {
      r[2] = 0x81, r[3] = 0x80;
      if (qtype == 1 && it != a.end()) {
        r[7] = 1;
        const uint8_t rr[] = {0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4};
        r.insert(r.end(), rr, rr + sizeof rr);
        in_addr ip{};
        inet_pton(AF_INET, it->second.c_str(), &ip);
        const auto* b = reinterpret_cast<const uint8_t*>(&ip);
        r.insert(r.end(), b, b + 4);
      } else if (qtype == 28 && it6 != aaaa.end()) {
        r[7] = 1;
        const uint8_t rr[] = {0xC0, 0x0C, 0, 28, 0, 1, 0, 0, 0, 1, 0, 16};
        r.insert(r.end(), rr, rr + sizeof rr);
        in6_addr ip{};
        inet_pton(AF_INET6, it6->second.c_str(), &ip);
        const auto* b = reinterpret_cast<const uint8_t*>(&ip);
        r.insert(r.end(), b, b + 16);
      }
    }
    ::sendto(fd_, r.data(), r.size(), 0, reinterpret_cast<const sockaddr*>(&peer), sizeof peer);
  }

  int fd_ = -1;
  uint16_t port_ = 0;
  event* ev_ = nullptr;
  std::map<std::string, int> a_queries_;
  std::map<std::string, int> aaaa_queries_;
  int queries_ = 0;
  std::vector<std::pair<std::vector<uint8_t>, sockaddr_in>> held_;
};

// The families of a host whose interfaces have `addrs` (hostFamiliesOf on
// an ifaddrs list built here, as getifaddrs would give it).
HostFamilies familiesOf(const std::vector<std::string>& addrs) {
  std::vector<sockaddr_storage> ss(addrs.size());
  std::vector<ifaddrs> ifs(addrs.size() + 1);  // and one with no address, as an interface without one shows
  for (size_t i = 0; i < addrs.size(); ++i) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss[i]);
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss[i]);
    if (inet_pton(AF_INET, addrs[i].c_str(), &sin->sin_addr) == 1) {
      sin->sin_family = AF_INET;
    } else {
      EXPECT_EQ(inet_pton(AF_INET6, addrs[i].c_str(), &sin6->sin6_addr), 1) << addrs[i];
      sin6->sin6_family = AF_INET6;
    }
    ifs[i].ifa_addr = reinterpret_cast<sockaddr*>(&ss[i]);
  }
  for (size_t i = 0; i + 1 < ifs.size(); ++i) ifs[i].ifa_next = &ifs[i + 1];
  return hostFamiliesOf(&ifs[0]);
}

// A pod's interfaces, as the tests script them (Resolver's `interfaces`).
std::vector<std::string> g_interfaces;
HostFamilies scriptedInterfaces() { return familiesOf(g_interfaces); }

// kind's dual-stack pods: IPv4 and unique-local IPv6 (fd00:10:244::/56).
const std::vector<std::string> kDualStackPod = {"127.0.0.1", "::1", "10.244.0.5", "fd00:10:244::5", "fe80::1"};
const std::vector<std::string> kIpv4Pod = {"127.0.0.1", "::1", "10.244.0.5", "fe80::1"};
const std::vector<std::string> kIpv6Pod = {"127.0.0.1", "::1", "fd00:10:244::5", "fe80::1"};

TEST(HostFamiliesTest, UniqueLocalIpv6CountsLoopbackAndLinkLocalDoNot) {
  EXPECT_EQ(familiesOf(kDualStackPod), (HostFamilies{.ipv4 = true, .ipv6 = true}));
  EXPECT_EQ(familiesOf(kIpv4Pod), (HostFamilies{.ipv4 = true, .ipv6 = false}));
  EXPECT_EQ(familiesOf(kIpv6Pod), (HostFamilies{.ipv4 = false, .ipv6 = true}));
  EXPECT_EQ(familiesOf({"127.0.0.1", "127.0.0.2", "::1", "fe80::1", "0.0.0.0", "::"}), HostFamilies{});
  // fc00::/7 is both halves; a global address counts too.
  EXPECT_EQ(familiesOf({"fc12::1"}), (HostFamilies{.ipv4 = false, .ipv6 = true}));
  EXPECT_EQ(familiesOf({"2001:db8::1"}), (HostFamilies{.ipv4 = false, .ipv6 = true}));
  // An EKS IPv6 pod reaches IPv4 through its 169.254.172.0/22 address.
  EXPECT_EQ(familiesOf({"169.254.172.9", "2600:1f14::5"}), (HostFamilies{.ipv4 = true, .ipv6 = true}));
}

TEST(HostFamiliesTest, OnlyTheFamiliesTheHostHasAreAskedFor) {
  EXPECT_EQ(familiesToAsk({.ipv4 = true, .ipv6 = true}), AF_UNSPEC);
  EXPECT_EQ(familiesToAsk({.ipv4 = true, .ipv6 = false}), AF_INET);
  EXPECT_EQ(familiesToAsk({.ipv4 = false, .ipv6 = true}), AF_INET6);
  EXPECT_EQ(familiesToAsk({}), AF_UNSPEC);  // loopback only: ask, do not guess
}

// The scripted clock the resolver times answers by (the calls' now_us).
int64_t g_now_us = 0;
int64_t scriptedNow() { return g_now_us; }

// An event loop with an evdns base pointed at a TinyDns only.
class ResolverDnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = event_base_new();
    dns_server_ = std::make_unique<TinyDns>(base_);
    dns_ = evdns_base_new(base_, 0);
    ASSERT_EQ(evdns_base_nameserver_ip_add(dns_, dns_server_->address().c_str()), 0);
  }
  void TearDown() override {
    dns_server_.reset();
    if (dns_) shutdownDns(base_, dns_);
    event_base_free(base_);
  }
  // One call at `now_us`: the loop runs until it is answered. Returns the
  // error ("" = an address) and whether it was answered inline.
  struct Result {
    std::string error;
    bool inline_answer = false;
  };
  Result call(Resolver& r, const std::string& host, int64_t now_us, std::vector<std::string>* addrs = nullptr) {
    bool done = false;
    Result out;
    g_now_us = now_us;
    auto req = r.resolveAll(host, now_us, [&](const Resolver::Answer* a, const char* error) {
      done = true;
      out.error = a ? "" : (error ? error : "(null)");
      if (a && addrs) {
        addrs->clear();
        for (const Address& x : *a->addrs) addrs->push_back(x.toString());
      }
    });
    out.inline_answer = done;
    while (!done) event_base_loop(base_, EVLOOP_ONCE);
    return out;
  }

  event_base* base_ = nullptr;
  evdns_base* dns_ = nullptr;
  std::unique_ptr<TinyDns> dns_server_;
};

// Failed before the negative cache: each call to a name that does not
// exist sent its own query (10 calls, 10 A queries), so one client looping
// on a bad name flooded the pod's name server.
TEST_F(ResolverDnsTest, AMissingNameIsAskedOnceWithinTheNegativeTtl) {
  Resolver r(dns_, 60'000'000, &scriptedNow);
  Result first = call(r, "missing.test", 1'000'000);
  EXPECT_FALSE(first.inline_answer);
  EXPECT_EQ(first.error.rfind("cannot resolve \"missing.test\": ", 0), 0u) << first.error;
  for (int i = 1; i < 10; ++i) {
    Result again = call(r, "missing.test", 1'000'000 + i * 100'000);
    EXPECT_TRUE(again.inline_answer);
    EXPECT_EQ(again.error, first.error);  // the caller sees what the lookup said
  }
  EXPECT_EQ(dns_server_->aQueries("missing.test"), 1);
  // After the negative TTL the name is asked again (it may exist now), and
  // that call waits for the answer, as a first call does.
  dns_server_->a["missing.test"] = "10.0.0.7";
  Result later = call(r, "missing.test", 1'000'000 + Resolver::kNegativeTtlUs);
  EXPECT_FALSE(later.inline_answer);
  EXPECT_EQ(later.error, "");
  EXPECT_EQ(dns_server_->aQueries("missing.test"), 2);
}

// SERVFAIL (and a timeout: the same path, with evdns' own error) is cached
// as NXDOMAIN is; --dns-ttl shorter than the negative TTL bounds it.
TEST_F(ResolverDnsTest, AServerFailureIsCachedNoLongerThanTheTtl) {
  dns_server_->servfail = true;
  Resolver r(dns_, 500'000, &scriptedNow);  // --dns-ttl 500ms
  Result first = call(r, "flaky.test", 1'000'000);
  EXPECT_NE(first.error, "");
  // (evdns itself asks again after a SERVFAIL, within one lookup.)
  int one_lookup = dns_server_->aQueries("flaky.test");
  Result cached = call(r, "flaky.test", 1'499'999);
  EXPECT_TRUE(cached.inline_answer);
  EXPECT_EQ(cached.error, first.error);
  EXPECT_EQ(dns_server_->aQueries("flaky.test"), one_lookup);
  dns_server_->servfail = false;
  dns_server_->a["flaky.test"] = "10.0.0.8";
  EXPECT_EQ(call(r, "flaky.test", 1'500'000).error, "");
  EXPECT_GT(dns_server_->aQueries("flaky.test"), one_lookup);
}

// Calls that arrive while a name's lookup is out wait for that lookup
// instead of each sending their own.
TEST_F(ResolverDnsTest, CallsInFlightOnOneNameShareOneQuery) {
  Resolver r(dns_, 60'000'000, &scriptedNow);
  dns_server_->hold = true;
  g_now_us = 1'000'000;
  std::vector<std::string> errors;
  std::vector<std::unique_ptr<Resolver::Request>> reqs;
  for (int i = 0; i < 5; ++i) {
    reqs.push_back(r.resolveAll("gone.test", 1'000'000, [&](const Resolver::Answer* a, const char* error) {
      errors.push_back(a ? "" : error);
    }));
    ASSERT_TRUE(reqs.back());
  }
  reqs[2].reset();  // one caller gives up: the others still get the answer
  while (dns_server_->aQueries("gone.test") == 0) event_base_loop(base_, EVLOOP_ONCE);
  dns_server_->release();
  while (errors.size() < 4) event_base_loop(base_, EVLOOP_ONCE);
  event_base_loop(base_, EVLOOP_NONBLOCK);
  EXPECT_EQ(errors.size(), 4u);  // not the caller that gave up
  EXPECT_EQ(dns_server_->aQueries("gone.test"), 1);
  for (const std::string& e : errors) EXPECT_EQ(e.rfind("cannot resolve \"gone.test\"", 0), 0u) << e;
}

// When every caller gives up, the lookup is cancelled and nothing is
// remembered: the next call asks again.
TEST_F(ResolverDnsTest, ALookupEveryCallerGaveUpOnIsCancelledAndNotCached) {
  Resolver r(dns_, 60'000'000, &scriptedNow);
  dns_server_->hold = true;
  g_now_us = 1'000'000;
  bool called = false;
  auto a = r.resolveAll("left.test", g_now_us, [&](const Resolver::Answer*, const char*) { called = true; });
  auto b = r.resolveAll("left.test", g_now_us, [&](const Resolver::Answer*, const char*) { called = true; });
  ASSERT_TRUE(a && b);
  while (dns_server_->aQueries("left.test") == 0) event_base_loop(base_, EVLOOP_ONCE);
  a.reset();
  b.reset();
  event_base_loop(base_, EVLOOP_NONBLOCK);
  dns_server_->release();
  event_base_loop(base_, EVLOOP_NONBLOCK);
  EXPECT_FALSE(called);
  EXPECT_EQ(r.cachedNames(), 0u);
  Result next = call(r, "left.test", 1'000'001);
  EXPECT_FALSE(next.inline_answer);
  EXPECT_NE(next.error, "");
  EXPECT_EQ(dns_server_->aQueries("left.test"), 2);
}

// Failed names count in the same bound as good ones.
TEST_F(ResolverDnsTest, FailedNamesCountInTheCacheBound) {
  Resolver r(dns_, 60'000'000, &scriptedNow);
  constexpr size_t kNames = Resolver::kMaxNames + 100;
  size_t most = 0;
  for (size_t i = 0; i < kNames; ++i) {
    call(r, "x" + std::to_string(i) + ".test", 1'000'000);
    most = std::max(most, r.cachedNames());
  }
  EXPECT_LE(most, Resolver::kMaxNames);
  EXPECT_GT(r.cachedNames(), Resolver::kMaxNames / 2);
}

// Failed before (libevent's EVUTIL_AI_ADDRCONFIG, which counts no fc00::/7
// address as IPv6, made the lookup AF_INET on such a host): no AAAA query
// was sent and the name did not resolve ("cannot resolve ...").
TEST_F(ResolverDnsTest, AnAaaaOnlyNameResolvesOnAPodWithIpv4AndUniqueLocalIpv6) {
  g_interfaces = kDualStackPod;
  dns_server_->aaaa["v6only.test"] = "fd00:10:96::a";
  dns_server_->a["dual.test"] = "10.96.0.10";
  dns_server_->aaaa["dual.test"] = "fd00:10:96::10";
  Resolver r(dns_, 60'000'000, &scriptedNow, &scriptedInterfaces);
  EXPECT_EQ(r.familyAsked(), AF_UNSPEC);
  std::vector<std::string> addrs;
  EXPECT_EQ(call(r, "v6only.test", 1'000'000, &addrs).error, "");
  EXPECT_EQ(addrs, std::vector<std::string>{"[fd00:10:96::a]:0"});
  EXPECT_EQ(dns_server_->aaaaQueries("v6only.test"), 1);
  // A name with both: every address, IPv4 first (EndpointSet keeps one family).
  EXPECT_EQ(call(r, "dual.test", 1'000'000, &addrs).error, "");
  EXPECT_EQ(addrs, (std::vector<std::string>{"10.96.0.10:0", "[fd00:10:96::10]:0"}));
}

// A family the pod lacks is not asked for: an IPv4-only pod (most pods)
// sends one query per lookup, as before.
TEST_F(ResolverDnsTest, AnIpv4OnlyPodAsksNoAaaa) {
  g_interfaces = kIpv4Pod;
  dns_server_->a["dual.test"] = "10.96.0.10";
  dns_server_->aaaa["dual.test"] = "fd00:10:96::10";
  Resolver r(dns_, 60'000'000, &scriptedNow, &scriptedInterfaces);
  std::vector<std::string> addrs;
  EXPECT_EQ(call(r, "dual.test", 1'000'000, &addrs).error, "");
  EXPECT_EQ(addrs, std::vector<std::string>{"10.96.0.10:0"});
  EXPECT_EQ(dns_server_->aQueries("dual.test"), 1);
  EXPECT_EQ(dns_server_->aaaaQueries("dual.test"), 0);
}

// Failed before on an IPv6-only pod (ULA only: libevent counted neither
// family and asked both): the answer held the name's IPv4 address, first,
// and a CONNECT (resolve() takes the first address) went to an address the
// pod cannot reach.
TEST_F(ResolverDnsTest, AnIpv6OnlyPodAsksNoAAndConnectGetsTheIpv6Address) {
  g_interfaces = kIpv6Pod;
  dns_server_->a["dual.test"] = "10.96.0.10";
  dns_server_->aaaa["dual.test"] = "fd00:10:96::10";
  Resolver r(dns_, 60'000'000, &scriptedNow, &scriptedInterfaces);
  g_now_us = 1'000'000;
  std::string got;
  bool done = false;
  auto req = r.resolve("dual.test", 443, g_now_us, [&](const Address* a, const char* error) {
    got = a ? a->toString() : error;
    done = true;
  });
  while (!done) event_base_loop(base_, EVLOOP_ONCE);
  EXPECT_EQ(got, "[fd00:10:96::10]:443");
  EXPECT_EQ(dns_server_->aQueries("dual.test"), 0);
}

// The pod's addresses are read again (at most every kInterfacesRecheckUs,
// when a lookup starts): an IPv6 address that came up after the start is
// used from then on.
TEST_F(ResolverDnsTest, ThePodsAddressesAreReadAgainAfterTheRecheckInterval) {
  g_interfaces = kIpv4Pod;
  for (const char* n : {"a1.test", "a2.test", "a3.test"}) dns_server_->aaaa[n] = "fd00:10:96::1";
  g_now_us = 1'000'000;
  Resolver r(dns_, 60'000'000, &scriptedNow, &scriptedInterfaces);
  EXPECT_NE(call(r, "a1.test", 1'000'000).error, "");  // no AAAA asked: no address
  g_interfaces = kDualStackPod;
  EXPECT_NE(call(r, "a2.test", 1'000'000 + Resolver::kInterfacesRecheckUs - 1).error, "");
  EXPECT_EQ(dns_server_->aaaaQueries("a2.test"), 0);
  EXPECT_EQ(call(r, "a3.test", 1'000'000 + Resolver::kInterfacesRecheckUs).error, "");
  EXPECT_EQ(dns_server_->aaaaQueries("a3.test"), 1);
}

// Shutdown with lookups still out, as the worker does it: the Resolver
// goes (cancelling them), then shutdownDns. Failed before: ~Resolver and
// evdns_base_free(dns, 0) left the three lookups uncalled — their Pendings
// (and evdns' requests) leaked, which LeakSanitizer reported at exit (the
// resolver_shutdown_leaks test runs this one with detect_leaks=1 in the
// ASan build) and lookupsAlive() counts here.
TEST_F(ResolverDnsTest, LookupsStillOutAtShutdownAreCalledBackAndFreed) {
  const int64_t alive_before = Resolver::lookupsAlive();
  g_interfaces = kDualStackPod;  // A and AAAA: two evdns requests per lookup
  dns_server_->a["stale.test"] = "10.0.0.9";
  auto r = std::make_unique<Resolver>(dns_, 1'000'000, &scriptedNow, &scriptedInterfaces);
  EXPECT_EQ(call(*r, "stale.test", 1'000'000).error, "");
  dns_server_->hold = true;  // a name server that never answers from now on
  int calls = 0;
  auto count = [&](const Resolver::Answer*, const char*) { ++calls; };
  // 1. A background refresh: the name is past its TTL.
  g_now_us = 3'000'000;
  EXPECT_EQ(r->resolveAll("stale.test", g_now_us, count), nullptr);  // the stale set, inline
  EXPECT_EQ(r->refreshes(), 1u);
  EXPECT_EQ(calls, 1);
  // 2. A first lookup whose caller still waits (its Request outlives us all).
  auto waiting = r->resolveAll("wait.test", g_now_us, count);
  // 3. A first lookup whose caller gave up: its cancel is due on the loop.
  auto gave_up = r->resolveAll("gone.test", g_now_us, count);
  ASSERT_TRUE(waiting && gave_up);
  while (dns_server_->aQueries("wait.test") == 0 || dns_server_->aQueries("gone.test") == 0 ||
         dns_server_->aQueries("stale.test") < 2) {
    event_base_loop(base_, EVLOOP_ONCE);
  }
  gave_up.reset();
  EXPECT_EQ(Resolver::lookupsAlive() - alive_before, 3);

  r.reset();
  shutdownDns(base_, dns_);
  dns_ = nullptr;

  EXPECT_EQ(Resolver::lookupsAlive(), alive_before);
  EXPECT_EQ(calls, 1);  // a shutdown calls nobody back
  waiting.reset();      // nothing left to cancel (ASan: no use after free)
}

}  // namespace
}  // namespace mulligan::net
