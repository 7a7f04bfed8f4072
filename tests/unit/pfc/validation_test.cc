// The reader treats table bytes as untrusted: every kind of damage is refused
// with a reason, never a crash (these run under ASan/UBSan in the sanitizer build).
#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <random>

#include "proto-free-config/checksum.h"
#include "proto-free-config/layout.h"
#include "proto-free-config/table_reader.h"
#include "test_tables.h"

namespace mulligan::pfc {
namespace {

std::vector<uint8_t> goodImage() { return buildImage(testing::makeModel(20, 3), 1); }

TableHeader headerOf(const std::vector<uint8_t>& img) {
  TableHeader h;
  std::memcpy(&h, img.data(), sizeof h);
  return h;
}

// Rewrites the header and fixes the checksum, so that the checks behind the
// checksum are the ones exercised.
void putHeader(std::vector<uint8_t>& img, const TableHeader& h) {
  std::memcpy(img.data(), &h, sizeof h);
  uint64_t sum = checksum64(img.data() + kChecksummedFrom, img.size() - kChecksummedFrom);
  std::memcpy(img.data() + offsetof(TableHeader, checksum), &sum, sizeof sum);
}

void resum(std::vector<uint8_t>& img) { putHeader(img, headerOf(img)); }

std::string refusal(const std::vector<uint8_t>& img) {
  std::string why;
  auto t = Table::fromImage(img, &why);
  return t ? std::string() : why;
}

TEST(ValidationTest, GoodImageIsAccepted) { EXPECT_EQ(refusal(goodImage()), ""); }

TEST(ValidationTest, WrongMagicIsRefused) {
  auto img = goodImage();
  TableHeader h = headerOf(img);
  h.magic ^= 1;
  putHeader(img, h);
  EXPECT_EQ(refusal(img), "bad table magic");
}

TEST(ValidationTest, WrongAbiIsRefusedWithBothVersions) {
  auto img = goodImage();
  TableHeader h = headerOf(img);
  h.abi_version = kAbiVersion + 1;
  putHeader(img, h);
  EXPECT_EQ(refusal(img), "table ABI version " + std::to_string(kAbiVersion + 1) + ", this build reads " +
                              std::to_string(kAbiVersion));
}

TEST(ValidationTest, FlippedByteFailsChecksum) {
  auto img = goodImage();
  img[img.size() / 2] ^= 0x40;
  EXPECT_EQ(refusal(img), "checksum mismatch");
}

TEST(ValidationTest, TruncatedImagesAreRefused) {
  auto img = goodImage();
  for (size_t n : {size_t{0}, size_t{1}, sizeof(TableHeader) - 1, sizeof(TableHeader), img.size() / 2, img.size() - 1}) {
    std::vector<uint8_t> cut(img.begin(), img.begin() + static_cast<long>(n));
    EXPECT_NE(refusal(cut), "") << n;
  }
}

TEST(ValidationTest, SectionsOutOfBoundsAreRefused) {
  auto base = goodImage();
  for (int which = 0; which < 5; ++which) {
    for (uint32_t bad : {0u, 3u, 0x7fffffffu, 0xffffffffu}) {
      auto img = base;
      TableHeader h = headerOf(img);
      Section* s[] = {&h.policies, &h.services, &h.routes, &h.hosts, &h.strings};
      s[which]->count = bad == 0 ? 0xffffffffu : s[which]->count;
      if (bad != 0) s[which]->offset = bad;
      putHeader(img, h);
      EXPECT_NE(refusal(img), "") << which << " " << bad;
    }
  }
}

TEST(ValidationTest, IndicesAndStringsOutOfRangeAreRefused) {
  auto base = goodImage();
  TableHeader h = headerOf(base);
  auto mutate = [&](auto&& change) {
    auto img = base;
    change(img);
    resum(img);
    return refusal(img);
  };
  EXPECT_EQ(mutate([&](auto& img) {
              auto* s = reinterpret_cast<ServiceEntry*>(img.data() + h.services.offset);
              s[3].policy_index = h.policies.count;
            }),
            "policy index out of range");
  EXPECT_EQ(mutate([&](auto& img) {
              auto* s = reinterpret_cast<ServiceEntry*>(img.data() + h.services.offset);
              s[0].name.offset = h.strings.count;
              s[0].name.len = 1;
            }),
            "string out of bounds");
  EXPECT_EQ(mutate([&](auto& img) {
              auto* s = reinterpret_cast<ServiceEntry*>(img.data() + h.services.offset);
              s[1].route_begin = h.routes.count;
            }),
            "route range out of bounds");
  EXPECT_EQ(mutate([&](auto& img) {
              auto* r = reinterpret_cast<RouteEntry*>(img.data() + h.routes.offset);
              r[0].kind = static_cast<MatchKind>(9);
            }),
            "unknown route kind");
  EXPECT_EQ(mutate([&](auto& img) {
              auto* e = reinterpret_cast<HostEntry*>(img.data() + h.hosts.offset);
              e[0].service_index = 100000;
            }),
            "host service index out of range");
  EXPECT_EQ(mutate([&](auto& img) {
              auto* p = reinterpret_cast<EffectivePolicy*>(img.data() + h.policies.offset);
              p[0].retry.backoff_base_us = -1;
            }),
            "policy 0: retry durations out of range");
  EXPECT_EQ(mutate([&](auto& img) {
              auto* p = reinterpret_cast<EffectivePolicy*>(img.data() + h.policies.offset);
              std::memset(p[0].retry.idempotency_header, 'x', sizeof p[0].retry.idempotency_header);
            }),
            "policy 0: idempotency_header not terminated");
  EXPECT_EQ(mutate([&](auto& img) {
              auto* p = reinterpret_cast<EffectivePolicy*>(img.data() + h.policies.offset);
              p[0].retry.status_bits[0] |= 1;  // "status 0"
            }),
            "policy 0: status code out of range");
}

// Issue 19's fields: each value the agent cannot produce is refused, with
// the field named.
TEST(ValidationTest, HedgeOutlierAndFreshConnectionOutOfRangeAreRefused) {
  auto base = goodImage();
  TableHeader h = headerOf(base);
  auto mutate = [&](auto&& change) {
    auto img = base;
    auto* p = reinterpret_cast<EffectivePolicy*>(img.data() + h.policies.offset);
    change(p[h.policies.count - 1]);
    resum(img);
    return refusal(img);
  };
  const std::string at = "policy " + std::to_string(h.policies.count - 1) + ": ";
  EXPECT_EQ(mutate([](EffectivePolicy& p) { p.retry.fresh_connection = 2; }), at + "fresh_connection not a boolean");
  EXPECT_EQ(mutate([](EffectivePolicy& p) { p.hedge.max_attempts = 1; }), at + "hedge max_attempts out of range");
  EXPECT_EQ(mutate([](EffectivePolicy& p) { p.hedge.max_attempts = 0; }), at + "hedge max_attempts out of range");
  EXPECT_EQ(mutate([](EffectivePolicy& p) { p.hedge.max_attempts = kMaxHedgeAttempts + 1; }),
            at + "hedge max_attempts out of range");
  EXPECT_EQ(mutate([](EffectivePolicy& p) { p.hedge.max_attempts = 0xffffffffu; }),
            at + "hedge max_attempts out of range");
  for (uint16_t q : {uint16_t{1}, uint16_t{500}, uint16_t{980}, uint16_t{1000}, uint16_t{0xffff}}) {
    EXPECT_EQ(mutate([&](EffectivePolicy& p) { p.hedge.delay_quantile_permille = q; }), at + "unknown hedge quantile")
        << q;
  }
  EXPECT_EQ(mutate([](EffectivePolicy& p) {
              p.hedge.delay_quantile_permille = 990;
              p.hedge.delay_us = 1000;
            }),
            at + "hedge delay both fixed and a quantile");
  EXPECT_EQ(mutate([](EffectivePolicy& p) { p.hedge.delay_us = -1; }), at + "hedge delay out of range");
  EXPECT_EQ(mutate([](EffectivePolicy& p) { p.hedge.delay_us = std::numeric_limits<int64_t>::max(); }),
            at + "hedge delay out of range");
  for (double bad : {-0.01, 1.0000001, std::numeric_limits<double>::quiet_NaN(),
                     std::numeric_limits<double>::infinity()}) {
    EXPECT_EQ(mutate([&](EffectivePolicy& p) { p.hedge.max_extra_load = bad; }),
              at + "hedge max_extra_load out of range")
        << bad;
    EXPECT_EQ(mutate([&](EffectivePolicy& p) { p.outlier.max_ejected = bad; }),
              at + "outlier max_ejected out of range")
        << bad;
  }
  EXPECT_EQ(mutate([](EffectivePolicy& p) { p.outlier.consecutive_failures = 1001; }),
            at + "outlier consecutive_failures out of range");
  EXPECT_EQ(mutate([](EffectivePolicy& p) { p.outlier.ejection_us = -1; }), at + "outlier durations out of range");
  EXPECT_EQ(mutate([](EffectivePolicy& p) { p.outlier.max_ejection_us = -1; }),
            at + "outlier durations out of range");
  EXPECT_EQ(mutate([](EffectivePolicy& p) {
              p.outlier.ejection_us = 2000000;
              p.outlier.max_ejection_us = 1000000;
            }),
            at + "outlier durations out of range");
  // Every value the agent can write is accepted: the limits themselves.
  EXPECT_EQ(mutate([](EffectivePolicy& p) {
              p.retry.fresh_connection = 0;
              p.hedge.max_attempts = kMaxHedgeAttempts;
              p.hedge.delay_quantile_permille = 999;
              p.hedge.delay_us = 0;
              p.hedge.max_extra_load = 1;
              p.outlier.consecutive_failures = 1000;
              p.outlier.max_ejected = 0;
              p.outlier.ejection_us = p.outlier.max_ejection_us;
            }),
            "");
  EXPECT_EQ(mutate([](EffectivePolicy& p) {
              p.hedge.max_attempts = 2;
              p.hedge.delay_us = 0;
              p.hedge.delay_quantile_permille = 0;
              p.hedge.max_extra_load = 0;
              p.outlier.max_ejected = 1;
              p.outlier.consecutive_failures = 0;
            }),
            "");
}

// Random damage, with and without a fixed-up checksum: the reader must refuse
// or accept, never crash or read out of bounds (ASan checks the latter).
TEST(ValidationTest, RandomDamageNeverCrashes) {
  std::mt19937_64 rng(12345);
  auto base = goodImage();
  int refused = 0;
  for (int i = 0; i < 3000; ++i) {
    auto img = base;
    int flips = 1 + static_cast<int>(rng() % 8);
    for (int f = 0; f < flips; ++f) img[rng() % img.size()] = static_cast<uint8_t>(rng());
    if (i % 2) resum(img);
    std::string why;
    auto t = Table::fromImage(img, &why);
    if (!t) {
      ++refused;
      continue;
    }
    // Accepted damage (e.g. a changed timeout) must still be safe to use.
    for (int k = 0; k < 5; ++k) t->lookup({"svc-" + std::to_string(k), 80, "GET", "/api/1/0/", false});
    (void)t->toModel();
  }
  EXPECT_GT(refused, 1500);
}

TEST(ValidationTest, PureRandomBytesAreRefused) {
  std::mt19937_64 rng(99);
  for (int i = 0; i < 1000; ++i) {
    std::vector<uint8_t> img(rng() % 4096);
    for (auto& b : img) b = static_cast<uint8_t>(rng());
    std::string why;
    EXPECT_FALSE(Table::fromImage(img, &why));
  }
}

}  // namespace
}  // namespace mulligan::pfc
