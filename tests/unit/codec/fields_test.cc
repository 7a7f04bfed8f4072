// The protocol helpers both codecs share: gRPC recognition, grpc-status and
// grpc-message on the wire, and the connection-specific fields.
#include "sidecar/codec/fields.h"
#include "sidecar/retry/outcome.h"

#include <gtest/gtest.h>

namespace mulligan::proxy {
namespace {

TEST(GrpcContentTypeTest, GrpcAndItsSubtypesOnly) {
  for (const char* yes : {"application/grpc", "application/grpc+proto", "application/grpc+json",
                          "application/grpc;charset=utf-8", "Application/GRPC"}) {
    std::string v = yes;
    EXPECT_TRUE(isGrpcContentType(v)) << yes;
  }
  for (const char* no : {"", "application/json", "application/grpc-web", "application/grpc-web+proto",
                         "application/grpcx", "text/plain"}) {
    std::string v = no;
    EXPECT_FALSE(isGrpcContentType(v)) << no;
  }
  EXPECT_FALSE(isGrpcContentType(std::nullopt));
}

TEST(GrpcStatusWireTest, ZeroToSixteenAcceptedEverythingElseIsNoStatus) {
  for (int i = 0; i <= 16; ++i) {
    std::string v = std::to_string(i);
    EXPECT_EQ(parseGrpcStatus(v), i);
  }
  for (const char* bad : {"", "17", "99", "100", "-1", "+1", " 1", "1 ", "x", "01a"}) {
    std::string v = bad;
    EXPECT_EQ(parseGrpcStatus(v), retry::kNoGrpcStatus) << '"' << bad << '"';
  }
  EXPECT_EQ(parseGrpcStatus(std::nullopt), retry::kNoGrpcStatus);
}

TEST(GrpcMessageWireTest, PercentEncodesOutsidePrintableAsciiAndPercent) {
  EXPECT_EQ(percentEncodeGrpcMessage("upstream request timeout"), "upstream request timeout");
  EXPECT_EQ(percentEncodeGrpcMessage("100% done\n"), "100%25 done%0A");
  EXPECT_EQ(percentEncodeGrpcMessage("caf\xc3\xa9"), "caf%C3%A9");
  EXPECT_EQ(percentEncodeGrpcMessage(""), "");
}

TEST(HopByHopTest, ConnectionSpecificFieldsAndTheOnesConnectionNames) {
  for (const char* h : {"Connection", "keep-alive", "Proxy-Connection", "TE", "transfer-encoding", "upgrade"}) {
    EXPECT_TRUE(isHopByHop(h)) << h;
  }
  for (const char* h : {"content-type", "grpc-timeout", "x-request-id", "host"}) EXPECT_FALSE(isHopByHop(h)) << h;
  HeaderList headers{{"Connection", "close, X-Secret"}, {"x-secret", "1"}};
  EXPECT_TRUE(namedInConnection(headers, "X-SECRET"));
  EXPECT_FALSE(namedInConnection(headers, "x-other"));
}

TEST(NotATrailerTest, ConnectionSpecificFieldsAndFramingAndRoutingOnes) {
  // Every connection-specific field: Proxy-Authorization (meant for us) and
  // Expect in a trailer were forwarded before notATrailer asked isHopByHop.
  for (const char* h : {"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Transfer-Encoding", "Upgrade",
                        "Trailer", "Expect", "HTTP2-Settings", "Proxy-Authorization"}) {
    EXPECT_TRUE(isHopByHop(h)) << h;
    EXPECT_TRUE(notATrailer(h)) << h;
  }
  // Framing and routing (RFC 9110 §6.5.1), not connection-specific in a head.
  for (const char* h : {"Host", "content-length"}) {
    EXPECT_FALSE(isHopByHop(h)) << h;
    EXPECT_TRUE(notATrailer(h)) << h;
  }
  for (const char* h : {"grpc-status", "grpc-message", "x-checksum", "server-timing"}) {
    EXPECT_FALSE(notATrailer(h)) << h;
  }
}

}  // namespace
}  // namespace mulligan::proxy
