#include "sidecar/stream/access_log.h"

#include <arpa/inet.h>

#include <charconv>

namespace mulligan::proxy {
namespace {

template <typename Int>
void appendInt(std::string* out, Int v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, end);
}

// "1.2.3.4:80", "[::1]:80", as net::Address::toString() prints them, into
// `out` without a temporary string.
void appendAddress(std::string* out, const net::Address& a) {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (a.family() == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&a.storage)->sin_addr, buf, sizeof buf);
    out->append(buf);
  } else if (a.family() == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&a.storage)->sin6_addr, buf, sizeof buf);
    *out += '[';
    out->append(buf);
    *out += ']';
  } else {
    *out += '?';
    return;
  }
  *out += ':';
  appendInt(out, a.port());
}

}  // namespace

bool isNotable(const AccessRecord& r) {
  if (r.attempts > 1 || r.hedges > 0 || !r.retry_refused.empty() || !r.timeout.empty() || !r.sidecar_error.empty()) {
    return true;
  }
  if (r.status >= 500) return true;
  // gRPC status codes (grpc/doc/statuscodes.md): 2 UNKNOWN, 4
  // DEADLINE_EXCEEDED, 13 INTERNAL, 14 UNAVAILABLE, 15 DATA_LOSS.
  switch (r.grpc_status) {
    case 2: case 4: case 13: case 14: case 15: return true;
    default: return false;
  }
}

bool parseAccessLogFilter(std::string_view text, AccessLogFilter* out) {
  if (text == "all") {
    *out = AccessLogFilter::kAll;
  } else if (text == "notable") {
    *out = AccessLogFilter::kNotable;
  } else {
    return false;
  }
  return true;
}

void appendJsonEscaped(std::string* out, std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  for (unsigned char c : s) {
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      case '\t': *out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          *out += "\\u00";
          *out += kHex[c >> 4];
          *out += kHex[c & 15];
        } else {
          *out += static_cast<char>(c);
        }
    }
  }
}

void formatAccessLine(const AccessRecord& r, std::string* out) {
  std::string& line = *out;
  auto key = [&](std::string_view k) {
    line += '"';
    line += k;
    line += "\":";
  };
  auto str = [&](std::string_view k, std::string_view v) {
    key(k);
    line += '"';
    appendJsonEscaped(&line, v);
    line += "\",";
  };
  auto num = [&](std::string_view k, int64_t v) {
    key(k);
    appendInt(&line, v);
    line += ',';
  };
  line += '{';
  num("ts_ms", r.start_unix_ms);
  str("method", r.method);
  str("authority", r.authority);
  str("path", r.path);
  str("protocol", r.protocol);
  num("status", r.status);
  if (r.grpc_status >= 0) num("grpc_status", r.grpc_status);
  str("service", r.service);
  num("route", r.route);
  num("attempts", r.attempts);
  num("hedges", r.hedges);
  num("winner", r.winner);
  str("retry_reasons", r.retry_reasons);
  str("retry_refused", r.retry_refused);
  str("timeout", r.timeout);
  str("sidecar_error", r.sidecar_error);
  num("deadline_ms", r.deadline_ms);
  key("upstream");
  line += '"';
  if (r.upstream) appendAddress(&line, *r.upstream);  // numeric: nothing to escape
  line += "\",";
  num("duration_us", r.duration_us);
  num("upstream_us", r.upstream_us);
  num("request_bytes", static_cast<int64_t>(r.request_bytes));
  key("response_bytes");
  appendInt(&line, r.response_bytes);
  line += "}\n";
}

}  // namespace mulligan::proxy
