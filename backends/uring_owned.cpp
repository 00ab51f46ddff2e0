// uring-owned: io_uring with owned buffers (the tokio-uring / compio model).
//
// Buffer contract (owned): the buffer moves into an immovable op slot and
// comes back ONLY with the op's final CQE. cancel() asks the kernel
// (IORING_OP_ASYNC_CANCEL) and the op still ends with its own CQE: -ECANCELED,
// or its real result if it won the race (the cancel's CQE then says -ENOENT or
// -EALREADY, and is ignored) — success is never turned into "cancelled". A
// dropped op stays in a graveyard, buffer and all, until its final CQE; then
// the buffer returns to the pool (and an accepted fd is closed).
//
// TEST-ONLY: RINGSIDE_FAULT (a comma list, see uring_fault in
// harness/uring_loop.hpp) breaks this contract in chosen ways, so the safety
// suite can prove each detector catches its bug. Unknown names fail
// construction with std::invalid_argument.
#include <cerrno>
#include <memory>

#include "harness/backend.hpp"
#include "harness/ring.hpp"
#include "harness/uring_loop.hpp"

namespace ringside {

namespace {

class uring_owned final : public uring_loop {
 public:
  explicit uring_owned(const backend_options& o) : uring_loop(options_for(o)) {}
  ~uring_owned() override { teardown(); }

  [[nodiscard]] std::string_view name() const noexcept override { return "uring-owned"; }
  [[nodiscard]] const backend_caps& caps() const noexcept override {
    static const backend_caps c{
        .contract = buffer_contract::owned,
        .file_io = true,
        .async_file_io = true,
        .cancel_in_flight = true,
        // A regular-file read, once issued, runs to completion in the kernel.
        .cancel_file_io = false,
        .holds_buffer_until_completion = true,
        .zero_copy_send = true,
        // uring_loop's exiting-submitter ring (op.submitter_exits).
        .submitter_can_exit = true,
    };
    return c;
  }

  // Reads the test-only fault switches (throws std::invalid_argument for an
  // unknown one).
  static uring_loop_options options_for(const backend_options& o) {
    uring_loop_options u = uring_loop_defaults(o);
    u.faults = uring_faults_from_env();
    return u;
  }

  int cancel(op_id id) noexcept override {
    op_slot* s = pending(id);
    if (s == nullptr) return -ENOENT;
    request_cancel(*s);
    return 0;
  }

  // Never awaited again: cancel it so the graveyard empties soon.
  void drop(op_id id) noexcept override {
    op_slot* s = attached(id);
    if (s == nullptr) return;
    detach(*s);
    request_cancel(*s);
  }
};

}  // namespace

void register_uring_owned_backend() {
  register_backend({
      .name = "uring-owned",
      .description = "io_uring, buffer owned by the op until its final CQE; dropped ops wait in a graveyard",
      .unavailable_reason = [] { return uring_unavailable_reason(); },
      .make = [](const backend_options& o) -> std::unique_ptr<backend> { return std::make_unique<uring_owned>(o); },
  });
}

}  // namespace ringside
