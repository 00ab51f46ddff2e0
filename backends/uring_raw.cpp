// uring-raw: io_uring with the caller's buffer lent straight to the kernel and
// handed back whenever the caller asks. UNSOUND ON PURPOSE: it is the negative
// control the safety suite must always catch.
//
// Buffer contract (borrowed_unsound): the buffer is the caller's again as soon
// as cancel() returns (the -ECANCELED completion carries it, delivered from the
// loop before the kernel's CQE) or the op is dropped (released to the pool at
// once), while the kernel may still write into it. The cancelled op's real
// result is lost: data it received vanishes, and a connection it accepted is
// closed unserved (discard_result: lost to the caller, but not leaked).
// The same mistake in the newer ops: a linked timeout's -ETIME CQE ends the
// op -ECANCELED with its buffer (the op's own CQE, maybe a success, is yet to
// come: "frees on -ETIME"), and a zero-copy send completes at its first CQE
// with its buffer, while the kernel may read it until the notification.
#include <cerrno>
#include <memory>

#include "harness/backend.hpp"
#include "harness/ring.hpp"
#include "harness/uring_loop.hpp"

namespace ringside {

namespace {

class uring_raw final : public uring_loop {
 public:
  explicit uring_raw(const backend_options& o) : uring_loop(uring_loop_defaults(o)) {}
  ~uring_raw() override { teardown(); }

  [[nodiscard]] std::string_view name() const noexcept override { return "uring-raw"; }
  [[nodiscard]] const backend_caps& caps() const noexcept override {
    static const backend_caps c{
        .contract = buffer_contract::borrowed_unsound,
        .file_io = true,
        .async_file_io = true,
        .cancel_in_flight = true,
        // A regular-file read, once issued, runs to completion in the kernel.
        .cancel_file_io = false,
        .holds_buffer_until_completion = false,
        .zero_copy_send = true,
        // uring_loop's exiting-submitter ring (op.submitter_exits).
        .submitter_can_exit = true,
    };
    return c;
  }

  // The cancel is sent but not awaited: the op completes -ECANCELED now, with
  // its buffer, whatever the kernel does next.
  int cancel(op_id id) noexcept override {
    op_slot* s = pending(id);
    if (s == nullptr) return -ENOENT;
    request_cancel(*s);
    complete_early(*s, -ECANCELED);
    return 0;
  }

  // Handed out from inside the reap, so a caller that reuses or releases the
  // buffer at once does so before the op's own CQE is even looked at.
  void on_early_cqe(op_slot& s, early_cqe what, int32_t res) noexcept override {
    switch (what) {
      case early_cqe::link_timeout:
        if (res == -ETIME) complete_now(s, -ECANCELED);
        return;
      case early_cqe::zc_sent:
        complete_now(s, res);
        return;
    }
  }

  // The buffer goes back to the pool now, still lent to the kernel: the ledger
  // sees a release of a range in flight. No cancel is sent — a borrowed API
  // whose future is dropped simply forgets the op — so the kernel still
  // completes it later and writes into the released buffer (the damage the
  // canary quarantine sees). Teardown cancels whatever is left.
  void drop(op_id id) noexcept override {
    op_slot* s = attached(id);
    if (s == nullptr) return;
    detach(*s);
    s->buf.reset();
    for (auto& b : s->provided) b.reset();  // a multishot's ring buffers too
  }
};

}  // namespace

void register_uring_raw_backend() {
  register_backend({
      .name = "uring-raw",
      .description = "io_uring, caller's buffer straight into the SQE, returned on cancel/drop "
                     "(unsound on purpose: the negative control)",
      .unavailable_reason = [] { return uring_unavailable_reason(); },
      .make = [](const backend_options& o) -> std::unique_ptr<backend> { return std::make_unique<uring_raw>(o); },
  });
}

}  // namespace ringside
