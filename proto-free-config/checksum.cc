#include "proto-free-config/checksum.h"

#include <cstring>

namespace mulligan::pfc {
namespace {

constexpr uint64_t kMulA = 0x9e3779b97f4a7c15ULL;  // 2^64 / golden ratio
constexpr uint64_t kMulB = 0xd6e8feb86659fd93ULL;  // odd constant with good bit spread

inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

inline uint64_t load64(const unsigned char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);  // unaligned-safe; compiles to one load on x86
  return v;
}

inline uint64_t mixLane(uint64_t lane, uint64_t v) { return rotl(lane ^ (v * kMulB), 29) * kMulA; }

// Final avalanche so every input bit affects every output bit.
inline uint64_t finalize(uint64_t h) {
  h ^= h >> 32;
  h *= kMulB;
  h ^= h >> 29;
  h *= kMulA;
  h ^= h >> 32;
  return h;
}

}  // namespace

uint64_t checksum64(const void* data, size_t size, uint64_t seed) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t a = seed ^ kMulA;
  uint64_t b = seed + kMulB;
  uint64_t c = rotl(seed, 17) ^ 0x2545f4914f6cdd1dULL;
  uint64_t d = seed - kMulA;
  size_t n = size;
  while (n >= 32) {
    a = mixLane(a, load64(p));
    b = mixLane(b, load64(p + 8));
    c = mixLane(c, load64(p + 16));
    d = mixLane(d, load64(p + 24));
    p += 32;
    n -= 32;
  }
  uint64_t h = rotl(a, 1) + rotl(b, 7) + rotl(c, 12) + rotl(d, 18) + size;
  while (n >= 8) {
    h = mixLane(h, load64(p));
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    uint64_t tail = 0;
    std::memcpy(&tail, p, n);
    h = mixLane(h, tail ^ (uint64_t{n} << 56));
  }
  return finalize(h);
}

}  // namespace mulligan::pfc
