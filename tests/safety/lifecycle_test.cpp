// Checks: the lifecycle cancel.* scenarios (#1 accept_timer, #10
// close_pending, #11 fd_reuse, #14 frame_drop, #18 thread_exit) give the
// verdict they promise on every backend, every time: blocking, epoll and
// uring-owned clean (or unsupported, with the reason, where the scenario
// cannot happen), uring-raw — the negative control — caught with the same
// violation kinds on every seed where its contract is unsound.
//
// Each cell runs like `ringside check` does: canary quarantine (depth 64)
// and the exactly-once decorator on, through run_scenario. Correct backends
// run several seeds, several times each: a flaky "clean" is a failure.
#include <liburing.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <string>
#include <thread>
#include <vector>

#include "tests/safety/verdict_util.hpp"
#include "harness/backend.hpp"
#include "harness/ring.hpp"
#include "harness/runner.hpp"
#include "harness/scenario.hpp"
#include "harness/unique_fd.hpp"

namespace ringside {
namespace {

// As `ringside check` runs a cell, with a 20 s watchdog: a whole scenario
// takes well under one, so a hang fails the test fast instead of after the
// default budget.
constexpr double k_timeout_s = 20;

const verdict_cell k_cells[] = {
    {"cancel.accept_timer", "blocking", "clean"},
    {"cancel.accept_timer", "epoll", "clean"},
    {"cancel.accept_timer", "uring-owned", "clean"},
    {"cancel.accept_timer", "uring-raw", "connection_leak"},
    {"cancel.close_pending", "blocking", "clean"},
    {"cancel.close_pending", "epoll", "clean"},
    {"cancel.close_pending", "uring-owned", "clean"},
    {"cancel.close_pending", "uring-raw", "stream_integrity,ledger"},
    {"cancel.fd_reuse", "blocking", "clean"},
    {"cancel.fd_reuse", "epoll", "clean"},
    {"cancel.fd_reuse", "uring-owned", "clean"},
    {"cancel.fd_reuse", "uring-raw", "ledger"},
    {"cancel.thread_exit", "blocking", "unsupported"},
    {"cancel.thread_exit", "epoll", "unsupported"},
    {"cancel.thread_exit", "uring-owned", "clean"},
    {"cancel.thread_exit", "uring-raw", "ledger"},
    {"cancel.frame_drop", "blocking", "unsupported"},
    {"cancel.frame_drop", "epoll", "clean"},
    {"cancel.frame_drop", "uring-owned", "clean"},
    {"cancel.frame_drop", "uring-raw", "ledger,canary"},
};

class lifecycle : public testing::TestWithParam<verdict_cell> {};

TEST_P(lifecycle, verdict_is_deterministic) {
  expect_verdict(GetParam(), k_timeout_s);
}

INSTANTIATE_TEST_SUITE_P(cancel, lifecycle, testing::ValuesIn(k_cells), verdict_cell_name);

// ---- what cancel.thread_exit needs from the kernel ----
// Description: an op whose submitting thread has exited is ended by the
// kernel itself: a recv armed on an empty socket by a thread that then
// exits stays pending (no completion, the kernel still holds the buffer)
// until data wakes it, and then completes -ECANCELED — nobody called cancel
// — leaving the bytes in the socket. This is the "unexpected -ECANCELED" a
// backend must treat as a cancel, freeing the buffer only at that CQE. A
// plain ring (no SINGLE_ISSUER, which would refuse the second thread's
// submit): what uring_loop's exiting-submitter ring does for op.submitter_exits
// (harness/uring_loop.hpp), which scenarios/cancel_thread.cpp relies on.
TEST(kernel_thread_exit, pending_recv_of_an_exited_submitter_completes_ecanceled) {
  if (auto why = uring_unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
  io_uring ring;
  ASSERT_EQ(io_uring_queue_init(8, &ring, 0), 0);
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  unique_fd a(sv[0]), b(sv[1]);
  // The kernel writes into this until the recv's CQE: it outlives the ring.
  static std::byte buf[64];
  int submitted = 0;
  std::thread submitter([&] {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    io_uring_prep_recv(sqe, a.get(), buf, sizeof buf, 0);
    sqe->user_data = 1;
    submitted = io_uring_submit(&ring);
  });
  submitter.join();  // the submitter is gone; its recv is armed
  ASSERT_EQ(submitted, 1);

  io_uring_cqe* cqe = nullptr;
  // 100 ms: nothing may complete it before its wakeup (the thread's exit
  // does not cancel a readiness wait: the buffer is still the kernel's).
  __kernel_timespec short_wait{0, 100'000'000};
  EXPECT_EQ(io_uring_wait_cqe_timeout(&ring, &cqe, &short_wait), -ETIME);

  const char hello[5] = {'h', 'e', 'l', 'l', 'o'};
  ASSERT_EQ(::send(b.get(), hello, sizeof hello, 0), 5);
  // 2 s: the completion follows the wakeup at once (kernel fallback work).
  __kernel_timespec long_wait{2, 0};
  ASSERT_EQ(io_uring_wait_cqe_timeout(&ring, &cqe, &long_wait), 0);
  EXPECT_EQ(cqe->user_data, 1u);
  EXPECT_EQ(cqe->res, -ECANCELED) << "the kernel did not end the op of an exited submitter";
  io_uring_cqe_seen(&ring, cqe);
  // The bytes that woke it were not consumed.
  char got[8];
  EXPECT_EQ(::recv(a.get(), got, sizeof got, MSG_DONTWAIT), 5);
  io_uring_queue_exit(&ring);
}

}  // namespace
}  // namespace ringside
