// Http2FloodGuard and TokenBucket (sidecar/codec/http2/http2_limits.h): what an
// HTTP/2 peer may send before its connection is ended, with scripted time.
#include "sidecar/codec/http2/http2_limits.h"

#include <gtest/gtest.h>

namespace mulligan::proxy {
namespace {

nghttp2_frame_hd hd(uint8_t type, uint8_t flags = 0, size_t length = 0, int32_t stream = 0) {
  nghttp2_frame_hd h{};
  h.type = type;
  h.flags = flags;
  h.length = length;
  h.stream_id = stream;
  return h;
}

TEST(TokenBucketTest, BurstThenRefillAtTheRate) {
  TokenBucket b(3, 10);  // 3 at once, 10 a second
  EXPECT_TRUE(b.take(0));
  EXPECT_TRUE(b.take(0));
  EXPECT_TRUE(b.take(0));
  EXPECT_FALSE(b.take(0));
  EXPECT_FALSE(b.take(50'000));  // half a token earned
  EXPECT_TRUE(b.take(100'000));  // one token after 100 ms in all
  EXPECT_FALSE(b.take(100'000));
  EXPECT_TRUE(b.take(10'000'000));  // long quiet: back to the burst, no more
  EXPECT_TRUE(b.take(10'000'000));
  EXPECT_TRUE(b.take(10'000'000));
  EXPECT_FALSE(b.take(10'000'000));
}

TEST(Http2FloodGuardTest, PingFloodTripsAfterTheBurstAndAcksAreFree) {
  Http2FloodGuard g(false);
  for (uint32_t i = 0; i < Http2FloodGuard::kControlBurst; ++i) ASSERT_FALSE(g.onFrameHeader(hd(NGHTTP2_PING), 0));
  for (int i = 0; i < 10000; ++i) ASSERT_FALSE(g.onFrameHeader(hd(NGHTTP2_PING, NGHTTP2_FLAG_ACK), 0));
  EXPECT_TRUE(g.onFrameHeader(hd(NGHTTP2_PING), 0));
  EXPECT_EQ(g.offence(), Http2Offence::kPingFlood);
}

TEST(Http2FloodGuardTest, PingsWhileWeSendDataAreForgiven) {
  // A BDP estimator: one PING per round trip while the response flows.
  Http2FloodGuard g(false);
  for (int i = 0; i < 100000; ++i) {
    ASSERT_FALSE(g.onFrameHeader(hd(NGHTTP2_PING), 0));
    if (i % 100 == 0) g.onDataSent();
  }
}

TEST(Http2FloodGuardTest, SettingsHaveTheirBudgetAtAPeacefulRate) {
  Http2FloodGuard g(false);
  // One a second for an hour: always within the budget.
  for (int64_t s = 0; s < 3600; ++s) ASSERT_FALSE(g.onFrameHeader(hd(NGHTTP2_SETTINGS), s * 1'000'000));
  Http2FloodGuard flood(false);
  bool tripped = false;
  for (uint32_t i = 0; i <= Http2FloodGuard::kControlBurst && !tripped; ++i) {
    tripped = flood.onFrameHeader(hd(NGHTTP2_SETTINGS), 0);
  }
  EXPECT_TRUE(tripped);
  EXPECT_EQ(flood.offence(), Http2Offence::kSettingsFlood);
}

TEST(Http2FloodGuardTest, EmptyFramesInARowTripButPayloadOrAnEndResetsTheCount) {
  Http2FloodGuard g(false);
  for (int round = 0; round < 3; ++round) {
    for (uint32_t i = 0; i < Http2FloodGuard::kMaxEmptyFrames; ++i) ASSERT_FALSE(g.onFrameHeader(hd(NGHTTP2_DATA), 0));
    ASSERT_FALSE(g.onFrameHeader(hd(NGHTTP2_DATA, 0, 1), 0));  // one byte: progress
  }
  for (uint32_t i = 0; i < Http2FloodGuard::kMaxEmptyFrames; ++i) ASSERT_FALSE(g.onFrameHeader(hd(NGHTTP2_DATA), 0));
  ASSERT_FALSE(g.onFrameHeader(hd(NGHTTP2_DATA, NGHTTP2_FLAG_END_STREAM), 0));  // an empty end is progress
  for (uint32_t i = 0; i < Http2FloodGuard::kMaxEmptyFrames; ++i) {
    ASSERT_FALSE(g.onFrameHeader(hd(NGHTTP2_CONTINUATION), 0));
  }
  EXPECT_TRUE(g.onFrameHeader(hd(NGHTTP2_HEADERS), 0));
  EXPECT_EQ(g.offence(), Http2Offence::kEmptyFrames);
}

TEST(Http2FloodGuardTest, ResetsCountOnlyOnAServer) {
  Http2FloodGuard client(false), server(true);
  for (uint32_t i = 0; i < 10 * Http2FloodGuard::kResetBurst; ++i) {
    ASSERT_FALSE(client.onFrameHeader(hd(NGHTTP2_RST_STREAM, 0, 4, 1), 0));
  }
  bool tripped = false;
  for (uint32_t i = 0; i <= Http2FloodGuard::kResetBurst && !tripped; ++i) {
    tripped = server.onFrameHeader(hd(NGHTTP2_RST_STREAM, 0, 4, 1), 0);
  }
  EXPECT_TRUE(tripped);
  EXPECT_EQ(server.offence(), Http2Offence::kRapidReset);
}

TEST(Http2OffenceTest, FloodsAreEnhanceYourCalmAndABackwardsStreamIdIsAProtocolError) {
  EXPECT_EQ(offenceErrorCode(Http2Offence::kPingFlood), NGHTTP2_ENHANCE_YOUR_CALM);
  EXPECT_EQ(offenceErrorCode(Http2Offence::kRapidReset), NGHTTP2_ENHANCE_YOUR_CALM);
  EXPECT_EQ(offenceErrorCode(Http2Offence::kStreamId), NGHTTP2_PROTOCOL_ERROR);
  EXPECT_EQ(offenceOfNghttp2Error(NGHTTP2_ERR_FLOODED), Http2Offence::kOutboundFlood);
  EXPECT_EQ(offenceName(Http2Offence::kEmptyFrames), "empty-frames");
}

}  // namespace
}  // namespace mulligan::proxy
