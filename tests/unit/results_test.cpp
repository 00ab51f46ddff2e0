// Checks: results rows follow Google Benchmark's JSON schema with every
// counter DESIGN.md names, aggregates are computed right, and files are
// written atomically.
#include "harness/results.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace ringside {
namespace {

run_result fake(double wall_s, uint64_t ops) {
  run_result r;
  r.name = "tcp.echo/backend:epoll/msg:1024/conns:4";
  r.backend = "epoll";
  r.scenario = "tcp.echo";
  r.verdict = "clean";
  r.measured = true;
  r.ops = ops;
  r.bytes = ops * 1024;
  r.wall_s = wall_s;
  for (uint64_t i = 1; i <= 100; ++i) r.latency.record(i * 1000);
  r.meter.syscalls = ops * 2;
  r.meter.allocs = ops / 10;
  r.meter.kernel_copy_bytes = ops * 2048;
  return r;
}

TEST(results, every_row_has_every_counter_and_gbench_fields) {
  auto j = result_row(fake(1.0, 1000), 3, 1, 0);
  for (const char* f : {"name", "run_name", "run_type", "repetitions", "repetition_index", "threads", "iterations",
                        "real_time", "cpu_time", "time_unit", "family_index", "per_family_instance_index",
                        "backend", "scenario", "verdict"})
    EXPECT_TRUE(j.contains(f)) << f;
  for (const auto& c : k_counter_names) EXPECT_TRUE(j.contains(c)) << c;
  EXPECT_EQ(j["iterations"], 1000);
  EXPECT_DOUBLE_EQ(j["real_time"].get<double>(), 1e6);  // 1 s / 1000 ops in ns
  EXPECT_DOUBLE_EQ(j["ops_per_second"].get<double>(), 1000.0);
  EXPECT_DOUBLE_EQ(j["syscalls_per_op"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(j["kernel_copies_per_byte"].get<double>(), 2.0);
  EXPECT_NEAR(j["p50_ns"].get<double>(), 50000, 500);
  EXPECT_EQ(j["max_ns"], 100000);
  EXPECT_FALSE(j.contains("error_occurred"));
}

TEST(results, unsupported_rows_still_carry_every_counter) {
  run_result r;
  r.name = "file.seq_read/backend:x";
  r.verdict = "unsupported: no file I/O";
  auto j = result_row(r, 0, 1, 0);
  for (const auto& c : k_counter_names) EXPECT_TRUE(j.contains(c)) << c;
  EXPECT_TRUE(j["error_occurred"].get<bool>());
  EXPECT_EQ(j["verdict"], "unsupported: no file I/O");
}

TEST(results, aggregates_mean_median_stddev_cv) {
  nlohmann::json b = nlohmann::json::array();
  b.push_back(result_row(fake(1.0, 1000), 0, 3, 0));
  b.push_back(result_row(fake(1.0, 2000), 0, 3, 1));
  b.push_back(result_row(fake(1.0, 6000), 0, 3, 2));
  append_aggregates(b);
  ASSERT_EQ(b.size(), 7u);
  auto find = [&](const std::string& agg) {
    for (auto& x : b)
      if (x.value("aggregate_name", "") == agg) return x;
    return nlohmann::json{};
  };
  EXPECT_DOUBLE_EQ(find("mean")["ops_per_second"].get<double>(), 3000.0);
  EXPECT_DOUBLE_EQ(find("median")["ops_per_second"].get<double>(), 2000.0);
  EXPECT_NEAR(find("stddev")["ops_per_second"].get<double>(), 2645.75, 0.01);
  EXPECT_NEAR(find("cv")["ops_per_second"].get<double>(), 2645.75 / 3000.0, 1e-4);
  EXPECT_EQ(find("cv")["aggregate_unit"], "percentage");
  EXPECT_EQ(find("mean")["run_type"], "aggregate");
  EXPECT_EQ(find("mean")["name"], "tcp.echo/backend:epoll/msg:1024/conns:4_mean");
}

TEST(results, single_repetition_gets_no_aggregates) {
  nlohmann::json b = nlohmann::json::array();
  b.push_back(result_row(fake(1.0, 1000), 0, 1, 0));
  append_aggregates(b);
  EXPECT_EQ(b.size(), 1u);
}

TEST(results, atomic_write_replaces_and_leaves_no_temp_files) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("ringside-results-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const auto path = (dir / "r.json").string();
  write_json_atomic(path, {{"a", 1}});
  write_json_atomic(path, {{"a", 2}});
  std::ifstream in(path);
  auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["a"], 2);
  size_t files = 0;
  for (auto& e : fs::directory_iterator(dir)) { (void)e; ++files; }
  EXPECT_EQ(files, 1u);
  EXPECT_THROW(write_json_atomic((dir / "no/such/dir/r.json").string(), {}), std::system_error);
  fs::remove_all(dir);
}

TEST(results, context_names_the_machine_and_build) {
  run_context rc;
  rc.seed = 7;
  auto c = make_context(rc);
  for (const char* f : {"date", "host_name", "num_cpus", "kernel", "liburing_version", "boost_version", "build_type",
                        "sanitizer", "git_revision", "seed"})
    EXPECT_TRUE(c.contains(f)) << f;
  EXPECT_EQ(c["seed"], 7);
}

}  // namespace
}  // namespace ringside
