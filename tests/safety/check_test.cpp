// `ringside check` and `ringside repro` end to end, on the real binary: the
// table passes on main, a mismatch in either direction fails it, every
// violation's printed command and file reproduce it, bad input exits 2.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <string>

#include <fmt/format.h>

#include "harness/backend.hpp"
#include "harness/ring.hpp"
#include "tests/safety/cli_util.hpp"

namespace ringside::test {
namespace {

#define REQUIRE_URING()                                                           \
  do {                                                                            \
    if (auto why_ = ::ringside::uring_unavailable_reason(); !why_.empty())        \
      GTEST_SKIP() << why_;                                                       \
  } while (0)

// The scenario these tests drive: small and fast, caught in the release build
// by ringside's own stream check.
constexpr const char* k_scenario = "cancel.recv_completed";

std::string write_table(const std::string& dir, const std::string& body) {
  const std::string path = dir + "/expected.tsv";
  std::ofstream(path) << body;
  return path;
}

std::string check_cmd(const temp_dir_guard& d, const std::string& extra) {
  return "cd '" + d.path + "' && " + bin() + " check --scenario " + k_scenario + " --repro-dir repros " + extra;
}

TEST(check_cli, passes_on_the_repo_table_and_prints_a_readable_matrix) {
  REQUIRE_URING();
  temp_dir_guard d;
  const auto r = run_cli(check_cmd(d, ""));
  EXPECT_EQ(r.code, 0) << r.out;
  size_t cells = 0;
  register_builtin_backends();
  for (const auto& b : registered_backends()) {
    EXPECT_NE(r.out.find(b.name), std::string::npos) << b.name;
    ++cells;
  }
  EXPECT_NE(r.out.find(fmt::format("{} of {} cells as expected", cells, cells)), std::string::npos) << r.out;
  // The negative control is caught, and says how to reproduce it.
  EXPECT_NE(r.out.find("repro --backend uring-raw --scenario cancel.recv_completed --seed 1"), std::string::npos)
      << r.out;
}

// The acceptance test of the safety suite: every cancel.* scenario on every
// backend, in this build, matches tests/safety/expected.tsv.
TEST(check_cli, the_whole_catalogue_matches_the_expected_table) {
  REQUIRE_URING();
  temp_dir_guard d;
  const auto r = run_cli("cd '" + d.path + "' && " + bin() + " check --repro-dir repros", 580);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("cells as expected"), std::string::npos) << r.out;
}

TEST(check_cli, fails_when_the_negative_control_is_no_longer_caught) {
  REQUIRE_URING();
  temp_dir_guard d;
  // The table claims uring-raw is clean: reality (caught) differs.
  const auto t = write_table(d.path, std::string(k_scenario) + " uring-raw clean\n");
  const auto r = run_cli(check_cmd(d, "--backend uring-raw --expected " + t));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("UNEXPECTED"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("expected clean, got stream_integrity"), std::string::npos) << r.out;
}

TEST(check_cli, fails_when_an_expected_violation_does_not_happen) {
  REQUIRE_URING();
  temp_dir_guard d;
  // The other direction: the table expects a catch the run does not make.
  const auto t = write_table(d.path, std::string(k_scenario) + " epoll stream_integrity\n" +
                                         std::string(k_scenario) + " uring-raw stream_integrity,ledger\n");
  const auto r = run_cli(check_cmd(d, "--backend epoll,uring-raw --expected " + t));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("epoll: expected stream_integrity, got clean"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("uring-raw: expected stream_integrity,ledger, got stream_integrity"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("0 of 2 cells as expected"), std::string::npos) << r.out;
}

TEST(check_cli, optional_kinds_may_or_may_not_appear) {
  REQUIRE_URING();
  temp_dir_guard d;
  const auto t = write_table(d.path, std::string(k_scenario) + " uring-raw stream_integrity,?canary\n");
  const auto r = run_cli(check_cmd(d, "--backend uring-raw --expected " + t));
  EXPECT_EQ(r.code, 0) << r.out;
}

TEST(repro_cli, the_printed_command_and_the_file_reproduce_the_violation) {
  REQUIRE_URING();
  temp_dir_guard d;
  const auto r = run_cli(check_cmd(d, "--backend uring-raw"));
  ASSERT_EQ(r.code, 0) << r.out;
  // "  <bin> repro --backend ... \n      file: repros/....json"
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex("\\n  (\\S+ repro [^\\n]+)\\n\\s+file: (\\S+)"))) << r.out;
  const std::string cmd = m[1], file = m[2];

  const auto again = run_cli("cd '" + d.path + "' && " + cmd);
  EXPECT_EQ(again.code, 1) << again.out;
  EXPECT_NE(again.out.find("[stream] stream_integrity"), std::string::npos) << again.out;

  const auto from_file = run_cli("cd '" + d.path + "' && " + bin() + " repro " + file);
  EXPECT_EQ(from_file.code, 1) << from_file.out;
  EXPECT_NE(from_file.out.find("reproduced: stream_integrity"), std::string::npos) << from_file.out;

  // The file names backend, scenario, seed, detector, op and buffer range.
  std::ifstream in(d.path + "/" + file);
  const std::string js((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const char* key : {"\"backend\": \"uring-raw\"", "\"scenario\": \"cancel.recv_completed\"", "\"seed\": 1",
                          "\"detector\": \"stream\"", "\"op\": \"recv", "\"range\": \"buffer "})
    EXPECT_NE(js.find(key), std::string::npos) << key << " not in " << js;
}

TEST(repro_cli, a_correct_backend_is_not_reproduced) {
  REQUIRE_URING();
  temp_dir_guard d;
  const auto r = run_cli("cd '" + d.path + "' && " + bin() + " repro --backend uring-owned --scenario " + k_scenario +
                         " --seed 7 --ops 32");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find(": clean"), std::string::npos) << r.out;
}

TEST(check_cli, bad_input_is_one_line_and_exit_2) {
  temp_dir_guard d;
  const std::string cd = "cd '" + d.path + "' && ";
  std::ofstream(d.path + "/bad.tsv") << "cancel.recv_completed epoll\n";
  std::ofstream(d.path + "/bad-kind.tsv") << "cancel.recv_completed epoll Stream-Integrity\n";
  std::ofstream(d.path + "/not-json.json") << "{ nope";
  std::ofstream(d.path + "/other.json") << "{\"x\": 1}";
  std::ofstream(d.path + "/v2.json") << "{\"ringside_repro\": 2, \"backend\": \"epoll\", \"scenario\": \"x\", \"seed\": 1}";
  const std::string cases[] = {
      bin() + " check --expected /nonexistent/expected.tsv",
      bin() + " check --expected bad.tsv",
      bin() + " check --expected bad-kind.tsv",
      bin() + " check --scenario 'nope.*'",
      bin() + " check --backend nope",
      bin() + " check --iterations 0",
      bin() + " check --timeout -1",
      bin() + " repro",
      bin() + " repro /nonexistent.json",
      bin() + " repro not-json.json",
      bin() + " repro other.json",
      bin() + " repro v2.json",
      bin() + " repro --backend epoll --scenario nope",
      bin() + " repro --backend epoll --scenario cancel.recv_completed --ops 0",
      bin() + " repro --backend epoll --scenario cancel.recv_completed --detectors magic",
  };
  for (const auto& c : cases) {
    const auto r = run_cli(cd + c, 60);
    EXPECT_EQ(r.code, 2) << c << "\n" << r.out;
    // One line: the message, nothing else (no table, no trace).
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << c << "\n" << r.out;
    EXPECT_EQ(r.out.rfind("ringside: ", 0), 0u) << c << "\n" << r.out;
  }
}

}  // namespace
}  // namespace ringside::test
