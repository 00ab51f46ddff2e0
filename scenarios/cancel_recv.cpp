// cancel.* scenarios around a cancelled recv (DESIGN.md's safety catalogue).
//
// cancel.recv_completed (#2): a recv whose data is already there completes in
// the kernel; the scenario cancels it before the completion is reaped (the
// barrier, scenarios/cancel_common.hpp). The cancel loses the race, so the
// bytes must be delivered: a backend that reports the op cancelled instead
// has consumed them from the socket and dropped them (uring-raw: its cancel
// completes at once with -ECANCELED, and the kernel's CQE carrying the bytes
// is discarded). The stream check sees the gap at the next delivered byte.
//
// cancel.free_after_cancel (#3): a pending recv (no data yet) is cancelled
// from another stream, and its buffer goes back to the pool the moment the
// completion arrives; only then does the peer send. A correct backend hands
// the buffer back only with the recv's final CQE, so the kernel can no longer
// touch it; uring-raw's -ECANCELED completion hands it back before the kernel
// has even seen the cancel, so the ledger sees the release of a range still
// in flight, and the recv, still armed, takes the peer's bytes into released
// memory before its ASYNC_CANCEL is processed (seen on 6.18): the canary,
// and the stream check (the bytes are gone from the socket). In seeded
// rounds the data is already there and the recv is cancelled by its own
// stream before it reaches the kernel (same code on every backend: the recv
// completes inline on epoll/blocking, and wins over the cancel that follows
// it into the same enter on uring-owned); uring-raw releases the buffer
// first and the kernel's recv, issued afterwards, writes into it.
#include <fmt/format.h>

#include <cerrno>
#include <memory>
#include <string>

#include "harness/io.hpp"
#include "harness/scenario.hpp"
#include "scenarios/cancel_common.hpp"
#include "scenarios/cancel_race.hpp"

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

class free_after_cancel final : public scenario {
 public:
  explicit free_after_cancel(const params& p) : p_(p) { scen::check_bs(p); }

  // The round's recv buffer and the drain's.
  [[nodiscard]] size_t buffers_needed() const override { return 2; }

  void prepare(backend& be) override { pair_ = scen::unix_pair(be); }

  void start(backend& be, buffer_pool& pool, run_ctx& ctx) override {
    be.spawn(run(be, pool, ctx));
    be.spawn(canceller_.run(be));
  }

 private:
  task<> run(backend& be, buffer_pool& pool, run_ctx& ctx) {
    scen::stop_race_canceller stop{canceller_};
    io x(be);
    stream_stats& st = ctx.new_stream();
    const int fd = pair_.a.get();
    const uint32_t bs = uint32_t(p_.bs);
    scen::stream_tx tx(p_.seed, p_.bs);
    scen::stream_rx rx(p_.seed, p_.bs);
    prng sched(derive_seed(p_.seed, 3));
    buffer drain = scen::take_buffer(pool, ctx, "cancel.free_after_cancel");
    if (!drain) co_return;
    for (uint64_t round = 0; !rx.broken() && ctx.keep_going(); ++round) {
      const uint64_t n = 1 + sched.below(bs);
      // 1 in 4: the data is there before the recv and the recv is cancelled
      // at once (before io_uring has even submitted it).
      const bool data_first = sched.below(4) == 0;
      buffer buf = scen::take_buffer(pool, ctx, "cancel.free_after_cancel");
      if (!buf) co_return;
      const auto t0 = clock_type::now();
      completion c;
      int cr = 1;
      if (data_first) {
        if (int r = tx.push(pair_.b.get(), n); r < 0) {
          scen::report_io(ctx, "cancel.free_after_cancel: push", "", r);
          co_return;
        }
        auto t = ringside::start(be, scen::payload_op(op_kind::recv, fd, std::move(buf), 0, bs));
        cr = t.cancel();
        c = co_await t;
      } else {
        // Pending: nothing to receive, so the recv waits (blocking: inside
        // this stream's submit) until the canceller stream cancels it.
        canceller_.ask();
        scen::posted_op t(be, scen::payload_op(op_kind::recv, fd, std::move(buf), 0, bs), canceller_.post());
        c = co_await scen::await_op(t);
        // Waited for here, not in a child task (race_canceller::acted).
        for (uint64_t i = 0; i < scen::k_poll_limit && !canceller_.acted(); ++i)
          (void)co_await x.sleep_ns(scen::k_poll_ns);
        cr = canceller_.result();
      }
      st.latency.record(uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t0).count()));
      ++st.ops;
      const std::string what =
          fmt::format("{}, cancel {}", data_first ? "data first" : "pending", scen::cancel_text(cr));
      buf = std::move(c.buf);
      if (!buf) {
        report_op(ctx, "io_error", op_at(op_kind::recv, round, what), {}, "completion without its buffer");
        co_return;
      }
      if (c.res > 0 && uint32_t(c.res) <= bs) {
        st.bytes += uint64_t(c.res);
        if (!rx.take(ctx, op_at(op_kind::recv, round, what), buf, 0, uint64_t(c.res))) co_return;
      } else if (c.res != -ECANCELED) {
        {
          report_op(ctx, "io_error", op_at(op_kind::recv, round, what), range_of(buf, 0, bs),
                    fmt::format("recv completed with {}", c.res));
          co_return;
        }
      }
      // The point of the scenario: the buffer goes back to the pool the
      // moment its completion is in hand (a borrowed API's caller frees it
      // here). Released and quarantined, any later write shows.
      buf.reset();
      // Then the peer sends (a pending round's bytes arrive only now).
      if (!data_first) {
        if (int r = tx.push(pair_.b.get(), n); r < 0) {
          scen::report_io(ctx, "cancel.free_after_cancel: push", "", r);
          co_return;
        }
      }
      // One loop round trip: on io_uring whatever the kernel still had of
      // this recv (its SQE, its ASYNC_CANCEL) is submitted and acts now.
      (void)co_await x.nop();
      const uint64_t owed = tx.sent() - rx.total();
      if (const int64_t q = scen::queued_bytes(fd); q < 0 || uint64_t(q) != owed) {
        rx.mark_broken();
        {
          report_op(ctx, "stream_integrity", op_at(op_kind::recv, round, what), {},
                    q < 0 ? fmt::format("FIONREAD: {}", scen::errno_text(int(-q)))
                          : fmt::format("{} bytes were sent and not delivered, but {} are on the socket: the "
                                        "recv reported {} consumed them",
                                        owed, q, c.res == -ECANCELED ? "cancelled" : "short"));
          co_return;
        }
      }
      drain = co_await scen::recv_until(be, ctx, fd, std::move(drain), bs, rx, tx.sent(), round);
      if (!drain) co_return;
    }
    rx.expect_total(ctx, op_at(op_kind::recv, ~0ull, "end"), tx.sent());
  }

  params p_;
  scen::stream_pair pair_;
  scen::race_canceller canceller_;
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
  register_scenario({
      .name = "cancel.free_after_cancel",
      .checks = "#3 buffer released right after a cancelled recv's completion: the kernel never writes into it afterwards",
      .defaults = scen::cancel_defaults(64, 4096),
      .uses = scen::cancel_uses(),
      .make = [](const params& p) -> std::unique_ptr<scenario> { return std::make_unique<free_after_cancel>(p); },
  });
}

}  // namespace ringside
