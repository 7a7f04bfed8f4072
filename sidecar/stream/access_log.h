// One JSON line per request (DESIGN.md: "access logs as JSON lines"), written
// with a single fwrite so lines from several workers never interleave.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace mulligan::proxy {

struct AccessRecord {
  int64_t start_unix_ms = 0;
  std::string_view method;
  std::string_view authority;
  std::string_view path;          // as received, query included
  std::string_view protocol;      // "HTTP/1.1"
  int status = 0;                 // what the client got
  int grpc_status = -1;           // gRPC calls: the grpc-status the client got (-1: not gRPC / none)
  std::string_view service;       // policy service, "" if none matched
  int route = -1;                 // index within the service, -1 = service level
  uint32_t attempts = 0;
  std::string retry_reasons;      // "503,reset": why each retry happened
  std::string_view retry_refused; // why a retry the policy allowed did not happen ("" = none)
  std::string_view timeout;       // "request" / "per-try" / "" when none fired
  std::string_view sidecar_error; // our own failure ("connect-failure", ...), "" when upstream answered
  int64_t deadline_ms = -1;       // the call's budget; -1 = none
  std::string upstream;           // address of the last attempt
  int64_t duration_us = 0;        // request headers in -> response complete
  int64_t upstream_us = 0;        // last attempt: sent -> response headers
  uint64_t request_bytes = 0;
  uint64_t response_bytes = 0;
};

void writeAccessLog(FILE* out, const AccessRecord& r);

// Appends `s` to `out` as the inside of a JSON string.
void appendJsonEscaped(std::string* out, std::string_view s);

}  // namespace mulligan::proxy
