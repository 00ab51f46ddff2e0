// Crash isolation (issue 7, item 4): "a scenario or plugin that segfaults or
// hangs does not lose the other results: it becomes a `crashed` or `hang`
// verdict with its repro command, and the run goes on." The test-only switch
// RINGSIDE_SCENARIO_FAULT=segv|abort|hang@GLOB (harness/runner.cpp) makes the
// middle of three rows crash or hang halfway through its timed region.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <string>
#include <vector>

#include "tests/robust/proc_util.hpp"

namespace ringside::test {
namespace {

// epoll x tcp.stream, tcp.rr, tcp.echo: the middle row is tcp.rr.
struct three_rows {
  scratch_dir dir{"crash"};
  std::string out = dir.path + "/r.json";
  std::string repros = dir.path + "/repros";
  std::string tmp = dir.sub("tmp");
  int code = -1;
  std::string err;
  nlohmann::json doc;

  three_rows(const std::string& fault, const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {ringside_bin(), "run",        "--backend",  "epoll",   "--scenario",
                                     "tcp.stream,tcp.rr,tcp.echo", "--duration", "0.3",     "--out",
                                     out,          "--repro-dir",  repros};
    argv.insert(argv.end(), extra.begin(), extra.end());
    const proc p = spawn_proc(argv, {"RINGSIDE_SCENARIO_FAULT=" + fault, "TMPDIR=" + tmp}, dir.path);
    code = wait_proc(p, 120);
    err = slurp_file(p.err_path);
    doc = read_json(out);
  }
};

void expect_middle_row(const three_rows& r, const std::string& verdict) {
  EXPECT_EQ(r.code, 1) << r.err;
  ASSERT_EQ(row_count(r.doc), 3u) << r.err;
  const auto& rows = r.doc["benchmarks"];
  EXPECT_EQ(rows[0].value("scenario", ""), "tcp.stream");
  EXPECT_EQ(rows[0].value("verdict", ""), "clean") << rows[0].dump();
  EXPECT_GT(rows[0].value("iterations", 0), 0);
  EXPECT_EQ(rows[2].value("scenario", ""), "tcp.echo");
  EXPECT_EQ(rows[2].value("verdict", ""), "clean") << rows[2].dump();
  EXPECT_GT(rows[2].value("iterations", 0), 0);

  const auto& mid = rows[1];
  EXPECT_EQ(mid.value("scenario", ""), "tcp.rr");
  EXPECT_EQ(mid.value("verdict", ""), verdict) << mid.dump();
  EXPECT_TRUE(mid.value("error_occurred", false));
  // The row carries the counters every row has (zero here) and its repro.
  EXPECT_TRUE(mid.contains("ops_per_second"));
  const std::string cmd = mid.value("repro_command", "");
  EXPECT_NE(cmd.find("repro --backend epoll --scenario tcp.rr --seed 1"), std::string::npos) << mid.dump();
  const std::string file = mid.value("repro_file", "");
  ASSERT_FALSE(file.empty()) << mid.dump();
  const nlohmann::json repro = read_json(file);
  EXPECT_EQ(repro.value("verdict", ""), verdict) << file;
  EXPECT_EQ(repro.value("scenario", ""), "tcp.rr");
  // The same on stderr, and nothing left in the rows' TMPDIR.
  EXPECT_NE(r.err.find("repro: " + cmd), std::string::npos) << r.err;
  EXPECT_TRUE(entries(r.tmp).empty());
}

TEST(crash_isolation, a_segfaulting_row_is_crashed_and_the_run_goes_on) {
  three_rows r("segv@tcp.rr", {});
  expect_middle_row(r, "crashed");
  EXPECT_NE(r.err.find("signal 11"), std::string::npos) << r.err;
}

TEST(crash_isolation, an_aborting_row_is_crashed_and_the_run_goes_on) {
  three_rows r("abort@tcp.rr", {"--isolate", "all"});
  expect_middle_row(r, "crashed");
  EXPECT_NE(r.err.find("signal 6"), std::string::npos) << r.err;
}

// The hang never returns (the runner's thread is stuck, deaf to the watchdog):
// the parent kills the row's process past --timeout + slack (10 s here).
TEST(crash_isolation, a_hanging_row_is_hang_and_the_run_goes_on) {
  three_rows r("hang@tcp.rr", {"--timeout", "1"});
  expect_middle_row(r, "hang");
}

// --isolate plugins: built-in rows run in this process, so a segfault ends
// the run; the rows before it are in the JSON (written after every row).
TEST(crash_isolation, without_isolation_a_segfault_ends_the_run_but_keeps_earlier_rows) {
  three_rows r("segv@tcp.rr", {"--isolate", "plugins"});
  EXPECT_EQ(r.code, 128 + SIGSEGV) << r.err;
  ASSERT_EQ(row_count(r.doc), 1u) << r.err;
  EXPECT_EQ(r.doc["benchmarks"][0].value("verdict", ""), "clean");
}

TEST(crash_isolation, the_fault_switch_rejects_a_malformed_value) {
  scratch_dir dir("crash");
  const proc p = spawn_proc({ringside_bin(), "run", "--backend", "epoll", "--scenario", "tcp.rr", "--duration", "0.1",
                             "--out", dir.path + "/r.json"},
                            {"RINGSIDE_SCENARIO_FAULT=explode"}, dir.path);
  EXPECT_EQ(wait_proc(p, 60), 2);
  const std::string err = slurp_file(p.err_path);
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_NE(err.find("RINGSIDE_SCENARIO_FAULT"), std::string::npos) << err;
}

}  // namespace
}  // namespace ringside::test
