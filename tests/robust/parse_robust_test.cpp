// The parsers' robustness fixes (harness/parse.hpp), each found by or made
// for issue 7: error messages stay one printable line whatever was typed
// (found by tests/fuzz/fuzz_parse.cpp), and --conns is checked against
// RLIMIT_NOFILE before anything runs.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "harness/parse.hpp"
#include "harness/scenario.hpp"

namespace ringside {
namespace {

TEST(printable, keeps_printable_ascii_and_escapes_everything_else) {
  EXPECT_EQ(printable("4k"), "4k");
  EXPECT_EQ(printable("a\nb"), "a\\x0ab");
  EXPECT_EQ(printable("\x1b[31m"), "\\x1b[31m");
  EXPECT_EQ(printable("a\\b"), "a\\\\b");  // a backslash is doubled: \x0a typed stays distinguishable
  EXPECT_EQ(printable("\xc3\xa9"), "\\xc3\\xa9");
  EXPECT_EQ(printable(std::string_view("a\0b", 3)), "a\\x00b");
}

TEST(printable, cuts_long_text) {
  const std::string long_text(1000, 'x');
  const std::string p = printable(long_text);
  EXPECT_EQ(p, std::string(200, 'x') + "...");
  EXPECT_EQ(printable(long_text, 5), "xxxxx...");
}

// The input the fuzzer found: a newline in the value made a two-line error.
TEST(parse_errors, are_one_printable_line_whatever_was_typed) {
  for (const std::string& bad : {std::string("\n'\x8a\n"), std::string("4\nk"), std::string("\x1b[2J"),
                                std::string("1\0k", 3)}) {
    try {
      (void)parse_size("--bs", bad, 1ull << 30);
      ADD_FAILURE() << "accepted " << printable(bad);
    } catch (const usage_error& e) {
      for (const char c : std::string(e.what()))
        EXPECT_FALSE(static_cast<unsigned char>(c) < 0x20 || c == 0x7f) << printable(e.what());
    }
  }
}

// check_fd_limit in a child (it reads this process's limit; the child lowers
// it without touching the test process).
int fd_limit_child(rlim_t limit, uint64_t conns) {
  rlimit rl{limit, limit};
  if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) return 3;
  try {
    check_fd_limit("--conns", conns);
    return 0;
  } catch (const usage_error& e) {
    const std::string m = e.what();
    const bool ok = m.find("--conns " + std::to_string(conns)) != std::string::npos &&
                    m.find("RLIMIT_NOFILE is " + std::to_string(limit)) != std::string::npos &&
                    m.find('\n') == std::string::npos;
    return ok ? 1 : 2;
  }
}

int in_child(rlim_t limit, uint64_t conns) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(fd_limit_child(limit, conns));
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

TEST(check_fd_limit, refuses_connections_beyond_the_limit_and_accepts_those_within) {
  // 256 fds: (256 - k_fd_reserve) / 2 = 96 connections fit, 97 do not.
  EXPECT_EQ(in_child(256, 1000), 1);
  EXPECT_EQ(in_child(256, (256 - k_fd_reserve) / 2 + 1), 1);
  EXPECT_EQ(in_child(256, (256 - k_fd_reserve) / 2), 0);
  EXPECT_EQ(in_child(256, 1), 0);
}

}  // namespace
}  // namespace ringside
