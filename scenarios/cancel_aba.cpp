// cancel.aba (#9): an op id reused before a cancel lands.
//
// Checks: a cancel that names an op which already completed is -ENOENT, even
// when that op's slot has since been reused by another op, and the other op
// is unaffected: it completes with its own result, never -ECANCELED. Ids
// carry a generation (DESIGN.md), so a stale id can never name a new op.
//
// Each round (seeded): op A — a recv whose bytes are already in the socket,
// or a nop — runs to completion; then op B (same seeded choice) is started.
// Slot tables hand the slot A just freed to the next op (LIFO free lists;
// thread-per-stream backends reuse the stream's one slot), so B sits in A's
// slot; sometimes a nop C runs between A and B and uses the slot first. Then
// the stale cancel — be.cancel(A's id), straight to the backend, as a late
// canceller holding an old id would (op_handle::cancel refuses a done
// handle) — lands either while B is in flight (just started: on io_uring its
// SQE is queued and its CQE not yet reaped) or after B completed.
//
// Deterministic: A's and B's data is in the socket before they are started;
// nothing waits on time. A backend that reuses ids without a generation gives
// B A's id: the stale cancel is accepted (0) — reported "exactly_once", and
// the exactly-once decorator sees it too — and if it lands while B is in
// flight, B (whose data was there) may come back -ECANCELED: "lost_result".
// Nothing in flight is cancelled or dropped, so uring-raw's unsound buffer
// contract never comes into play: it is clean here.
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

// When the stale cancel of A's id is made.
enum class stale_at : uint8_t {
  b_in_flight,       // right after B is started, B on A's slot
  b_done,            // after B completed: both ids are stale
  after_interloper,  // a nop C ran between A and B; right after B is started
};
constexpr std::string_view to_string(stale_at w) noexcept {
  switch (w) {
    case stale_at::b_in_flight: return "B in flight";
    case stale_at::b_done: return "B done";
    case stale_at::after_interloper: return "B in flight, after a nop between A and B";
  }
  return "?";
}

class cancel_aba final : public scenario {
 public:
  explicit cancel_aba(const params& p) : p_((scen::check_bs(p), p)) {}

  // A's buffer and B's.
  [[nodiscard]] size_t buffers_needed() const override { return 2; }

  void prepare(backend& be) override { pair_ = scen::unix_pair(be); }

  void start(backend& be, buffer_pool& pool, run_ctx& ctx) override { be.spawn(run(be, pool, ctx)); }

 private:
  // Checks a completed A or B that was not cancelled (a recv hands back b,
  // its buffer); false when the run cannot go on.
  bool check_done(run_ctx& ctx, scen::stream_rx& rx, stream_stats& st, int32_t res, const buffer& b, bool recv,
                  std::string op) {
    if (!recv) {
      if (res != 0) report_op(ctx, "io_error", std::move(op), {}, fmt::format("nop completed with {}", res));
      return res == 0;
    }
    if (!b) {
      report_op(ctx, "io_error", std::move(op), {}, "completion without its buffer");
      return false;
    }
    if (res <= 0 || uint64_t(res) > p_.bs) {
      report_op(ctx, "io_error", std::move(op), range_of(b, 0, p_.bs), fmt::format("recv completed with {}", res));
      return false;
    }
    st.bytes += uint64_t(res);
    return rx.take(ctx, std::move(op), b, 0, uint64_t(res));
  }

  task<> run(backend& be, buffer_pool& pool, run_ctx& ctx) {
    stream_stats& st = ctx.new_stream();
    buffer buf_a = scen::take_buffer(pool, ctx, "cancel.aba");
    buffer buf_b = scen::take_buffer(pool, ctx, "cancel.aba");
    if (!buf_a || !buf_b) co_return;
    const int fd = pair_.a.get();
    const uint32_t bs = uint32_t(p_.bs);
    scen::stream_rx rx(p_.seed, p_.bs);
    prng sched(derive_seed(p_.seed, 9));
    io x(be);
    for (uint64_t round = 0; !rx.broken() && ctx.keep_going(); ++round) {
      // 3 in 4 ops move data (the stream check then covers them); the rest
      // are nops, which free and reuse slots all the same.
      const bool a_recv = sched.below(4) != 0;
      const bool b_recv = sched.below(4) != 0;
      const auto when = stale_at(sched.below(3));
      const uint64_t n_a = 1 + sched.below(bs);
      const uint64_t n_b = 1 + sched.below(bs);
      const op_kind k_a = a_recv ? op_kind::recv : op_kind::nop;
      const op_kind k_b = b_recv ? op_kind::recv : op_kind::nop;
      const auto t0 = clock_type::now();

      // A runs to its end.
      if (a_recv && !push(ctx, n_a)) break;
      op_id a_id;
      {
        auto a = ringside::start(be, a_recv ? scen::payload_op(op_kind::recv, fd, std::move(buf_a), 0, bs)
                                            : op{.kind = op_kind::nop});
        a_id = a.started_id();
        completion c = co_await a;
        if (a_recv) buf_a = std::move(c.buf);
        if (c.res == -ECANCELED) {
          report_op(ctx, "lost_result", op_at(k_a, round, "A"), a_recv ? range_of(buf_a, 0, bs) : std::string{},
                    "op A was never cancelled, yet completed -ECANCELED");
          break;
        }
        if (!check_done(ctx, rx, st, c.res, buf_a, a_recv, op_at(k_a, round, "A"))) break;
        ++st.ops;
      }
      if (when == stale_at::after_interloper) {
        if (auto c = co_await x.nop(); c.res != 0) {
          report_op(ctx, "io_error", op_at(op_kind::nop, round, "C"), {}, fmt::format("nop completed with {}", c.res));
          break;
        }
      }

      // B takes the slot; the stale cancel of A's id lands around it.
      if (b_recv && !push(ctx, n_b)) break;
      auto b = ringside::start(be, b_recv ? scen::payload_op(op_kind::recv, fd, std::move(buf_b), 0, bs)
                                          : op{.kind = op_kind::nop});
      const op_id b_id = b.started_id();
      int cr = 0;
      if (when != stale_at::b_done) cr = be.cancel(a_id);
      completion cb = co_await b;
      if (when == stale_at::b_done) cr = be.cancel(a_id);
      if (b_recv) buf_b = std::move(cb.buf);
      st.latency.record(uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t0).count()));
      ++st.ops;

      const std::string where = fmt::format("stale cancel, {}", to_string(when));
      if (cr != -ENOENT) {
        report_op(ctx, "exactly_once", op_at(k_a, round, where), {},
                  fmt::format("cancel of op A's id {:#x} after A completed returned {} instead of -ENOENT (op B's "
                              "id: {:#x}{})",
                              a_id.value, scen::cancel_text(cr), b_id.value,
                              a_id == b_id ? ", the same: the slot was reused without a new generation" : ""));
        break;
      }
      if (cb.res == -ECANCELED) {
        report_op(ctx, "lost_result", op_at(k_b, round, where), b_recv ? range_of(buf_b, 0, bs) : std::string{},
                  fmt::format("op B was never cancelled, yet completed -ECANCELED (B's id {:#x}, A's {:#x}): a "
                              "stale id reached it",
                              b_id.value, a_id.value));
        break;
      }
      if (!check_done(ctx, rx, st, cb.res, buf_b, b_recv, op_at(k_b, round, "B"))) break;
    }
    // Whatever the recvs left in the socket (a short read) is delivered now,
    // and every byte sent must arrive exactly once. (Not after a violation:
    // the round it ended left its bytes untaken, and one report is the repro.)
    if (!rx.broken() && !ctx.stopped() && buf_a) {
      // EOF after the last byte: a loss ends the drain instead of waiting.
      if (int r = scen::shutdown_fd(pair_.b.get(), SHUT_WR); r < 0) scen::report_io(ctx, "cancel.aba: shutdown", "", r);
      buf_a = co_await scen::recv_until(be, ctx, fd, std::move(buf_a), bs, rx, tx_.sent(), ~0ull);
      rx.expect_total(ctx, op_at(op_kind::recv, ~0ull, "end"), tx_.sent());
    }
  }

  // The next n bytes of the stream go into the socket before the op exists.
  bool push(run_ctx& ctx, uint64_t n) {
    if (int r = tx_.push(pair_.b.get(), n); r < 0) {
      scen::report_io(ctx, "cancel.aba: push", "", r);
      return false;
    }
    return true;
  }

  params p_;
  scen::stream_pair pair_;
  scen::stream_tx tx_{p_.seed, p_.bs};
};

}  // namespace

void register_cancel_aba_scenarios() {
  register_scenario({
      .name = "cancel.aba",
      .checks = "#9 a stale op id (its op completed, its slot reused) is -ENOENT to cancel and never reaches the new op",
      .defaults = scen::cancel_defaults(64, 4096),
      .uses = scen::cancel_uses(),
      .make = [](const params& p) -> std::unique_ptr<scenario> { return std::make_unique<cancel_aba>(p); },
  });
}

}  // namespace ringside
