// Recycled<T>: class-level operator new/delete for an object made and freed
// once per request (ProxyStream, Http1Attempt). Freed blocks are kept on a
// per-thread free list (at most kKeep of them) and handed to the next object
// of the same class, so that a busy keep-alive connection costs no malloc or
// free for them (STYLE.md "Hot path": no per-request heap churn). Only the
// memory is reused: every object is still constructed and destroyed as
// usual, so owners and lifetimes do not change.
//
// kKeep: an HTTP/2 worker has many calls in flight (h2load -c8 -m16 holds
// 128 streams, each with its ProxyStream, Http2ServerStream and
// Http2Attempt), and they end in bursts. With 64 kept, half of a burst went
// back to malloc (a ProxyStream is past glibc's per-thread cache, and the
// others overflow its 7 blocks per size), about 1.4 malloc/free pairs of
// several hundred instructions each per HTTP/2 request. The blocks the list
// keeps are memory the heap would keep anyway after a burst.
//
// Use: `class ProxyStream : ..., public core::Recycled<ProxyStream>`.
// Threading: each thread has its own list (a worker's objects are made and
// freed on its thread); a block freed on another thread joins that thread's
// list, which is harmless. Blocks still listed at thread exit are freed.
// A class derived from T (another size) goes straight to the global heap.
//
// Under AddressSanitizer the lists are off: a reused block would hide a
// use-after-free that ASan exists to catch.
#pragma once

#include <cstddef>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#define MULLIGAN_RECYCLE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MULLIGAN_RECYCLE 0
#endif
#endif
#ifndef MULLIGAN_RECYCLE
#define MULLIGAN_RECYCLE 1
#endif

namespace mulligan::core {

template <class T, size_t kKeep = 256>
class Recycled {
 public:
  static void* operator new(size_t n) {
    FreeList& l = freeList();
    if (MULLIGAN_RECYCLE && n == sizeof(T) && l.count > 0) return l.blocks[--l.count];
    return ::operator new(n);
  }
  static void operator delete(void* p, size_t n) {
    if (!p) return;
    FreeList& l = freeList();
    if (MULLIGAN_RECYCLE && n == sizeof(T) && l.count < kKeep && !l.gone) {
      l.blocks[l.count++] = p;
      return;
    }
    ::operator delete(p);
  }
  // Blocks on this thread's list (for tests).
  static size_t keptBlocks() { return freeList().count; }

 private:
  struct FreeList {
    void* blocks[kKeep];
    size_t count = 0;
    bool gone = false;  // destroyed at thread exit: later frees go to the heap
    ~FreeList() {
      while (count > 0) ::operator delete(blocks[--count]);
      gone = true;
    }
  };
  static FreeList& freeList() {
    static thread_local FreeList list;
    return list;
  }
};

}  // namespace mulligan::core
