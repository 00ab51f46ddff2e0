// Results in Google Benchmark's JSON schema, so compare.py and
// github-action-benchmark read them. Counter names are a public interface
// (DESIGN.md); scripts and CI read them.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/runner.hpp"

namespace ringside {

// The counters every row carries, in order.
extern const std::vector<std::string> k_counter_names;

struct run_context {
  uint64_t seed = 1;
  std::string executable;
  std::vector<std::string> argv;
  uring_features backend_options;  // --backend-opt as parsed (context.backend_options)
};

// context{}: date, host, cpus, kernel, library versions, build, sanitizer,
// git revision, seed.
nlohmann::json make_context(const run_context& rc);

// {kind, detector, op, range, detail}: op and range only when known.
nlohmann::json violation_json(const violation& v);

// One row per repetition; each row's counters as flat fields.
nlohmann::json result_row(const run_result& r, int family_index, int repetitions, int repetition_index);

// Groups rows (run_type "iteration") by run_name and appends mean, median,
// stddev and cv aggregates for groups with more than one repetition.
void append_aggregates(nlohmann::json& benchmarks);

// Writes atomically: a temp file in the same directory, fsync, rename.
// Throws std::system_error on failure.
void write_json_atomic(const std::string& path, const nlohmann::json& doc);

// The console table (stdout).
std::string format_table(const std::vector<run_result>& rows);

}  // namespace ringside
