// Shared by the safety tests that run cancel.* scenarios in-process: one
// readable line per violation for failure messages, and the one loop every
// "verdict is deterministic" table runs (lifecycle, newops, races,
// aba_submit_teardown).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <set>
#include <sstream>
#include <string>
#include <string_view>

#include "harness/backend.hpp"
#include "harness/runner.hpp"
#include "harness/scenario.hpp"
#include "harness/violation.hpp"

namespace ringside {

// "verdict" then "  [detector] kind [op] [range]: detail" per violation.
inline std::string describe(const run_result& r) {
  std::string s = r.verdict;
  for (const auto& v : r.violations)
    s += "\n  [" + std::string(detector_of(v.kind)) + "] " + v.kind + " [" + v.op + "] [" + v.range + "]: " + v.detail;
  return s;
}

// One backend x scenario cell of a verdict table.
struct verdict_cell {
  const char* scenario;
  const char* backend;
  // "clean", "unsupported" (any reason), or the violation kinds: in the
  // runner's order, or in any order with kinds_any_order.
  const char* verdict;
  int repetitions = 5;  // per seed
  bool kinds_any_order = false;
};

// 4 seeds x repetitions runs per cell: a flaky "clean" is a failure, and the
// negative control must give the same kinds every time.
inline constexpr uint64_t k_verdict_seeds[] = {1, 2, 3, 0x5eed};

inline std::set<std::string> kinds_of(const std::string& verdict) {
  std::set<std::string> out;
  std::stringstream in(verdict);
  for (std::string k; std::getline(in, k, ',');) out.insert(k);
  return out;
}

// Runs the cell as `ringside check` does (canary quarantine 64, exactly-once
// on; `timeout_s` 0 = the scenario's default watchdog) over every seed, each
// c.repetitions times, asserting its verdict every time. Skips a backend
// unavailable here and, in sanitizer builds, a caught cell (in-process its
// sanitizer report would end the test binary; `ringside check` runs those in
// a child and expects the report: tests/safety/expected.tsv). The slowest
// run's seconds go to *slowest_s when given.
inline void expect_verdict(const verdict_cell& c, double timeout_s = 0, double* slowest_s = nullptr) {
  register_builtin_backends();
  register_builtin_scenarios();
  const backend_info* b = find_backend(c.backend);
  if (b == nullptr) {
    ADD_FAILURE() << "no backend " << c.backend;
    return;
  }
  if (b->unavailable_reason) {
    if (auto why = b->unavailable_reason(); !why.empty()) GTEST_SKIP() << c.backend << " unavailable: " << why;
  }
  const std::string want = c.verdict;
#if RINGSIDE_ASAN || RINGSIDE_TSAN
  if (want != "clean" && want != "unsupported") GTEST_SKIP() << "caught cell: sanitizer build";
#endif
  const scenario_info* s = find_scenario(c.scenario);
  if (s == nullptr) {
    ADD_FAILURE() << "no scenario " << c.scenario;
    return;
  }
  run_options opts{.quarantine_depth = 64, .exactly_once = true};
  if (timeout_s > 0) opts.timeout_s = timeout_s;
  double slowest = 0;
  // Reported however the loop ends.
  struct report_slowest {
    double& s;
    double* out;
    ~report_slowest() {
      if (out != nullptr) *out = s;
    }
  } reporter{slowest, slowest_s};
  for (const uint64_t seed : k_verdict_seeds) {
    param_overrides o;
    o.seed = seed;
    const params p = resolve_params(*s, o);
    for (int rep = 0; rep < c.repetitions; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      const run_result r = run_scenario(*b, *s, p, opts);
      slowest = std::max(slowest, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      if (want == "unsupported") {
        EXPECT_EQ(r.verdict.rfind("unsupported: ", 0), 0u) << "seed " << seed << ": " << describe(r);
        return;  // the reason does not depend on the seed
      }
      const bool same = c.kinds_any_order ? kinds_of(r.verdict) == kinds_of(want) : r.verdict == want;
      if (!same) {
        ADD_FAILURE() << "expected " << want << "; seed " << seed << " repetition " << rep << ": " << describe(r);
        return;
      }
    }
  }
}

// "cancel_recv_completed_uring_raw": the parameterised test's name.
inline std::string verdict_cell_name(const testing::TestParamInfo<verdict_cell>& info) {
  std::string s = std::string(info.param.scenario) + "_" + info.param.backend;
  std::replace_if(s.begin(), s.end(), [](char ch) { return !std::isalnum(static_cast<unsigned char>(ch)); }, '_');
  return s;
}

}  // namespace ringside
