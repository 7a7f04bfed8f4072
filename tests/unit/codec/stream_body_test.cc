// StreamBody: a stream's body for nghttp2, small ones inline, the rest in an
// evbuffer, always in order.
#include "sidecar/codec/http2/stream_body.h"

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <string>
#include <vector>

namespace mulligan::proxy {
namespace {

// Non-repeating bytes: a misplaced or repeated chunk shows.
std::string pattern(size_t n, size_t from = 0) {
  std::string s;
  for (size_t i = from; i < from + n; ++i) s.push_back(static_cast<char>((i * 7919 + i / 251) & 0xff));
  return s;
}

std::string drain(StreamBody& b, size_t chunk) {
  std::string out;
  std::vector<uint8_t> buf(chunk);
  while (size_t n = b.remove(buf.data(), buf.size())) out.append(reinterpret_cast<char*>(buf.data()), n);
  return out;
}

TEST(StreamBodyTest, SmallBodyStaysInlineAndComesOutWhole) {
  StreamBody b;
  EXPECT_TRUE(b.empty());
  std::string in = pattern(300);
  b.add(in.data(), in.size());
  EXPECT_EQ(b.length(), 300u);
  EXPECT_EQ(drain(b, 16384), in);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.length(), 0u);
}

TEST(StreamBodyTest, BytesKeepTheirOrderAcrossTheInlinePartAndTheEvbuffer) {
  // Adds of every size around the inline room, read in chunks of other
  // sizes between adds: what comes out is exactly what went in.
  for (size_t chunk : {1u, 7u, 1000u, 1024u, 4096u, 16384u}) {
    StreamBody b;
    std::string in, out;
    size_t at = 0;
    for (size_t size : {10u, 1000u, 14u, 1u, 3000u, 1024u, 5u, 70000u, 2u, 1023u}) {
      std::string piece = pattern(size, at);
      at += size;
      b.add(piece.data(), piece.size());
      in += piece;
      EXPECT_EQ(b.length(), in.size() - out.size());
      std::vector<uint8_t> buf(chunk);
      size_t n = b.remove(buf.data(), buf.size());
      out.append(reinterpret_cast<char*>(buf.data()), n);
    }
    out += drain(b, chunk);
    EXPECT_EQ(out, in) << "chunk " << chunk;
    EXPECT_TRUE(b.empty());
    // Empty again: small bodies go inline once more.
    std::string tail = pattern(100, at);
    b.add(tail.data(), tail.size());
    EXPECT_EQ(drain(b, 64), tail);
  }
}

TEST(StreamBodyTest, ReadSaysEofOnlyOnceEndedAndEmptyAndDefersWhenNothingWaits) {
  StreamBody b;
  uint8_t buf[64];
  uint32_t flags = 0;
  bool trailers = false;
  EXPECT_EQ(readStreamBody(b, false, false, buf, sizeof buf, &flags, &trailers), NGHTTP2_ERR_DEFERRED);
  std::string in = pattern(100);
  b.add(in.data(), in.size());
  EXPECT_EQ(readStreamBody(b, true, true, buf, sizeof buf, &flags, &trailers), 64);
  EXPECT_EQ(flags, 0u);
  EXPECT_EQ(readStreamBody(b, true, true, buf, sizeof buf, &flags, &trailers), 36);
  EXPECT_EQ(flags, uint32_t{NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM});
  EXPECT_TRUE(trailers);
}

TEST(StreamBodyTest, ClearDropsBothParts) {
  StreamBody b;
  std::string in = pattern(5000);
  b.add(in.data(), 500);
  b.add(in.data() + 500, 4500);
  b.clear();
  EXPECT_TRUE(b.empty());
  b.add(in.data(), 10);
  EXPECT_EQ(drain(b, 100), in.substr(0, 10));
}

}  // namespace
}  // namespace mulligan::proxy
