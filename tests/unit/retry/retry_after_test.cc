// Retry-After (RFC 9110 §10.2.3, HTTP-date §5.6.7) and grpc-retry-pushback-ms.
#include "sidecar/retry/retry_after.h"

#include <gtest/gtest.h>

namespace mulligan::retry {
namespace {

constexpr int64_t kS = 1'000'000;
constexpr int64_t kNow = 1'700'000'000;  // Tue, 14 Nov 2023 22:13:20 GMT
constexpr int64_t k1994 = 784111777;     // Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110's example)

TEST(HttpDateTest, ImfFixdate) {
  EXPECT_EQ(parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT", kNow), k1994);
  EXPECT_EQ(parseHttpDate("Thu, 01 Jan 1970 00:00:00 GMT", kNow), 0);
  EXPECT_EQ(parseHttpDate("Tue, 14 Nov 2023 22:13:20 GMT", kNow), kNow);
}

TEST(HttpDateTest, ObsoleteRfc850AndAsctimeForms) {
  EXPECT_EQ(parseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT", kNow), k1994);
  EXPECT_EQ(parseHttpDate("Sun Nov  6 08:49:37 1994", kNow), k1994);
  EXPECT_EQ(parseHttpDate("Wed Nov 16 08:49:37 1994", kNow), k1994 + 10 * 86400);
}

TEST(HttpDateTest, Rfc850TwoDigitYearIsWithinFiftyYearsOfNow) {
  // now is 2023: "30" is 2030, "73" is 2073 (exactly 50 years on), "74" is 1974.
  int64_t y2030 = *parseHttpDate("Tue, 01 Jan 2030 00:00:00 GMT", kNow);
  int64_t y2073 = *parseHttpDate("Sun, 01 Jan 2073 00:00:00 GMT", kNow);
  int64_t y1974 = *parseHttpDate("Tue, 01 Jan 1974 00:00:00 GMT", kNow);
  EXPECT_EQ(parseHttpDate("Tuesday, 01-Jan-30 00:00:00 GMT", kNow), y2030);
  EXPECT_EQ(parseHttpDate("Sunday, 01-Jan-73 00:00:00 GMT", kNow), y2073);
  EXPECT_EQ(parseHttpDate("Tuesday, 01-Jan-74 00:00:00 GMT", kNow), y1974);
}

TEST(HttpDateTest, CalendarIsChecked) {
  EXPECT_TRUE(parseHttpDate("Thu, 29 Feb 1996 00:00:00 GMT", kNow));
  EXPECT_TRUE(parseHttpDate("Tue, 29 Feb 2000 00:00:00 GMT", kNow));
  EXPECT_FALSE(parseHttpDate("Thu, 29 Feb 1900 00:00:00 GMT", kNow));
  EXPECT_FALSE(parseHttpDate("Sun, 30 Feb 1994 08:49:37 GMT", kNow));
  EXPECT_FALSE(parseHttpDate("Sun, 31 Apr 1994 08:49:37 GMT", kNow));
  EXPECT_FALSE(parseHttpDate("Sun, 00 Nov 1994 08:49:37 GMT", kNow));
  EXPECT_FALSE(parseHttpDate("Sun, 06 Nov 1994 24:00:00 GMT", kNow));
  EXPECT_FALSE(parseHttpDate("Sun, 06 Nov 1994 08:60:00 GMT", kNow));
  EXPECT_EQ(parseHttpDate("Sun, 06 Nov 1994 08:49:60 GMT", kNow), k1994 + 23);  // leap second
}

TEST(HttpDateTest, MalformedDatesRejected) {
  for (const char* bad : {
           "",
           "sun, 06 Nov 1994 08:49:37 GMT",  // names are case-sensitive
           "Sun, 06 nov 1994 08:49:37 GMT",
           "Sun, 06 Nov 1994 08:49:37 UTC",
           "Sun, 06 Nov 1994 08:49:37 GMT x",
           "Sun, 6 Nov 1994 08:49:37 GMT",  // IMF-fixdate days are two digits
           "Sun, 06 Nov 94 08:49:37 GMT",
           "Sun, 06 Nov 1994 8:49:37 GMT",
           "Sun Nov 6 08:49:37 1994",  // asctime pads the day with a space
           "Sunday, 06-Nov-1994 08:49:37 GMT",
           "Sunday, 06 Nov 94 08:49:37 GMT",
           "Xyz, 06 Nov 1994 08:49:37 GMT",
           "1994-11-06T08:49:37Z",
       }) {
    EXPECT_FALSE(parseHttpDate(bad, kNow)) << bad;
  }
}

TEST(RetryAfterTest, DelaySeconds) {
  EXPECT_EQ(parseRetryAfterUs("120", kNow), 120 * kS);
  EXPECT_EQ(parseRetryAfterUs("0", kNow), 0);
  EXPECT_EQ(parseRetryAfterUs(" 3 ", kNow), 3 * kS);
  EXPECT_EQ(parseRetryAfterUs("007", kNow), 7 * kS);
}

TEST(RetryAfterTest, HugeDelaySaturatesInsteadOfOverflowing) {
  EXPECT_EQ(parseRetryAfterUs("99999999999999999999999", kNow), kMaxPushbackUs);
}

TEST(RetryAfterTest, HttpDateIsRelativeToNowAndThePastMeansNow) {
  EXPECT_EQ(parseRetryAfterUs("Tue, 14 Nov 2023 22:13:23 GMT", kNow), 3 * kS);
  EXPECT_EQ(parseRetryAfterUs("Tue, 14 Nov 2023 22:13:20 GMT", kNow), 0);
  EXPECT_EQ(parseRetryAfterUs("Sun, 06 Nov 1994 08:49:37 GMT", kNow), 0);
  EXPECT_EQ(parseRetryAfterUs("Sun, 06 Nov 1994 08:49:37 GMT", k1994 - 5), 5 * kS);
}

TEST(RetryAfterTest, MalformedValuesAreNotADelay) {
  for (const char* bad : {"", " ", "-1", "1.5", "abc", "3s", "+3", "0x10", "Sun, 06 Nov 1994"}) {
    EXPECT_FALSE(parseRetryAfterUs(bad, kNow)) << '"' << bad << '"';
  }
}

TEST(GrpcPushbackTest, NonNegativeMilliseconds) {
  EXPECT_EQ(parseGrpcPushbackUs("250"), 250'000);
  EXPECT_EQ(parseGrpcPushbackUs("0"), 0);
  EXPECT_EQ(parseGrpcPushbackUs("99999999999999999999999"), kMaxPushbackUs);
}

TEST(GrpcPushbackTest, NegativeOrNotAnIntegerMeansDoNotRetry) {
  for (const char* bad : {"-1", "-0", "", "abc", "1.5", "+3", "3ms", "1e3"}) {
    EXPECT_FALSE(parseGrpcPushbackUs(bad)) << '"' << bad << '"';
  }
}

}  // namespace
}  // namespace mulligan::retry
