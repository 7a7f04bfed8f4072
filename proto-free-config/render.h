// The table as people and tools read it, for `mulligan-agent dump` and the
// sidecar's admin endpoint.
//
// renderToml(): fully expanded TOML. Every effective value is written at
// every level ([defaults], each [[service]], each [[service.route]] with the
// fields a route may set), so a dump shows exactly what is enforced, and
// compilePolicy(renderToml(m)) gives back a model whose policies are equal
// byte for byte to m's (for any m that compilePolicy produced). A header
// comment names the generation, the source file and its checksum.
//
// renderJson(): the same content as one JSON object, pretty-printed:
//   {"generation": N,
//    "source": {"path": "...", "checksum": "<16 hex digits>", "created_unix_ns": N},
//    "defaults": {<policy>},
//    "services": [{"name", "hosts", "port" (0 = any), "upstream" ("" = none),
//                  <policy fields of the service>,
//                  "routes": [{"path_prefix" | "path_exact" | "grpc": "...",
//                              "methods": [...], <route policy fields>}]}]}
// Durations are strings in the policy syntax ("250ms"), sizes too ("64KiB").
//
// Strings from the model are escaped (and invalid UTF-8 replaced), so a
// corrupt or hostile table cannot break the output's syntax. Pure functions;
// thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proto-free-config/table_model.h"

namespace mulligan::pfc {

std::string renderToml(const TableModel& model, uint64_t generation);
std::string renderJson(const TableModel& model, uint64_t generation);

// One effective policy as a compact JSON object with every field:
//   {"connect_timeout":"1s","request_timeout":"15s","idle_timeout":"1m",
//    "read_timeout":"0s","retry":{"retry_on":[...],...},"budget":{...},
//    "deadline":{...},"hedge":{"delay":"0s"|"p99",...},"outlier":{...}}
std::string policyToJson(const EffectivePolicy& policy);

// The retry_on list in canonical spelling and order: named conditions, then
// status codes, then gRPC codes, e.g. ["connect-failure", "503", "unavailable"].
std::vector<std::string> retryOnNames(const RetryPolicy& retry);

// `s` as a double-quoted JSON string (escaped; invalid UTF-8 replaced by
// U+FFFD), for other JSON writers that show table strings (the admin).
std::string jsonQuote(std::string_view s);
// The same appended to `out`, with no temporary: the one escaper for every
// JSON the sidecar writes, the access log's per-request lines included.
// Valid as a TOML basic string too (the escapes the two share, \u00XX for
// other control characters and DEL).
void appendJsonQuoted(std::string* out, std::string_view s);
// The same written at `out`, which must have room for jsonQuotedBound(s.size())
// bytes; returns the end of what was written. For a formatter that reserves
// once and writes through a pointer (the access log's line).
char* writeJsonQuoted(char* out, std::string_view s);
// Two quotes, and at most six bytes per byte of `s` (\u00XX; U+FFFD for a
// stray byte is three).
constexpr size_t jsonQuotedBound(size_t n) { return 2 + 6 * n; }

}  // namespace mulligan::pfc
