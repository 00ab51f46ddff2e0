// Log-linear latency histogram (HdrHistogram's layout): values below 2^k_sub
// are exact; above, each power of two is split into 2^k_sub_bits equal
// buckets, so a bucket's width is at most 1/128 of its lower bound and the
// midpoint reported for a percentile is within 0.4% of any value in it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "harness/meters.hpp"  // RINGSIDE_INSTRUMENTATION

namespace ringside {

#if !RINGSIDE_INSTRUMENTATION
class latency_recorder;
#endif

class histogram {
 public:
  static constexpr int k_sub_bits = 7;                 // 128 buckets per octave: <1% error
  static constexpr int k_max_bits = 40;                // ~1100 s in ns; larger values clamp
  static constexpr uint64_t k_sub = 1ull << k_sub_bits;
  static constexpr size_t k_buckets = (k_max_bits - k_sub_bits + 1) * k_sub;

  histogram() : counts_(k_buckets, 0) {}

  void record(uint64_t v) noexcept {
    ++counts_[index_of(v)];
    ++total_;
    if (v > max_) max_ = v;
    if (v < min_) min_ = v;
    sum_ += v;
  }
  void merge(const histogram& o) noexcept;
#if !RINGSIDE_INSTRUMENTATION
  void merge(const latency_recorder&) noexcept {}  // nothing was recorded
#endif
  void clear() noexcept;

  [[nodiscard]] uint64_t count() const noexcept { return total_; }
  [[nodiscard]] uint64_t max() const noexcept { return total_ ? max_ : 0; }
  [[nodiscard]] uint64_t min() const noexcept { return total_ ? min_ : 0; }
  [[nodiscard]] double mean() const noexcept { return total_ ? double(sum_) / double(total_) : 0; }
  // Value at quantile q in [0,1]: the midpoint of the bucket holding it,
  // clamped to [min, max]. 0 when empty.
  [[nodiscard]] uint64_t quantile(double q) const noexcept;

  // Non-empty buckets as (lower bound, count), for export.
  [[nodiscard]] std::vector<std::pair<uint64_t, uint64_t>> buckets() const;

  static constexpr size_t index_of(uint64_t v) noexcept {
    if (v < k_sub) return size_t(v);
    const int msb = 63 - __builtin_clzll(v);
    if (msb >= k_max_bits) return k_buckets - 1;
    const int shift = msb - k_sub_bits;  // >= 0
    const uint64_t sub = (v >> shift) - k_sub;  // 0..k_sub-1
    return size_t((shift + 1) * k_sub + sub);
  }
  static constexpr uint64_t lower_bound(size_t i) noexcept {
    if (i < k_sub) return i;
    const size_t shift = i / k_sub - 1;
    const uint64_t sub = i % k_sub;
    return (k_sub + sub) << shift;
  }
  static constexpr uint64_t upper_bound(size_t i) noexcept {  // exclusive
    if (i < k_sub) return i + 1;
    const size_t shift = i / k_sub - 1;
    return lower_bound(i) + (1ull << shift);
  }

 private:
  std::vector<uint64_t> counts_;
  uint64_t total_ = 0;
  uint64_t max_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t sum_ = 0;
};

// The per-op latency record path (stream_stats::latency): the histogram
// itself, or, with RINGSIDE_INSTRUMENTATION=0, an empty type whose record()
// compiles to nothing. The histogram class stays whole either way (check and
// repro rebuild one from a results file).
#if RINGSIDE_INSTRUMENTATION
using latency_recorder = histogram;
#else
class latency_recorder {
 public:
  void record(uint64_t) noexcept {}
  [[nodiscard]] uint64_t count() const noexcept { return 0; }
};
#endif

}  // namespace ringside
