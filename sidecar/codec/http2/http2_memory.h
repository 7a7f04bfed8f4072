// Http2Memory: the allocator every nghttp2 session of the sidecar uses
// (nghttp2_mem). nghttp2 allocates a few small blocks for every stream (the
// stream, its outbound items, a copy of each header block, a buffer for
// each received field): eight mallocs and fifteen frees a proxied request.
// A worker frees them in bursts of a hundred streams, more than glibc's
// per-thread cache holds (7 per size), so most went through its slow path:
// about 300 instructions a malloc/free pair (issue 18).
//
// Blocks up to kMaxPooled bytes are rounded up to a power of two (64 ..
// kMaxPooled) and, once freed, kept on a per-thread list of their size (at
// most kKeepPerSize each: a bounded ~2 MiB a worker at most, after a peak)
// for the next allocation of that size; larger blocks (session buffers,
// HPACK tables) come from malloc as before. Each block carries a 16-byte
// header saying its size, since nghttp2's free does not.
//
// Threading: a session lives on one worker thread; a block freed on another
// thread joins that thread's list, which is harmless. Under
// AddressSanitizer nothing is kept (as core::Recycled): reuse would hide a
// use-after-free.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstddef>

namespace mulligan::proxy {

// The table for nghttp2_session_{client,server}_new3 (static storage).
nghttp2_mem* http2Memory();

// Blocks kept on this thread's lists now (tests).
size_t http2MemoryKeptBlocks();

inline constexpr size_t kHttp2MemMaxPooled = 1024;
// Sessions read up to 64 KiB at once, so every stream in flight (128 for
// h2load -c8 -m16) can end in one burst; 256 kept per size left gRPC 0.9
// mallocs a call (issue 18).
inline constexpr size_t kHttp2MemKeepPerSize = 1024;

}  // namespace mulligan::proxy
