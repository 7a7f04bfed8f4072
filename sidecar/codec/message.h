// The messages a call carries, protocol-neutral: the request head
// ProxyStream hands to an attempt (HTTP/2 pseudo-headers and HTTP/1 request
// lines both map to it) and the message head a codec delivers (an HTTP/1
// head as llhttp parsed it, or an HTTP/2 response's HEADERS).
#pragma once

#include <cstdint>
#include <string>

#include "sidecar/codec/header_list.h"

namespace mulligan::proxy {

enum class Protocol : uint8_t {
  kHttp1,  // HTTP/1.x on both sides
  kHttp2,  // HTTP/2 cleartext (prior knowledge) on both sides
};

// A request head, protocol-neutral. HTTP/2 pseudo-headers map to it
// (:method, :scheme, :authority, :path); HTTP/1 fills it from the request
// line and Host. `headers` are the regular fields as received (no
// pseudo-headers); each upstream codec drops what is hop-by-hop for it.
struct RequestHead {
  std::string method;
  std::string scheme = "http";
  std::string authority;  // Host / :authority (or the absolute-form / CONNECT authority)
  std::string path;       // origin-form (CONNECT: the authority-form target)
  HeaderList headers;
  // The body: declared length if any; `body_follows` false when the head
  // ended the request (no body at all).
  bool has_content_length = false;
  uint64_t content_length = 0;
  bool body_follows = false;
  // HTTP/1 only.
  int version_minor = 1;
  bool keep_alive = true;
  bool chunked = false;       // Transfer-Encoding: chunked (re-chunked upstream)
  bool upgrade = false;       // Upgrade request (WebSocket): forwarded, tunnelled on 101
  std::string absolute_host;  // absolute-form / CONNECT target host ("" = none)
  uint16_t absolute_port = 0;
  // The head came over HTTP/2 (Http2ServerStream): nghttp2 delivered only
  // lower-case names (RFC 9113 §8.2.1) and no connection-specific field but
  // "te: trailers" (§8.2.2; its HTTP messaging checks refuse the rest), so
  // an HTTP/2 writer need not lower-case or filter them again.
  bool from_http2 = false;
};

// (Http1Reader::onMessageBegin resets every field: keep the two in step.)
struct MessageHead {
  // Requests
  std::string method;
  std::string target;       // request-target as received
  // Responses
  int status = 0;
  std::string reason;
  // Both
  int version_minor = 1;    // HTTP/1.<minor>
  HeaderList headers;
  bool keep_alive = true;   // llhttp_should_keep_alive at headers time
  bool chunked = false;
  bool has_content_length = false;
  uint64_t content_length = 0;
  bool upgrade = false;     // Upgrade request/101, or CONNECT
  bool needs_eof = false;   // response body delimited by close
  // The head came over HTTP/2 (Http2Attempt): nghttp2 delivered only
  // lower-case names (RFC 9113 §8.2.1) and no connection-specific fields
  // (§8.2.2; its HTTP messaging checks refuse both), so an HTTP/2 writer
  // need not lower-case or filter them again. (Http1Reader never sets it:
  // its heads keep the default.)
  bool from_http2 = false;
};

}  // namespace mulligan::proxy
