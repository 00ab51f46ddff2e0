// The expected-verdict table: parsing, per-build columns, and what counts as
// a match (both directions of a mismatch).
#include <gtest/gtest.h>

#include <string>

#include "harness/check.hpp"

namespace ringside {
namespace {

cell_outcome got(std::vector<std::string> kinds) {
  cell_outcome o;
  o.kinds = std::move(kinds);
  o.verdict = o.kinds.empty() ? "clean" : o.kinds.front();
  return o;
}

TEST(expected_table, reads_builds_defaults_and_comments) {
  const auto t = expected_table::parse(
      "# header\n"
      "\n"
      "cancel.a  epoll      clean\n"
      "cancel.a  uring-raw  ledger,stream_integrity   asan   =     # tsan as release\n"
      "cancel.b\turing-raw\tcanary,?guard_page\t=\ttsan,canary\n"
      "cancel.c  blocking   unsupported\n",
      "t.tsv");
  ASSERT_NE(t.find("cancel.a", "epoll", "release"), nullptr);
  EXPECT_TRUE(t.find("cancel.a", "epoll", "asan")->clean);
  const auto* rel = t.find("cancel.a", "uring-raw", "release");
  ASSERT_NE(rel, nullptr);
  EXPECT_EQ(rel->required, (std::vector<std::string>{"ledger", "stream_integrity"}));
  EXPECT_EQ(t.find("cancel.a", "uring-raw", "asan")->required, (std::vector<std::string>{"asan"}));
  EXPECT_EQ(t.find("cancel.a", "uring-raw", "tsan")->required, rel->required);
  // Other builds (debug, ubsan) read the release column.
  EXPECT_EQ(t.find("cancel.a", "uring-raw", "debug")->required, rel->required);
  const auto* b = t.find("cancel.b", "uring-raw", "release");
  EXPECT_EQ(b->optional, (std::vector<std::string>{"guard_page"}));
  EXPECT_EQ(t.find("cancel.b", "uring-raw", "asan")->required, b->required);
  EXPECT_EQ(t.find("cancel.b", "uring-raw", "tsan")->required, (std::vector<std::string>{"tsan", "canary"}));
  EXPECT_TRUE(t.find("cancel.c", "blocking", "release")->unsupported);
  EXPECT_EQ(t.find("cancel.c", "epoll", "release"), nullptr);  // no line: the caller expects clean
}

TEST(expected_table, malformed_lines_name_file_and_line) {
  auto fails_with = [](const char* text, const char* what) {
    try {
      (void)expected_table::parse(text, "x.tsv");
      ADD_FAILURE() << "accepted: " << text;
    } catch (const usage_error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  fails_with("a b\n", "x.tsv:1");
  fails_with("# c\na b c d e f\n", "x.tsv:2");
  fails_with("a b Ledger\n", "x.tsv:1");
  fails_with("a b ?ledger\n", "at least one kind must be required");
  fails_with("a b clean,ledger\n", "x.tsv:1");
  fails_with("a b clean\na b ledger\n", "a second line");
}

TEST(expected_table, matching_fails_in_both_directions) {
  const auto t = expected_table::parse("s ok clean\ns raw ledger,?canary\ns un unsupported\n", "t");
  const auto& clean = *t.find("s", "ok", "release");
  const auto& raw = *t.find("s", "raw", "release");
  const auto& un = *t.find("s", "un", "release");
  EXPECT_TRUE(matches(clean, got({})));
  EXPECT_FALSE(matches(clean, got({"ledger"})));  // a correct backend flagged
  EXPECT_TRUE(matches(raw, got({"ledger"})));
  EXPECT_TRUE(matches(raw, got({"canary", "ledger"})));
  EXPECT_FALSE(matches(raw, got({})));                    // the negative control no longer caught
  EXPECT_FALSE(matches(raw, got({"canary"})));            // caught, but not by what must catch it
  EXPECT_FALSE(matches(raw, got({"ledger", "fd_leak"})));  // something unexpected on top
  cell_outcome u;
  u.unsupported = true;
  u.verdict = "unsupported: why";
  EXPECT_TRUE(matches(un, u));
  EXPECT_FALSE(matches(clean, u));  // a scenario quietly made unsupported is a change
  EXPECT_FALSE(matches(un, got({})));
}

}  // namespace
}  // namespace ringside
