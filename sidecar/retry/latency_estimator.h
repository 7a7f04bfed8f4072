// LatencyEstimator: a route's recent attempt latency (request sent ->
// response headers), for a hedge delay given as a quantile ("p95", ...).
//
// Which: a log-bucketed histogram (HdrHistogram's idea at its coarsest:
// kSubBuckets linear sub-buckets per power of two, so every bucket is at most
// 1/kSubBuckets = 25% wide relative to its value) over a sliding window made
// of TWO HALVES: samples go into the current half; when it is kHalfUs old it
// becomes the previous half and the old previous half is forgotten. A
// quantile reads both halves, i.e. the last 5 to 10 seconds.
//
// Why: it must be small, bounded and allocation-free on the hot path.
//   * record() is an index computation (a count-leading-zeros) and one
//     increment; quantileUs() walks kBuckets counters (~100), and only when a
//     call of a route with a quantile hedge delay starts.
//   * Its size is fixed (2 x kBuckets x 4 bytes, under 1 KiB) whatever the
//     traffic: no reservoir, no sorting, no allocation ever.
//   * Two halves instead of an exponential decay: a quantile must follow a
//     change in the upstream within seconds (a slow pod gone, a new release)
//     and forget it just as fast; a decayed histogram keeps an old tail for
//     as long as its half-life, with no count to say how much it knows.
//   * The error is a bucket's width (<= 25%); the answer is the bucket's
//     UPPER bound, so a hedge goes a little late rather than early (a hedge
//     too early costs load; a little late costs a few milliseconds of tail).
//   Alternatives rejected: t-digest and CKMS need allocation or merging;
//   P-square keeps one quantile and no window; a reservoir needs sorting.
//
// Before it has enough samples it gives no quantile: quantileUs() is nullopt
// until the window holds minSamples(q) samples, where q is the quantile in
// permille: kMinTail / (1 - q) — enough that kMinTail (10) samples lie above
// the quantile (p90: 100, p95: 200, p99: 1000, p99.9: 10000). With fewer,
// the "p99" is just the largest sample seen, one slow outlier would set the
// delay, and hedging on it would be noise. Until then the call is not hedged
// on a quantile (a fixed delay needs no estimate).
//
// Samples: ProxyStream records the time to headers of every attempt that got
// them, and for an attempt cancelled without headers (a hedge's loser, still
// waiting), the time it had waited so far: a lower bound, but without it
// the slow calls that hedging cuts short would vanish from the estimate and
// the quantile would drift down, hedging ever more (max_extra_load would
// then be the only brake).
//
// Threading: one per worker and route (stats::RouteCounters holds it; the
// admin thread never reads it), used by that worker's thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

namespace mulligan::retry {

class LatencyEstimator {
 public:
  static constexpr int64_t kHalfUs = 5'000'000;  // each half of the window: 5 s
  static constexpr int kSubBits = 2;             // 4 sub-buckets per power of two
  static constexpr int kSubBuckets = 1 << kSubBits;
  // Values up to 2^kMaxLog2 us (~67 s); above go to the last bucket.
  static constexpr int kMaxLog2 = 26;
  // Groups of kSubBuckets: values 0..3 exact, then one group per power of
  // two up to 2^kMaxLog2, then one overflow bucket.
  static constexpr size_t kBuckets = static_cast<size_t>((kMaxLog2 - kSubBits + 2) * kSubBuckets) + 1;
  static constexpr uint64_t kMinTail = 10;

  // One sample, `us` >= 0, at monotonic time `now_us`.
  void record(int64_t us, int64_t now_us);
  // The `permille` quantile (1..999) of the window at `now_us`: the upper
  // bound of the bucket that holds it; nullopt below minSamples(permille).
  std::optional<int64_t> quantileUs(uint32_t permille, int64_t now_us);
  // Samples in the window at `now_us`.
  uint64_t samples(int64_t now_us);

  static uint64_t minSamples(uint32_t permille);
  // Bucket of a value, and the largest value a bucket holds (tests).
  static size_t bucketOf(int64_t us);
  static int64_t upperBoundUs(size_t bucket);

 private:
  // Moves the window to `now_us`: a half older than kHalfUs turns over.
  void rotate(int64_t now_us);

  uint32_t counts_[2][kBuckets] = {};
  uint64_t total_[2] = {};
  int cur_ = 0;
  int64_t half_start_us_ = -1;  // -1: no sample yet
};

}  // namespace mulligan::retry
