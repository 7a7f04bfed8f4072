#include <gtest/gtest.h>

#include <cstring>

#include "proto-free-config/checksum.h"
#include "proto-free-config/layout.h"
#include "proto-free-config/table_reader.h"
#include "test_tables.h"

namespace mulligan::pfc {
namespace {

using testing::makeModel;

std::shared_ptr<const Table> mustBuild(const TableModel& m, uint64_t gen = 7) {
  std::string why;
  auto t = Table::fromImage(buildImage(m, gen), &why);
  EXPECT_TRUE(t) << why;
  return t;
}

bool samePolicy(const EffectivePolicy& a, const EffectivePolicy& b) { return std::memcmp(&a, &b, sizeof a) == 0; }

TEST(TableTest, RoundTripManyServicesAndRoutesGivesEffectivePolicy) {
  TableModel m = makeModel(500, 5);
  auto t = mustBuild(m, 42);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->generation(), 42u);
  EXPECT_EQ(t->sourcePath(), "/etc/mulligan/policy.toml");
  EXPECT_EQ(t->sourceChecksum(), 0x1234abcdu);
  ASSERT_EQ(t->services().size(), 500u);
  ASSERT_EQ(t->routes().size(), 2500u);
  for (int s = 0; s < 500; s += 37) {
    std::string host = "svc-" + std::to_string(s);
    for (int r = 0; r < 4; ++r) {
      std::string path = "/api/" + std::to_string(s) + "/" + std::to_string(r) + "/items?x=1";
      Match hit = t->lookup({host, 80, "GET", path, false});
      ASSERT_EQ(hit.service, static_cast<uint32_t>(s));
      ASSERT_NE(hit.route, Match::kNone);
      EXPECT_TRUE(samePolicy(*hit.policy, m.services[s].routes[r].policy)) << host << path;
    }
    Match grpc = t->lookup({host + ".ns.svc:8080", 8080, "POST", "/pkg" + std::to_string(s) + ".Svc/Get", true});
    EXPECT_TRUE(samePolicy(*grpc.policy, m.services[s].routes[4].policy));
    Match svc_level = t->lookup({host, 80, "GET", "/other", false});
    EXPECT_EQ(svc_level.route, Match::kNone);
    EXPECT_TRUE(samePolicy(*svc_level.policy, m.services[s].policy));
  }
}

TEST(TableTest, IdenticalPoliciesAreStoredOnce) {
  TableModel m = makeModel(100, 5);
  for (auto& s : m.services) {
    s.policy = m.defaults;
    for (auto& r : s.routes) r.policy = m.defaults;
  }
  auto t = mustBuild(m);
  EXPECT_EQ(t->policies().size(), 1u);
}

TEST(TableTest, UnknownHostGetsDefaults) {
  TableModel m = makeModel(3, 2);
  m.defaults.connect_timeout_us = 1234;
  auto t = mustBuild(m);
  Match hit = t->lookup({"nowhere.example", 80, "GET", "/", false});
  EXPECT_EQ(hit.service, Match::kNone);
  EXPECT_EQ(hit.policy->connect_timeout_us, 1234);
}

TEST(TableTest, HostMatchIsCaseInsensitiveAndIgnoresPortAndTrailingDot) {
  auto t = mustBuild(makeModel(3, 2));
  EXPECT_EQ(t->lookup({"SVC-1:9090", 9090, "GET", "/", false}).service, 1u);
  EXPECT_EQ(t->lookup({"svc-2.", 80, "GET", "/", false}).service, 2u);
}

TEST(TableTest, WildcardMatchesLongestSuffixAndNotTheApex) {
  TableModel m = makeModel(0, 0);
  for (auto [name, host] : {std::pair{"wide", "*.example.com"}, {"narrow", "*.api.example.com"}}) {
    ServiceModel s;
    s.name = name;
    s.hosts = {host};
    s.policy = m.defaults;
    m.services.push_back(s);
  }
  auto t = mustBuild(m);
  EXPECT_EQ(t->lookup({"x.api.example.com", 0, "GET", "/", false}).service, 1u);
  EXPECT_EQ(t->lookup({"x.example.com", 0, "GET", "/", false}).service, 0u);
  EXPECT_EQ(t->lookup({"a.b.c.example.com", 0, "GET", "/", false}).service, 0u);
  EXPECT_EQ(t->lookup({"example.com", 0, "GET", "/", false}).service, Match::kNone);
}

TEST(TableTest, ServiceWithMatchingPortBeatsPortlessOne) {
  TableModel m = makeModel(0, 0);
  for (auto [name, port] : {std::pair{"any", 0u}, {"p8080", 8080u}}) {
    ServiceModel s;
    s.name = name;
    s.hosts = {"shared"};
    s.port = port;
    s.policy = m.defaults;
    m.services.push_back(s);
  }
  auto t = mustBuild(m);
  EXPECT_EQ(t->lookup({"shared", 8080, "GET", "/", false}).service, 1u);
  EXPECT_EQ(t->lookup({"shared", 9000, "GET", "/", false}).service, 0u);
}

TEST(TableTest, RoutesMatchInOrderWithMethodsExactAndGrpc) {
  TableModel m = makeModel(0, 0);
  ServiceModel s;
  s.name = "orders";
  s.hosts = {"orders"};
  s.policy = m.defaults;
  auto route = [&](MatchKind k, std::string match, uint32_t methods) {
    RouteModel r;
    r.kind = k;
    r.match = std::move(match);
    r.methods = methods;
    r.policy = m.defaults;
    r.policy.read_timeout_us = static_cast<int64_t>(s.routes.size()) + 1;
    s.routes.push_back(r);
  };
  route(MatchKind::kPathPrefix, "/api/reports", methodBit(Method::kGet));  // 0
  route(MatchKind::kPathExact, "/api/exact", kAllMethods);                // 1
  route(MatchKind::kGrpcMethod, "pkg.Orders/Get", kAllMethods);           // 2
  route(MatchKind::kGrpcService, "pkg.Orders", kAllMethods);              // 3
  route(MatchKind::kPathPrefix, "/api/", kAllMethods);                    // 4
  m.services.push_back(s);
  auto t = mustBuild(m);
  auto routeOf = [&](std::string_view method, std::string_view path, bool grpc) {
    return t->lookup({"orders", 80, method, path, grpc}).route;
  };
  EXPECT_EQ(routeOf("GET", "/api/reports/1", false), 0u);
  EXPECT_EQ(routeOf("POST", "/api/reports/1", false), 4u);  // methods limit
  EXPECT_EQ(routeOf("GET", "/api/exact?q=1", false), 1u);
  EXPECT_EQ(routeOf("GET", "/api/exact/more", false), 4u);
  EXPECT_EQ(routeOf("POST", "/pkg.Orders/Get", true), 2u);
  EXPECT_EQ(routeOf("POST", "/pkg.Orders/List", true), 3u);
  EXPECT_EQ(routeOf("POST", "/pkg.Orders/List", false), Match::kNone);  // not gRPC
  EXPECT_EQ(routeOf("POST", "/pkg.OrdersX/List", true), Match::kNone);
  EXPECT_EQ(routeOf("BREW", "/api/reports", false), 4u);  // unknown method skips limited routes
  EXPECT_EQ(routeOf("GET", "/", false), Match::kNone);
}

TEST(TableTest, ToModelGivesBackWhatWasBuilt) {
  TableModel m = makeModel(20, 3);
  m.services[3].hosts.push_back("*.wild.example");
  m.services[3].port = 8443;
  m.services[3].upstream = "127.0.0.1:9000";
  auto t = mustBuild(m);
  TableModel back = t->toModel();
  ASSERT_EQ(back.services.size(), m.services.size());
  EXPECT_TRUE(samePolicy(back.defaults, m.defaults));
  for (size_t i = 0; i < m.services.size(); ++i) {
    EXPECT_EQ(back.services[i].name, m.services[i].name);
    EXPECT_EQ(back.services[i].hosts, m.services[i].hosts);
    EXPECT_EQ(back.services[i].port, m.services[i].port);
    EXPECT_EQ(back.services[i].upstream, m.services[i].upstream);
    ASSERT_EQ(back.services[i].routes.size(), m.services[i].routes.size());
    for (size_t r = 0; r < m.services[i].routes.size(); ++r) {
      EXPECT_EQ(back.services[i].routes[r].match, m.services[i].routes[r].match);
      EXPECT_TRUE(samePolicy(back.services[i].routes[r].policy, m.services[i].routes[r].policy));
    }
  }
}

TEST(ChecksumTest, EveryByteAndLengthMatters) {
  std::vector<uint8_t> data(1000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7);
  uint64_t base = checksum64(data.data(), data.size());
  for (size_t i = 0; i < data.size(); i += 13) {
    data[i] ^= 1;
    EXPECT_NE(checksum64(data.data(), data.size()), base) << i;
    data[i] ^= 1;
  }
  EXPECT_NE(checksum64(data.data(), data.size() - 1), base);
  EXPECT_EQ(checksum64(data.data(), data.size()), base);
}

}  // namespace
}  // namespace mulligan::pfc
