// Resolver::numericHostPort: IP literals answer at once (and are
// remembered); names and malformed strings are left to resolve().
#include "sidecar/net/resolver.h"

#include <event2/dns.h>
#include <event2/event.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>

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

}  // namespace
}  // namespace mulligan::net
