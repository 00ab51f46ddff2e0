// io_uring unavailable (issue 7, item 2): the real ringside binary run under
// no_uring (tests/robust/no_uring.cpp: a seccomp filter that makes
// io_uring_setup/enter/register fail), once with ENOSYS (a kernel without
// io_uring, gVisor) and once with EPERM (kernel.io_uring_disabled, Docker's
// default profile). The io_uring backends must be listed as unavailable with
// the reason, everything else must still run, and the exit codes must be the
// documented ones (README: 0 ok, 1 violations, 2 bad usage, 77 nothing could
// run here).
#include <gtest/gtest.h>

#include <fstream>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/backend.hpp"
#include "harness/fd_census.hpp"
#include "harness/ring.hpp"
#include "tests/safety/cli_util.hpp"

namespace ringside::test {
namespace {

std::string no_uring() { return RINGSIDE_NO_URING_BIN; }

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// A command's stdout and stderr apart (run_cli merges them).
struct split_result {
  int code = -1;
  std::string out, err;
};

split_result run_split(const std::string& cmd, const std::string& dir, int timeout_s = 120) {
  const std::string o = dir + "/stdout.txt", e = dir + "/stderr.txt";
  const cli_result r = run_cli(cmd + " >" + o + " 2>" + e, timeout_s);
  return {r.code, slurp(o), slurp(e)};
}

// The backends that need io_uring: the built-in ones known to, plus any
// registered backend whose instance holds an io_uring fd (so a new io_uring
// backend is covered without editing this list).
std::set<std::string> uring_backends() {
  std::set<std::string> names = {"asio-uring", "uring-raw", "uring-owned", "uring-bounce"};
  register_builtin_backends();
  if (!uring_unavailable_reason().empty()) return names;
  for (const auto& b : registered_backends()) {
    if (b.unavailable_reason && !b.unavailable_reason().empty()) continue;
    try {
      auto be = b.make({});
      for (const auto& [fd, target] : open_fds())
        if (target.find("io_uring") != std::string::npos) names.insert(b.name);
    } catch (const std::exception&) {
    }
  }
  return names;
}

// strerror text and name of the errno the filter returns.
struct errno_case {
  const char* name;
  const char* text;
};

// gtest's test listing names the parameter.
void PrintTo(const errno_case& c, std::ostream* os) { *os << c.name; }

class no_uring_cli : public ::testing::TestWithParam<errno_case> {
 protected:
  void SetUp() override {
    // The filter itself must work here (a sandbox may forbid seccomp: 77).
    const cli_result probe = run_cli(no_uring() + " " + GetParam().name + " true", 30);
    if (probe.code == 77) GTEST_SKIP() << probe.out;
    ASSERT_EQ(probe.code, 0) << probe.out;
  }
  std::string prefix() const { return no_uring() + " " + GetParam().name + " "; }
};

TEST_P(no_uring_cli, list_backends_shows_every_io_uring_backend_unavailable_with_the_reason) {
  const auto uring = uring_backends();
  temp_dir_guard dir;
  const split_result r = run_split(prefix() + bin() + " list backends", dir.path);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  register_builtin_backends();
  for (const auto& b : registered_backends()) {
    std::string line;
    for (const auto& l : lines_of(r.out))
      if (l.rfind(b.name + " ", 0) == 0) line = l;
    ASSERT_FALSE(line.empty()) << b.name << " missing from\n" << r.out;
    if (uring.count(b.name) != 0) {
      EXPECT_NE(line.find("unavailable: "), std::string::npos) << line;
      // The reason names the errno, not only "unavailable".
      EXPECT_NE(line.find(GetParam().text), std::string::npos) << line;
      if (b.name.rfind("uring-", 0) == 0) {
        EXPECT_NE(line.find(std::string("io_uring_setup: ") + GetParam().name), std::string::npos) << line;
      }
    } else {
      EXPECT_NE(line.find(" available"), std::string::npos) << line;
    }
  }
}

// The control: without the filter the same backends are available, so the
// test above sees the filter's effect, not a machine without io_uring.
TEST(no_uring_control, io_uring_backends_are_available_without_the_filter) {
  if (auto why = uring_unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
  const cli_result r = run_cli(bin() + " list backends", 60);
  ASSERT_EQ(r.code, 0) << r.out;
  for (const auto& name : uring_backends()) {
    for (const auto& l : lines_of(r.out)) {
      if (l.rfind(name + " ", 0) == 0) {
        EXPECT_EQ(l.find("unavailable"), std::string::npos) << l;
      }
    }
  }
}

TEST_P(no_uring_cli, run_of_every_backend_runs_the_others_and_marks_io_uring_rows) {
  const auto uring = uring_backends();
  temp_dir_guard dir;
  const std::string json = dir.path + "/r.json";
  // No --backend: every registered backend.
  const split_result r =
      run_split(prefix() + bin() + " run --scenario tcp.rr --duration 0.2 -o " + json, dir.path, 180);
  // Something ran and nothing failed: 0 (an unavailable backend is not a failure).
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  const auto doc = nlohmann::json::parse(slurp(json));
  register_builtin_backends();
  size_t rows = 0;
  for (const auto& row : doc.at("benchmarks")) {
    if (row.value("run_type", "") != "iteration") continue;
    ++rows;
    const std::string name = row.at("name");
    const std::string verdict = row.at("verdict");
    const bool is_uring = [&] {
      for (const auto& u : uring)
        if (name.find("/backend:" + u + "/") != std::string::npos) return true;
      return false;
    }();
    if (is_uring) {
      // Reported, not measured, never "clean" with zeros.
      EXPECT_EQ(verdict.rfind("unsupported: ", 0), 0u) << name << ": " << verdict;
      EXPECT_NE(verdict.find(GetParam().text), std::string::npos) << name << ": " << verdict;
      EXPECT_TRUE(row.value("error_occurred", false)) << name;
      EXPECT_EQ(row.value("iterations", uint64_t{0}), 0u) << name;
    } else {
      EXPECT_EQ(verdict, "clean") << name;
      EXPECT_GT(row.value("iterations", uint64_t{0}), 0u) << name;
    }
  }
  EXPECT_EQ(rows, registered_backends().size()) << doc.dump(1);
  // The table on stdout says it too.
  for (const auto& u : uring) EXPECT_NE(r.out.find("backend:" + u + "/"), std::string::npos) << r.out;
}

// `--backend all` (the brief's spelling of the default).
TEST_P(no_uring_cli, backend_all_is_every_backend) {
  temp_dir_guard dir;
  const split_result r = run_split(
      prefix() + bin() + " run --backend all --scenario tcp.rr --duration 0.1 -o " + dir.path + "/r.json", dir.path,
      180);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  register_builtin_backends();
  for (const auto& b : registered_backends())
    EXPECT_NE(r.out.find("backend:" + b.name + "/"), std::string::npos) << b.name << "\n" << r.out;
}

// Only io_uring backends asked for: nothing can run here. Exit 77 (README)
// and one line on stderr saying why; the JSON still has the row.
TEST_P(no_uring_cli, run_of_only_an_io_uring_backend_exits_77_with_one_line) {
  temp_dir_guard dir;
  const std::string json = dir.path + "/r.json";
  const split_result r = run_split(
      prefix() + bin() + " run --backend uring-owned --scenario tcp.rr --duration 0.2 -o " + json, dir.path);
  EXPECT_EQ(r.code, 77) << r.out << r.err;
  const auto err = lines_of(r.err);
  ASSERT_EQ(err.size(), 1u) << r.err;
  EXPECT_EQ(err[0].rfind("ringside: ", 0), 0u) << err[0];
  EXPECT_NE(err[0].find("uring-owned"), std::string::npos) << err[0];
  EXPECT_NE(err[0].find(std::string("io_uring_setup: ") + GetParam().name), std::string::npos) << err[0];
  const auto doc = nlohmann::json::parse(slurp(json));
  ASSERT_EQ(doc.at("benchmarks").size(), 1u);
  EXPECT_TRUE(doc["benchmarks"][0].value("error_occurred", false));
}

// `repro` of an io_uring backend: 77 (its --help footer says so).
TEST_P(no_uring_cli, repro_of_an_io_uring_backend_exits_77) {
  temp_dir_guard dir;
  const split_result r =
      run_split(prefix() + bin() + " repro --backend uring-raw --scenario cancel.recv_completed --repro-dir " +
                    dir.path + "/repros",
                dir.path);
  EXPECT_EQ(r.code, 77) << r.out << r.err;
  EXPECT_NE(r.out.find(GetParam().text), std::string::npos) << r.out;
}

// `check`: the io_uring cells are shown as unavailable, are not mismatches,
// and the summary counts them; the other cells decide the exit code.
TEST_P(no_uring_cli, check_marks_io_uring_cells_unavailable_without_failing) {
  temp_dir_guard dir;
  const split_result r =
      run_split(prefix() + bin() + " check --scenario cancel.recv_completed --backend epoll,uring-owned,uring-raw" +
                    " --jobs 2 --repro-dir " + dir.path + "/repros",
                dir.path, 240);
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(r.out.find("!!"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("unavailable"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2 unavailable here"), std::string::npos) << r.out;
}

// Nothing in the check could run: 77, as for run.
TEST_P(no_uring_cli, check_of_only_io_uring_backends_exits_77) {
  temp_dir_guard dir;
  const split_result r = run_split(prefix() + bin() +
                                       " check --scenario cancel.recv_completed --backend uring-owned,uring-raw" +
                                       " --jobs 2 --repro-dir " + dir.path + "/repros",
                                   dir.path, 240);
  EXPECT_EQ(r.code, 77) << r.out << r.err;
}

INSTANTIATE_TEST_SUITE_P(errnos, no_uring_cli,
                         ::testing::Values(errno_case{"ENOSYS", "Function not implemented"},
                                           errno_case{"EPERM", "Operation not permitted"}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace ringside::test
