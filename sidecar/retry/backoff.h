// Backoff before a retry: "full jitter" (AWS Architecture Blog, "Exponential
// Backoff And Jitter", 2015; what Envoy's JitteredExponentialBackOffStrategy
// does). Before retry n (n = 1, 2, ...):
//   ceiling(n) = min(backoff_max, backoff_base * 2^(n-1))
//   wait       = uniform in [0, ceiling(n))
// Pure functions. The random draw is a parameter, so a test can assert the
// exact wait a given draw produces.
#pragma once

#include <cstdint>

#include "proto-free-config/policy.h"

namespace mulligan::retry {

// min(max_us, base_us * 2^(retry_number-1)), computed without overflow for
// any retry_number (n = 0 is treated as 1). 0 when base or max is <= 0.
int64_t backoffCeilingUs(int64_t base_us, int64_t max_us, uint32_t retry_number);

// The jittered wait for one uniform 64-bit draw: floor(draw * ceiling / 2^64),
// i.e. the draw scaled into [0, ceiling) with 128-bit arithmetic — exact,
// no modulo bias worth the name, and monotonic in the draw:
//   draw 0 -> 0; draw 2^63 -> ceiling/2; draw 2^64-1 -> ceiling-1.
int64_t jitteredBackoffUs(int64_t ceiling_us, uint64_t draw);

// Both together, from the policy.
inline int64_t backoffUs(const pfc::RetryPolicy& r, uint32_t retry_number, uint64_t draw) {
  return jitteredBackoffUs(backoffCeilingUs(r.backoff_base_us, r.backoff_max_us, retry_number), draw);
}

}  // namespace mulligan::retry
