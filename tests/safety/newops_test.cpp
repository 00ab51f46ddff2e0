// Checks: the cancel.* scenarios of the newer ops — #6 cancel.linked_timeout
// (a recv's deadline as a linked timeout), #7 cancel.multishot_recv (a
// provided-buffer ring, cancelled) and #8 cancel.send_zc (zero-copy sends,
// buffer reused for the next chunk) — give the verdict they promise on
// every backend, every time: blocking, epoll and uring-owned clean, uring-raw
// (the negative control: it ends the op at the timeout's -ETIME CQE, and at
// the zero-copy send's first CQE, and hands a multishot's ring buffers back
// at its cancel) caught with the same kinds on every seed.
//
// Each cell runs like `ringside check` does: canary quarantine (depth 64)
// and the exactly-once decorator on, through run_scenario. 4 seeds x 5
// repetitions: a flaky verdict is a failure.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>
#include <vector>

#include "tests/safety/verdict_util.hpp"
#include "harness/backend.hpp"
#include "harness/runner.hpp"
#include "harness/scenario.hpp"

namespace ringside {
namespace {

const verdict_cell k_cells[] = {
    {"cancel.linked_timeout", "blocking", "clean"},
    {"cancel.linked_timeout", "epoll", "clean"},
    {"cancel.linked_timeout", "uring-owned", "clean"},
    // The buffer goes back to the pool at the timeout's CQE, before the
    // recv's own CQE is reaped.
    {"cancel.linked_timeout", "uring-raw", "ledger"},
    {"cancel.send_zc", "blocking", "clean"},
    {"cancel.send_zc", "epoll", "clean"},
    {"cancel.send_zc", "uring-owned", "clean"},
    // The buffer is refilled and lent again before the notification (ledger);
    // the cancelled rounds' -ECANCELED makes the sender send bytes the kernel
    // had sent already, so the peer sees them twice (stream_integrity).
    {"cancel.send_zc", "uring-raw", "stream_integrity,ledger"},
    {"cancel.multishot_recv", "blocking", "clean"},
    {"cancel.multishot_recv", "epoll", "clean"},
    {"cancel.multishot_recv", "uring-owned", "clean"},
    // The group's buffers come back while the kernel's ring holds them
    // (ledger); the still-armed op takes the next round's bytes into one of
    // them and nobody gets them (ring_buffer_leak, stream_integrity).
    {"cancel.multishot_recv", "uring-raw", "ring_buffer_leak,stream_integrity,ledger"},
};

class newops : public testing::TestWithParam<verdict_cell> {};

TEST_P(newops, verdict_is_deterministic) {
  expect_verdict(GetParam());
}

INSTANTIATE_TEST_SUITE_P(cancel, newops, testing::ValuesIn(k_cells), verdict_cell_name);

}  // namespace
}  // namespace ringside
