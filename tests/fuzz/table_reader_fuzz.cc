// Fuzz target: the table reader (proto-free-config/table_reader.h), the
// sidecar's only view of bytes another process wrote to shared memory.
// validateImage() must refuse anything it cannot vouch for, and whatever it
// accepts must be safe to use: lookups, toModel() and both renderings run on
// every accepted image (ASan and UBSan watch them), and the accepted model
// must build into an image that is accepted again.
//
// A mutated image almost always fails its checksum first, which would stop
// the fuzzer at the door: unless the first byte of the input is 'R' (raw),
// the checksum and total size are recomputed before validation, so the
// section, string and policy checks behind them are fuzzed too.
// Input: one mode byte, then the image (then nothing: lookups use its strings).
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "proto-free-config/checksum.h"
#include "proto-free-config/layout.h"
#include "proto-free-config/render.h"
#include "proto-free-config/table_model.h"
#include "proto-free-config/table_reader.h"
#include "tests/fuzz/fuzz_target.h"

using namespace mulligan::pfc;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  bool raw = data[0] == 'R';
  // An aligned, private copy (a segment slot is page-aligned).
  std::vector<uint64_t> storage((size - 1 + 7) / 8 + 1);
  auto* image = reinterpret_cast<uint8_t*>(storage.data());
  std::memcpy(image, data + 1, size - 1);
  size_t len = size - 1;
  if (!raw && len >= sizeof(TableHeader)) {
    uint64_t total = len;
    std::memcpy(image + offsetof(TableHeader, total_size), &total, sizeof total);
    uint64_t sum = checksum64(image + kChecksummedFrom, len - kChecksummedFrom);
    std::memcpy(image + offsetof(TableHeader, checksum), &sum, sizeof sum);
  }

  std::string why = validateImage(image, len);
  std::string why2;
  auto table = Table::fromImage(image, len, &why2);
  FUZZ_CHECK((table != nullptr) == why.empty(), "validateImage says \"%s\", fromImage \"%s\"", why.c_str(),
             why2.c_str());
  if (!table) return 0;

  // Lookups with the table's own strings (hosts and paths), which reach the
  // matching code more often than random keys would.
  // (At most 16 of each: a large table must not make one input slow.)
  (void)table->defaults();
  auto hosts = table->hosts().first(std::min<size_t>(table->hosts().size(), 16));
  auto routes = table->routes().first(std::min<size_t>(table->routes().size(), 16));
  for (const auto& h : hosts) {
    std::string_view host = table->str(h.name);
    for (const char* method : {"GET", "POST"}) {
      for (std::string_view path : {"/", "/a/b?c", "/pkg.Service/Method"}) {
        Match m = table->lookup(RequestKey{host, 80, method, path, path[1] == 'p'});
        FUZZ_CHECK(m.policy != nullptr, "lookup without a policy");
      }
    }
  }
  for (const auto& r : routes) {
    std::string_view path = table->str(r.match);
    for (const auto& h : hosts) {
      Match m = table->lookup(RequestKey{table->str(h.name), 0, "PUT", path, false});
      FUZZ_CHECK(m.policy != nullptr, "lookup without a policy");
    }
  }
  TableModel model = table->toModel();
  (void)renderToml(model, table->generation());
  (void)renderJson(model, table->generation());
  std::string again;
  auto rebuilt = Table::fromImage(buildImage(model, table->generation()), &again);
  FUZZ_CHECK(rebuilt != nullptr, "an accepted table's model builds into a refused image: %s", again.c_str());
  return 0;
}
