// Fuzz target: Http1Reader on requests (what apps send the sidecar). See
// http1_reader_fuzz.h for the input format and the properties checked.
#include "tests/fuzz/http1_reader_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return mulligan::fuzz::fuzzHttp1(mulligan::proxy::Http1Reader::Mode::kRequest, data, size);
}
