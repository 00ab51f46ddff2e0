// cancel.linked_timeout (#6): recvs with a deadline (op.deadline_ns; on
// io_uring an IORING_OP_LINK_TIMEOUT linked to the recv).
//
// Checks: an op ends only with its OWN completion. When the deadline fires on
// a recv that is still pending, the op completes -ECANCELED and only then is
// its buffer the caller's again; when the data was there first, the recv
// completes with it and the deadline changes nothing (a success is never
// turned into -ECANCELED, never dropped).
//
// Rounds (seeded): "fire" rounds submit the recv on an empty socket with a
// short deadline — nothing can arrive, so the deadline ends it, every time;
// "data" rounds push 1..bs bytes first and give the recv a deadline far
// away — it must deliver them. After every recv the scenario lets its buffer
// go at once (back to the pool) and takes another: that is exactly what a
// caller may do with a buffer its completion handed back.
//
// The bug it catches: freeing on the linked timeout's -ETIME CQE. io_uring
// posts the timeout's CQE (-ETIME) before the cancelled recv's own CQE
// (-ECANCELED) — both in one reap, in that order. uring-raw completes the op
// at the timeout's CQE, from inside the reap, so the buffer goes back to the
// pool before the recv's CQE is even looked at: the ledger sees a buffer
// released while the kernel still holds it (release build: "ledger").
// epoll's deadline is a loop timer and blocking's a per-thread POSIX timer
// signal; nothing is in the kernel when they complete the op, so they are
// clean, as is uring-owned (it ignores the timeout's CQE).
//
// Not made to happen here: the deadline firing while the recv completes in
// the kernel at the same instant (the recv "may succeed" after -ETIME). It
// needs the timer and the data to meet inside one kernel section, which no
// schedule controls; the conformance suite checks the halves (a success
// before the deadline is delivered, tests/conformance/deadline_test.cpp).
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

// 200 us .. 1 ms: short enough that 64 rounds take well under a second, long
// enough that the recv is surely parked (or in the kernel) when it fires.
constexpr uint64_t fire_min_ns = 200'000;
constexpr uint64_t fire_spread_ns = 800'000;
// 10 s: a "data" round's deadline, never reached (its bytes are there at submit).
constexpr uint64_t far_deadline_ns = 10'000'000'000;

class linked_timeout final : public scenario {
 public:
  explicit linked_timeout(const params& p) : p_(p) { scen::check_bs(p); }

  // One buffer in use at a time (each round releases its buffer and takes
  // another; the quarantine's are extra, see run_options).
  [[nodiscard]] size_t buffers_needed() const override { return 1; }

  void prepare(backend& be) override { pair_ = scen::unix_pair(be); }

  void start(backend& be, buffer_pool& pool, run_ctx& ctx) override { be.spawn(run(be, pool, ctx)); }

 private:
  task<> run(backend& be, buffer_pool& pool, run_ctx& ctx) {
    stream_stats& st = ctx.new_stream();
    io x(be);
    const int fd = pair_.a.get();
    const uint32_t bs = uint32_t(p_.bs);
    scen::stream_tx tx(p_.seed, p_.bs);
    scen::stream_rx rx(p_.seed, p_.bs);
    prng sched(derive_seed(p_.seed, 6));
    for (uint64_t round = 0; !rx.broken() && ctx.keep_going(); ++round) {
      buffer buf = scen::take_buffer(pool, ctx, "cancel.linked_timeout");
      if (!buf) co_return;
      const bool fire = sched.below(2) == 0;
      op o = scen::payload_op(op_kind::recv, fd, std::move(buf), 0, bs);
      if (fire) {
        o.deadline_ns = fire_min_ns + sched.below(fire_spread_ns);
      } else {
        const uint64_t n = 1 + sched.below(bs);
        if (int r = tx.push(pair_.b.get(), n); r < 0) {
          scen::report_io(ctx, "cancel.linked_timeout: push", "", r);
          break;
        }
        o.deadline_ns = far_deadline_ns;
      }
      const auto t0 = clock_type::now();
      completion c = co_await x.submit(std::move(o));
      st.latency.record(uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t0).count()));
      ++st.ops;
      const std::string where = op_at(op_kind::recv, round, fire ? "deadline fires" : "data first");
      if (!c.buf) {
        report_op(ctx, "io_error", where, {}, "completion without its buffer");
        co_return;
      }
      if (c.res == -ECANCELED) {
        if (!fire) {
          report_op(ctx, "lost_result", where, range_of(c.buf, 0, bs),
                    "the recv's bytes were in the socket before it was submitted, yet its deadline (10 s away) "
                    "turned it into -ECANCELED");
          break;
        }
      } else if (c.res > 0 && uint32_t(c.res) <= bs) {
        // A fire round's socket is empty: bytes there would be a stream error.
        st.bytes += uint64_t(c.res);
        rx.take(ctx, where, c.buf, 0, uint64_t(c.res));
      } else {
        report_op(ctx, "io_error", where, range_of(c.buf, 0, bs), fmt::format("recv completed with {}", c.res));
        break;
      }
      // The completion handed the buffer back: it is the caller's to free now.
      c.buf.reset();
    }
    // Every pushed byte was delivered by its own round; nothing may remain.
    if (!rx.broken()) {
      buffer buf = scen::take_buffer(pool, ctx, "cancel.linked_timeout");
      if (!buf) co_return;
      if (int r = scen::shutdown_fd(pair_.b.get(), SHUT_WR); r < 0) scen::report_io(ctx, "cancel: shutdown", "", r);
      buf = co_await scen::recv_until(be, ctx, fd, std::move(buf), bs, rx, tx.sent(), ~0ull);
      rx.expect_total(ctx, op_at(op_kind::recv, ~0ull, "end"), tx.sent());
    }
  }

  params p_;
  scen::stream_pair pair_;
};

}  // namespace

void register_cancel_timeout_scenarios() {
  register_scenario({
      .name = "cancel.linked_timeout",
      .checks = "#6 recv with a linked timeout: the op ends with its own completion, not the timeout's -ETIME",
      .defaults = scen::cancel_defaults(64, 4096),
      .uses = scen::cancel_uses(),
      .make = [](const params& p) -> std::unique_ptr<scenario> { return std::make_unique<linked_timeout>(p); },
  });
}

}  // namespace ringside
