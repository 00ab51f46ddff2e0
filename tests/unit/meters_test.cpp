// Checks: the copy meter counts exactly what it copies, syscall and copy
// counters sum over threads (including exited ones), and the counting
// operator new sees allocations.
#include "harness/meters.hpp"

#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <thread>
#include <vector>

#include "harness/sys.hpp"
#include "harness/unique_fd.hpp"

namespace ringside {
namespace {

TEST(copy_meter, counts_bytes_copied_and_copies_them) {
  std::array<std::byte, 100> src{}, dst{};
  for (size_t i = 0; i < src.size(); ++i) src[i] = std::byte(i);
  const auto before = meters::read();
  EXPECT_EQ(copy_payload(dst, src), 100u);
  EXPECT_EQ(copy_payload(std::span(dst).first(10), src), 10u);  // clipped to dst
  const auto d = meters::read() - before;
  EXPECT_EQ(d.user_copy_bytes, 110u);
  EXPECT_EQ(dst[99], std::byte(99));
}

TEST(syscall_meter, counts_every_wrapped_syscall_across_threads) {
  const auto before = meters::read();
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([] {
      for (int i = 0; i < 25; ++i) {
        unique_fd fd(sys::socket(AF_INET, SOCK_STREAM, 0));  // 1 syscall
        ASSERT_TRUE(fd);
      }  // + 1 close each
    });
  for (auto& t : ts) t.join();  // threads exited: their counts must survive
  const auto d = meters::read() - before;
  EXPECT_EQ(d.syscalls, 4u * 25u * 2u);
}

TEST(syscall_meter, errors_come_back_as_negative_errno) {
  std::array<std::byte, 8> b{};
  EXPECT_EQ(sys::read(-1, b), -EBADF);
}

TEST(alloc_meter, counting_operator_new_is_linked_and_counts) {
  const auto before = meters::read();
  std::vector<std::unique_ptr<int>> keep;
  keep.reserve(10);  // one allocation
  for (int i = 0; i < 10; ++i) keep.push_back(std::make_unique<int>(i));  // ten more
  ASSERT_EQ(*keep[9], 9);
  const auto d = meters::read() - before;
  EXPECT_TRUE(meters::alloc_counting_active());
  EXPECT_GE(d.allocs, 11u);
  EXPECT_LT(d.allocs, 20u);
}

TEST(cpu_usage, user_time_grows_with_work) {
  const auto c0 = read_cpu_usage();
  volatile uint64_t x = 0;
  for (uint64_t i = 0; i < 200'000'000 && (read_cpu_usage() - c0).user_s < 0.05; ++i) x = x + i;
  EXPECT_GT((read_cpu_usage() - c0).user_s, 0.0);
}

}  // namespace
}  // namespace ringside
