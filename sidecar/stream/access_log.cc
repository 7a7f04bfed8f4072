#include "sidecar/stream/access_log.h"

#include <arpa/inet.h>

#include <charconv>

#include "proto-free-config/render.h"
#include "sidecar/retry/deadline.h"

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
  if (r.attempts > 1 || !r.retry_refused.empty() || !r.timeout.empty() || !r.sidecar_error.empty()) return true;
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

void formatAccessLine(const AccessRecord& r, std::string* out) {
  std::string& line = *out;
  auto key = [&](std::string_view k) {
    line += '"';
    line += k;
    line += "\":";
  };
  auto str = [&](std::string_view k, std::string_view v) {
    key(k);
    pfc::appendJsonQuoted(&line, v);  // (invalid UTF-8 becomes U+FFFD: the line stays JSON)
    line += ',';
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
  str("retry_reasons", r.retry_reasons);
  str("retry_refused", r.retry_refused);
  str("timeout", r.timeout);
  str("sidecar_error", r.sidecar_error);
  // Rounded up like every time the sidecar sends or shows (retry::ceilMs):
  // a 500 µs budget is "1", never "0".
  num("deadline_ms", r.deadline_us < 0 ? -1 : retry::ceilMs(r.deadline_us));
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
