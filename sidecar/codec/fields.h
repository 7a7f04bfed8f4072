// Header rules both protocols share: which fields are connection-specific
// (never forwarded), and gRPC on the wire (content type, grpc-status,
// grpc-message).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "sidecar/codec/header_list.h"

namespace mulligan::proxy {

// RFC 9110 §7.6.1 connection-specific fields (and the ones Connection names),
// which no proxy forwards, in either protocol.
bool isHopByHop(std::string_view name);
bool namedInConnection(const HeaderList& headers, std::string_view name);
// True for a field that must not travel in an HTTP/1 trailer section: the
// connection-specific ones (isHopByHop), which a proxy drops anyway, and the
// framing and routing fields (RFC 9110 §6.5.1: they are needed before the
// content; a peer that merged them into the head could be desynchronised).
bool notATrailer(std::string_view name);
// Both rules for one header list, with its Connection tokens parsed once
// (not once per field: a per-request cost on the hot path). Holds views into
// `headers`, which must outlive it and stay unchanged.
class HopByHopFilter {
 public:
  explicit HopByHopFilter(const HeaderList& headers);
  // True when the field `name` must not be forwarded.
  bool drops(std::string_view name) const;

 private:
  static constexpr size_t kMaxTokens = 8;
  const HeaderList* headers_;
  std::string_view tokens_[kMaxTokens];
  size_t count_ = 0;
  bool overflow_ = false;  // more tokens than kMaxTokens: ask namedInConnection
};
// content-type application/grpc, application/grpc+proto, application/grpc;...
bool isGrpcContentType(std::optional<std::string_view> content_type);
// grpc-status as a peer sends it: "0".."16" (one or two digits); anything
// else (absent, empty, signs, spaces, > 16) is retry::kNoGrpcStatus.
int parseGrpcStatus(std::optional<std::string_view> value);
// gRPC grpc-message: percent-encoding of bytes outside 0x20..0x7E and '%'
// (gRPC "PROTOCOL-HTTP2.md", Responses).
std::string percentEncodeGrpcMessage(std::string_view s);


}  // namespace mulligan::proxy
