// The policy compiler: TOML text -> validated pfc::TableModel, with precise,
// human errors. Pure: no I/O (compilePolicyFile() is the thin exception).
//
// Inheritance is field by field: built-in defaults -> [defaults] ->
// [[service]] -> [[service.route]]. A service's `retry = { num_retries = 3 }`
// changes num_retries and nothing else; `retry_on` is one field and a level
// that sets it replaces the inherited list.
//
// Every problem in a file is reported (not only the first), each with
// FILE:LINE:COL of the offending key or value, sorted by position. A model is
// produced only when there is no error at all: a bad file never reaches
// shared memory.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto-free-config/table_model.h"

namespace mulligan::agent {

struct Diagnostic {
  std::string file;
  int line = 0;
  int column = 0;
  std::string message;
  // "FILE:LINE:COL: message"
  std::string format() const;
};

struct CompileResult {
  std::optional<pfc::TableModel> model;
  std::vector<Diagnostic> errors;
  bool ok() const { return errors.empty() && model.has_value(); }
};

// `file_name` is used in diagnostics only. The model's source fields
// (path, checksum, time) are left for the caller to fill.
CompileResult compilePolicy(std::string_view toml_text, std::string_view file_name);

// Reads `path` and compiles it ("PATH: cannot read: ..." when it cannot).
CompileResult compilePolicyFile(const std::string& path);

}  // namespace mulligan::agent
