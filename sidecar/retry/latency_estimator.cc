#include "sidecar/retry/latency_estimator.h"

#include <bit>

namespace mulligan::retry {

size_t LatencyEstimator::bucketOf(int64_t us) {
  if (us < kSubBuckets) return us < 0 ? 0 : static_cast<size_t>(us);
  uint64_t v = static_cast<uint64_t>(us);
  int e = 63 - std::countl_zero(v);  // floor(log2(v)) >= kSubBits
  if (e > kMaxLog2) return kBuckets - 1;
  size_t sub = static_cast<size_t>(v >> (e - kSubBits)) & (kSubBuckets - 1);
  return static_cast<size_t>(e - kSubBits + 1) * kSubBuckets + sub;
}

int64_t LatencyEstimator::upperBoundUs(size_t b) {
  if (b < static_cast<size_t>(kSubBuckets)) return static_cast<int64_t>(b);
  if (b >= kBuckets - 1) return int64_t{1} << (kMaxLog2 + 1);
  int g = static_cast<int>(b / kSubBuckets);
  int64_t sub = static_cast<int64_t>(b % kSubBuckets);
  int64_t lower = (kSubBuckets + sub) << (g - 1);
  return lower + (int64_t{1} << (g - 1)) - 1;
}

uint64_t LatencyEstimator::minSamples(uint32_t permille) {
  if (permille == 0 || permille >= 1000) return UINT64_MAX;
  // kMinTail samples above the quantile: kMinTail / (1 - q), rounded up.
  return (kMinTail * 1000 + (1000 - permille) - 1) / (1000 - permille);
}

void LatencyEstimator::rotate(int64_t now_us) {
  if (half_start_us_ < 0) {
    half_start_us_ = now_us;
    return;
  }
  int64_t age = now_us - half_start_us_;
  if (age < kHalfUs) return;
  // One half over: the current half becomes the previous one. Two or more:
  // nothing in the window is recent; both are forgotten.
  int prev = cur_ ^ 1;
  for (uint32_t& c : counts_[prev]) c = 0;
  total_[prev] = 0;
  if (age >= 2 * kHalfUs) {
    for (uint32_t& c : counts_[cur_]) c = 0;
    total_[cur_] = 0;
    half_start_us_ = now_us;
    return;
  }
  cur_ = prev;
  half_start_us_ += kHalfUs;
}

void LatencyEstimator::record(int64_t us, int64_t now_us) {
  rotate(now_us);
  uint32_t& c = counts_[cur_][bucketOf(us)];
  if (c != UINT32_MAX) {
    ++c;
    ++total_[cur_];
  }
}

uint64_t LatencyEstimator::samples(int64_t now_us) {
  rotate(now_us);
  return total_[0] + total_[1];
}

std::optional<int64_t> LatencyEstimator::quantileUs(uint32_t permille, int64_t now_us) {
  uint64_t n = samples(now_us);
  if (n == 0 || n < minSamples(permille)) return std::nullopt;
  // The smallest value with at least ceil(n * q) samples at or below it.
  uint64_t rank = (n * permille + 999) / 1000;
  uint64_t seen = 0;
  for (size_t b = 0; b < kBuckets; ++b) {
    seen += counts_[0][b] + counts_[1][b];
    if (seen >= rank) return upperBoundUs(b);
  }
  return upperBoundUs(kBuckets - 1);
}

}  // namespace mulligan::retry
