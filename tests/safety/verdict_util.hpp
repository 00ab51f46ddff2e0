// Shared by the safety tests that run scenarios in-process: one readable
// line per violation for failure messages.
#pragma once

#include <string>

#include "harness/runner.hpp"
#include "harness/violation.hpp"

namespace ringside {

// "verdict" then "  [detector] kind [op] [range]: detail" per violation.
inline std::string describe(const run_result& r) {
  std::string s = r.verdict;
  for (const auto& v : r.violations)
    s += "\n  [" + std::string(detector_of(v.kind)) + "] " + v.kind + " [" + v.op + "] [" + v.range + "]: " + v.detail;
  return s;
}

}  // namespace ringside
