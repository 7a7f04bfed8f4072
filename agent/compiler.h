// The policy compiler: TOML text -> validated pfc::TableModel, with precise,
// human errors. The schema is DESIGN.md's "The policy (TOML)".
//
// Inheritance is field by field: pfc::builtinDefaults() -> [defaults] ->
// [[service]] -> [[service.route]]. A service's `retry = { num_retries = 3 }`
// changes num_retries and nothing else; a route starts from its service's
// resolved values. `retry_on` is one field: a level that sets it replaces the
// inherited list. Sub-tables may be written `[defaults.retry]`, inline
// (`retry = { ... }`) or as dotted keys (`retry.num_retries = 3`).
//
// Validation (each failure is one Diagnostic):
//  * unknown keys, with a "did you mean" suggestion by edit distance, or an
//    explanation when the key exists elsewhere (e.g. `budget` on a route);
//  * wrong types and malformed values ("ten seconds" is not a duration);
//  * limits: timeouts <= 24h (connect/idle > 0), num_retries 0..25,
//    0 < backoff_base <= backoff_max <= 1h (checked on the effective values of
//    each level), retry_after_max <= 1h, max_buffered_body <= 64MiB, budget
//    retry_ratio 0..10 and window 1s..1h, grpc_timeout_offset and
//    min_attempt_budget <= 1h, idempotency_header an HTTP token <= 63 chars;
//  * services: name required, [a-z0-9._-]+, unique (case-insensitively);
//    hosts required, valid names / IP literals / "*.suffix", a (host, port)
//    pair served by one service only; port 1..65535; upstream HOST:PORT;
//  * routes: exactly one of path_prefix, path_exact, grpc; known upper-case
//    methods; a route that an earlier route of its service shadows entirely
//    is unreachable and an error.
// Diagnostics point at the offending value (wrong values) or key (unknown
// keys), or at the [[...]] header (missing fields, unreachable routes).
//
// Every problem in a file is reported, not only the first, sorted by line and
// column. A model is produced only when there is no error at all: a bad file
// never reaches shared memory.
//
// Thread-safe (no shared state); never throws for bad input.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto-free-config/table_model.h"

namespace mulligan::agent {

struct Diagnostic {
  std::string file;
  int line = 0;    // 1-based; 0 when the problem is the file as a whole
  int column = 0;  // 1-based, in characters
  std::string message;
  // "FILE:LINE:COL: message", or "FILE: message" when line is 0.
  std::string format() const;
};

struct CompileResult {
  std::optional<pfc::TableModel> model;  // set iff errors is empty
  std::vector<Diagnostic> errors;
  bool ok() const { return errors.empty() && model.has_value(); }
};

// Compiles policy text. `file_name` is used in diagnostics only. Pure: no
// I/O. The model's source_path, source_checksum and created_unix_ns are left
// for the caller to fill.
CompileResult compilePolicy(std::string_view toml_text, std::string_view file_name);

// Reads `path` and compiles it; sets model->source_path = path and leaves
// source_checksum at 0 (the caller fills it). An unreadable file gives one
// diagnostic "PATH: cannot read: <strerror>".
CompileResult compilePolicyFile(const std::string& path);

}  // namespace mulligan::agent
