// cancel.multishot_recv (#7): multishot recvs (op_kind::recv_multishot) over
// a group of provided buffers (io_uring: a registered buffer ring), some
// cancelled mid-stream.
//
// Checks: a multishot op's buffers are the caller's again only when the op
// has ended — its FINAL completion — and every provided buffer comes back:
// handed out with a receive, or returned to the group by the final
// completion ("ring_buffer_leak" otherwise). Every received byte is the
// stream's next ("stream_integrity").
//
// Determinism: a round provides 1..4 buffers (seeded) and pushes the first
// chunk before the op exists; each receive (on_more) pushes the next chunk,
// so every chunk is its own receive. A seeded round cancels the op from
// inside its k-th receive; the others let it run dry (after the last buffer
// one more chunk is pushed: io_uring ends the op -ENOBUFS when data finds no
// buffer; the emulations end it as soon as the group is used up; the chunk
// is the next round's). After the final completion the round lets the
// group's buffers go (back to the pool).
//
// The bug it catches: uring-raw's cancel completes the op at once and hands
// the group's unused buffers back while the kernel's ring still holds them
// (the kernel may pick one for the next bytes): the round's release of the
// group is a release of buffers the kernel holds ("ledger"), every cancelled
// round. uring-owned waits for the final CQE (-ECANCELED) and unregisters the
// ring first; epoll and blocking emulate the ring (nothing is in the kernel
// between receives): all clean.
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <string>

#include "harness/buffer_group.hpp"
#include "harness/io.hpp"
#include "harness/scenario.hpp"
#include "scenarios/cancel_common.hpp"

namespace ringside {

namespace {

using scen::op_at;
using scen::range_of;
using scen::report_op;

// 4: enough for a cancel to land before, between and after the receives.
constexpr uint64_t max_group = 4;

class multishot_cancel final : public scenario {
 public:
  explicit multishot_cancel(const params& p) : p_(p) { scen::check_bs(p); }

  // One round's group, plus the drain's buffer.
  [[nodiscard]] size_t buffers_needed() const override { return max_group + 1; }

  void prepare(backend& be) override { pair_ = scen::unix_pair(be); }

  void start(backend& be, buffer_pool& pool, run_ctx& ctx) override { be.spawn(run(be, pool, ctx)); }

 private:
  // One round's op: awaited for its final completion; its receives are
  // checked (and drive the peer) in on_more. Immovable: the backend holds it.
  class round_op final : public op_waiter {
   public:
    round_op(multishot_cancel& sc, backend& be, run_ctx& ctx, uint64_t round, uint64_t provided, uint64_t cancel_at)
        : sc_(sc), be_(be), ctx_(ctx), round_(round), provided_(provided), cancel_at_(cancel_at) {}
    round_op(const round_op&) = delete;
    round_op& operator=(const round_op&) = delete;
    ~round_op() {
      if (pending_) be_.drop(id_);
    }

    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      h_ = h;
      pending_ = true;
      submitting_ = true;
      be_.submit(op{.kind = op_kind::recv_multishot, .fd = sc_.pair_.a.get(), .len = uint32_t(sc_.p_.bs),
                    .group = &sc_.group_},
                 this);
      submitting_ = false;
      return pending_;  // false: completed inline (blocking)
    }
    int32_t await_resume() const noexcept { return res_; }

    uint64_t delivered = 0;
    int cancel_res = 1;

   private:
    void on_started(op_id id) noexcept override { id_ = id; }
    void on_more(completion&& c) noexcept override {
      const std::string where = op_at(op_kind::recv_multishot, round_, fmt::format("receive {}", delivered + 1));
      if (!pending_) {
        report_op(ctx_, "exactly_once", where, range_of(c.buf, 0, 0), "a receive delivered after the final completion");
        return;
      }
      if (!c.buf || c.res <= 0 || uint64_t(c.res) > c.buf.capacity()) {
        report_op(ctx_, "io_error", where, range_of(c.buf, 0, 0), fmt::format("receive with {}", c.res));
        return;
      }
      ++delivered;
      sc_.rx_->take(ctx_, where, c.buf, 0, uint64_t(c.res));
      if (delivered == cancel_at_) {
        cancel_res = be_.cancel(id_);
        return;
      }
      // The next chunk (past the last buffer: the one that finds none).
      if (delivered <= provided_) sc_.push_chunk(ctx_);
    }
    void on_complete(completion&& c) noexcept override {
      res_ = c.res;
      if (c.buf && c.res > 0) {  // one last receive with the final completion
        ++delivered;
        sc_.rx_->take(ctx_, op_at(op_kind::recv_multishot, round_, "final"), c.buf, 0, uint64_t(c.res));
      }
      pending_ = false;
      if (!submitting_ && h_) std::exchange(h_, {}).resume();
    }

    multishot_cancel& sc_;
    backend& be_;
    run_ctx& ctx_;
    uint64_t round_, provided_, cancel_at_;
    op_id id_;
    std::coroutine_handle<> h_;
    int32_t res_ = 1;
    bool pending_ = false;
    bool submitting_ = false;
  };

  void push_chunk(run_ctx& ctx) {
    const uint64_t n = 1 + sched_.below(p_.bs);
    if (int r = tx_->push(pair_.b.get(), n); r < 0) scen::report_io(ctx, "cancel.multishot_recv: push", "", r);
  }

  task<> run(backend& be, buffer_pool& pool, run_ctx& ctx) {
    stream_stats& st = ctx.new_stream();
    tx_ = std::make_unique<scen::stream_tx>(p_.seed, p_.bs);
    rx_ = std::make_unique<scen::stream_rx>(p_.seed, p_.bs);
    group_.reserve(max_group);
    prng plan(derive_seed(p_.seed, 7));
    for (uint64_t round = 0; !rx_->broken() && !ctx.stopped() && ctx.keep_going(); ++round) {
      const uint64_t provided = 1 + plan.below(max_group);
      // 0: run dry; k: cancel from inside the k-th receive.
      const uint64_t cancel_at = plan.below(provided + 1);
      if (group_.fill(pool, provided) != provided) {
        ctx.report("io_error", "cancel.multishot_recv: buffer pool exhausted");
        co_return;
      }
      push_chunk(ctx);
      const auto t0 = clock_type::now();
      int32_t res;
      uint64_t delivered;
      int cancel_res;
      {
        round_op op(*this, be, ctx, round, provided, cancel_at);
        res = co_await op;
        delivered = op.delivered;
        cancel_res = op.cancel_res;
      }
      st.latency.record(uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t0).count()));
      ++st.ops;
      const std::string where =
          op_at(op_kind::recv_multishot, round,
                cancel_at != 0 ? fmt::format("cancel after receive {}: {}", cancel_at, scen::cancel_text(cancel_res))
                               : "runs dry");
      // Cancelled: -ECANCELED, or -ENOBUFS when the group was used up first.
      const bool expected_end = res == -ENOBUFS || (cancel_at != 0 && res == -ECANCELED);
      if (!expected_end) {
        report_op(ctx, "io_error", where, {}, fmt::format("final completion {}", res));
        break;
      }
      if (group_.size() + delivered != provided)
        report_op(ctx, "ring_buffer_leak", where, {},
                  fmt::format("{} buffers provided, {} handed out with receives, {} returned to the group: {} lost",
                              provided, delivered, group_.size(), provided - delivered - group_.size()));
      // The final completion gave them back: the caller's to free now.
      group_.clear();
    }
    group_.clear();
    // The chunk pushed after the last round's buffers ran out, if any.
    if (!rx_->broken()) {
      buffer buf = scen::take_buffer(pool, ctx, "cancel.multishot_recv");
      if (!buf) co_return;
      if (int r = scen::shutdown_fd(pair_.b.get(), SHUT_WR); r < 0) scen::report_io(ctx, "cancel: shutdown", "", r);
      const uint32_t len = uint32_t(std::min<uint64_t>(p_.bs, buf.capacity()));
      buf = co_await scen::recv_until(be, ctx, pair_.a.get(), std::move(buf), len, *rx_, tx_->sent(), ~0ull);
      rx_->expect_total(ctx, op_at(op_kind::recv, ~0ull, "end"), tx_->sent());
    }
  }

  params p_;
  scen::stream_pair pair_;
  buffer_group group_;
  std::unique_ptr<scen::stream_tx> tx_;
  std::unique_ptr<scen::stream_rx> rx_;
  prng sched_{derive_seed(p_.seed, 17)};
};

}  // namespace

void register_cancel_multishot_scenarios() {
  register_scenario({
      .name = "cancel.multishot_recv",
      .checks = "#7 multishot recv over a provided-buffer ring, cancelled: buffers back only at the final completion",
      .defaults = scen::cancel_defaults(64, 4096),
      .uses = scen::cancel_uses(),
      .make = [](const params& p) -> std::unique_ptr<scenario> { return std::make_unique<multishot_cancel>(p); },
  });
}

}  // namespace ringside
