// Checks: cancel.aba (#9), cancel.submit_fail (#12) and cancel.teardown (#13)
// give the verdict they promise on every backend, every time: blocking,
// epoll and uring-owned clean; uring-raw — the negative control — caught
// with the same violation kinds on every seed where its contract is unsound
// (submit_fail, teardown), and clean on cancel.aba, where nothing in flight
// is cancelled or dropped (only stale ids are), so its unsound buffer
// contract never comes into play.
//
// Each cell runs like `ringside check` does: canary quarantine (depth 64)
// and the exactly-once decorator on, through run_scenario. 4 seeds x 5
// repetitions: a flaky "clean" is a failure.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

#include "tests/safety/verdict_util.hpp"
#include "harness/backend.hpp"
#include "harness/runner.hpp"
#include "harness/scenario.hpp"

namespace ringside {
namespace {

const verdict_cell k_cells[] = {
    {"cancel.aba", "blocking", "clean"},
    {"cancel.aba", "epoll", "clean"},
    {"cancel.aba", "uring-owned", "clean"},
    {"cancel.aba", "uring-raw", "clean"},
    {"cancel.submit_fail", "blocking", "clean"},
    {"cancel.submit_fail", "epoll", "clean"},
    {"cancel.submit_fail", "uring-owned", "clean"},
    {"cancel.submit_fail", "uring-raw", "stream_integrity,ledger"},
    {"cancel.teardown", "blocking", "clean"},
    {"cancel.teardown", "epoll", "clean"},
    {"cancel.teardown", "uring-owned", "clean"},
    {"cancel.teardown", "uring-raw", "ledger,canary"},
};

class faults_scenarios : public testing::TestWithParam<verdict_cell> {};

TEST_P(faults_scenarios, verdict_is_deterministic) {
  expect_verdict(GetParam());
}

INSTANTIATE_TEST_SUITE_P(cancel, faults_scenarios, testing::ValuesIn(k_cells), verdict_cell_name);

}  // namespace
}  // namespace ringside
