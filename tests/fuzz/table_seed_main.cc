// Writes the table_reader fuzz target's seed: the image the compiler makes
// of a policy file, after the target's mode byte ('C': fix the checksum).
//   mulligan-fuzz-table-seed examples/policy.toml tests/fuzz/corpus/table_reader/example
// Run it again when the table layout changes (a stale seed only exercises
// the "wrong ABI" refusal).
#include <cstdio>
#include <fstream>

#include "agent/compiler.h"
#include "proto-free-config/table_model.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s POLICY.toml OUT\n", argv[0]);
    return 2;
  }
  auto r = mulligan::agent::compilePolicyFile(argv[1]);
  if (!r.ok()) {
    for (const auto& d : r.errors) std::fprintf(stderr, "%s\n", d.format().c_str());
    return 1;
  }
  r.model->source_path = "policy.toml";  // not the path it was made from
  auto image = mulligan::pfc::buildImage(*r.model, 1);
  std::ofstream out(argv[2], std::ios::binary);
  out.put('C');
  out.write(reinterpret_cast<const char*>(image.data()), static_cast<std::streamsize>(image.size()));
  return out ? 0 : 1;
}
