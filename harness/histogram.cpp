#include "harness/histogram.hpp"

#include <algorithm>
#include <cmath>

namespace ringside {

void histogram::merge(const histogram& o) noexcept {
  for (size_t i = 0; i < k_buckets; ++i) counts_[i] += o.counts_[i];
  total_ += o.total_;
  sum_ += o.sum_;
  if (o.total_) {
    max_ = std::max(max_, o.max_);
    min_ = std::min(min_, o.min_);
  }
}

void histogram::clear() noexcept {
  std::fill(counts_.begin(), counts_.end(), 0);
  total_ = 0;
  max_ = 0;
  min_ = UINT64_MAX;
  sum_ = 0;
}

uint64_t histogram::quantile(double q) const noexcept {
  if (total_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  // Rank of the sample we want, 1-based: the smallest value with at least
  // ceil(q * n) samples at or below it.
  const auto rank = std::max<uint64_t>(1, uint64_t(std::ceil(q * double(total_))));
  uint64_t seen = 0;
  for (size_t i = 0; i < k_buckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      const uint64_t lo = lower_bound(i), hi = upper_bound(i) - 1;
      const uint64_t mid = lo + (hi - lo) / 2;
      return std::clamp(mid, min_, max_);
    }
  }
  return max_;
}

std::vector<std::pair<uint64_t, uint64_t>> histogram::buckets() const {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (size_t i = 0; i < k_buckets; ++i)
    if (counts_[i]) out.emplace_back(lower_bound(i), counts_[i]);
  return out;
}

}  // namespace ringside
