#include "sidecar/codec/http2/http2_memory.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "sidecar/core/recycled.h"  // MULLIGAN_RECYCLE: off under AddressSanitizer

namespace mulligan::proxy {
namespace {

constexpr size_t kHeader = 16;  // keeps malloc's 16-byte alignment
constexpr size_t kMinShift = 6;  // 64 bytes
constexpr size_t kSizes = 5;     // 64, 128, 256, 512, 1024
constexpr uint32_t kUnpooled = kSizes;
static_assert((size_t{1} << (kMinShift + kSizes - 1)) == kHttp2MemMaxPooled);

struct Header {
  uint32_t size_class;  // 0 .. kSizes - 1, or kUnpooled
  uint32_t unused;
  size_t bytes;  // what was asked for (realloc copies this much)
};
static_assert(sizeof(Header) == kHeader);

struct Lists {
  void* blocks[kSizes][kHttp2MemKeepPerSize];
  size_t count[kSizes] = {};
  bool gone = false;  // destroyed at thread exit: later frees go to the heap
  ~Lists() {
    gone = true;
    for (size_t c = 0; c < kSizes; ++c) {
      while (count[c] > 0) std::free(blocks[c][--count[c]]);
    }
  }
};
thread_local Lists t_lists;

uint32_t sizeClass(size_t n) {
  if (n > kHttp2MemMaxPooled) return kUnpooled;
  uint32_t c = 0;
  while ((size_t{1} << (kMinShift + c)) < n) ++c;
  return c;
}

size_t capacityOf(const Header* h) {
  return h->size_class == kUnpooled ? h->bytes : size_t{1} << (kMinShift + h->size_class);
}

void* allocate(size_t n, void*) {
  uint32_t c = sizeClass(n);
  void* block = nullptr;
  if (c != kUnpooled) {
    Lists& l = t_lists;
    if (MULLIGAN_RECYCLE && l.count[c] > 0) {
      block = l.blocks[c][--l.count[c]];
    } else {
      block = std::malloc(kHeader + (size_t{1} << (kMinShift + c)));
    }
  } else {
    block = std::malloc(kHeader + n);
  }
  if (!block) return nullptr;
  auto* h = static_cast<Header*>(block);
  h->size_class = c;
  h->bytes = n;
  return static_cast<char*>(block) + kHeader;
}

void release(void* p, void*) {
  if (!p) return;
  void* block = static_cast<char*>(p) - kHeader;
  uint32_t c = static_cast<Header*>(block)->size_class;
  if (c != kUnpooled) {
    Lists& l = t_lists;
    if (MULLIGAN_RECYCLE && !l.gone && l.count[c] < kHttp2MemKeepPerSize) {
      l.blocks[c][l.count[c]++] = block;
      return;
    }
  }
  std::free(block);
}

void* allocateZeroed(size_t n, size_t size, void* ud) {
  if (size != 0 && n > SIZE_MAX / size) return nullptr;
  void* p = allocate(n * size, ud);
  if (p) std::memset(p, 0, n * size);
  return p;
}

void* reallocate(void* p, size_t n, void* ud) {
  if (!p) return allocate(n, ud);
  if (n == 0) {
    release(p, ud);
    return nullptr;
  }
  auto* h = reinterpret_cast<Header*>(static_cast<char*>(p) - kHeader);
  if (h->size_class != kUnpooled && n <= capacityOf(h)) {
    h->bytes = n;
    return p;
  }
  void* q = allocate(n, ud);
  if (!q) return nullptr;
  std::memcpy(q, p, h->bytes < n ? h->bytes : n);
  release(p, ud);
  return q;
}

nghttp2_mem g_mem{nullptr, &allocate, &release, &allocateZeroed, &reallocate};

struct Buffers {
  evbuffer* kept[kHttp2StreamBuffersKept];
  size_t count = 0;
  bool gone = false;  // destroyed at thread exit: later gives free
  ~Buffers() {
    gone = true;
    while (count > 0) evbuffer_free(kept[--count]);
  }
};
thread_local Buffers t_buffers;

}  // namespace

evbuffer* takeHttp2StreamBuffer() {
  Buffers& b = t_buffers;
  if (MULLIGAN_RECYCLE && b.count > 0) return b.kept[--b.count];
  return evbuffer_new();
}

void giveHttp2StreamBuffer(evbuffer* buf) {
  if (!buf) return;
  Buffers& b = t_buffers;
  if (MULLIGAN_RECYCLE && !b.gone && b.count < kHttp2StreamBuffersKept) {
    // Drained whole, its chains are freed: only the empty buffer is kept.
    evbuffer_drain(buf, evbuffer_get_length(buf));
    b.kept[b.count++] = buf;
    return;
  }
  evbuffer_free(buf);
}

size_t http2StreamBuffersKept() { return t_buffers.count; }

nghttp2_mem* http2Memory() { return &g_mem; }

size_t http2MemoryKeptBlocks() {
  size_t n = 0;
  for (size_t c = 0; c < kSizes; ++c) n += t_lists.count[c];
  return n;
}

}  // namespace mulligan::proxy
