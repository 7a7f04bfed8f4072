// grpc-timeout parsing and formatting (gRPC PROTOCOL-HTTP2.md).
#include "sidecar/retry/grpc_timeout.h"

#include <gtest/gtest.h>

namespace mulligan::retry {
namespace {

constexpr int64_t kMs = 1000;
constexpr int64_t kS = 1000 * kMs;

TEST(GrpcTimeoutParseTest, EveryUnit) {
  EXPECT_EQ(parseGrpcTimeoutUs("2H"), 2 * 3600 * kS);
  EXPECT_EQ(parseGrpcTimeoutUs("3M"), 3 * 60 * kS);
  EXPECT_EQ(parseGrpcTimeoutUs("5S"), 5 * kS);
  EXPECT_EQ(parseGrpcTimeoutUs("250m"), 250 * kMs);
  EXPECT_EQ(parseGrpcTimeoutUs("7u"), 7);
  EXPECT_EQ(parseGrpcTimeoutUs("3000n"), 3);
}

TEST(GrpcTimeoutParseTest, NanosecondsRoundUpToWholeMicroseconds) {
  EXPECT_EQ(parseGrpcTimeoutUs("1n"), 1);
  EXPECT_EQ(parseGrpcTimeoutUs("999n"), 1);
  EXPECT_EQ(parseGrpcTimeoutUs("1000n"), 1);
  EXPECT_EQ(parseGrpcTimeoutUs("1001n"), 2);
  EXPECT_EQ(parseGrpcTimeoutUs("1500n"), 2);
}

TEST(GrpcTimeoutParseTest, EightDigitsAndLeadingZerosAccepted) {
  EXPECT_EQ(parseGrpcTimeoutUs("99999999S"), 99'999'999 * kS);
  EXPECT_EQ(parseGrpcTimeoutUs("99999999H"), int64_t{99'999'999} * 3600 * kS);
  EXPECT_EQ(parseGrpcTimeoutUs("00000001m"), 1 * kMs);
}

TEST(GrpcTimeoutParseTest, NineDigitsRejected) {
  EXPECT_FALSE(parseGrpcTimeoutUs("123456789S"));
  EXPECT_FALSE(parseGrpcTimeoutUs("000000001m"));
}

TEST(GrpcTimeoutParseTest, ZeroIsNotAPositiveIntegerAndIsRejected) {
  EXPECT_FALSE(parseGrpcTimeoutUs("0S"));
  EXPECT_FALSE(parseGrpcTimeoutUs("00000000m"));
}

TEST(GrpcTimeoutParseTest, MalformedValuesRejected) {
  for (const char* bad :
       {"", "S", "5", "5s", "5h", "5k", "5 S", "-5S", "+5S", "1.5S", "5SS", "0x5S", "S5", "5Sx", "\xef\xbc\x95S"}) {
    EXPECT_FALSE(parseGrpcTimeoutUs(bad).has_value()) << '"' << bad << '"';
  }
}

TEST(GrpcTimeoutParseTest, SurroundingWhitespaceStripped) { EXPECT_EQ(parseGrpcTimeoutUs(" 5S\t"), 5 * kS); }

TEST(GrpcTimeoutFormatTest, NeverBelowOneMillisecond) {
  EXPECT_EQ(formatGrpcTimeout(0), "1000u");
  EXPECT_EQ(formatGrpcTimeout(-5), "1000u");
  EXPECT_EQ(formatGrpcTimeout(1), "1000u");
  EXPECT_EQ(formatGrpcTimeout(999), "1000u");
  EXPECT_EQ(formatGrpcTimeout(1000), "1000u");
  EXPECT_EQ(formatGrpcTimeout(INT64_MIN), "1000u");
}

TEST(GrpcTimeoutFormatTest, MicrosecondsExactUpToEightDigits) {
  EXPECT_EQ(formatGrpcTimeout(1001), "1001u");
  EXPECT_EQ(formatGrpcTimeout(1'500'000), "1500000u");
  EXPECT_EQ(formatGrpcTimeout(99'999'999), "99999999u");
}

TEST(GrpcTimeoutFormatTest, OverflowMovesToCoarserUnitsRoundingUp) {
  EXPECT_EQ(formatGrpcTimeout(100'000'000), "100000m");
  EXPECT_EQ(formatGrpcTimeout(100'000'001), "100001m");  // 100000.001 ms -> up
  EXPECT_EQ(formatGrpcTimeout(int64_t{99'999'999} * kMs), "99999999m");
  EXPECT_EQ(formatGrpcTimeout(int64_t{99'999'999} * kMs + 1), "100000S");
  EXPECT_EQ(formatGrpcTimeout(int64_t{200'000} * kS), "200000S");
  EXPECT_EQ(formatGrpcTimeout(int64_t{99'999'999} * kS + 1), "1666667M");
  EXPECT_EQ(formatGrpcTimeout(int64_t{6'000'000'000} * kS), "1666667H");
}

TEST(GrpcTimeoutFormatTest, SaturatesAtTheLargestValue) {
  EXPECT_EQ(formatGrpcTimeout(INT64_MAX), "99999999H");
  EXPECT_EQ(formatGrpcTimeout(INT64_MAX).size, 9);
}

TEST(GrpcTimeoutFormatTest, RoundTripNeverShortensAndErrsByLessThanOneUnit) {
  for (int64_t us : {int64_t{1}, int64_t{999}, int64_t{1001}, int64_t{123'456'789}, int64_t{99'999'999'999},
                     int64_t{100'000'000'001}, int64_t{987'654'321'012'345}}) {
    GrpcTimeoutText t = formatGrpcTimeout(us);
    std::optional<int64_t> back = parseGrpcTimeoutUs(t.view());
    ASSERT_TRUE(back) << t.view();
    int64_t want = std::max<int64_t>(us, 1000);
    EXPECT_GE(*back, want) << us << " -> " << t.view();
    int64_t unit = *parseGrpcTimeoutUs(std::string("1") + t.data[t.size - 1]);
    EXPECT_LT(*back - want, unit) << us << " -> " << t.view();
  }
}

}  // namespace
}  // namespace mulligan::retry

namespace mulligan::retry {
namespace {

TEST(GrpcTimeoutParseTest, EveryUnitAtTheEightDigitLimitWithoutOverflow) {
  EXPECT_EQ(parseGrpcTimeoutUs("99999999n"), 100'000);  // 99999.999 us, rounded up
  EXPECT_EQ(parseGrpcTimeoutUs("99999999u"), 99'999'999);
  EXPECT_EQ(parseGrpcTimeoutUs("99999999m"), int64_t{99'999'999} * 1000);
  EXPECT_EQ(parseGrpcTimeoutUs("99999999M"), int64_t{99'999'999} * 60 * 1'000'000);
  for (const char* nine : {"100000000n", "100000000u", "100000000m", "100000000S", "100000000M", "100000000H"}) {
    EXPECT_FALSE(parseGrpcTimeoutUs(nine)) << nine;
  }
}

TEST(GrpcTimeoutFormatTest, EveryUnitChosenOnlyWhenTheFinerOneNeedsNineDigits) {
  constexpr int64_t kM = 60 * 1'000'000;
  EXPECT_EQ(formatGrpcTimeout(300'000), "300000u");  // a 300 ms route timeout
  EXPECT_EQ(formatGrpcTimeout(int64_t{99'999'999} * 1'000'000), "99999999S");
  EXPECT_EQ(formatGrpcTimeout(int64_t{99'999'999} * kM), "99999999M");
  EXPECT_EQ(formatGrpcTimeout(int64_t{99'999'999} * kM + 1), "1666667H");
  for (int64_t us : {int64_t{1'000}, int64_t{99'999'999'999}, int64_t{99'999'999} * kM}) {
    EXPECT_LE(formatGrpcTimeout(us).size, kGrpcTimeoutMaxChars);
  }
}

}  // namespace
}  // namespace mulligan::retry
