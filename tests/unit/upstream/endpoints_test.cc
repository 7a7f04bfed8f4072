// EndpointSet: round-robin spreading, retries that avoid the addresses a
// call tried, and the outlier state machine (consecutive failures, doubling
// ejections, max_ejected, what happens when every address is ejected), on a
// fake clock.
#include "sidecar/upstream/endpoints.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/fakes/fake_clock.h"

namespace mulligan::proxy {
namespace {

constexpr int64_t kS = 1'000'000;

std::vector<net::Address> addrs(std::initializer_list<const char*> ips) {
  std::vector<net::Address> out;
  for (const char* ip : ips) out.push_back(*net::Address::parseNumeric(std::string(ip) + ":1"));
  for (auto& a : out) a.setPort(0);
  return out;
}

pfc::OutlierPolicy outlier(uint32_t failures = 3, int64_t ejection_us = 10 * kS, int64_t max_us = 35 * kS,
                           double max_ejected = 0.5) {
  pfc::OutlierPolicy p{};
  p.consecutive_failures = failures;
  p.ejection_us = ejection_us;
  p.max_ejection_us = max_us;
  p.max_ejected = max_ejected;
  return p;
}

std::string pickText(EndpointSet& set, const TriedEndpoints& tried, int64_t now) {
  const EndpointSet::Endpoint* e = set.pick(tried, now);
  return e ? e->addr.toString() : "none";
}

// The id of the endpoint with address `ip`.
uint32_t idOf(const EndpointSet& set, const std::string& ip) {
  for (const auto& e : set.endpoints()) {
    if (e.addr.toString() == ip + ":8080") return e.id;
  }
  return 0;
}

void fail(EndpointSet& set, const std::string& ip, int n, const pfc::OutlierPolicy& p, int64_t now) {
  for (int i = 0; i < n; ++i) set.report(idOf(set, ip), EndpointResult::kFailure, p, now);
}

TEST(EndpointResultTest, ConnectFailureResetAnd5xxCountAgainstTheAddressTimeoutsAndOwnLimitsDoNot) {
  EXPECT_EQ(endpointResult(retry::OutcomeKind::kConnectFailure, 0), EndpointResult::kFailure);
  EXPECT_EQ(endpointResult(retry::OutcomeKind::kReset, 0), EndpointResult::kFailure);
  EXPECT_EQ(endpointResult(retry::OutcomeKind::kResponse, 503), EndpointResult::kFailure);
  EXPECT_EQ(endpointResult(retry::OutcomeKind::kResponse, 500), EndpointResult::kFailure);
  EXPECT_EQ(endpointResult(retry::OutcomeKind::kResponse, 200), EndpointResult::kSuccess);
  EXPECT_EQ(endpointResult(retry::OutcomeKind::kResponse, 429), EndpointResult::kSuccess);
  EXPECT_EQ(endpointResult(retry::OutcomeKind::kPerTryTimeout, 0), EndpointResult::kNeutral);
  EXPECT_EQ(endpointResult(retry::OutcomeKind::kRefusedStream, 0), EndpointResult::kNeutral);
  EXPECT_EQ(endpointResult(retry::OutcomeKind::kOverflow, 0), EndpointResult::kNeutral);
}

TEST(TriedEndpointsTest, RemembersUpToKMaxThenForgetsTheOldest) {
  TriedEndpoints t;
  for (uint32_t id = 1; id <= TriedEndpoints::kMax; ++id) t.add(id);
  t.add(3);  // already there: no change
  EXPECT_EQ(t.size(), TriedEndpoints::kMax);
  EXPECT_TRUE(t.contains(1));
  t.add(100);
  EXPECT_FALSE(t.contains(1));
  EXPECT_TRUE(t.contains(2));
  EXPECT_TRUE(t.contains(100));
}

TEST(EndpointSetTest, FirstAttemptsGoRoundRobin) {
  core::FakeClock clock;
  EndpointSet set("svc", "svc.test:8080", 8080, nullptr);
  set.update(addrs({"10.0.0.3", "10.0.0.1", "10.0.0.2"}), 1);
  TriedEndpoints none;
  std::vector<std::string> got;
  for (int i = 0; i < 6; ++i) got.push_back(pickText(set, none, clock.nowUs()));
  // The resolver sorts; the set keeps its order and gives the port.
  EXPECT_EQ(got, (std::vector<std::string>{"10.0.0.3:8080", "10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080",
                                           "10.0.0.1:8080", "10.0.0.2:8080"}));
}

TEST(EndpointSetTest, RetriesGoToAddressesNotTriedWhileOneIsLeftThenBackToATriedOne) {
  core::FakeClock clock;
  EndpointSet set("svc", "svc.test:8080", 8080, nullptr);
  set.update(addrs({"10.0.0.1", "10.0.0.2", "10.0.0.3"}), 1);
  TriedEndpoints tried;
  std::vector<std::string> seen;
  for (int i = 0; i < 3; ++i) {
    // Another call's first attempt in between moves the cursor: the call
    // still never repeats an address while one is left.
    if (i == 1) set.pick(TriedEndpoints(), clock.nowUs());
    const EndpointSet::Endpoint* e = set.pick(tried, clock.nowUs());
    ASSERT_NE(e, nullptr);
    EXPECT_FALSE(tried.contains(e->id));
    tried.add(e->id);
    seen.push_back(e->addr.toString());
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<std::string>{"10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"}));
  // Every address tried: a fourth attempt goes to one of them anyway.
  EXPECT_NE(set.pick(tried, clock.nowUs()), nullptr);
}

TEST(EndpointSetTest, RetriesDoNotMoveWhereTheNextCallStarts) {
  // Two addresses, every call's first attempt fails and is retried: were
  // the retry's pick to move the cursor, every call would start on the
  // same address.
  core::FakeClock clock;
  EndpointSet set("svc", "svc.test:8080", 8080, nullptr);
  set.update(addrs({"10.0.0.1", "10.0.0.2"}), 1);
  std::vector<std::string> firsts;
  for (int call = 0; call < 4; ++call) {
    TriedEndpoints tried;
    const EndpointSet::Endpoint* first = set.pick(tried, clock.nowUs());
    firsts.push_back(first->addr.toString());
    tried.add(first->id);
    EXPECT_NE(set.pick(tried, clock.nowUs())->id, first->id);
  }
  EXPECT_EQ(firsts, (std::vector<std::string>{"10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.1:8080", "10.0.0.2:8080"}));
}

TEST(EndpointSetTest, ConsecutiveFailuresEjectAndTheAddressGetsNoAttemptsUntilTheEjectionEnds) {
  core::FakeClock clock;
  EndpointSet set("svc", "svc.test:8080", 8080, nullptr);
  set.update(addrs({"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"}), 1);
  auto p = outlier(3, 10 * kS);
  fail(set, "10.0.0.1", 2, p, clock.nowUs());
  set.report(idOf(set, "10.0.0.1"), EndpointResult::kSuccess, p, clock.nowUs());  // a success resets the count
  fail(set, "10.0.0.1", 2, p, clock.nowUs());
  EXPECT_EQ(set.ejectedCount(clock.nowUs()), 0u);
  set.report(idOf(set, "10.0.0.1"), EndpointResult::kNeutral, p, clock.nowUs());  // a timeout: no change
  fail(set, "10.0.0.1", 1, p, clock.nowUs());                                     // the third in a row
  EXPECT_EQ(set.ejectedCount(clock.nowUs()), 1u);
  TriedEndpoints none;
  for (int i = 0; i < 12; ++i) EXPECT_NE(pickText(set, none, clock.nowUs()), "10.0.0.1:8080");
  clock.advance(10 * kS - 1);
  for (int i = 0; i < 4; ++i) EXPECT_NE(pickText(set, none, clock.nowUs()), "10.0.0.1:8080");
  clock.advance(1);  // the ejection ends
  EXPECT_EQ(set.ejectedCount(clock.nowUs()), 0u);
  int back = 0;
  for (int i = 0; i < 4; ++i) back += pickText(set, none, clock.nowUs()) == "10.0.0.1:8080";
  EXPECT_EQ(back, 1);
}

TEST(EndpointSetTest, EachLaterEjectionOfTheSameAddressDoublesUpToMaxEjection) {
  core::FakeClock clock;
  EndpointSet set("svc", "svc.test:8080", 8080, nullptr);
  set.update(addrs({"10.0.0.1", "10.0.0.2"}), 1);
  auto p = outlier(2, 10 * kS, 35 * kS);
  std::vector<int64_t> lengths;
  for (int round = 0; round < 4; ++round) {
    fail(set, "10.0.0.1", 2, p, clock.nowUs());
    const auto& e = set.endpoints()[0];
    ASSERT_TRUE(EndpointSet::ejected(e, clock.nowUs())) << round;
    lengths.push_back(e.ejected_until_us - clock.nowUs());
    EXPECT_EQ(e.last_ejection_us, lengths.back());
    clock.advance(e.ejected_until_us - clock.nowUs());
  }
  EXPECT_EQ(lengths, (std::vector<int64_t>{10 * kS, 20 * kS, 35 * kS, 35 * kS}));
  EXPECT_EQ(set.endpoints()[0].ejections_total, 4u);
  // Back and serving for max_ejection: the next ejection is short again.
  clock.advance(35 * kS);
  set.report(idOf(set, "10.0.0.1"), EndpointResult::kSuccess, p, clock.nowUs());
  fail(set, "10.0.0.1", 2, p, clock.nowUs());
  EXPECT_EQ(set.endpoints()[0].ejected_until_us - clock.nowUs(), 10 * kS);
}

TEST(EndpointSetTest, NeverMoreThanMaxEjectedOfTheAddressesAtOnce) {
  core::FakeClock clock;
  EndpointSet set("svc", "svc.test:8080", 8080, nullptr);
  set.update(addrs({"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"}), 1);
  auto p = outlier(2, 10 * kS, 60 * kS, 0.5);  // 2 of 4
  fail(set, "10.0.0.1", 2, p, clock.nowUs());
  fail(set, "10.0.0.2", 2, p, clock.nowUs());
  fail(set, "10.0.0.3", 5, p, clock.nowUs());
  EXPECT_EQ(set.ejectedCount(clock.nowUs()), 2u);
  EXPECT_FALSE(EndpointSet::ejected(set.endpoints()[2], clock.nowUs()));
  // Room frees when the first ejections end: the next failure of the third,
  // still at its threshold, ejects it.
  clock.advance(10 * kS);
  fail(set, "10.0.0.3", 1, p, clock.nowUs());
  EXPECT_TRUE(EndpointSet::ejected(set.endpoints()[2], clock.nowUs()));
}

TEST(EndpointSetTest, ANameWithOneAddressIsNeverEjectedAtTheDefaultFraction) {
  core::FakeClock clock;
  EndpointSet set("svc", "svc.test:8080", 8080, nullptr);
  set.update(addrs({"10.0.0.1"}), 1);
  auto p = outlier(1);
  fail(set, "10.0.0.1", 10, p, clock.nowUs());
  EXPECT_EQ(set.ejectedCount(clock.nowUs()), 0u);
}

TEST(EndpointSetTest, ZeroConsecutiveFailuresTurnsEjectionOff) {
  core::FakeClock clock;
  EndpointSet set("svc", "svc.test:8080", 8080, nullptr);
  set.update(addrs({"10.0.0.1", "10.0.0.2"}), 1);
  fail(set, "10.0.0.1", 100, outlier(0), clock.nowUs());
  EXPECT_EQ(set.ejectedCount(clock.nowUs()), 0u);
}

TEST(EndpointSetTest, WhenEveryAddressIsEjectedAttemptsStillGoOutPreferringUntriedOnes) {
  core::FakeClock clock;
  EndpointSet set("svc", "svc.test:8080", 8080, nullptr);
  set.update(addrs({"10.0.0.1", "10.0.0.2"}), 1);
  auto p = outlier(1, 10 * kS, 60 * kS, 1.0);  // max_ejected = 1.0 lets all go
  fail(set, "10.0.0.1", 1, p, clock.nowUs());
  fail(set, "10.0.0.2", 1, p, clock.nowUs());
  EXPECT_EQ(set.ejectedCount(clock.nowUs()), 2u);
  TriedEndpoints tried;
  const EndpointSet::Endpoint* a = set.pick(tried, clock.nowUs());
  ASSERT_NE(a, nullptr);
  tried.add(a->id);
  const EndpointSet::Endpoint* b = set.pick(tried, clock.nowUs());
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a->id, b->id);
}

TEST(EndpointSetTest, AnEjectedAddressIsSkippedEvenWhenItIsTheOnlyUntriedOne) {
  core::FakeClock clock;
  EndpointSet set("svc", "svc.test:8080", 8080, nullptr);
  set.update(addrs({"10.0.0.1", "10.0.0.2", "10.0.0.3"}), 1);
  auto p = outlier(1, 10 * kS, 60 * kS, 0.5);
  fail(set, "10.0.0.3", 1, p, clock.nowUs());
  TriedEndpoints tried;
  tried.add(idOf(set, "10.0.0.1"));
  tried.add(idOf(set, "10.0.0.2"));
  // .3 is untried but ejected: a healthy tried one goes first.
  EXPECT_NE(pickText(set, tried, clock.nowUs()), "10.0.0.3:8080");
}

TEST(EndpointSetTest, ANewAddressSetKeepsTheStateOfAddressesThatStay) {
  core::FakeClock clock;
  stats::EndpointStats sink;
  EndpointSet set("svc", "svc.test:8080", 8080, &sink);
  set.update(addrs({"10.0.0.1", "10.0.0.2", "10.0.0.3"}), 1);
  auto p = outlier(1);
  uint32_t id2 = idOf(set, "10.0.0.2");
  fail(set, "10.0.0.1", 1, p, clock.nowUs());
  set.update(addrs({"10.0.0.1", "10.0.0.2", "10.0.0.3"}), 1);  // same version: nothing to do
  set.update(addrs({"10.0.0.2", "10.0.0.4"}), 2);              // .1 and .3 left, .4 came
  ASSERT_EQ(set.endpoints().size(), 2u);
  EXPECT_EQ(idOf(set, "10.0.0.2"), id2);
  EXPECT_NE(idOf(set, "10.0.0.4"), 0u);
  // The admin still sees .1's ejection (counters never go back), as gone.
  auto totals = stats::collectEndpoints({&sink}, clock.nowUs());
  ASSERT_EQ(totals.size(), 3u);
  EXPECT_EQ(totals[0].address, "10.0.0.1:8080");
  EXPECT_EQ(totals[0].ejections, 1u);
  EXPECT_FALSE(totals[0].current);
  EXPECT_TRUE(totals[1].current);
  // .1 comes back: its count with it.
  set.update(addrs({"10.0.0.1", "10.0.0.2", "10.0.0.4"}), 3);
  EXPECT_EQ(set.endpoints()[0].ejections_total, 1u);
  // A report for an id that left is ignored.
  set.report(12345, EndpointResult::kFailure, p, clock.nowUs());
}

TEST(EndpointSetTest, TheAdminSeesEjectionsAndWhenTheyEnd) {
  core::FakeClock clock;
  stats::EndpointStats sink;
  EndpointSet set("svc", "svc.test:8080", 8080, &sink);
  set.update(addrs({"10.0.0.1", "10.0.0.2"}), 1);
  fail(set, "10.0.0.2", 1, outlier(1, 10 * kS), clock.nowUs());
  auto t = stats::collectEndpoints({&sink, &sink}, clock.nowUs());  // two "workers"
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[1].address, "10.0.0.2:8080");
  EXPECT_EQ(t[1].ejections, 2u);
  EXPECT_EQ(t[1].ejected_workers, 2u);
  EXPECT_EQ(t[1].ejected_for_us, 10 * kS);
  t = stats::collectEndpoints({&sink}, clock.nowUs() + 10 * kS);
  EXPECT_EQ(t[1].ejected_workers, 0u);
}

TEST(EndpointsTest, OneSetPerServiceAndDestination) {
  core::FakeClock clock;
  Endpoints eps;
  EndpointSetRef a = eps.get("svc", "svc.test", 8080, clock.nowUs());
  EXPECT_EQ(eps.get("svc", "svc.test", 8080, clock.nowUs()).get(), a.get());
  EXPECT_NE(eps.get("other", "svc.test", 8080, clock.nowUs()).get(), a.get());
  EXPECT_NE(eps.get("svc", "svc.test", 8081, clock.nowUs()).get(), a.get());
  EXPECT_EQ(a->destination(), "svc.test:8080");
  EXPECT_EQ(eps.get("", "fd00::1", 80, clock.nowUs())->destination(), "[fd00::1]:80");
}

// The names of distinct proxy-style hosts: "host-17.test".
std::string hostName(int i) { return "host-" + std::to_string(i) + ".test"; }

TEST(EndpointsTest, ManyDistinctNamesNeverGrowTheRegistryOrTheAdminRowsPastTheCap) {
  core::FakeClock clock;
  stats::EndpointStats sink;
  Endpoints eps(&sink);
  for (int i = 0; i < 5000; ++i) {
    EndpointSetRef set = eps.get("", hostName(i), 80, clock.nowUs());
    set->update(addrs({"10.0.0.1"}), 1);  // it resolved: it has admin rows
    clock.advance(1000);
  }
  EXPECT_LE(eps.size(), Endpoints::kMaxSets);
  EXPECT_GT(eps.size(), Endpoints::kMaxSets / 2);
  EXPECT_EQ(eps.forgotten(), 5000 - eps.size());
  EXPECT_EQ(sink.snapshot().size(), eps.size());
  EXPECT_EQ(sink.sets.load(), eps.size());
  EXPECT_EQ(sink.forgotten.load(), eps.forgotten());
  // The newest names are the ones kept.
  bool newest_kept = false;
  for (const auto& d : sink.snapshot()) newest_kept = newest_kept || d.destination == hostName(4999) + ":80";
  EXPECT_TRUE(newest_kept);
}

TEST(EndpointsTest, OverTheCapTheLeastRecentlyUsedSetGoesFirst) {
  core::FakeClock clock;
  Endpoints eps(nullptr, 8);  // 8 sets; forgets down to 7 at a time
  EndpointSet* first = eps.get("", hostName(0), 80, clock.nowUs()).get();
  for (int i = 1; i < 8; ++i) eps.get("", hostName(i), 80, clock.nowUs());
  // Name 0 used again: name 1 is now the least recently used.
  EXPECT_EQ(eps.get("", hostName(0), 80, clock.nowUs()).get(), first);
  EXPECT_EQ(eps.size(), 8u);
  eps.get("", hostName(8), 80, clock.nowUs());
  EXPECT_EQ(eps.size(), 8u);
  EXPECT_EQ(eps.forgotten(), 1u);
  EXPECT_EQ(eps.get("", hostName(0), 80, clock.nowUs()).get(), first);  // kept
  EXPECT_EQ(eps.forgotten(), 1u);
  eps.get("", hostName(1), 80, clock.nowUs());  // was forgotten: a new set, which forgets name 2
  EXPECT_EQ(eps.forgotten(), 2u);
}

TEST(EndpointsTest, ASetACallHoldsIsNeverForgottenAndKeepsItsState) {
  core::FakeClock clock;
  stats::EndpointStats sink;
  Endpoints eps(&sink, 4);
  EndpointSetRef held = eps.get("", hostName(0), 8080, clock.nowUs());
  held->update(addrs({"10.0.0.1", "10.0.0.2"}), 1);
  fail(*held, "10.0.0.2", 1, outlier(1, 10 * kS), clock.nowUs());
  for (int i = 1; i < 100; ++i) eps.get("", hostName(i), 80, clock.nowUs());
  // Still the same, live set (ASan: no use after free) with its ejection.
  EXPECT_EQ(held->endpoints().size(), 2u);
  EXPECT_EQ(held->ejectedCount(clock.nowUs()), 1u);
  EXPECT_EQ(held->pins(), 1u);
  EXPECT_EQ(eps.get("", hostName(0), 8080, clock.nowUs()).get(), held.get());
  EXPECT_LE(eps.size(), 4u);
  // Every set held: the cap gives way (only calls in flight exceed it).
  std::vector<EndpointSetRef> refs;
  for (int i = 200; i < 210; ++i) refs.push_back(eps.get("", hostName(i), 80, clock.nowUs()));
  EXPECT_EQ(eps.size(), 11u);
  refs.clear();
  held.release();
  eps.get("", hostName(300), 80, clock.nowUs());
  EXPECT_LE(eps.size(), 4u);
  EXPECT_EQ(sink.snapshot().size(), 0u);  // the set with rows (name 0) went, and its rows with it
}

TEST(EndpointsTest, IdleSetsAreForgottenUnlessHeldOrEjecting) {
  core::FakeClock clock;
  stats::EndpointStats sink;
  Endpoints eps(&sink);
  eps.get("", "idle.test", 80, clock.nowUs())->update(addrs({"10.0.0.1"}), 1);
  EndpointSetRef held = eps.get("", "held.test", 80, clock.nowUs());
  {
    EndpointSetRef e = eps.get("", "ejecting.test", 8080, clock.nowUs());
    e->update(addrs({"10.0.0.1", "10.0.0.2"}), 1);
    // An ejection that outlasts the idle time (max_ejection may be long).
    fail(*e, "10.0.0.2", 1, outlier(1, Endpoints::kIdleUs + 5 * 60 * kS, Endpoints::kIdleUs * 2), clock.nowUs());
  }
  clock.advance(Endpoints::kIdleUs - kS);
  eps.get("", "busy.test", 80, clock.nowUs());
  EXPECT_EQ(eps.size(), 4u);  // nothing idle for kIdleUs yet
  clock.advance(Endpoints::kSweepEveryUs);
  eps.get("", "busy.test", 80, clock.nowUs());
  EXPECT_EQ(eps.size(), 3u);  // idle.test went; held and ejecting stay
  EXPECT_EQ(eps.forgotten(), 1u);
  for (const auto& d : sink.snapshot()) EXPECT_NE(d.destination, "idle.test:80");
  clock.advance(5 * 60 * kS);  // the ejection has ended
  eps.get("", "busy.test", 80, clock.nowUs());
  EXPECT_EQ(eps.size(), 2u);  // busy and held
  EXPECT_EQ(sink.snapshot().size(), 0u);
}

TEST(EndpointSetTest, ADualStackNameCountsEachPodOnceByItsIpv4Address) {
  core::FakeClock clock;
  EndpointSet set("svc", "svc.test:8080", 8080, nullptr);
  // Two pods, each with an A and an AAAA record.
  std::vector<net::Address> both = addrs({"10.0.0.1", "10.0.0.2"});
  for (const char* v6 : {"[fd00::1]:1", "[fd00::2]:1"}) {
    net::Address a = *net::Address::parseNumeric(v6);
    a.setPort(0);
    both.push_back(a);
  }
  set.update(both, 1);
  ASSERT_EQ(set.endpoints().size(), 2u);
  EXPECT_EQ(set.endpoints()[0].addr.toString(), "10.0.0.1:8080");
  EXPECT_EQ(set.endpoints()[1].addr.toString(), "10.0.0.2:8080");
  // So one failing pod is 1 of 2 (max_ejected 0.5 lets it go) and a retry
  // goes to the other pod, not to the same pod's other address.
  fail(set, "10.0.0.1", 1, outlier(1), clock.nowUs());
  EXPECT_EQ(set.ejectedCount(clock.nowUs()), 1u);
  EXPECT_EQ(pickText(set, TriedEndpoints{}, clock.nowUs()), "10.0.0.2:8080");
  // An IPv6-only name keeps its IPv6 addresses.
  std::vector<net::Address> v6(both.begin() + 2, both.end());
  set.update(v6, 2);
  ASSERT_EQ(set.endpoints().size(), 2u);
  EXPECT_EQ(set.endpoints()[0].addr.toString(), "[fd00::1]:8080");
  // A sidecar in an IPv6-only pod (preferredFamily() AF_INET6) keeps the
  // IPv6 ones of a dual-stack name, and IPv4 ones when there are no others.
  EndpointSet v6pod("svc", "svc.test:8080", 8080, nullptr, AF_INET6);
  v6pod.update(both, 1);
  ASSERT_EQ(v6pod.endpoints().size(), 2u);
  EXPECT_EQ(v6pod.endpoints()[1].addr.toString(), "[fd00::2]:8080");
  v6pod.update(addrs({"10.0.0.1"}), 2);
  ASSERT_EQ(v6pod.endpoints().size(), 1u);
  EXPECT_EQ(v6pod.endpoints()[0].addr.toString(), "10.0.0.1:8080");
}

}  // namespace
}  // namespace mulligan::proxy
