// cancel.frame_drop (#14): the coroutine frame awaiting an op is destroyed
// while the op is in flight.
//
// Checks: a dropped op keeps its buffer until the kernel is done with it
// (graveyard until its final CQE), so bytes that arrive after the drop never
// land in a released buffer; and bytes the dropped op did not take are
// still readable, exactly once.
//
// Each round (seeded) drops a recv of L bytes on an empty socket in one of
// three ways, then the peer sends n > L bytes:
// - handle:  a child task returns while an op_handle it started is pending
//            (the handle's destructor drops the op);
// - child:   a child task<> suspended in `co_await io.recv(...)` is destroyed
//            unfinished (its op_awaiter's destructor drops the op);
// - reaped:  the recv already completed in the kernel (data was there) and
//            its completion is not reaped yet when the handle is destroyed
//            (the barrier, scenarios/cancel_common.hpp).
// In the first two the op is in the kernel (armed: a nop barrier went
// through the loop first) when it is dropped. After the peer's send, one
// more nop lets the loop enter the kernel before anything reads: a correct
// backend's cancel (sent by drop()) lands first and the orphan takes
// nothing; an op whose buffer was released without a cancel (uring-raw)
// takes L bytes into that released buffer: the ledger sees the release of a
// range in flight, the canary quarantine sees the kernel's write. The
// reader then accepts the stream continuing either where it was or L bytes
// later (a dropped recv may legitimately have taken its L bytes, as in the
// `reaped` case), and verifies every byte after that.
//
// Not on thread-per-stream backends: an op runs inside its stream's
// submit() there, so its frame cannot be destroyed while it is in flight.
#include <fmt/format.h>

#include <cerrno>
#include <memory>
#include <string>

#include "harness/io.hpp"
#include "harness/scenario.hpp"
#include "scenarios/cancel_common.hpp"
#include "scenarios/cancel_lifecycle.hpp"

namespace ringside {

namespace {

using scen::op_at;
using scen::range_of;
using scen::report_op;

enum class drop_way : uint8_t { handle, child, reaped };
constexpr std::string_view to_string(drop_way w) noexcept {
  switch (w) {
    case drop_way::handle: return "op_handle dropped by a returning task";
    case drop_way::child: return "child task destroyed while awaiting";
    case drop_way::reaped: return "dropped with its completion unreaped";
  }
  return "?";
}

// 16: the bytes beyond the dropped op's length the peer always sends, so
// the reader sees enough of them to tell where the stream continues (see
// gap_rx::take).
constexpr uint64_t k_min_left = 16;

class frame_drop final : public scenario {
 public:
  explicit frame_drop(const params& p) : p_(p) { scen::check_bs(p); }

  [[nodiscard]] std::string unsupported_reason(const backend_caps& caps) const override {
    if (caps.thread_per_stream)
      return "thread per stream: an op runs to its end inside its stream's submit(), so no frame can be "
             "destroyed while its op is in flight";
    return {};
  }

  // The reader's buffer, the dropped op's, and one more: a correct backend
  // keeps the previous round's dropped buffer until its CQE.
  [[nodiscard]] size_t buffers_needed() const override { return 3; }

  void prepare(backend& be) override { pair_ = scen::unix_pair(be); }

  void start(backend& be, buffer_pool& pool, run_ctx& ctx) override { be.spawn(run(be, pool, ctx)); }

 private:
  // Starts a recv and returns while it is pending: the handle is destroyed
  // with this frame. The nop first takes the recv into the kernel.
  static task<> return_with_pending(backend& be, int fd, buffer b, uint32_t len) {
    auto h = ringside::start(be, scen::payload_op(op_kind::recv, fd, std::move(b), 0, len));
    auto barrier = ringside::start(be, op{.kind = op_kind::nop});
    (void)co_await barrier;
  }
  // Awaits a recv; destroyed before it completes.
  static task<> await_recv(backend& be, int fd, buffer b, uint32_t len) {
    io x(be);
    auto c = co_await x.recv(fd, std::move(b), len);
    (void)c;
  }

  task<> run(backend& be, buffer_pool& pool, run_ctx& ctx) {
    stream_stats& st = ctx.new_stream();
    const int fd = pair_.a.get();
    const uint64_t bs = p_.bs;
    buffer rbuf = scen::take_buffer(pool, ctx, "cancel.frame_drop");
    if (!rbuf) co_return;
    scen::stream_tx tx(p_.seed, bs);
    scen::gap_rx rx(p_.seed, bs);
    prng sched(derive_seed(p_.seed, 14));
    io x(be);
    for (uint64_t round = 0; !rx.broken() && ctx.keep_going(); ++round) {
      const auto way = drop_way(sched.below(3));
      const uint32_t len = uint32_t(1 + sched.below(bs));      // the dropped recv's length L
      const uint64_t n = len + k_min_left + sched.below(bs);    // what the peer sends: more than L
      buffer d = scen::take_buffer(pool, ctx, "cancel.frame_drop");
      if (!d) break;
      const auto t0 = clock_type::now();
      switch (way) {
        case drop_way::handle:
          co_await return_with_pending(be, fd, std::move(d), len);
          break;
        case drop_way::child: {
          auto child = scen::start_child(await_recv(be, fd, std::move(d), len));
          // The recv reaches the kernel (armed: nothing to read) ...
          auto barrier = ringside::start(be, op{.kind = op_kind::nop});
          (void)co_await barrier;
          if (child.done()) {
            report_op(ctx, "io_error", op_at(op_kind::recv, round, to_string(way)), {},
                      "a recv on an empty socket completed");
            co_return;
          }
          // ... and its frame goes: ~child destroys the child task.
          break;
        }
        case drop_way::reaped: {
          if (int r = tx.push(pair_.b.get(), n); r < 0) {
            scen::report_io(ctx, "cancel.frame_drop: push", "", r);
            co_return;
          }
          auto barrier = ringside::start(be, op{.kind = op_kind::nop});
          auto h = ringside::start(be, scen::payload_op(op_kind::recv, fd, std::move(d), 0, len));
          (void)co_await barrier;
          // Inside the reap: the recv's completion waits behind the nop's;
          // destroying h now drops an op the kernel has finished.
          break;
        }
      }
      if (way != drop_way::reaped) {
        // The peer's bytes arrive after the drop.
        if (int r = tx.push(pair_.b.get(), n); r < 0) {
          scen::report_io(ctx, "cancel.frame_drop: push", "", r);
          co_return;
        }
      }
      // One pass through the kernel before reading: a dropped op that is
      // still armed takes its bytes now, a cancelled one nothing.
      (void)co_await x.nop();
      rx.expect_gap(len);
      // Named locals, not temporaries in the co_await operand, and no
      // `if (!co_await ...)`: g++ 12 miscompiles both.
      std::string reading = op_at(op_kind::recv, round, fmt::format("read after {}", to_string(way)));
      const bool read_ok = co_await scen::read_sent(be, ctx, fd, rbuf, bs, rx, tx.sent(), std::move(reading), st);
      if (!read_ok) co_return;
      st.latency.record(uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t0).count()));
      ++st.ops;
    }
    if (rx.broken()) co_return;
    co_await scen::expect_end(be, ctx, fd, pair_.b.get(), rbuf, bs, tx.sent(), "cancel.frame_drop");
  }

  params p_;
  scen::stream_pair pair_;
};

}  // namespace

void register_cancel_drop_scenarios() {
  register_scenario({
      .name = "cancel.frame_drop",
      .checks = "#14 frame destroyed with its op in flight: the op keeps its buffer until the kernel is done; "
                "later bytes never land in a released buffer and are read exactly once",
      .defaults = scen::cancel_defaults(64, 4096),
      .uses = scen::cancel_uses(),
      .make = [](const params& p) -> std::unique_ptr<scenario> { return std::make_unique<frame_drop>(p); },
  });
}

}  // namespace ringside
