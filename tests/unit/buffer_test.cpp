// Checks: pool buffers are page-aligned, distinct, move-only, come back to the
// pool exactly once, and every release is seen by the pool's observers.
#include "harness/buffer.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <vector>

namespace ringside {
namespace {

TEST(buffer_pool, buffers_are_page_aligned_and_disjoint) {
  buffer_pool pool(8, 5000);  // 5000: not a page multiple, must round up
  EXPECT_EQ(pool.buffer_size() % page_size(), 0u);
  EXPECT_GE(pool.buffer_size(), 5000u);
  std::vector<buffer> bufs;
  std::set<std::byte*> seen;
  for (int i = 0; i < 8; ++i) {
    bufs.push_back(pool.acquire());
    ASSERT_TRUE(bufs.back());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(bufs.back().data()) % page_size(), 0u);
    EXPECT_TRUE(seen.insert(bufs.back().data()).second);
    EXPECT_TRUE(pool.contains(bufs.back().data()));
    EXPECT_EQ(bufs.back().data(), pool.slot_data(bufs.back().index()));
  }
  EXPECT_FALSE(pool.acquire()) << "exhausted pool must hand out an invalid buffer";
  EXPECT_EQ(pool.available(), 0u);
}

TEST(buffer_pool, destruction_and_reset_return_exactly_once) {
  buffer_pool pool(2, 4096);
  {
    buffer a = pool.acquire();
    buffer b = std::move(a);
    EXPECT_FALSE(a);
    EXPECT_TRUE(b);
    EXPECT_EQ(pool.available(), 1u);
  }
  EXPECT_EQ(pool.available(), 2u);
  buffer c = pool.acquire();
  c.reset();
  c.reset();  // second reset is a no-op
  EXPECT_EQ(pool.available(), 2u);
  buffer d = pool.acquire(), e = pool.acquire();
  d = std::move(e);  // d's old buffer returns, e's moves in
  EXPECT_EQ(pool.available(), 1u);
}

TEST(buffer_pool, iovecs_cover_the_region_for_fixed_buffer_registration) {
  buffer_pool pool(4, 8192);
  auto v = pool.iovecs();
  ASSERT_EQ(v.size(), 4u);
  for (size_t i = 0; i < v.size(); ++i) {
    EXPECT_EQ(v[i].iov_base, pool.slot_data(uint32_t(i)));
    EXPECT_EQ(v[i].iov_len, 8192u);
  }
}

struct counting_observer : buffer_observer {
  int acquired = 0, released = 0;
  std::vector<uint32_t> released_idx;
  void on_acquire(const buffer_pool&, uint32_t) noexcept override { ++acquired; }
  void on_release(const buffer_pool&, uint32_t i) noexcept override {
    ++released;
    released_idx.push_back(i);
  }
};

TEST(buffer_pool, observers_see_every_acquire_and_release) {
  buffer_pool pool(3, 4096);
  counting_observer obs;
  pool.add_observer(&obs);
  {
    auto a = pool.acquire();
    auto b = pool.acquire();
    EXPECT_EQ(obs.acquired, 2);
    a.reset();
    EXPECT_EQ(obs.released, 1);
  }
  EXPECT_EQ(obs.released, 2);
  pool.remove_observer(&obs);
  { auto c = pool.acquire(); }
  EXPECT_EQ(obs.acquired, 2);
}

TEST(buffer_pool, zero_count_is_a_setup_error) {
  EXPECT_THROW(buffer_pool(0, 4096), std::system_error);
}

}  // namespace
}  // namespace ringside
