// Checks: every recorded value lands in a bucket whose width is under 1% of
// its value, and reported percentiles are within 1% of the exact ones.
#include "harness/histogram.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace ringside {
namespace {

TEST(histogram, bucket_width_is_under_one_percent) {
  for (uint64_t v : {1ull, 127ull, 128ull, 129ull, 1000ull, 4095ull, 65537ull, 1234567ull, 987654321ull,
                     (1ull << 39) + 12345}) {
    const size_t i = histogram::index_of(v);
    const uint64_t lo = histogram::lower_bound(i), hi = histogram::upper_bound(i);
    EXPECT_LE(lo, v) << v;
    EXPECT_LT(v, hi) << v;
    EXPECT_LT(double(hi - lo - 1), 0.01 * double(v) + 1.0) << v;
  }
}

TEST(histogram, indices_are_monotonic_and_contiguous) {
  size_t prev = 0;
  for (uint64_t v = 0; v < 300000; ++v) {
    const size_t i = histogram::index_of(v);
    EXPECT_GE(i, prev);
    EXPECT_LE(i, prev + 1);
    prev = i;
  }
}

TEST(histogram, percentiles_match_exact_within_one_percent) {
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> d(10.0, 1.5);  // ns-scale latencies with a long tail
  histogram h;
  std::vector<uint64_t> xs;
  for (int i = 0; i < 200000; ++i) {
    const auto v = uint64_t(d(rng)) + 1;
    xs.push_back(v);
    h.record(v);
  }
  std::sort(xs.begin(), xs.end());
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    const auto exact = xs[size_t(std::ceil(q * double(xs.size()))) - 1];
    const auto got = h.quantile(q);
    EXPECT_NEAR(double(got), double(exact), 0.01 * double(exact)) << "q=" << q;
  }
  EXPECT_EQ(h.max(), xs.back());
  EXPECT_EQ(h.min(), xs.front());
  EXPECT_EQ(h.count(), xs.size());
}

TEST(histogram, merge_equals_recording_everything_in_one) {
  histogram a, b, all;
  for (uint64_t v = 1; v < 5000; ++v) {
    (v % 3 ? a : b).record(v * 37);
    all.record(v * 37);
  }
  a.merge(b);
  EXPECT_EQ(a.buckets(), all.buckets());
  EXPECT_EQ(a.quantile(0.99), all.quantile(0.99));
  EXPECT_EQ(a.max(), all.max());
}

TEST(histogram, empty_and_huge_values) {
  histogram h;
  EXPECT_EQ(h.quantile(0.5), 0u);
  EXPECT_TRUE(h.buckets().empty());
  h.record(UINT64_MAX);  // clamps into the last bucket, exact max kept
  EXPECT_EQ(h.max(), UINT64_MAX);
  EXPECT_EQ(h.buckets().size(), 1u);
}

}  // namespace
}  // namespace ringside
