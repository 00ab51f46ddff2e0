// `ringside check`: runs the safety suite (every selected backend x cancel.*
// scenario) and compares each verdict with the expected-verdict table
// (tests/safety/expected.tsv). Fails when reality differs in either
// direction: a correct backend flagged, or the negative control (uring-raw)
// no longer caught.
//
// Every cell runs in its own child process (`ringside repro ... --json-out`):
// a sanitizer report (ASan aborts the process; TSan taints it), a crash or a
// hang then costs that one cell, becomes its verdict ("asan", "tsan",
// "crashed", "hang") and the suite goes on. The child's command is the
// cell's repro command, so what check prints can be run again as is.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/backend.hpp"
#include "harness/repro.hpp"
#include "harness/scenario.hpp"

namespace ringside {

// One cell of the table: what a backend x scenario must produce in a build.
struct expectation {
  bool clean = false;
  bool unsupported = false;
  std::vector<std::string> required;  // every one of these kinds must appear
  std::vector<std::string> optional;  // these may appear ("?kind" in the file)
  std::string text;                   // as written, for messages
};

// Tab- or space-separated lines: `scenario backend release [asan [tsan]]`;
// '#' starts a comment. A build column that is absent or "=" means the same
// as release. Cells: `clean`, `unsupported`, or kinds separated by commas,
// "?kind" for one that may or may not appear. A backend with no line for a
// scenario is expected clean (new backends); a plugin's backend without a
// line, clean or unsupported (where its caps say it cannot run a scenario).
class expected_table {
 public:
  // Throws usage_error naming path:line for a malformed line.
  static expected_table load(const std::string& path);
  static expected_table parse(std::string_view text, const std::string& origin);

  // The expectation for this build ("release", "asan", "tsan"; other builds
  // use release's column), or nullptr when the table has no line.
  [[nodiscard]] const expectation* find(std::string_view scenario, std::string_view backend,
                                        std::string_view build) const;

 private:
  struct row {
    std::string scenario, backend;
    expectation release, asan, tsan;
  };
  std::vector<row> rows_;
};

// What one cell produced.
struct cell_outcome {
  std::string verdict;             // "clean", "unsupported: why", or the kinds
  std::vector<std::string> kinds;  // distinct violation kinds (incl. asan/tsan/crashed/hang)
  bool unsupported = false;
};

// True when the outcome is what the expectation says.
bool matches(const expectation& e, const cell_outcome& o);

struct check_options {
  std::vector<const backend_info*> backends;
  std::vector<const scenario_info*> scenarios;
  uint64_t seed = 1;
  std::string iterations;  // rounds per scenario as given (--ops of each cell); empty: each scenario's default
  std::string backend_opt;  // --backend-opt as given: passed to the cells of backends that honour it
  std::string timeout = "60";  // seconds per cell, as given
  std::string expected_path;
  std::string repro_dir = "ringside-repros";
  std::string out;  // results JSON of every cell (Google Benchmark schema); empty: none
  unsigned jobs = 1;
  std::string exe;  // this binary, for the children and the printed commands
  std::string exe_shown;  // how the printed commands name it (argv[0])
};

// Runs one cell in a child process (`exe repro ... --json-out`, the way
// run_check runs every cell), so a crash, a sanitizer abort or a hang of the
// backend costs the child, not the caller: `ringside run` runs the rows of
// plugin backends this way. The child is killed after kill_after_s. The
// child gets its own TMPDIR (and, with --dir D, its own subdirectory of D),
// removed once it is reaped, so not even a SIGKILLed child leaves files. On
// SIGINT/SIGTERM (interrupted()) the child gets SIGTERM, 5 s to wind down
// and write its partial row, then SIGKILL.
struct isolated_outcome {
  cell_outcome outcome;               // verdict and kinds (crashed, hang, asan... included)
  std::vector<violation> violations;
  nlohmann::json row;                 // the child's results row, or an error row when it wrote none
  bool wrote_result = false;          // row is the child's own (it finished and measured)
  std::string stderr_text;            // what the child printed on stderr
  int exit_code = -1;                 // the child's exit code; -1 when a signal ended it
  bool interrupted = false;           // we were interrupted: the child was told to stop
};
isolated_outcome run_isolated(const std::string& exe, const repro_spec& spec, double kill_after_s);
// The child's outcome as a run_result (for run's table): its figures from the
// row it wrote, or (crashed, hang) the verdict and violations alone.
run_result result_of(const isolated_outcome& iso, const backend_info& b, const scenario_info& s, const params& p);

// Runs the suite, prints the table and every mismatch / repro to stdout.
// Returns 0 (all as expected), 1 (some cell differs), or 128 + signal.
int run_check(const check_options& o);

}  // namespace ringside
