// StreamBody: the bytes of one HTTP/2 stream's body waiting for nghttp2's
// data provider — a server stream's response, an attempt's request. Small
// bodies (most: a JSON answer, a gRPC unary message) stay in kInline bytes
// of the object itself; only what does not fit goes to an evbuffer (from
// this thread's stock, taken on first use). Through an evbuffer alone every
// body cost a chain malloc and free and the evbuffer_add/remove machinery:
// about 700 instructions a request (issue 18).
//
// Bytes come out in the order they went in: once the evbuffer is in use,
// everything goes there until both parts are empty again.
// Threading: the owning stream's (one worker). Not copyable.
#pragma once

#include <event2/buffer.h>

#include <cstddef>
#include <cstdint>

namespace mulligan::proxy {

class StreamBody {
 public:
  static constexpr size_t kInline = 1024;

  StreamBody() = default;
  ~StreamBody();
  StreamBody(const StreamBody&) = delete;
  StreamBody& operator=(const StreamBody&) = delete;

  size_t length() const { return (inline_end_ - inline_at_) + (spilled_ ? evbuffer_get_length(buf_) : 0); }
  bool empty() const { return inline_end_ == inline_at_ && !spilled_; }
  // Appends `len` bytes.
  void add(const char* data, size_t len);
  // Moves up to `len` bytes into `out`; returns how many.
  size_t remove(uint8_t* out, size_t len);
  // Drops everything.
  void clear();

 private:
  uint32_t inline_at_ = 0;   // inline_[inline_at_, inline_end_) waits
  uint32_t inline_end_ = 0;
  bool spilled_ = false;     // buf_ holds bytes (after the inline ones)
  evbuffer* buf_ = nullptr;  // taken on the first spill, given back with the body
  char inline_[kInline];
};

// A data provider's read (Http2Session::readData) from a stream's buffered
// body: up to `len` bytes of `body` into `buf`. Once the body `ended` and
// all of it is read, NGHTTP2_DATA_FLAG_EOF — and, when `has_trailers`,
// NGHTTP2_DATA_FLAG_NO_END_STREAM with *submit_trailers set (the caller
// submits them: Http2Session::submitTrailers). Returns the bytes read, or
// NGHTTP2_ERR_DEFERRED when none wait yet (resume the stream's data when
// more arrive).
long readStreamBody(StreamBody& body, bool ended, bool has_trailers, uint8_t* buf, size_t len, uint32_t* flags,
                    bool* submit_trailers);

}  // namespace mulligan::proxy
