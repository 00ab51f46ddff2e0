// cancel.thread_exit (#18): the thread that submitted an op exits while the
// op is pending.
//
// Checks (the rule): the kernel ends such an op itself. On Linux 6.x an op
// of an exited submitter that is waiting for readiness (a recv armed on an
// empty socket) completes -ECANCELED at its next wakeup — its completion
// work cannot run in a task that is gone (io_uring's io_should_terminate_tw)
// — and the bytes that woke it stay in the socket; io-wq work of the
// exiting task is cancelled at its exit (io_uring_cancel_generic). Nobody
// called cancel(), so the -ECANCELED is "unexpected": a correct backend
// delivers it like any cancel, once, with the buffer, which it frees only at
// that CQE (until then the kernel still holds it), and the bytes are read
// by a later recv. tests/safety/lifecycle_test.cpp shows the kernel doing
// exactly this on a plain ring.
//
// Through the backend interface this cannot happen on any backend ringside
// has, so the scenario reports `unsupported`, with the reason, everywhere:
// - thread per stream (blocking): an op runs inside its stream thread's
//   syscall; a thread cannot exit while one of its ops is pending.
// - readiness loop (epoll): between syscalls the kernel holds no op at all,
//   and the loop thread outlives the run.
// - io_uring loops (uring-owned, uring-raw): the ring is SINGLE_ISSUER |
//   DEFER_TASKRUN, so only the loop thread may submit (another thread's
//   io_uring_enter fails -EEXIST), and it outlives every op.
// Making it happen needs an additive backend hook (proposed to the lead with
// this scenario): a capability plus an op flag asking the backend to
// issue that op from a short-lived thread that exits while it is pending —
// for io_uring, a ring without SINGLE_ISSUER/DEFER_TASKRUN, the loop thread
// blocked while the helper thread fills the SQ and enters.
#include <memory>
#include <string>

#include "harness/backend.hpp"
#include "harness/scenario.hpp"
#include "scenarios/cancel_common.hpp"

namespace ringside {

namespace {

class thread_exit final : public scenario {
 public:
  explicit thread_exit(const params& p) { scen::check_bs(p); }

  [[nodiscard]] std::string unsupported_reason(const backend_caps& caps) const override {
    if (caps.thread_per_stream)
      return "thread per stream: an op runs inside its stream thread's syscall, so no thread can exit while one "
             "of its ops is pending";
    if (caps.contract == buffer_contract::borrowed_in_syscall)
      return "readiness loop: the kernel holds no op between syscalls and the loop thread outlives the run, so "
             "no pending op can lose its submitter";
    return "completion loop: only the loop thread submits (io_uring: SINGLE_ISSUER|DEFER_TASKRUN ring) and it "
           "outlives every op; the kernel's thread-exit cancel needs a backend hook that submits from a "
           "short-lived thread, which the backend interface does not have yet";
  }
  [[nodiscard]] size_t buffers_needed() const override { return 1; }
  void prepare(backend& be) override { (void)be; }
  // Never reached: every backend is unsupported (see unsupported_reason).
  void start(backend& be, buffer_pool& pool, run_ctx& ctx) override {
    (void)be;
    (void)pool;
    ctx.report("error", "cancel.thread_exit: no backend can run this scenario yet");
  }
};

}  // namespace

void register_cancel_thread_scenarios() {
  register_scenario({
      .name = "cancel.thread_exit",
      .checks = "#18 submitting thread exits with ops pending: the kernel's -ECANCELED is treated as a cancel and "
                "the buffer freed only at that CQE (unsupported: no backend can lose a submitter yet)",
      .defaults = scen::cancel_defaults(64, 4096),
      .uses = scen::cancel_uses(),
      .make = [](const params& p) -> std::unique_ptr<scenario> { return std::make_unique<thread_exit>(p); },
  });
}

}  // namespace ringside
