// The access log's line: one JSON object per request (DESIGN.md: "access
// logs as JSON lines"), which requests get one (AccessLogFilter), and how a
// line is formatted. Writing lines out is AccessLogWriter's job
// (access_log_writer.h): the request path only formats into memory.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "sidecar/net/address.h"

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
  std::string_view retry_reasons; // "503,reset": why each retry happened
  std::string_view retry_refused; // why a retry the policy allowed did not happen ("" = none)
  std::string_view timeout;       // "request" / "per-try" / "" when none fired
  std::string_view sidecar_error; // our own failure ("connect-failure", ...), "" when upstream answered
  int64_t deadline_us = -1;       // the call's budget; -1 = none (logged in ms, rounded up)
  const net::Address* upstream = nullptr;  // address of the last attempt; null: none ("")
  int64_t duration_us = 0;        // request headers in -> response complete
  int64_t upstream_us = 0;        // last attempt: sent -> response headers
  uint64_t request_bytes = 0;
  uint64_t response_bytes = 0;
};

// Which requests get a line (--access-log-filter), after Envoy's access-log
// filters for the common case.
enum class AccessLogFilter : uint8_t {
  kAll,      // every request
  kNotable,  // only the ones worth reading: isNotable()
};

// A request worth a line under kNotable: it was retried or hedged (more than
// one attempt), a retry the policy allowed was refused, a timeout fired, the
// sidecar answered it itself (sidecar_error: no destination, connect
// failure, overflow, the app went away...), the app got a 5xx, or a gRPC
// status that means the server failed (UNKNOWN, DEADLINE_EXCEEDED, INTERNAL,
// UNAVAILABLE, DATA_LOSS: the statuses gRPC maps 5xx onto, plus the
// deadline). Reads only the fields above that a call knows without
// formatting anything, so a filtered-out call costs a few compares.
bool isNotable(const AccessRecord& r);

inline bool accessLogWants(AccessLogFilter f, const AccessRecord& r) {
  return f == AccessLogFilter::kAll || isNotable(r);
}

// Parses "all" / "notable"; false for anything else.
bool parseAccessLogFilter(std::string_view text, AccessLogFilter* out);

// Appends the record as one JSON line ending in '\n' to `out`. Reusing one
// string per worker (clear() keeps its capacity) makes a line cost no heap
// allocation once the string has grown to the longest line seen.
void formatAccessLine(const AccessRecord& r, std::string* out);

}  // namespace mulligan::proxy
