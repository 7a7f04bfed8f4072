// Resolver::numericHostPort: IP literals answer at once (and are
// remembered); names and malformed strings are left to resolve().
#include "sidecar/net/resolver.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace mulligan::net
