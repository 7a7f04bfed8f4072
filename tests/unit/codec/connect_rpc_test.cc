// The Connect protocol as the proxy reads it (connectrpc.com/docs/protocol).
#include "sidecar/codec/connect_rpc.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mulligan::proxy {
namespace {

using Verdict = ConnectErrorReader::Verdict;

std::string envelope(uint8_t flags, const std::string& payload) {
  std::string out(1, static_cast<char>(flags));
  auto n = static_cast<uint32_t>(payload.size());
  out += static_cast<char>(n >> 24);
  out += static_cast<char>(n >> 16 & 0xff);
  out += static_cast<char>(n >> 8 & 0xff);
  out += static_cast<char>(n & 0xff);
  return out + payload;
}

TEST(ConnectRpcTest, KindFromContentTypeAndProtocolVersion) {
  EXPECT_EQ(connectKind("application/json", "1"), ConnectKind::kUnary);
  EXPECT_EQ(connectKind("application/proto", " 1 "), ConnectKind::kUnary);
  EXPECT_EQ(connectKind("application/connect+proto", std::nullopt), ConnectKind::kStreaming);
  EXPECT_EQ(connectKind("Application/Connect+JSON", "1"), ConnectKind::kStreaming);
  EXPECT_EQ(connectKind("application/json", std::nullopt), ConnectKind::kNone);
  EXPECT_EQ(connectKind("application/json", "2"), ConnectKind::kNone);
  EXPECT_EQ(connectKind("application/grpc", std::nullopt), ConnectKind::kNone);
  EXPECT_EQ(connectKind(std::nullopt, std::nullopt), ConnectKind::kNone);
}

TEST(ConnectRpcTest, CodeNamesAreGrpcCodesInSnakeCase) {
  EXPECT_EQ(connectCodeName(1), "canceled");
  EXPECT_EQ(connectCodeName(4), "deadline_exceeded");
  EXPECT_EQ(connectCodeName(14), "unavailable");
  EXPECT_EQ(connectCodeName(16), "unauthenticated");
  EXPECT_EQ(connectCodeName(0), "");
  EXPECT_EQ(connectCodeName(17), "");
  for (int c = 1; c <= 16; ++c) EXPECT_EQ(connectCodeFromName(connectCodeName(c)), c);
  EXPECT_EQ(connectCodeFromName("cancelled"), kNoConnectCode);  // gRPC's spelling is not Connect's
  EXPECT_EQ(connectCodeFromName("UNAVAILABLE"), kNoConnectCode);
  EXPECT_EQ(connectHttpStatus(14), 503);
  EXPECT_EQ(connectHttpStatus(4), 504);
  EXPECT_EQ(connectHttpStatus(6), 409);
}

TEST(ConnectRpcTest, UnaryErrorBodyGivesItsCode) {
  EXPECT_EQ(parseConnectErrorBody(R"({"code":"unavailable","message":"try later"})"), 14);
  EXPECT_EQ(parseConnectErrorBody(R"( { "message" : "a \"quoted\" }", "details":[{"type":"x","value":"eA"}],
                                     "code" : "resource_exhausted" } )"),
            8);
  EXPECT_EQ(parseConnectErrorBody(R"({"code":"nope"})"), kNoConnectCode);
  EXPECT_EQ(parseConnectErrorBody(R"({"code":14})"), kNoConnectCode);
  EXPECT_EQ(parseConnectErrorBody("upstream connect error"), kNoConnectCode);
  EXPECT_EQ(parseConnectErrorBody(R"({"code":"unavailable")"), kNoConnectCode);  // truncated
  EXPECT_EQ(parseConnectErrorBody(R"({"code":"unavailable"} x)"), kNoConnectCode);
  EXPECT_EQ(parseConnectErrorBody(R"({"nested":{"code":"internal"}})"), kNoConnectCode);
  EXPECT_EQ(parseConnectErrorBody("{\"a\":" + std::string(100, '[')), kNoConnectCode);  // depth-limited, no crash
}

TEST(ConnectRpcTest, EndStreamErrorOrSuccess) {
  EXPECT_EQ(parseConnectEndStream(R"({"error":{"code":"unavailable","message":"x"},"metadata":{"a":["b"]}})"), 14);
  EXPECT_EQ(parseConnectEndStream("{}"), 0);
  EXPECT_EQ(parseConnectEndStream(R"({"metadata":{"k":["v"]}})"), 0);
  EXPECT_EQ(parseConnectEndStream(R"({"error":null})"), 0);
  EXPECT_EQ(parseConnectEndStream("not json"), kNoConnectCode);
  EXPECT_EQ(parseConnectEndStream(R"({"error":{"code":"unavailable"})"), kNoConnectCode);
}

TEST(ConnectRpcTest, OwnRepliesRoundTrip) {
  std::string body = connectErrorJson(4, "request \"timeout\"\n");
  EXPECT_EQ(body, R"({"code":"deadline_exceeded","message":"request \"timeout\"\n"})");
  EXPECT_EQ(parseConnectErrorBody(body), 4);
  std::string end = connectEndStreamMessage(14, "no upstream");
  ASSERT_GT(end.size(), kConnectEnvelopeHeader);
  EXPECT_EQ(static_cast<uint8_t>(end[0]), kConnectFlagEndStream);
  EXPECT_EQ(end, envelope(kConnectFlagEndStream, R"({"error":{"code":"unavailable","message":"no upstream"}})"));
}

TEST(ConnectRpcTest, UnaryReaderHoldsTheBodyThenReadsItsCode) {
  ConnectErrorReader r(false, 64);
  std::string_view a = R"({"code":"unav)", b = R"(ailable"})";
  EXPECT_EQ(r.feed(a.data(), a.size()), Verdict::kMore);
  EXPECT_EQ(r.feed(b.data(), b.size()), Verdict::kMore);
  EXPECT_EQ(r.end(), Verdict::kError);
  EXPECT_EQ(r.code(), 14);
  EXPECT_EQ(r.held(), R"({"code":"unavailable"})");
}

TEST(ConnectRpcTest, UnaryReaderCommitsPastItsCap) {
  ConnectErrorReader r(false, 8);
  EXPECT_EQ(r.feed("12345", 5), Verdict::kMore);
  EXPECT_EQ(r.feed("6789", 4), Verdict::kCommit);
  EXPECT_EQ(r.held(), "123456789");  // nothing lost
}

TEST(ConnectRpcTest, UnaryReaderNonConnectBodyIsAnErrorWithoutCode) {
  ConnectErrorReader r(false, 64);
  r.feed("503 Service Unavailable\n", 24);
  EXPECT_EQ(r.end(), Verdict::kError);
  EXPECT_EQ(r.code(), kNoConnectCode);
}

TEST(ConnectRpcTest, StreamingReaderCommitsOnAMessage) {
  ConnectErrorReader r(true, 1024);
  EXPECT_EQ(r.feed("\0\0", 2), Verdict::kMore);  // not yet a whole envelope header
  std::string rest = envelope(0, "hello").substr(2);
  EXPECT_EQ(r.feed(rest.data(), rest.size()), Verdict::kCommit);
  EXPECT_EQ(r.held(), envelope(0, "hello"));
}

TEST(ConnectRpcTest, StreamingReaderReadsAnEndStreamError) {
  std::string m = envelope(kConnectFlagEndStream, R"({"error":{"code":"unavailable"}})");
  ConnectErrorReader r(true, 1024);
  EXPECT_EQ(r.feed(m.data(), 9), Verdict::kMore);
  EXPECT_EQ(r.feed(m.data() + 9, m.size() - 9), Verdict::kError);
  EXPECT_EQ(r.code(), 14);
}

TEST(ConnectRpcTest, StreamingReaderCommitsOnSuccessCompressedOrOversized) {
  std::string ok = envelope(kConnectFlagEndStream, "{}");
  ConnectErrorReader a(true, 1024);
  EXPECT_EQ(a.feed(ok.data(), ok.size()), Verdict::kCommit);
  std::string gz = envelope(kConnectFlagEndStream | kConnectFlagCompressed, "zz");
  ConnectErrorReader b(true, 1024);
  EXPECT_EQ(b.feed(gz.data(), gz.size()), Verdict::kCommit);
  std::string big = envelope(kConnectFlagEndStream, std::string(100, ' ')).substr(0, 5);
  ConnectErrorReader c(true, 50);
  EXPECT_EQ(c.feed(big.data(), big.size()), Verdict::kCommit);  // declared longer than the cap
  ConnectErrorReader d(true, 1024);
  EXPECT_EQ(d.feed("\2\0", 2), Verdict::kMore);
  EXPECT_EQ(d.end(), Verdict::kCommit);  // broke off: pass on what came
}

TEST(ConnectRpcTest, EnvelopeTrackerKnowsMessageBoundariesAcrossSplits) {
  std::string s = envelope(0, "abc") + envelope(0, "") + envelope(0, std::string(300, 'x'));
  ConnectEnvelopeTracker t;
  EXPECT_TRUE(t.atBoundary());
  std::vector<bool> at;
  for (char c : s) {
    t.feed(&c, 1);
    at.push_back(t.atBoundary());
  }
  EXPECT_TRUE(t.atBoundary());
  EXPECT_FALSE(t.ended());
  EXPECT_TRUE(at[7]);    // after "abc"'s envelope
  EXPECT_TRUE(at[12]);   // after the empty one
  EXPECT_FALSE(at[13]);  // inside the third header
  EXPECT_FALSE(at[s.size() - 2]);
  std::string end = envelope(kConnectFlagEndStream, "{}");
  t.feed(end.data(), end.size());
  EXPECT_TRUE(t.ended());
}

}  // namespace
}  // namespace mulligan::proxy
