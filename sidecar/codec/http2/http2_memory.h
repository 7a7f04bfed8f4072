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
//
// Http2StreamBuffers: the same idea for the evbuffer each HTTP/2 stream
// holds its body in (the server stream's response, the attempt's request):
// evbuffer_new/evbuffer_free were a calloc and a free per stream on each
// side, also in bursts. Empty evbuffers without callbacks are kept per
// thread (at most kHttp2StreamBuffersKept; nothing under AddressSanitizer).
#pragma once

#include <event2/buffer.h>
#include <nghttp2/nghttp2.h>

#include <cstddef>

namespace mulligan::proxy {

// The table for nghttp2_session_{client,server}_new3 (static storage).
nghttp2_mem* http2Memory();

// Blocks kept on this thread's lists now (tests).
size_t http2MemoryKeptBlocks();

inline constexpr size_t kHttp2MemMaxPooled = 1024;
// A worker serving 128 streams at once (8 connections x 16) has 256 of them
// open on its two sides, each with blocks of the same few sizes, freed in
// bursts: with 256 a size, nearly two blocks a request still went to malloc
// (issue 18). 1024 a size keeps at most ~2 MiB a worker, after a peak.
inline constexpr size_t kHttp2MemKeepPerSize = 1024;

// An empty evbuffer for one stream's body, from this thread's stock (or
// new); give it back (any bytes left in it are dropped) when the stream ends.
// It must have no callbacks, no references and not be frozen (a stream's
// body buffer has none of these).
evbuffer* takeHttp2StreamBuffer();
void giveHttp2StreamBuffer(evbuffer* b);
inline constexpr size_t kHttp2StreamBuffersKept = 512;
// Buffers kept on this thread now (tests).
size_t http2StreamBuffersKept();

}  // namespace mulligan::proxy
