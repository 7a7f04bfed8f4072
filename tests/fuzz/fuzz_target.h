// The one entry point every fuzz target defines (libFuzzer's), and the
// checks they share. A target is built twice: with clang's libFuzzer and the
// sanitizers (MULLIGAN_FUZZ=ON, scripts/fuzz), and, in every ordinary build,
// linked with replay_main.cc so that ctest feeds it each file of its seed
// corpus (tests/fuzz/corpus/<target>/).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

// A property the code under test promised and broke: a crash for libFuzzer
// (which then keeps the input), a failure for the replay. Unlike assert(),
// it holds in release builds too.
#define FUZZ_CHECK(cond, ...)                                                 \
  do {                                                                        \
    if (!(cond)) {                                                            \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: ", __FILE__,        \
                   __LINE__, #cond);                                          \
      std::fprintf(stderr, __VA_ARGS__);                                      \
      std::fputc('\n', stderr);                                               \
      std::abort();                                                           \
    }                                                                         \
  } while (0)
