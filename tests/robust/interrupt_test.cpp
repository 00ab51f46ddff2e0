// Interrupts (issue 7, item 3): SIGINT or SIGTERM in the middle of `run` or
// `check` writes what was measured so far as valid JSON, removes temp files
// and directories, reaps every child, and exits 130 / 143.
//
// This test process is a child subreaper: a child ringside failed to reap
// (or a grandchild it left running) is re-parented to the test, where
// children_of(getpid()) finds it.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/robust/proc_util.hpp"

namespace ringside::test {
namespace {

struct interrupted_run {
  int code = -1;
  std::string err, out_text;
  nlohmann::json doc;
  size_t rows_before = 0;      // rows in the JSON when the signal was sent
  size_t children_before = 0;  // ringside's children then
  std::set<pid_t> left;        // processes left behind (ours, after ringside ended)
};

// Starts argv (TMPDIR set to an empty directory of ours), waits (bounded)
// until the --out JSON has a row and ringside has a child, sends sig, waits
// for it to end.
interrupted_run interrupt(std::vector<std::string> argv, const std::string& out, const std::string& tmp,
                          const std::string& dir, int sig, bool need_child) {
  interrupted_run r;
  EXPECT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  const proc p = spawn_proc(argv, {"TMPDIR=" + tmp}, dir);
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  bool ready = false;
  while (!ready && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    r.rows_before = row_count(read_json(out));
    r.children_before = children_of(p.pid).size();
    ready = r.rows_before >= 1 && (!need_child || r.children_before >= 1);
    int st = 0;
    if (::waitpid(p.pid, &st, WNOHANG) == p.pid) {
      ADD_FAILURE() << "ringside ended before it could be interrupted: " << slurp_file(p.err_path);
      return r;
    }
  }
  EXPECT_TRUE(ready) << "no row after 120 s: " << slurp_file(p.err_path);
  ::kill(p.pid, sig);
  r.code = wait_proc(p, 60);
  r.err = slurp_file(p.err_path);
  r.out_text = slurp_file(p.out_path);
  r.doc = read_json(out);
  // Reap what was re-parented to us; what is still alive is a leak.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  int st = 0;
  while (::waitpid(-1, &st, WNOHANG) > 0) {
  }
  r.left = children_of(::getpid());
  for (const pid_t pid : r.left) ::kill(pid, SIGKILL);
  while (::waitpid(-1, &st, WNOHANG) > 0) {
  }
  return r;
}

void expect_clean_end(const interrupted_run& r, int sig, const std::string& tmp, const std::string& dir) {
  EXPECT_EQ(r.code, 128 + sig) << r.err;
  ASSERT_TRUE(r.doc.is_object()) << "results JSON does not parse";
  EXPECT_GE(row_count(r.doc), r.rows_before) << r.doc.dump();
  for (const auto& row : r.doc["benchmarks"]) {
    const std::string v = row.value("verdict", "");
    // Cut short, never blamed on the backend.
    EXPECT_TRUE(v == "clean" || v.rfind("unsupported", 0) == 0 || v == "interrupted") << row.dump();
  }
  EXPECT_TRUE(entries(tmp).empty()) << "left in TMPDIR: " << (entries(tmp).empty() ? "" : entries(tmp)[0]);
  if (!dir.empty()) {
    EXPECT_TRUE(entries(dir).empty()) << "left in --dir: " << (entries(dir).empty() ? "" : entries(dir)[0]);
  }
  EXPECT_TRUE(r.left.empty()) << r.left.size() << " process(es) left running";
}

std::vector<std::string> run_argv(const scratch_dir& d, const std::string& out, const std::string& dir,
                                  const std::string& isolate) {
  // 3 backends x 2 scenarios, a file one with --dir under our directory.
  return {ringside_bin(), "run",   "--backend", "epoll,blocking,uring-owned", "--scenario", "tcp.echo,file.seq_write",
          "--duration",   "1.5",   "--size",    "8m",    "--dir",    dir,       "--out",      out,
          "--repro-dir",  d.path + "/repros", "--isolate", isolate};
}

void interrupt_run(int sig, const std::string& isolate) {
  scratch_dir d("intr");
  const std::string out = d.path + "/r.json", tmp = d.sub("tmp"), dir = d.sub("files");
  const bool children = isolate == "all";
  const interrupted_run r = interrupt(run_argv(d, out, dir, isolate), out, tmp, d.path, sig, children);
  if (children) {
    EXPECT_GE(r.children_before, 1u);
  }
  expect_clean_end(r, sig, tmp, dir);
  EXPECT_NE(r.err.find("interrupted by signal " + std::to_string(sig)), std::string::npos) << r.err;
  EXPECT_NE(r.out_text.find("results: " + out), std::string::npos) << r.out_text;
  // The row being measured when the signal came is kept, marked partial (a
  // signal between two rows leaves none to mark); nothing runs after it.
  const auto& rows = r.doc["benchmarks"];
  for (size_t i = 0; i + 1 < rows.size(); ++i) EXPECT_FALSE(rows[i].value("interrupted", false)) << rows[i].dump();
}

TEST(interrupt, sigint_mid_run_keeps_rows_cleans_up_and_exits_130) { interrupt_run(SIGINT, "all"); }
TEST(interrupt, sigterm_mid_run_keeps_rows_cleans_up_and_exits_143) { interrupt_run(SIGTERM, "all"); }
TEST(interrupt, sigint_mid_run_in_process_keeps_rows_cleans_up_and_exits_130) { interrupt_run(SIGINT, "none"); }

void interrupt_check(int sig) {
  scratch_dir d("intr");
  const std::string out = d.path + "/r.json", tmp = d.sub("tmp");
  const std::vector<std::string> argv = {ringside_bin(), "check",       "--backend", "epoll,blocking,uring-owned",
                                         "--scenario",   "cancel.*",    "--jobs",    "2",
                                         "--out",        out,           "--repro-dir", d.path + "/repros"};
  const interrupted_run r = interrupt(argv, out, tmp, d.path, sig, true);
  EXPECT_GE(r.children_before, 1u);
  expect_clean_end(r, sig, tmp, {});
  EXPECT_NE(r.out_text.find("interrupted"), std::string::npos) << r.out_text;
}

TEST(interrupt, sigint_mid_check_keeps_cells_reaps_children_and_exits_130) { interrupt_check(SIGINT); }
TEST(interrupt, sigterm_mid_check_keeps_cells_reaps_children_and_exits_143) { interrupt_check(SIGTERM); }

}  // namespace
}  // namespace ringside::test
