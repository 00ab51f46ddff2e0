// Checks: user-supplied sizes, counts and durations parse exactly, and every
// bad value is refused with a one-line message naming the option.
#include "harness/parse.hpp"

#include <gtest/gtest.h>

#include "harness/scenario.hpp"

namespace ringside {
namespace {

TEST(parse_size, suffixes_are_powers_of_1024) {
  EXPECT_EQ(parse_size("--bs", "4096", 1ull << 40), 4096u);
  EXPECT_EQ(parse_size("--bs", "4k", 1ull << 40), 4096u);
  EXPECT_EQ(parse_size("--bs", "128K", 1ull << 40), 131072u);
  EXPECT_EQ(parse_size("--bs", "64m", 1ull << 40), 64ull << 20);
  EXPECT_EQ(parse_size("--bs", "1g", 1ull << 40), 1ull << 30);
  EXPECT_EQ(parse_size("--bs", "2KiB", 1ull << 40), 2048u);
}

TEST(parse_size, bad_values_are_usage_errors) {
  for (const char* bad : {"", "0", "-1", "abc", "4x", "4kk", "1e3", "99999999999999999999", "18014398509481984k"}) {
    try {
      parse_size("--bs", bad, 1ull << 30);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const usage_error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.find('\n'), std::string::npos);
      EXPECT_EQ(msg.rfind("--bs", 0), 0u) << msg;
    }
  }
  EXPECT_THROW(parse_size("--bs", "2g", 1ull << 30), usage_error);
}

TEST(parse_count, bounds_and_junk) {
  EXPECT_EQ(parse_count("--qd", "32", 1, 4096), 32u);
  EXPECT_THROW(parse_count("--qd", "0", 1, 4096), usage_error);
  EXPECT_THROW(parse_count("--qd", "5000", 1, 4096), usage_error);
  EXPECT_THROW(parse_count("--qd", "3.5", 1, 4096), usage_error);
  EXPECT_THROW(parse_count("--qd", "-3", 1, 4096), usage_error);
  EXPECT_THROW(parse_count("--qd", "", 1, 4096), usage_error);
}

TEST(parse_seconds, decimals_ok_nonpositive_and_nan_refused) {
  EXPECT_DOUBLE_EQ(parse_seconds("--duration", "0.5", 100), 0.5);
  EXPECT_THROW(parse_seconds("--duration", "0", 100), usage_error);
  EXPECT_THROW(parse_seconds("--duration", "-1", 100), usage_error);
  EXPECT_THROW(parse_seconds("--duration", "nan", 100), usage_error);
  EXPECT_THROW(parse_seconds("--duration", "inf", 100), usage_error);
  EXPECT_THROW(parse_seconds("--duration", "1000", 100), usage_error);
}

TEST(split_list, items_and_empty_items) {
  EXPECT_EQ(split_list("--backend", "a,b,c"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_THROW(split_list("--backend", "a,,b"), usage_error);
  EXPECT_THROW(split_list("--backend", ""), usage_error);
}

}  // namespace
}  // namespace ringside
