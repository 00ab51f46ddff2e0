// cancel.* scenarios around a cancelled recv (DESIGN.md's safety catalogue).
//
// cancel.recv_completed (#2): a recv whose data is already there completes in
// the kernel; the scenario cancels it before the completion is reaped (the
// barrier, scenarios/cancel_common.hpp). The cancel loses the race, so the
// bytes must be delivered: a backend that reports the op cancelled instead
// has consumed them from the socket and dropped them (uring-raw: its cancel
// completes at once with -ECANCELED, and the kernel's CQE carrying the bytes
// is discarded). The stream check sees the gap at the next delivered byte.
#include <fmt/format.h>

#include <cerrno>
#include <memory>
#include <string>

#include "harness/io.hpp"
#include "harness/scenario.hpp"
#include "scenarios/cancel_common.hpp"

namespace ringside {

namespace {

using scen::op_at;
using scen::range_of;
using scen::report_op;

class recv_completed final : public scenario {
 public:
  explicit recv_completed(const params& p) : p_(p) { scen::check_bs(p); }

  // One buffer for the recv; the barrier nop carries none.
  [[nodiscard]] size_t buffers_needed() const override { return 1; }

  void prepare(backend& be) override { pair_ = scen::unix_pair(be); }

  void start(backend& be, buffer_pool& pool, run_ctx& ctx) override { be.spawn(run(be, pool, ctx)); }

 private:
  task<> run(backend& be, buffer_pool& pool, run_ctx& ctx) {
    stream_stats& st = ctx.new_stream();
    buffer buf = scen::take_buffer(pool, ctx, "cancel.recv_completed");
    if (!buf) co_return;
    const int fd = pair_.a.get();
    const uint32_t bs = uint32_t(p_.bs);
    scen::stream_tx tx(p_.seed, p_.bs);
    scen::stream_rx rx(p_.seed, p_.bs);
    prng sched(derive_seed(p_.seed, 2));
    for (uint64_t round = 0; !rx.broken() && ctx.keep_going(); ++round) {
      // 1..bs bytes wait in the socket before the recv exists.
      const uint64_t n = 1 + sched.below(bs);
      if (int r = tx.push(pair_.b.get(), n); r < 0) {
        scen::report_io(ctx, "cancel.recv_completed: push", "", r);
        break;
      }
      // The barrier: the recv completes in the kernel with the nop, and this
      // coroutine runs again (from the nop's completion) before the recv's
      // completion is taken.
      const auto t0 = clock_type::now();
      auto barrier = ringside::start(be, op{.kind = op_kind::nop});
      auto target = ringside::start(be, scen::payload_op(op_kind::recv, fd, std::move(buf), 0, bs));
      (void)co_await barrier;
      const int cr = target.cancel();
      completion c = co_await target;
      buf = std::move(c.buf);
      st.latency.record(uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t0).count()));
      ++st.ops;
      if (!buf) {
        report_op(ctx, "io_error", op_at(op_kind::recv, round), {}, "completion without its buffer");
        co_return;
      }
      if (c.res == -ECANCELED) {
        if (cr == -ENOENT)
          report_op(ctx, "lost_result", op_at(op_kind::recv, round), range_of(buf, 0, bs),
                    "cancel() said the op was no longer pending, yet it completed -ECANCELED");
        // Cancelled for real: the bytes must still be in the socket; the
        // next round's recv (or the drain) gets them, which the stream
        // check verifies.
        continue;
      }
      if (c.res <= 0 || uint32_t(c.res) > bs) {
        report_op(ctx, "io_error", op_at(op_kind::recv, round), range_of(buf, 0, bs),
                  fmt::format("recv completed with {} (cancel: {})", c.res, scen::cancel_text(cr)));
        break;
      }
      st.bytes += uint64_t(c.res);
      rx.take(ctx, op_at(op_kind::recv, round, fmt::format("cancel {}", scen::cancel_text(cr))), buf, 0,
              uint64_t(c.res));
    }
    // Whatever a cancelled recv left in the socket is delivered now.
    if (!rx.broken() && buf) {
      // EOF after the last byte: a loss ends the drain instead of waiting.
      if (int r = scen::shutdown_fd(pair_.b.get(), SHUT_WR); r < 0) scen::report_io(ctx, "cancel: shutdown", "", r);
      buf = co_await scen::recv_until(be, ctx, fd, std::move(buf), bs, rx, tx.sent(), ~0ull);
      rx.expect_total(ctx, op_at(op_kind::recv, ~0ull, "end"), tx.sent());
    }
  }

  params p_;
  scen::stream_pair pair_;
};

}  // namespace

void register_cancel_recv_scenarios() {
  register_scenario({
      .name = "cancel.recv_completed",
      .checks = "#2 recv cancelled after its data completed in the kernel: the bytes are delivered, not dropped",
      .defaults = scen::cancel_defaults(64, 4096),
      .uses = scen::cancel_uses(),
      .make = [](const params& p) -> std::unique_ptr<scenario> { return std::make_unique<recv_completed>(p); },
  });
}

}  // namespace ringside
