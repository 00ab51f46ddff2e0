// Runs one scenario on one backend with one parameter set, measured, and
// returns what it measured. The CLI, the tests and the smoke suite all use it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "harness/histogram.hpp"
#include "harness/meters.hpp"
#include "harness/scenario.hpp"
#include "harness/violation.hpp"

namespace ringside {

struct run_result {
  std::string name;       // "tcp.echo/backend:epoll/msg:1024/conns:64"
  std::string backend;
  std::string scenario;
  params prm;
  // "clean", "unsupported: <why>", "hang", "error: <what>", or the
  // comma-separated violation kinds.
  std::string verdict;
  std::vector<violation> violations;
  bool measured = false;  // false for unsupported/error rows
  bool interrupted = false;  // SIGINT/SIGTERM cut the run short: partial figures

  uint64_t ops = 0;
  uint64_t bytes = 0;
  double wall_s = 0;
  histogram latency;
  meters::snapshot meter;  // deltas over the timed region
  cpu_usage cpu;           // deltas over the timed region
};

struct run_options {
  // Watchdog: a duration-budgeted run may last duration * factor + slack; an
  // op-budgeted one ops_budget_s. timeout_s, when set, replaces both.
  double watchdog_factor = 3.0;
  double watchdog_slack_s = 10.0;
  double ops_budget_s = 120.0;
  double timeout_s = 0;
  // Canary quarantine depth for the run's pool (0: off; throughput runs leave
  // it off, safety runs turn it on).
  size_t quarantine_depth = 0;
  // Quarantined buffers are also PROT_NONE (needs quarantine_depth > 0).
  bool guard_pages = false;
  // Wrap the backend in the exactly-once detector (harness/exactly_once.hpp).
  bool exactly_once = false;
};

// Ring and loop sizing for a scenario's parameters: room for every stream's
// op in flight (qd for files, both ends of every connection for TCP).
backend_options backend_options_for(const params& p);

// The watchdog's allowance for one run, in seconds.
double watchdog_seconds(const params& p, const run_options& opt);

// TEST-ONLY fault switch: RINGSIDE_SCENARIO_FAULT=segv|abort|hang[@GLOB]
// makes every scenario run (or those whose name matches the fnmatch GLOB)
// crash with SIGSEGV, abort, or hang for good (the runner's thread stuck,
// deaf to the watchdog and to SIGINT/SIGTERM) in the middle of its timed
// region, so tests can prove a crash or a hang costs one row. Real runs never
// set it. Returns a one-line description when it is set, empty when not;
// throws usage_error for a malformed value.
std::string scenario_fault_setting();

// Never throws for problems of the run itself (they become the verdict);
// throws usage_error for bad user input (e.g. --dir that does not exist).
run_result run_scenario(const backend_info& b, const scenario_info& s, const params& p,
                        const run_options& opt = {});

}  // namespace ringside
