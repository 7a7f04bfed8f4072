#include "sidecar/codec/http2/stream_body.h"

#include <nghttp2/nghttp2.h>

#include <cstring>

#include "sidecar/codec/http2/http2_memory.h"

namespace mulligan::proxy {

StreamBody::~StreamBody() { giveHttp2StreamBuffer(buf_); }

void StreamBody::add(const char* data, size_t len) {
  if (len == 0) return;
  if (!spilled_) {
    if (inline_at_ == inline_end_) inline_at_ = inline_end_ = 0;  // empty: from the start again
    if (len <= kInline - inline_end_) {
      std::memcpy(inline_ + inline_end_, data, len);
      inline_end_ += static_cast<uint32_t>(len);
      return;
    }
    if (!buf_) buf_ = takeHttp2StreamBuffer();
    spilled_ = true;
  }
  evbuffer_add(buf_, data, len);
}

size_t StreamBody::remove(uint8_t* out, size_t len) {
  size_t took = inline_end_ - inline_at_;
  if (took > len) took = len;
  if (took > 0) {
    std::memcpy(out, inline_ + inline_at_, took);
    inline_at_ += static_cast<uint32_t>(took);
  }
  if (spilled_ && took < len) {
    int n = evbuffer_remove(buf_, out + took, len - took);
    if (n > 0) took += static_cast<size_t>(n);
    if (evbuffer_get_length(buf_) == 0) spilled_ = false;
  }
  return took;
}

void StreamBody::clear() {
  inline_at_ = inline_end_ = 0;
  if (spilled_) evbuffer_drain(buf_, evbuffer_get_length(buf_));
  spilled_ = false;
}

long readStreamBody(StreamBody& body, bool ended, bool has_trailers, uint8_t* buf, size_t len, uint32_t* flags,
                    bool* submit_trailers) {
  size_t n = body.remove(buf, len);
  if (body.empty() && ended) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (has_trailers) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      *submit_trailers = true;
    }
  } else if (n == 0) {
    return NGHTTP2_ERR_DEFERRED;
  }
  return static_cast<long>(n);
}

}  // namespace mulligan::proxy
