// HeaderStock: a per-thread stock of the heap storage behind header lists
// and head strings (and behind a formatted request head: Http1Attempt), so
// that parsing or writing a head allocates nothing once the worker is warm
// (STYLE.md "Hot path": no per-request heap churn).
//
// A parsed head's HeaderList travels: the request's goes from the
// Http1Reader to the ProxyStream (RequestHead::headers) and dies with it;
// without this stock each new request head would grow a fresh list (two
// mallocs: its fields and its bytes). A string (a request target, a long
// authority, a formatted head) would malloc whenever it outgrows
// std::string's inline buffer (15 bytes).
//
// Whoever is done with a list or string give()s it back; readers and
// writers take from here. Only capacity moves: a list or string handed out
// is empty, so nothing about what a caller sees changes. Bounded
// (kMaxLists, kMaxListBytes, kMaxStrings, kMaxStringCapacity): memory kept
// is small and a one-off huge head is freed, not kept.
//
// Threading: thread-local, like the worker that uses it (local()).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "sidecar/codec/header_list.h"

namespace mulligan::proxy {

class HeaderStock {
 public:
  static constexpr size_t kTypicalHeaders = 16;  // room a new list starts with: fields...
  static constexpr size_t kTypicalHeaderBytes = 512;  // ...and bytes of names and values
  // An HTTP/2 worker has a few hundred streams in flight (h2load -c8 -m16
  // alone is 128), each holding a request list and a response list (and
  // for gRPC two trailer lists), and from a response's submit to its flush
  // the head nghttp2 reads in place (Http2ServerStream::resp_head_); dead
  // streams hold theirs until the loop frees them. A session reads up to
  // 64 KiB at once, so all of them can end in one burst: a stock smaller
  // than what one burst gives back frees the surplus and the next burst
  // mallocs it again (256 cost gRPC 0.8 list allocations a call, issue 18).
  static constexpr size_t kMaxLists = 1024;
  static constexpr size_t kMaxListBytes = 16 * 1024;  // a list holding more is freed, not kept
  static constexpr size_t kMaxStrings = 256;
  static constexpr size_t kMaxStringCapacity = 4096;  // a formatted request head fits

  // This thread's stock. Inline, through a plain thread-local pointer: a
  // thread_local object with a constructor is reached through a wrapper
  // function and a guard on every use, and this runs a dozen times a request.
  static HeaderStock& local() {
    HeaderStock* s = t_local;
    return s ? *s : makeLocal();
  }

  // An empty list with room for at least kTypicalHeaders fields.
  HeaderList takeList();
  // Takes back `list` (left empty): its storage is kept for a later head,
  // within the bounds.
  void give(HeaderList&& list) {
    if (list.capacity() != 0) keepList(std::move(list));  // most given lists were moved out: empty
  }
  // Takes back one string's heap buffer (left empty). Inline: most names
  // and values are short, with no heap buffer, and cost one comparison.
  void giveString(std::string&& s) {
    if (s.capacity() > kInlineCapacity) keep(std::move(s));
  }
  // Appends [at, at+len) to `s`; when `s` is empty and the bytes do not fit
  // its buffer, it first gets a kept buffer big enough (if one is kept).
  // Static and inline: the common case (a short field) costs a comparison.
  static void append(std::string& s, const char* at, size_t len) {
    reserve(s, len);
    s.append(at, len);
  }
  // Gives the empty `s` a kept buffer of at least `len` bytes when its own is
  // smaller (and one is kept), for a writer that then fills it itself.
  static void reserve(std::string& s, size_t len) {
    if (s.empty() && len > s.capacity()) local().refill(s, len);
  }

  size_t keptLists() const { return lists_.size(); }
  size_t keptStrings() const { return strings_.size(); }

 private:
  HeaderStock();
  ~HeaderStock();
  static HeaderStock& makeLocal();
  static thread_local HeaderStock* t_local;  // the thread's stock, once made
  // std::string's own inline buffer: a string this small has no heap buffer.
  // (libstdc++'s std::string() is a constant expression for g++, not for
  // clang 14, which builds the fuzz targets: there it is read at startup.)
#if defined(__clang__)
  static inline const size_t kInlineCapacity = std::string().capacity();
#else
  static constexpr size_t kInlineCapacity = std::string().capacity();
#endif
  void keep(std::string&& s);
  void keepList(HeaderList&& list);
  // Moves a kept buffer of at least `len` bytes into the empty `s`, if one of
  // the last few kept has room (a smaller one would only be reallocated).
  void refill(std::string& s, size_t len);
  std::vector<HeaderList> lists_;
  std::vector<std::string> strings_;
};

}  // namespace mulligan::proxy
