// The io_uring ring both io_uring backends share: liburing 2.3's io_uring plus
// exact syscall counting and the buffer ledger.
//
// Counting: every liburing call that enters the kernel is counted with
// meters::count_syscall() at its call site. In liburing 2.3 without SQPOLL,
// io_uring_submit always enters (with SQPOLL: only when the SQ thread needs a
// wakeup, which is what is counted), io_uring_submit_and_get_events always enters
// exactly once, and io_uring_submit_and_wait_timeout (with a timeout, on
// kernels with IORING_FEAT_EXT_ARG) enters exactly once when SQEs are queued
// or no CQE is ready, and never otherwise. So this wrapper never submits with
// nothing queued (submit_and_get_events() enters on purpose, for the
// completions DEFER_TASKRUN holds back), looks at the CQ (plain memory reads)
// before waiting, submits and waits in ONE enter, and reaps without entering
// (io_uring_for_each_cqe + io_uring_cq_advance; never io_uring_peek_cqe, which
// enters to flush overflowed or deferred completions).
//
// Ledger: every SQE prepared through prepare() records its buffer ranges in
// the attached buffer_ledger under its user_data, and reap() forgets them at the
// op's final CQE (no IORING_CQE_F_MORE), before the caller sees the CQE, so the
// buffer can be handed back from inside the callback.
//
// Single-threaded: one thread prepares, submits and reaps.
#pragma once

#include <liburing.h>

#include <chrono>
#include <cstdint>
#include <span>
#include <string>

#include "harness/buffer.hpp"
#include "harness/ledger.hpp"
#include "harness/meters.hpp"
#include "harness/op.hpp"

namespace ringside {

struct ring_options {
  // SQ size (the kernel rounds up to a power of two). Bounds one submission
  // batch, not the number of ops in flight.
  uint32_t entries = 256;
  // CQ size; 0 = the kernel's default (2 x entries). Ops in flight beyond it
  // overflow into the kernel's backlog (IORING_FEAT_NODROP): slower, not lost.
  uint32_t cq_entries = 0;
  // IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN: completions are
  // posted only when this thread waits. The ring must then be used only by the
  // thread that created it. Dropped silently if the kernel refuses.
  bool single_issuer = false;
  // IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG: no IPI per
  // completion. Dropped silently if the kernel refuses.
  bool coop_taskrun = false;
  // IORING_SETUP_SQPOLL: a kernel thread consumes the SQ; submits enter only
  // to wake it (IORING_SQ_NEED_WAKEUP). The kernel refuses DEFER_TASKRUN with
  // it, so sqpoll wins: DEFER_TASKRUN is left out, SINGLE_ISSUER kept. Never
  // dropped silently: the ring fails to construct if the kernel refuses.
  bool sqpoll = false;
  uint32_t sqpoll_idle_ms = 0;  // sq_thread_idle; 0: the kernel's default
};

// Empty when io_uring can be used here; otherwise why not, e.g.
// "io_uring_queue_init: Function not implemented". Probed once, then cached.
std::string uring_unavailable_reason();

class ring {
 public:
  // Throws std::system_error when the ring cannot be set up.
  explicit ring(const ring_options& o = {});
  ~ring();
  ring(const ring&) = delete;
  ring& operator=(const ring&) = delete;
  ring(ring&&) = delete;
  ring& operator=(ring&&) = delete;

  // The detector every buffer-carrying SQE is recorded in; null: none.
  void set_ledger(buffer_ledger* l) noexcept { ledger_ = l; }
  [[nodiscard]] buffer_ledger* ledger() const noexcept { return ledger_; }

  [[nodiscard]] io_uring& native() noexcept { return ring_; }
  // The IORING_SETUP_* flags the kernel accepted.
  [[nodiscard]] unsigned setup_flags() const noexcept { return ring_.flags; }
  [[nodiscard]] uint32_t sq_entries() const noexcept { return ring_.sq.ring_entries; }
  [[nodiscard]] uint32_t cq_entries() const noexcept { return ring_.cq.ring_entries; }
  [[nodiscard]] bool is_open() const noexcept { return open_; }

  // An SQE, submitting the queued ones to make room when the SQ is full. Null
  // only when that submit failed (-EBUSY, -EAGAIN...): the caller keeps its op
  // and retries after reaping.
  io_uring_sqe* get_sqe() noexcept {
    if (auto* s = io_uring_get_sqe(&ring_)) return s;
    if (submit() < 0) return nullptr;
    return io_uring_get_sqe(&ring_);
  }

  // Prepares one SQE: prep(sqe) fills it (liburing's io_uring_prep_*), then
  // its user_data is set and `ranges` go into the ledger until user_data's
  // final CQE. False when no SQE could be had (see get_sqe).
  // Borrowed: `ranges` only for the call. The memory they describe must stay
  // valid until user_data's final CQE is reaped; that is the caller's contract.
  template <typename Prep>
  bool prepare(uint64_t user_data, op_kind kind, std::span<const byte_range> ranges, Prep&& prep) noexcept {
    io_uring_sqe* sqe = get_sqe();
    if (sqe == nullptr) return false;
    prep(sqe);
    io_uring_sqe_set_data64(sqe, user_data);
    if (ledger_ != nullptr && !ranges.empty()) ledger_->on_submit(user_data, kind, ranges);
    return true;
  }

  // SQEs prepared and not yet consumed by the kernel.
  [[nodiscard]] unsigned sq_pending() const noexcept { return io_uring_sq_ready(&ring_); }
  // CQEs posted and not yet reaped.
  [[nodiscard]] unsigned cq_ready() const noexcept { return io_uring_cq_ready(&ring_); }

  // Submits queued SQEs in one io_uring_enter; enters nothing when none are
  // queued. Returns SQEs submitted, or -errno (the SQEs stay queued).
  int submit() noexcept;

  // Submits queued SQEs and waits up to `timeout` for at least one CQE, in ONE
  // io_uring_enter. When a CQE is already ready it does not wait (and enters
  // only if SQEs are queued). Returns 0 or SQEs submitted; -ETIME and -EINTR
  // are reported as 0 (reap and look at the clock); other -errno as is.
  int submit_and_wait(std::chrono::nanoseconds timeout) noexcept;

  // Submits queued SQEs and asks for completions (IORING_ENTER_GETEVENTS)
  // without waiting, in ONE io_uring_enter, always: with DEFER_TASKRUN the
  // kernel runs completion work and posts CQEs only on such an enter.
  // Returns SQEs submitted or -errno.
  int submit_and_get_events() noexcept;

  // Hands every ready CQE (at most `max`) to on_cqe(const io_uring_cqe&) in
  // order, then advances the CQ once. The ledger forgets an op at its final
  // CQE before on_cqe runs. Never enters the kernel. on_cqe may prepare and
  // submit SQEs. Returns CQEs reaped.
  template <typename OnCqe>
  unsigned reap(OnCqe&& on_cqe, unsigned max = ~0u) noexcept {
    unsigned head;
    unsigned n = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      if (ledger_ != nullptr && (cqe->flags & IORING_CQE_F_MORE) == 0) ledger_->on_final(cqe->user_data);
      on_cqe(*static_cast<const io_uring_cqe*>(cqe));
      if (++n == max) break;
    }
    io_uring_cq_advance(&ring_, n);
    return n;
  }

  // Registers every buffer of `pool` as a fixed buffer (buffer::index() is
  // the buf_index). Setup only: returns 0 or -errno. Borrowed: pool must
  // outlive the registration (unregister_buffers, or the ring's exit).
  int register_buffers(const buffer_pool& pool) noexcept;
  void unregister_buffers() noexcept;
  // True when b can go into a *_FIXED op of this ring.
  [[nodiscard]] bool is_fixed(const buffer& b) const noexcept {
    return fixed_pool_ != nullptr && b.pool() == fixed_pool_;
  }

  // Exits the ring now (the destructor does it otherwise). Anything still in
  // flight is cancelled by the kernel asynchronously: drain first.
  void close() noexcept;

  // io_uring_enter calls made by this ring (they are also in the meters).
  [[nodiscard]] uint64_t enters() const noexcept { return enters_; }

  // Fault injection (safety scenario cancel.submit_fail): the next `count`
  // submits that have SQEs queued fail with -err WITHOUT entering the kernel,
  // as io_uring_enter does under pressure (-EAGAIN, -EBUSY); the SQEs stay
  // queued, and get_sqe() on a full SQ gives null. Enters that only wait or
  // reap are not submits and are not failed.
  void inject_submit_failures(int err, uint32_t count) noexcept {
    inject_err_ = err;
    inject_left_ = count;
  }
  [[nodiscard]] uint32_t injected_failures_left() const noexcept { return inject_left_; }

 private:
  void count_enter() noexcept {
    ++enters_;
    meters::count_syscall();
  }
  // True (one fewer left) when this submit of queued SQEs is to fail.
  bool inject_failure() noexcept {
    if (inject_left_ == 0 || io_uring_sq_ready(&ring_) == 0) return false;
    --inject_left_;
    return true;
  }

  io_uring ring_{};
  buffer_ledger* ledger_ = nullptr;
  const buffer_pool* fixed_pool_ = nullptr;
  uint64_t enters_ = 0;
  int inject_err_ = 0;
  uint32_t inject_left_ = 0;
  bool open_ = false;
};

}  // namespace ringside
