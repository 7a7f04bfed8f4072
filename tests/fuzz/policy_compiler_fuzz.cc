// Fuzz target: the policy compiler (agent/compiler.h), TOML text in.
// Checked on every input, from the compiler's and the renderer's contracts:
//  - it never throws and reports every problem with a line and column that
//    exist (1-based; 0 only for the file as a whole);
//  - a model is produced iff there is no error, and its image (buildImage)
//    is one the sidecar accepts (Table::fromImage);
//  - compilePolicy(renderToml(m)) succeeds and gives back the same policies
//    (render.h: "equal byte for byte"), services and routes.
#include <string>
#include <string_view>

#include "agent/compiler.h"
#include "proto-free-config/render.h"
#include "proto-free-config/table_model.h"
#include "proto-free-config/table_reader.h"
#include "tests/fuzz/fuzz_target.h"

using namespace mulligan;

namespace {

// Everything of a model but its provenance (path, checksums, time).
std::string canonical(const pfc::TableModel& m) {
  pfc::TableModel bare = m;
  bare.source_path.clear();
  bare.source_checksum = 0;
  bare.created_unix_ns = 0;
  return pfc::renderJson(bare, 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  agent::CompileResult r = agent::compilePolicy(text, "fuzz.toml");
  size_t lines = 1;
  for (char c : text) lines += c == '\n';
  for (const auto& d : r.errors) {
    FUZZ_CHECK(d.line >= 0 && static_cast<size_t>(d.line) <= lines + 1 && d.column >= 0,
               "diagnostic at %d:%d in a text of %zu lines: %s", d.line, d.column, lines, d.message.c_str());
    FUZZ_CHECK(!d.message.empty(), "empty diagnostic at %d:%d", d.line, d.column);
    (void)d.format();
  }
  FUZZ_CHECK(r.model.has_value() == r.errors.empty(), "model %s with %zu errors", r.model ? "set" : "unset",
             r.errors.size());
  if (!r.model) return 0;

  std::string why;
  auto table = pfc::Table::fromImage(pfc::buildImage(*r.model, 1), &why);
  FUZZ_CHECK(table != nullptr, "a compiled policy's image is refused: %s", why.c_str());

  std::string dumped = pfc::renderToml(*r.model, 1);
  agent::CompileResult again = agent::compilePolicy(dumped, "dump.toml");
  FUZZ_CHECK(again.ok(), "the dump of a compiled policy does not compile: %s\n--- dump:\n%s",
             again.errors.empty() ? "(no model)" : again.errors[0].format().c_str(), dumped.c_str());
  std::string before = canonical(*r.model);
  std::string after = canonical(*again.model);
  FUZZ_CHECK(before == after, "the dump compiles to a different table\n--- before:\n%s\n--- after:\n%s",
             before.c_str(), after.c_str());
  return 0;
}
