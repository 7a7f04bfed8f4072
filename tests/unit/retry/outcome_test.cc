// What an attempt ended with, and the labels logs and metrics use.
#include "sidecar/retry/outcome.h"

#include <gtest/gtest.h>

#include <string>

namespace mulligan::retry {
namespace {

TEST(OutcomeTest, KindNamesAreTheRetryOnSpellings) {
  EXPECT_EQ(outcomeKindName(OutcomeKind::kConnectFailure), "connect-failure");
  EXPECT_EQ(outcomeKindName(OutcomeKind::kReset), "reset");
  EXPECT_EQ(outcomeKindName(OutcomeKind::kRefusedStream), "refused-stream");
  EXPECT_EQ(outcomeKindName(OutcomeKind::kPerTryTimeout), "per-try-timeout");
  EXPECT_EQ(outcomeKindName(OutcomeKind::kResponse), "response");
  EXPECT_EQ(outcomeKindName(OutcomeKind::kOverflow), "overflow");
}

TEST(OutcomeTest, ReasonIsGrpcNameThenStatusThenKind) {
  EXPECT_EQ(Outcome::response(503).reason(), "503");
  EXPECT_EQ(Outcome::response(429).reason(), "429");
  EXPECT_EQ(Outcome::grpcResponse(14).reason(), "unavailable");
  EXPECT_EQ(Outcome::grpcResponse(4).reason(), "deadline-exceeded");
  EXPECT_EQ(Outcome::grpcResponse(99, 200).reason(), "200");
  EXPECT_EQ(Outcome::reset().reason(), "reset");
  EXPECT_EQ(Outcome::perTryTimeout().reason(), "per-try-timeout");
  EXPECT_EQ(Outcome::response(1234).reason(), "response");
}

TEST(OutcomeTest, NeverReachedIsImpliedByConnectFailureAndRefusedStreamOrFlagged) {
  EXPECT_TRUE(Outcome::connectFailure().neverReachedUpstream());
  EXPECT_TRUE(Outcome::refusedStream().neverReachedUpstream());
  EXPECT_FALSE(Outcome::reset().neverReachedUpstream());
  EXPECT_FALSE(Outcome::perTryTimeout().neverReachedUpstream());
  EXPECT_FALSE(Outcome::response(503).neverReachedUpstream());
  Outcome o = Outcome::reset();
  o.never_reached = true;
  EXPECT_TRUE(o.neverReachedUpstream());
}

TEST(OutcomeTest, GrpcStatusNamesCoverAllSeventeenCodes) {
  EXPECT_EQ(grpcStatusName(0), "ok");
  EXPECT_EQ(grpcStatusName(1), "cancelled");
  EXPECT_EQ(grpcStatusName(4), "deadline-exceeded");
  EXPECT_EQ(grpcStatusName(8), "resource-exhausted");
  EXPECT_EQ(grpcStatusName(13), "internal");
  EXPECT_EQ(grpcStatusName(14), "unavailable");
  EXPECT_EQ(grpcStatusName(16), "unauthenticated");
  EXPECT_EQ(grpcStatusName(17), "");
  EXPECT_EQ(grpcStatusName(-1), "");
}

TEST(OutcomeTest, StatusTextIsThreeDigitsWithoutAllocation) {
  EXPECT_EQ(httpStatusText(503), "503");
  EXPECT_EQ(httpStatusText(7), "007");
  EXPECT_EQ(httpStatusText(999), "999");
  EXPECT_EQ(httpStatusText(1000), "");
  EXPECT_EQ(httpStatusText(-1), "");
  EXPECT_EQ(httpStatusText(503).data(), httpStatusText(503).data());  // static storage
}

TEST(OutcomeTest, GrpcStatusDerivedFromHttpStatusAsGrpcSpecifies) {
  EXPECT_EQ(grpcStatusFromHttp(200), kNoGrpcStatus);
  EXPECT_EQ(grpcStatusFromHttp(400), 13);
  EXPECT_EQ(grpcStatusFromHttp(401), 16);
  EXPECT_EQ(grpcStatusFromHttp(403), 7);
  EXPECT_EQ(grpcStatusFromHttp(404), 12);
  for (int s : {429, 502, 503, 504}) EXPECT_EQ(grpcStatusFromHttp(s), 14) << s;
  EXPECT_EQ(grpcStatusFromHttp(500), 2);
  EXPECT_EQ(grpcStatusFromHttp(418), 2);
}

TEST(HeaderValueTest, AbsentDiffersFromEmpty) {
  HeaderValue absent;
  HeaderValue empty = std::string_view("");
  EXPECT_FALSE(absent.present());
  EXPECT_TRUE(empty.present());
  EXPECT_EQ(empty.value(), "");
  const std::string* none = nullptr;
  EXPECT_FALSE(HeaderValue(none).present());
  std::string s = "120";
  HeaderValue from_ptr = &s;
  EXPECT_TRUE(from_ptr);
  EXPECT_EQ(from_ptr.value(), "120");
  EXPECT_EQ(HeaderValue("x").value(), "x");
  EXPECT_FALSE(HeaderValue(nullptr));
}

TEST(HeaderValueTest, TrimOwsStripsSpacesAndTabsOnly) {
  EXPECT_EQ(trimOws(" \t5 \t"), "5");
  EXPECT_EQ(trimOws("a b"), "a b");
  EXPECT_EQ(trimOws("   "), "");
  EXPECT_EQ(trimOws("\r5"), "\r5");
}

}  // namespace
}  // namespace mulligan::retry
