#include "sidecar/stream/access_log.h"

#include <cinttypes>

namespace mulligan::proxy {

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

void writeAccessLog(FILE* out, const AccessRecord& r) {
  if (!out) return;
  std::string line;
  line.reserve(512);
  auto str = [&](const char* key, std::string_view v) {
    line += "\"";
    line += key;
    line += "\":\"";
    appendJsonEscaped(&line, v);
    line += "\",";
  };
  auto num = [&](const char* key, int64_t v) {
    line += "\"";
    line += key;
    line += "\":";
    line += std::to_string(v);
    line += ",";
  };
  line += "{";
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
  num("deadline_ms", r.deadline_ms);
  str("upstream", r.upstream);
  num("duration_us", r.duration_us);
  num("upstream_us", r.upstream_us);
  num("request_bytes", static_cast<int64_t>(r.request_bytes));
  line += "\"response_bytes\":" + std::to_string(r.response_bytes) + "}\n";
  std::fwrite(line.data(), 1, line.size(), out);
  std::fflush(out);
}

}  // namespace mulligan::proxy
