// cancel.storm (#17, DESIGN.md's safety catalogue): 10,000 submit-then-cancel
// pairs (--ops), a seeded mix of
//   - a recv on an empty socket (the cancel wins: -ECANCELED),
//   - a recv whose data is already there (the cancel loses: the bytes),
//   - a nop (the cancel loses, or wins before submission: 0 or -ECANCELED),
//   - a 10 s timeout (the cancel wins: -ECANCELED).
// Every target completes exactly once (the exactly-once detector counts; the
// op handles make a second completion impossible to miss), every result is
// one its op may have, and every byte offered is delivered once, in order:
// a rare mishandled race anywhere in 10,000 shows. Ops with nothing to do
// (the empty recv, the timeout) block their stream on a thread-per-stream
// backend, so their cancel comes from another stream (scenarios/
// cancel_race.hpp); the others are cancelled by their own stream right after
// submission (on io_uring the cancel then follows the op into the same
// enter).
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

// 10 s: never elapses within a run; only the cancel ends it.
constexpr uint64_t k_long_timeout_ns = 10'000'000'000ull;

class storm final : public scenario {
 public:
  explicit storm(const params& p) : p_(p) { scen::check_bs(p); }

  // The recv's buffer and the drain's.
  [[nodiscard]] size_t buffers_needed() const override { return 2; }

  void prepare(backend& be) override { pair_ = scen::unix_pair(be); }
  void start(backend& be, buffer_pool& pool, run_ctx& ctx) override {
    be.spawn(run(be, pool, ctx));
    be.spawn(canceller_.run(be));
  }

 private:
  enum class kind : uint8_t { recv_empty, recv_data, nop, timeout };

  task<> run(backend& be, buffer_pool& pool, run_ctx& ctx) {
    scen::stop_race_canceller stop{canceller_};
    stream_stats& st = ctx.new_stream();
    io x(be);
    const int fd = pair_.a.get();
    const uint32_t bs = uint32_t(p_.bs);
    scen::stream_tx tx(p_.seed, bs);
    scen::stream_rx rx(p_.seed, bs);
    prng sched(derive_seed(p_.seed, 17));
    buffer drain = scen::take_buffer(pool, ctx, "cancel.storm");
    if (!drain) co_return;
    for (uint64_t i = 0; !rx.broken() && ctx.keep_going(); ++i) {
      const auto k = kind(sched.below(4));
      // A fresh buffer per recv, released as soon as its completion is in
      // hand (below): a buffer handed back early is then released while
      // the kernel holds it (the ledger), whatever the seed's mix.
      buffer buf;
      if (k == kind::recv_empty || k == kind::recv_data) {
        buf = scen::take_buffer(pool, ctx, "cancel.storm");
        if (!buf) co_return;
      }
      const auto t0 = clock_type::now();
      completion c;
      int cr = 1;
      op_kind ok = op_kind::recv;
      uint64_t n = 0;
      switch (k) {
        case kind::recv_empty:
        case kind::timeout: {
          // Pending until the canceller stream cancels it.
          op o = k == kind::timeout ? op{.kind = op_kind::timeout, .timeout_ns = k_long_timeout_ns}
                                    : scen::payload_op(op_kind::recv, fd, std::move(buf), 0, bs);
          ok = o.kind;
          canceller_.ask();
          scen::posted_op t(be, std::move(o), canceller_.post());
          c = co_await scen::await_op(t);
          // Waited for here, not in a child task (race_canceller::acted).
          for (uint64_t i = 0; i < scen::k_poll_limit && !canceller_.acted(); ++i)
            (void)co_await x.sleep_ns(scen::k_poll_ns);
          cr = canceller_.result();
          break;
        }
        case kind::recv_data:
        case kind::nop: {
          op o = op{.kind = op_kind::nop};
          if (k == kind::recv_data) {
            n = 1 + sched.below(bs);
            if (int r = tx.push(pair_.b.get(), n); r < 0) {
              scen::report_io(ctx, "cancel.storm: push", "", r);
              co_return;
            }
            o = scen::payload_op(op_kind::recv, fd, std::move(buf), 0, bs);
          }
          ok = o.kind;
          auto t = ringside::start(be, std::move(o));
          cr = t.cancel();
          c = co_await t;
          break;
        }
      }
      st.latency.record(
          uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t0).count()));
      ++st.ops;
      if (ok == op_kind::recv) {
        buf = std::move(c.buf);
        if (!buf) {
          report_op(ctx, "io_error", op_at(ok, i), {}, "completion without its buffer");
          co_return;
        }
      }
      // Which results each op may have.
      const bool pending_kind = k == kind::recv_empty || k == kind::timeout;
      const bool ok_result = pending_kind            ? c.res == -ECANCELED
                             : k == kind::nop        ? c.res == 0 || c.res == -ECANCELED
                                                     : c.res == -ECANCELED || (c.res > 0 && uint32_t(c.res) <= bs);
      if (!ok_result || (pending_kind && cr != 0)) {
        report_op(ctx, c.res > 0 && pending_kind ? "stream_integrity" : "io_error",
                  op_at(ok, i, fmt::format("cancel {}", scen::cancel_text(cr))), {},
                  fmt::format("completed {} ({}), cancel said {}", c.res,
                              c.res < 0 ? scen::errno_text(-c.res) : std::string("bytes"), scen::cancel_text(cr)));
        co_return;
      }
      if (k != kind::recv_data) continue;
      const std::string name = op_at(ok, i, fmt::format("data, cancel {}", scen::cancel_text(cr)));
      const std::string range = range_of(buf, 0, bs);
      if (c.res > 0) {
        st.bytes += uint64_t(c.res);
        if (!rx.take(ctx, name, buf, 0, uint64_t(c.res))) co_return;
      }
      buf.reset();
      const uint64_t owed = tx.sent() - rx.total();
      if (owed == 0) continue;
      // Cancelled (or short): the rest must still be on the socket once the
      // kernel has had its say.
      (void)co_await x.nop();
      if (const int64_t q = scen::queued_bytes(fd); q < 0 || uint64_t(q) != owed) {
        report_op(ctx, "lost_result", name, range,
                  q < 0 ? fmt::format("FIONREAD: {}", scen::errno_text(int(-q)))
                        : fmt::format("the recv completed {}; {} bytes were not delivered, but {} are on the socket: "
                                      "a success reported as cancelled",
                                      c.res, owed, q));
        co_return;
      }
      drain = co_await scen::recv_until(be, ctx, fd, std::move(drain), bs, rx, tx.sent(), i);
      if (!drain) co_return;
    }
    rx.expect_total(ctx, op_at(op_kind::recv, ~0ull, "end"), tx.sent());
  }

  params p_;
  scen::stream_pair pair_;
  scen::race_canceller canceller_;
};

}  // namespace

void register_cancel_storm_scenarios() {
  register_scenario({
      .name = "cancel.storm",
      .checks = "#17 10,000 submit-then-cancel pairs (empty recv, recv with data, nop, timeout): exactly one "
                "completion each, with a result its op may have, and every byte delivered once",
      // 512: small messages keep 10,000 pairs well inside a second.
      .defaults = scen::cancel_defaults(10000, 512),
      .uses = scen::cancel_uses(),
      .make = [](const params& p) -> std::unique_ptr<scenario> { return std::make_unique<storm>(p); },
  });
}

}  // namespace ringside
