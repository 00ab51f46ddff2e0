// Backend plugins end to end, on the real binary (`--plugin PATH`): the
// example plugin (examples/plugin) loads, lists, runs and is clean in
// `ringside check`; its deliberately broken build is caught by the black-box
// detectors; and every way a plugin can be wrong (missing, not an ELF, not a
// plugin, wrong interface version, wrong ABI, a clashing name) is ONE clear
// line naming the path and exit code 2, while a plugin that crashes becomes a
// `crashed` verdict and the rest of the run goes on.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "harness/ring.hpp"
#include "harness/violation.hpp"
#include "tests/safety/cli_util.hpp"

namespace ringside::test {
namespace {

#if defined(RINGSIDE_EXAMPLE_PLUGIN) && defined(RINGSIDE_TEST_PLUGIN_CRASH)
#define REQUIRE_PLUGINS() \
  do {                    \
  } while (0)
constexpr const char* k_example = RINGSIDE_EXAMPLE_PLUGIN;
constexpr const char* k_bad_version = RINGSIDE_TEST_PLUGIN_BAD_VERSION;
constexpr const char* k_bad_layout = RINGSIDE_TEST_PLUGIN_BAD_LAYOUT;
constexpr const char* k_crash = RINGSIDE_TEST_PLUGIN_CRASH;
constexpr const char* k_other_abi = RINGSIDE_TEST_PLUGIN_OTHER_ABI;
#else
#define REQUIRE_PLUGINS() GTEST_SKIP() << "plugins are not built (cmake/plugins.cmake)"
constexpr const char* k_example = "";
constexpr const char* k_bad_version = "";
constexpr const char* k_bad_layout = "";
constexpr const char* k_crash = "";
constexpr const char* k_other_abi = "";
#endif

#define REQUIRE_URING()                                                    \
  do {                                                                     \
    if (auto why_ = ::ringside::uring_unavailable_reason(); !why_.empty()) \
      GTEST_SKIP() << why_;                                                \
  } while (0)

// How the crashing plugin's segfault shows: in the release build the child
// dies of SIGSEGV (`crashed`); under ASan its SEGV handler reports it (`asan`,
// "SEGV on unknown address"); TSan's handler reports it and exits (`crashed`).
#if defined(RINGSIDE_ASAN)
constexpr const char* k_crash_kind = "asan";
constexpr const char* k_crash_detail = "SEGV on unknown address";
#elif defined(RINGSIDE_TSAN)
constexpr const char* k_crash_kind = "crashed";
constexpr const char* k_crash_detail = "SEGV on unknown address";
#else
constexpr const char* k_crash_kind = "crashed";
constexpr const char* k_crash_detail = "killed by signal 11";
#endif

std::string q(const std::string& s) { return "'" + s + "'"; }

size_t lines(const std::string& s) { return size_t(std::count(s.begin(), s.end(), '\n')); }

// A load failure: exit 2 and exactly one line, "ringside: plugin PATH: <reason...>".
void expect_refused(const cli_result& r, const std::string& path, const std::string& reason) {
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_EQ(lines(r.out), 1u) << "not one line:\n" << r.out;
  EXPECT_EQ(r.out.rfind("ringside: plugin " + path + ": " + reason, 0), 0u) << r.out;
}

// Description: `list backends --plugin` shows the plugin's backend after the
// built-ins, with its buffer contract, usable here.
TEST(plugin_cli, loads_and_lists_after_the_builtins) {
  REQUIRE_PLUGINS();
  const auto r = run_cli(bin() + " list backends --plugin " + q(k_example));
  ASSERT_EQ(r.code, 0) << r.out;
  const size_t builtin = r.out.find("uring-owned");
  const size_t plugin = r.out.find("example-uring");
  ASSERT_NE(plugin, std::string::npos) << r.out;
  EXPECT_LT(builtin, plugin) << r.out;
  EXPECT_NE(r.out.find("example-uring  owned"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[plugin ringside-example]"), std::string::npos) << r.out;
}

TEST(plugin_cli, not_found_is_one_line_and_exit_2) {
  const auto r = run_cli(bin() + " list backends --plugin /nonexistent/ringside-plugin.so");
  expect_refused(r, "/nonexistent/ringside-plugin.so", "not found");
}

TEST(plugin_cli, a_text_file_is_not_an_elf) {
  temp_dir_guard d;
  const std::string path = d.path + "/notes.so";
  std::ofstream(path) << "not a shared object\n";
  expect_refused(run_cli(bin() + " run --plugin " + q(path) + " --backend epoll"), path, "not an ELF file");
}

TEST(plugin_cli, a_shared_object_without_the_entry_symbol_is_not_a_plugin) {
  const std::string libc = "/lib/x86_64-linux-gnu/libc.so.6";
  if (::access(libc.c_str(), R_OK) != 0) GTEST_SKIP() << libc << " not here";
  expect_refused(run_cli(bin() + " list backends --plugin " + libc), libc,
                 "no entry symbol ringside_plugin_entry");
}

// Description: what dlopen refuses (here a program, not a library) is
// reported with dlerror's own words.
TEST(plugin_cli, a_program_fails_dlopen_with_its_reason) {
  const std::string ls = "/bin/ls";
  if (::access(ls.c_str(), R_OK) != 0) GTEST_SKIP() << ls << " not here";
  expect_refused(run_cli(bin() + " list backends --plugin " + ls), ls, "dlopen failed: ");
}

TEST(plugin_cli, a_wrong_interface_version_is_refused) {
  REQUIRE_PLUGINS();
  expect_refused(run_cli(bin() + " check --plugin " + q(k_bad_version) + " --backend epoll"), k_bad_version,
                 "wrong interface version 2 (this ringside speaks version 1)");
}

// Description: a plugin whose boundary types have other sizes (built against
// other headers) is refused, naming the sizes on both sides.
TEST(plugin_cli, a_wrong_layout_is_refused) {
  REQUIRE_PLUGINS();
  const auto r = run_cli(bin() + " repro --plugin " + q(k_bad_layout) + " --backend epoll --scenario tcp.stream");
  expect_refused(r, k_bad_layout, "wrong layout: plugin has op ");
}

// Description: a plugin built with another sanitizer flavour (ASan into a
// release ringside, or none into an ASan one) is refused before any of its
// code runs (ASan's runtime would otherwise abort the whole process).
TEST(plugin_cli, a_plugin_of_another_sanitizer_flavour_is_refused) {
  REQUIRE_PLUGINS();
  expect_refused(run_cli(bin() + " list backends --plugin " + q(k_other_abi)), k_other_abi, "wrong ABI");
}

TEST(plugin_cli, a_backend_name_already_taken_is_refused) {
  REQUIRE_PLUGINS();
  temp_dir_guard d;
  const std::string copy = d.path + "/copy.so";
  ASSERT_EQ(::system(("cp " + q(k_example) + " " + q(copy)).c_str()), 0);
  const auto r = run_cli(bin() + " list backends --plugin " + q(k_example) + " --plugin " + q(copy));
  expect_refused(r, copy, "duplicate backend name 'example-uring'");
}

// Description: `run --plugin` measures the plugin's backend like a built-in
// one (its rows run in a child process; the figures come back in the JSON).
TEST(plugin_cli, run_measures_the_example) {
  REQUIRE_PLUGINS();
  REQUIRE_URING();
  temp_dir_guard d;
  const auto r = run_cli("cd " + q(d.path) + " && " + bin() + " run --plugin " + q(k_example) +
                         " --backend example-uring --scenario tcp.stream,file.seq_read --duration 0.2 --out r.json");
  ASSERT_EQ(r.code, 0) << r.out;
  std::ifstream in(d.path + "/r.json");
  const auto doc = nlohmann::json::parse(in);
  int rows = 0;
  for (const auto& b : doc["benchmarks"]) {
    if (b.value("run_type", "") != "iteration") continue;
    ++rows;
    EXPECT_EQ(b.value("backend", ""), "example-uring");
    EXPECT_EQ(b.value("verdict", ""), "clean") << b.dump();
    EXPECT_GT(b.value("iterations", 0), 0) << b.dump();
    EXPECT_GT(b.value("bytes_per_second", 0.0), 0.0) << b.dump();
  }
  EXPECT_EQ(rows, 2) << doc.dump();
}

// Description: the example is clean on the whole safety catalogue (cells its
// caps rule out, send_zc and thread_exit, are unsupported).
TEST(plugin_cli, check_is_clean_on_the_example) {
  REQUIRE_PLUGINS();
  REQUIRE_URING();
  temp_dir_guard d;
  const auto r = run_cli("cd " + q(d.path) + " && " + bin() + " check --plugin " + q(k_example) +
                             " --backend example-uring --repro-dir repros",
                         580);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("cells as expected"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("FAILED"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("repro --backend example-uring"), std::string::npos) << "a violation:\n" << r.out;
}

// Description: the example's broken build (RINGSIDE_EXAMPLE_FAULT=
// release-on-cancel: the buffer goes back to the pool at cancel(), before the
// kernel's CQE) is caught by the black-box detectors — the canary sees the
// kernel's late write into the released buffer — and check fails; the repro
// file records the plugin, so `ringside repro FILE` reloads it and reproduces.
TEST(plugin_cli, the_broken_example_is_caught_and_reproduced_from_its_file) {
  REQUIRE_PLUGINS();
  REQUIRE_URING();
  temp_dir_guard d;
  const std::string env = "RINGSIDE_EXAMPLE_FAULT=release-on-cancel ";
  const auto r = run_cli("cd " + q(d.path) + " && " + env + bin() + " check --plugin " + q(k_example) +
                         " --backend example-uring --scenario cancel.submit_fail,cancel.free_after_cancel"
                         " --repro-dir repros");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("[canary] canary"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--plugin " + std::string(k_example)), std::string::npos) << r.out;
  const std::string file = d.path + "/repros/cancel.submit_fail--example-uring--seed-1.json";
  std::ifstream in(file);
  ASSERT_TRUE(in) << file;
  const auto doc = nlohmann::json::parse(in);
  ASSERT_TRUE(doc.contains("plugins")) << doc.dump();
  EXPECT_EQ(doc["plugins"][0], k_example);
  // No --plugin: the file says which to load.
  const auto rr = run_cli("cd " + q(d.path) + " && " + env + bin() + " repro " + q(file) + " --repro-dir again");
  EXPECT_EQ(rr.code, 1) << rr.out;
  EXPECT_NE(rr.out.find("reproduced"), std::string::npos) << rr.out;
  EXPECT_NE(rr.out.find("canary"), std::string::npos) << rr.out;
}

// Description: a plugin backend that segfaults costs only its own cells: check
// gives them the verdict `crashed` (k_crash_kind) with a repro command (which names the
// plugin), and the other backend's cells still run, clean.
TEST(plugin_cli, a_crashing_plugin_is_a_crashed_verdict_in_check) {
  REQUIRE_PLUGINS();
  temp_dir_guard d;
  const auto r = run_cli("cd " + q(d.path) + " && " + bin() + " check --plugin " + q(k_crash) +
                         " --backend tiny-crash,epoll --scenario cancel.recv_completed --repro-dir repros");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find(std::string("!! ") + k_crash_kind), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(k_crash_detail), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("repro --backend tiny-crash --scenario cancel.recv_completed --seed 1 --plugin " +
                       std::string(k_crash)),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("1 of 2 cells as expected"), std::string::npos) << "epoll's cell did not run clean:\n" << r.out;
}

// Description: in `run`, the crashing plugin's row becomes `crashed` (with its
// repro) and the run goes on to the next backend.
TEST(plugin_cli, a_crashing_plugin_is_a_crashed_row_in_run) {
  REQUIRE_PLUGINS();
  temp_dir_guard d;
  const auto r = run_cli("cd " + q(d.path) + " && " + bin() + " run --plugin " + q(k_crash) +
                         " --backend tiny-crash,epoll --scenario tcp.stream --duration 0.2 --out r.json"
                         " --repro-dir repros");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find(std::string("tcp.stream/backend:tiny-crash: [") + std::string(detector_of(k_crash_kind)) +
                       "] " + k_crash_kind),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find(k_crash_detail), std::string::npos) << r.out;
  std::ifstream in(d.path + "/r.json");
  const auto doc = nlohmann::json::parse(in);
  std::string crash_verdict, epoll_verdict;
  for (const auto& b : doc["benchmarks"]) {
    if (b.value("backend", "") == "tiny-crash") crash_verdict = b.value("verdict", "");
    if (b.value("backend", "") == "epoll") epoll_verdict = b.value("verdict", "");
  }
  EXPECT_EQ(crash_verdict, k_crash_kind) << doc.dump();
  EXPECT_EQ(epoll_verdict, "clean") << doc.dump();
}

}  // namespace
}  // namespace ringside::test
