// Fuzz target: the grpc-timeout parser and formatter (sidecar/retry/
// grpc_timeout.h), with the contract's properties checked on every input:
//  - a parsed value is a positive number of microseconds no larger than
//    99999999 hours;
//  - what formatGrpcTimeout() writes is at most 9 characters, parses back,
//    is never below 1 ms and never below what it was given (rounded up).
// The input is the header value; its first 8 bytes are also read as the
// int64 to format.
#include <cstring>
#include <string_view>

#include "sidecar/retry/grpc_timeout.h"
#include "tests/fuzz/fuzz_target.h"

using namespace mulligan::retry;

namespace {

constexpr int64_t kMaxUs = kGrpcTimeoutMaxValue * int64_t{3600} * 1'000'000;  // 99999999H

void checkFormat(int64_t us) {
  GrpcTimeoutText t = formatGrpcTimeout(us);
  FUZZ_CHECK(t.size >= 2 && t.size <= kGrpcTimeoutMaxChars, "format(%lld) has %u chars", static_cast<long long>(us),
             t.size);
  auto back = parseGrpcTimeoutUs(t.view());
  FUZZ_CHECK(back.has_value(), "format(%lld) = \"%s\" does not parse", static_cast<long long>(us), t.data);
  FUZZ_CHECK(*back >= 1000, "format(%lld) = \"%s\" is below 1 ms", static_cast<long long>(us), t.data);
  if (us < kMaxUs) {
    FUZZ_CHECK(*back >= us, "format(%lld) = \"%s\" rounds down to %lld", static_cast<long long>(us), t.data,
               static_cast<long long>(*back));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view v(reinterpret_cast<const char*>(data), size);
  if (auto us = parseGrpcTimeoutUs(v)) {
    FUZZ_CHECK(*us > 0 && *us <= kMaxUs, "\"%.*s\" parsed to %lld us", static_cast<int>(size), v.data(),
               static_cast<long long>(*us));
    checkFormat(*us);
  }
  int64_t raw = 0;
  std::memcpy(&raw, data, size < sizeof raw ? size : sizeof raw);
  checkFormat(raw);
  return 0;
}
