#include "sidecar/codec/fields.h"

#include "sidecar/retry/outcome.h"

namespace mulligan::proxy {

bool isHopByHop(std::string_view name) {
  // RFC 9110 §7.6.1 (and RFC 9113 §8.2.2 for HTTP/2), plus Expect (we answer
  // 100-continue ourselves) and Proxy-Authorization (meant for us). By length
  // first: this runs for every field of every head, and most fields have a
  // length none of these names has.
  switch (name.size()) {
    case 2:
      return iequals(name, "te");
    case 6:
      return iequals(name, "expect");
    case 7:
      return iequals(name, "upgrade") || iequals(name, "trailer");
    case 10:
      return iequals(name, "connection") || iequals(name, "keep-alive");
    case 14:
      // RFC 9113 §3.1 (RFC 7540 §3.2.1): only an h2c upgrade uses it, and
      // the sidecar never lets one through (Http1Reader).
      return iequals(name, "http2-settings");
    case 16:
      return iequals(name, "proxy-connection");
    case 17:
      return iequals(name, "transfer-encoding");
    case 19:
      return iequals(name, "proxy-authorization");
    default:
      return false;
  }
}

bool notATrailer(std::string_view name) {
  // Trailers are rare: the hop-by-hop test first, then the two names it
  // does not have.
  if (isHopByHop(name)) return true;
  return (name.size() == 4 && iequals(name, "host")) || (name.size() == 14 && iequals(name, "content-length"));
}

bool namedInConnection(const HeaderList& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (!iequals(k, "connection")) continue;
    size_t pos = 0;
    while (pos < v.size()) {
      size_t comma = v.find(',', pos);
      std::string_view token = std::string_view(v).substr(pos, comma == std::string::npos ? v.npos : comma - pos);
      while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) token.remove_prefix(1);
      while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
      if (iequals(token, name)) return true;
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
  }
  return false;
}

HopByHopFilter::HopByHopFilter(const HeaderList& headers) : headers_(&headers) {
  for (const auto& [k, v] : headers) {
    if (!iequals(k, "connection")) continue;
    std::string_view rest = v;
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      std::string_view token = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) token.remove_prefix(1);
      while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
      // "close" and "keep-alive" name fields that are hop-by-hop anyway.
      if (token.empty() || iequals(token, "close") || iequals(token, "keep-alive")) continue;
      if (count_ == kMaxTokens) {
        overflow_ = true;
        return;
      }
      tokens_[count_++] = token;
    }
  }
}

bool HopByHopFilter::drops(std::string_view name) const {
  if (isHopByHop(name)) return true;
  if (overflow_) return namedInConnection(*headers_, name);
  for (size_t i = 0; i < count_; ++i) {
    if (iequals(tokens_[i], name)) return true;
  }
  return false;
}

bool isGrpcContentType(std::optional<std::string_view> ct) {
  if (!ct) return false;
  std::string_view v = *ct;
  constexpr std::string_view kGrpc = "application/grpc";
  if (v.size() < kGrpc.size() || !iequals(v.substr(0, kGrpc.size()), kGrpc)) return false;
  return v.size() == kGrpc.size() || v[kGrpc.size()] == '+' || v[kGrpc.size()] == ';';
}

int parseGrpcStatus(std::optional<std::string_view> v) {
  if (!v || v->empty() || v->size() > 2) return retry::kNoGrpcStatus;
  int n = 0;
  for (char c : *v) {
    if (c < '0' || c > '9') return retry::kNoGrpcStatus;
    n = n * 10 + (c - '0');
  }
  return n <= 16 ? n : retry::kNoGrpcStatus;
}

std::string percentEncodeGrpcMessage(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (c >= 0x20 && c <= 0x7E && c != '%') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

}  // namespace mulligan::proxy
