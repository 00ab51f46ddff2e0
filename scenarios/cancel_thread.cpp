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
// Each round (seeded) submits a recv of L bytes on an empty socket with
// op.submitter_exits (the backend issues it from a thread that exits before
// submit() returns: caps.submitter_can_exit), then either
// - waits:  the peer sends n > L bytes; the recv must complete once, with
//           its buffer: -ECANCELED (the kernel's), or bytes (a kernel that
//           lets the op finish), which must then be the stream's next ones;
// - cancels: cancel() while it is pending, awaits the completion, then the
//           peer sends;
// - drops:  the handle is destroyed while the op is pending, then the peer
//           sends.
// Then one pass through the kernel (a nop), and every byte sent is read and
// verified: nothing the orphaned recv did not deliver may be missing. A
// backend that hands the buffer back before the kernel's final CQE (uring-
// raw's cancel and drop) is caught by the ledger; one that loses the
// unexpected completion or its buffer by the stream checks and the
// exactly-once detector.
//
// Where it cannot happen (unsupported):
// - thread per stream (blocking): an op runs inside its stream thread's
//   syscall; a thread cannot exit while one of its ops is pending.
// - readiness loops (epoll): between syscalls the kernel holds no op at all,
//   and the loop thread outlives the run.
#include <fmt/format.h>

#include <cerrno>
#include <memory>
#include <optional>
#include <string>

#include "harness/backend.hpp"
#include "harness/io.hpp"
#include "harness/scenario.hpp"
#include "scenarios/cancel_common.hpp"
#include "scenarios/cancel_lifecycle.hpp"

namespace ringside {

namespace {

using scen::op_at;
using scen::range_of;
using scen::report_op;

enum class after_exit : uint8_t { wait, cancel, drop };
constexpr std::string_view to_string(after_exit w) noexcept {
  switch (w) {
    case after_exit::wait: return "submitter exited, data arrives";
    case after_exit::cancel: return "submitter exited, then cancelled";
    case after_exit::drop: return "submitter exited, then dropped";
  }
  return "?";
}

// 8: at most this many rounds in a row drop their op (the next one waits,
// which lets the graveyard drain): bounds the buffers a run needs.
constexpr uint32_t k_max_drops_in_row = 8;
// 16: bytes beyond L the peer always sends, so a gap (a dropped recv that
// took its L bytes) can be told from none (scen::gap_rx).
constexpr uint64_t k_min_left = 16;

class thread_exit final : public scenario {
 public:
  explicit thread_exit(const params& p) : p_(p) { scen::check_bs(p); }

  [[nodiscard]] std::string unsupported_reason(const backend_caps& caps) const override {
    if (caps.thread_per_stream)
      return "thread per stream: an op runs inside its stream thread's syscall, so no thread can exit while one "
             "of its ops is pending";
    if (caps.contract == buffer_contract::borrowed_in_syscall)
      return "readiness loop: the kernel holds no op between syscalls and the loop thread outlives the run, so "
             "no pending op can lose its submitter";
    if (!caps.submitter_can_exit)
      return "the backend cannot issue an op from a thread that exits while the op is pending "
             "(caps.submitter_can_exit)";
    return {};
  }
  // The reader's buffer, the orphaned recv's, and those of dropped ops: a
  // correct backend keeps each until its CQE, which the kernel posts a few
  // ms later (its fallback task work runs one jiffy after the wakeup), so
  // up to k_max_drops_in_row of them can be pending at once.
  [[nodiscard]] size_t buffers_needed() const override { return 2 + k_max_drops_in_row; }
  void prepare(backend& be) override { pair_ = scen::unix_pair(be); }
  void start(backend& be, buffer_pool& pool, run_ctx& ctx) override { be.spawn(run(be, pool, ctx)); }

 private:
  task<> run(backend& be, buffer_pool& pool, run_ctx& ctx) {
    stream_stats& st = ctx.new_stream();
    const int fd = pair_.a.get();
    const uint64_t bs = p_.bs;
    buffer rbuf = scen::take_buffer(pool, ctx, "cancel.thread_exit");
    if (!rbuf) co_return;
    scen::stream_tx tx(p_.seed, bs);
    scen::gap_rx rx(p_.seed, bs);
    prng sched(derive_seed(p_.seed, 18));
    io x(be);
    uint32_t drops_in_row = 0;
    for (uint64_t round = 0; !rx.broken() && ctx.keep_going(); ++round) {
      auto way = after_exit(sched.below(3));
      if (way == after_exit::drop && drops_in_row == k_max_drops_in_row) way = after_exit::wait;
      drops_in_row = way == after_exit::drop ? drops_in_row + 1 : 0;
      const uint32_t len = uint32_t(1 + sched.below(bs));    // the orphaned recv's length L
      const uint64_t n = len + k_min_left + sched.below(bs);  // what the peer sends: more than L
      buffer d = scen::take_buffer(pool, ctx, "cancel.thread_exit");
      if (!d) break;
      const std::string where = op_at(op_kind::recv, round, to_string(way));
      const auto t0 = clock_type::now();
      op o = scen::payload_op(op_kind::recv, fd, std::move(d), 0, len);
      o.submitter_exits = true;
      std::optional<op_handle> h;
      h.emplace(be, std::move(o));
      // Awaited by name: g++ 12 copies a `*h` operand of co_await.
      op_handle& pending = *h;
      if (pending.done()) {
        // Nothing to read and nobody cancelled: it cannot have ended yet.
        auto c = co_await pending;
        report_op(ctx, "io_error", where, range_of(c.buf, 0, len),
                  fmt::format("a recv on an empty socket completed at once: {}",
                              c.res < 0 ? scen::errno_text(-c.res) : fmt::format("{} bytes", c.res)));
        co_return;
      }
      bool gap = false;  // the recv may have taken up to L bytes nobody saw
      switch (way) {
        case after_exit::wait:
        case after_exit::cancel: {
          if (way == after_exit::wait) {
            if (int r = tx.push(pair_.b.get(), n); r < 0) {
              scen::report_io(ctx, "cancel.thread_exit: push", "", r);
              co_return;
            }
          } else {
            (void)pending.cancel();  // 0 expected; -ENOENT would mean it ended already, which the await shows
          }
          auto c = co_await pending;
          h.reset();
          if (!c.buf) {
            report_op(ctx, "lost_result", where, range_of(c.buf, 0, len),
                      fmt::format("the orphaned recv completed ({}) without its buffer",
                                  c.res < 0 ? scen::errno_text(-c.res) : fmt::format("{} bytes", c.res)));
            co_return;
          }
          if (c.res > 0) {
            if (uint64_t(c.res) > len) {
              report_op(ctx, "io_error", where, range_of(c.buf, 0, len),
                        fmt::format("recv of {} bytes returned {}", len, c.res));
              co_return;
            }
            if (!rx.take(ctx, where, c.buf, 0, uint64_t(c.res))) co_return;
            st.bytes += uint64_t(c.res);
          } else if (c.res != -ECANCELED) {
            report_op(ctx, "io_error", where, range_of(c.buf, 0, len),
                      fmt::format("the orphaned recv completed {}, expected -ECANCELED or bytes",
                                  scen::errno_text(-c.res)));
            co_return;
          }
          // c.buf goes back to the pool here: a correct backend only now.
          if (way == after_exit::cancel) {
            if (int r = tx.push(pair_.b.get(), n); r < 0) {
              scen::report_io(ctx, "cancel.thread_exit: push", "", r);
              co_return;
            }
          }
          break;
        }
        case after_exit::drop:
          h.reset();  // the waiter goes; the kernel still holds the recv
          if (int r = tx.push(pair_.b.get(), n); r < 0) {
            scen::report_io(ctx, "cancel.thread_exit: push", "", r);
            co_return;
          }
          gap = true;
          break;
      }
      // One pass through the kernel before reading: whatever the orphaned op
      // still does, it does now.
      (void)co_await x.nop();
      if (gap) rx.expect_gap(len);
      // Named locals, not temporaries in the co_await operand, and no
      // `if (!co_await ...)`: g++ 12 miscompiles both.
      std::string reading = op_at(op_kind::recv, round, fmt::format("read after: {}", to_string(way)));
      const bool read_ok = co_await scen::read_sent(be, ctx, fd, rbuf, bs, rx, tx.sent(), std::move(reading), st);
      if (!read_ok) co_return;
      st.latency.record(uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t0).count()));
      ++st.ops;
    }
    if (rx.broken()) co_return;
    co_await scen::expect_end(be, ctx, fd, pair_.b.get(), rbuf, bs, tx.sent(), "cancel.thread_exit");
  }

  params p_;
  scen::stream_pair pair_;
};

}  // namespace

void register_cancel_thread_scenarios() {
  register_scenario({
      .name = "cancel.thread_exit",
      .checks = "#18 submitting thread exits with ops pending: the kernel's -ECANCELED is delivered like a cancel, "
                "once, with the buffer freed only at that CQE; no byte the orphaned op did not take is lost",
      .defaults = scen::cancel_defaults(64, 4096),
      .uses = scen::cancel_uses(),
      .make = [](const params& p) -> std::unique_ptr<scenario> { return std::make_unique<thread_exit>(p); },
  });
}

}  // namespace ringside
