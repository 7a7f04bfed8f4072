// http2Memory(): nghttp2's allocator (codec/http2/http2_memory.h).
#include "sidecar/codec/http2/http2_memory.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "sidecar/core/recycled.h"

namespace mulligan::proxy {
namespace {

TEST(Http2MemoryTest, ReallocKeepsTheBytesAcrossSizesAndCallocZeroes) {
  nghttp2_mem* m = http2Memory();
  auto* p = static_cast<uint8_t*>(m->malloc(40, m->mem_user_data));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u);  // malloc's alignment
  for (int i = 0; i < 40; ++i) p[i] = static_cast<uint8_t>(i);
  p = static_cast<uint8_t*>(m->realloc(p, 60, m->mem_user_data));  // same block (64)
  p = static_cast<uint8_t*>(m->realloc(p, 900, m->mem_user_data));  // pooled, larger
  p = static_cast<uint8_t*>(m->realloc(p, 5000, m->mem_user_data));  // beyond the pools
  for (int i = 0; i < 40; ++i) ASSERT_EQ(p[i], i) << i;
  p = static_cast<uint8_t*>(m->realloc(p, 10, m->mem_user_data));  // back into a pool
  for (int i = 0; i < 10; ++i) ASSERT_EQ(p[i], i) << i;
  m->free(p, m->mem_user_data);
  m->free(nullptr, m->mem_user_data);

  auto* z = static_cast<uint8_t*>(m->calloc(100, 3, m->mem_user_data));
  std::memset(z, 0xff, 300);
  m->free(z, m->mem_user_data);
  z = static_cast<uint8_t*>(m->calloc(100, 3, m->mem_user_data));  // likely the same block again
  for (int i = 0; i < 300; ++i) ASSERT_EQ(z[i], 0) << i;
  m->free(z, m->mem_user_data);
  EXPECT_EQ(m->calloc(SIZE_MAX / 2, 4, m->mem_user_data), nullptr);  // n * size overflows
}

TEST(Http2MemoryTest, FreedSmallBlocksAreReusedUpToTheBound) {
  if (!MULLIGAN_RECYCLE) GTEST_SKIP() << "nothing is kept under AddressSanitizer";
  nghttp2_mem* m = http2Memory();
  size_t before = http2MemoryKeptBlocks();
  void* a = m->malloc(200, nullptr);
  m->free(a, nullptr);
  EXPECT_EQ(http2MemoryKeptBlocks(), before + 1);
  EXPECT_EQ(m->malloc(150, nullptr), a);  // the same size (256): the kept block
  m->free(a, nullptr);
  void* big = m->malloc(kHttp2MemMaxPooled + 1, nullptr);
  m->free(big, nullptr);
  EXPECT_EQ(http2MemoryKeptBlocks(), before + 1);  // large blocks go back to malloc

  std::vector<void*> many;
  for (size_t i = 0; i < kHttp2MemKeepPerSize + 50; ++i) many.push_back(m->malloc(500, nullptr));
  for (void* p : many) m->free(p, nullptr);
  EXPECT_LE(http2MemoryKeptBlocks(), before + 1 + kHttp2MemKeepPerSize);
}

TEST(Http2MemoryTest, StreamBuffersComeBackEmptyAndWithinTheBound) {
  // What a stream left in its buffer (a reset mid-body) is dropped: the
  // next stream's body starts empty.
  evbuffer* b = takeHttp2StreamBuffer();
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(evbuffer_add(b, "left over", 9), 0);
  size_t before = http2StreamBuffersKept();
  giveHttp2StreamBuffer(b);
  evbuffer* again = takeHttp2StreamBuffer();
  EXPECT_EQ(evbuffer_get_length(again), 0u);
  if (MULLIGAN_RECYCLE) {
    EXPECT_EQ(again, b);  // the kept one
    EXPECT_EQ(http2StreamBuffersKept(), before);
  }
  EXPECT_EQ(evbuffer_add(again, "x", 1), 0);
  giveHttp2StreamBuffer(again);

  std::vector<evbuffer*> many;
  for (size_t i = 0; i < kHttp2StreamBuffersKept + 20; ++i) many.push_back(takeHttp2StreamBuffer());
  for (evbuffer* e : many) giveHttp2StreamBuffer(e);
  EXPECT_LE(http2StreamBuffersKept(), kHttp2StreamBuffersKept);
  if (!MULLIGAN_RECYCLE) {
    EXPECT_EQ(http2StreamBuffersKept(), 0u);
  }
}

}  // namespace
}  // namespace mulligan::proxy
