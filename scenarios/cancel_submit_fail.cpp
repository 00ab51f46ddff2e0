// cancel.submit_fail (#12): submission fails transiently (EAGAIN / EBUSY
// injected) while ops are being submitted, cancelled and dropped.
//
// Checks: an op whose submission failed is still alive — buffer and all —
// until it is resolved: it completes exactly once, with its data (or
// -ECANCELED if its cancel won), and a cancel or drop of an op whose SQE is
// still queued releases its buffer only when the op is truly over.
//
// Each round (seeded): the backend is told to fail its next f submissions
// (backend::inject_submit_failures: io_uring fails kernel submits without
// entering, so SQEs stay queued and, once the SQ is full, ops wait in the
// loop's backlog; epoll's non-blocking tries say EAGAIN; blocking's
// syscalls say EINTR and restart); sometimes a burst of nops fills the SQ
// first; then 1..4 recvs start, each on its own socket pair whose stream
// bytes are already there, and each is (seeded) left to run, cancelled, or
// dropped at once — while its submission is still failing. Dropped recvs go
// to a separate idle pair that never carries data (what a dropped op takes
// is lost by definition, so it must not share a checked stream); on
// thread-per-stream backends an op has completed before its handle could be
// dropped, so "drop" rounds let it run there. Then every op is awaited; at
// the end every stream is drained and must have arrived whole, exactly once.
//
// uring-raw: a cancel completes at once with the buffer while the recv's
// SQE is still queued (the next round lends that buffer again: ledger; the
// orphaned recv then takes the next bytes, and the recv that expected them
// ends at its deadline: stream_integrity), and a drop releases a buffer whose
// SQE is still queued (ledger).
#include <fmt/format.h>

#include <array>
#include <cerrno>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "harness/io.hpp"
#include "harness/scenario.hpp"
#include "scenarios/cancel_common.hpp"

namespace ringside {

namespace {

using scen::op_at;
using scen::range_of;
using scen::report_op;

// 4: enough recvs in flight at once that cancels and drops interleave with
// ops that run, few enough that each has its own socket pair.
constexpr size_t k_pairs = 4;
// 96 nops: more than the smallest SQ the io_uring backends are sized with
// (64 entries for one stream), so with submits failing the last ones find
// the SQ full and wait in the loop's backlog without an SQE.
constexpr size_t k_burst = 96;
// 8: at most this many submissions fail in a row; each costs a loop pass.
constexpr uint64_t k_max_failures = 8;
// 32 KiB: the most unread stream bytes a pair holds before more are pushed
// (cancelled recvs leave theirs behind); far below AF_UNIX's socket buffer,
// so a push never waits.
constexpr uint64_t k_max_backlog = 32 * 1024;
// 1 KiB: largest push per recv, so k_max_backlog is reached only slowly.
constexpr uint64_t k_max_push = 1024;
// 1 s: a checked recv's bytes are in its socket before it is submitted, so
// it completes in microseconds however many submissions fail first. One
// still waiting after 1 s lost its bytes to an op its backend let go of
// (uring-raw's cancelled recv, still in the kernel, takes them): the
// deadline ends it -ECANCELED, reported as lost bytes instead of a hang
// the watchdog would take a minute to call.
constexpr uint64_t k_recv_deadline_ns = 1'000'000'000;

enum class fate : uint8_t { run, cancel, drop };
constexpr std::string_view to_string(fate f) noexcept {
  switch (f) {
    case fate::run: return "left to run";
    case fate::cancel: return "cancelled while its submission fails";
    case fate::drop: return "dropped while its submission fails";
  }
  return "?";
}

class submit_fail final : public scenario {
 public:
  explicit submit_fail(const params& p) : p_((scen::check_bs(p), p)) {}

  // One per checked pair, plus the dropped recvs' (a correct backend keeps
  // each until its CQE, which may come a round later): two rounds' worth.
  [[nodiscard]] size_t buffers_needed() const override { return k_pairs + 2 * k_pairs + 2; }

  void prepare(backend& be) override {
    for (auto& s : streams_) s.pair = scen::unix_pair(be);
    idle_ = scen::unix_pair(be);
  }

  void start(backend& be, buffer_pool& pool, run_ctx& ctx) override {
    ops_can_wait_ = !be.caps().thread_per_stream;
    be.spawn(run(be, pool, ctx));
  }

 private:
  struct checked_stream {
    scen::stream_pair pair;
    std::optional<scen::stream_tx> tx;
    std::optional<scen::stream_rx> rx;
    buffer buf;
  };

  task<> run(backend& be, buffer_pool& pool, run_ctx& ctx) {
    stream_stats& st = ctx.new_stream();
    const uint32_t bs = uint32_t(p_.bs);
    for (size_t i = 0; i < k_pairs; ++i) {
      checked_stream& s = streams_[i];
      s.tx.emplace(derive_seed(p_.seed, i), p_.bs);
      s.rx.emplace(derive_seed(p_.seed, i), p_.bs);
      s.buf = scen::take_buffer(pool, ctx, "cancel.submit_fail");
      if (!s.buf) co_return;
    }
    prng sched(derive_seed(p_.seed, 12));
    bool broken = false;
    for (uint64_t round = 0; !broken && ctx.keep_going(); ++round) {
      const auto t0 = clock_type::now();
      const int err = sched.below(2) == 0 ? EAGAIN : EBUSY;
      const uint32_t failures = uint32_t(1 + sched.below(k_max_failures));
      // A backend that cannot inject (-ENOTSUP) still runs the round: the
      // cancels and drops then race ordinary submissions.
      if (int r = be.inject_submit_failures(err, failures); r < 0 && r != -ENOTSUP) {
        scen::report_io(ctx, "cancel.submit_fail: inject_submit_failures", "", r);
        break;
      }
      std::deque<op_handle> burst;
      if (sched.below(4) == 0)
        for (size_t k = 0; k < k_burst; ++k) burst.emplace_back(be, op{.kind = op_kind::nop});

      const size_t n = 1 + sched.below(k_pairs);
      std::array<fate, k_pairs> fates{};
      std::array<std::optional<op_handle>, k_pairs> h;
      for (size_t i = 0; i < n; ++i) {
        fates[i] = fate(sched.below(3));
        // A thread-per-stream backend has finished the op inside submit():
        // destroying its handle would only throw the result away.
        if (fates[i] == fate::drop && !ops_can_wait_) fates[i] = fate::run;
        checked_stream& s = streams_[i];
        const uint64_t push = 1 + sched.below(std::min<uint64_t>(bs, k_max_push));
        if (fates[i] == fate::drop) {
          // Nothing ever arrives on the idle pair: the recv waits until its
          // cancel (or teardown) ends it.
          buffer b = scen::take_buffer(pool, ctx, "cancel.submit_fail");
          if (!b) {
            broken = true;
            break;
          }
          h[i].emplace(be, scen::payload_op(op_kind::recv, idle_.a.get(), std::move(b), 0, bs));
          continue;
        }
        // The recv's bytes are in the socket before it is submitted.
        if (s.tx->sent() - s.rx->total() < k_max_backlog) {
          if (int r = s.tx->push(s.pair.b.get(), push); r < 0) {
            scen::report_io(ctx, "cancel.submit_fail: push", "", r);
            broken = true;
            break;
          }
        }
        op o = scen::payload_op(op_kind::recv, s.pair.a.get(), std::move(s.buf), 0, bs);
        o.deadline_ns = k_recv_deadline_ns;
        h[i].emplace(be, std::move(o));
      }
      // Cancels and drops land while submissions still fail.
      std::array<int, k_pairs> cr{};
      for (size_t i = 0; i < n && h[i]; ++i) {
        if (fates[i] == fate::cancel) cr[i] = h[i]->cancel();
        if (fates[i] == fate::drop) h[i].reset();
      }

      for (auto& b : burst) {
        completion c = co_await b;
        if (c.res != 0 && !broken) {
          report_op(ctx, "io_error", op_at(op_kind::nop, round, "burst"), {}, fmt::format("nop completed with {}", c.res));
          broken = true;
        }
      }
      for (size_t i = 0; i < n; ++i) {
        if (!h[i]) continue;
        op_handle& hi = *h[i];  // named: g++ 12 would copy the awaitable `*h[i]`
        completion c = co_await hi;
        checked_stream& s = streams_[i];
        s.buf = std::move(c.buf);
        ++st.ops;
        if (broken) continue;  // every op is still awaited: none is left to be dropped
        const std::string where = op_at(op_kind::recv, round, fmt::format("pair {}, {}, {} x{}", i, to_string(fates[i]),
                                                                          err == EAGAIN ? "EAGAIN" : "EBUSY", failures));
        broken = !check(ctx, st, s, c.res, fates[i], cr[i], where);
      }
      st.latency.record(uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t0).count()));
    }
    // Nothing fails from here on; whatever cancelled recvs left in the
    // sockets is delivered now, and every stream must arrive whole.
    (void)be.inject_submit_failures(EAGAIN, 0);
    for (size_t i = 0; i < k_pairs && !broken && !ctx.stopped(); ++i) {
      checked_stream& s = streams_[i];
      if (!s.buf || s.rx->broken()) break;
      // EOF after the last byte: a loss ends the drain instead of waiting.
      if (int r = scen::shutdown_fd(s.pair.b.get(), SHUT_WR); r < 0) scen::report_io(ctx, "cancel.submit_fail: shutdown", "", r);
      s.buf = co_await scen::recv_until(be, ctx, s.pair.a.get(), std::move(s.buf), uint32_t(p_.bs), *s.rx, s.tx->sent(), ~0ull);
      s.rx->expect_total(ctx, op_at(op_kind::recv, ~0ull, fmt::format("pair {} end", i)), s.tx->sent());
    }
  }

  // One recv's completion; false when the run cannot go on.
  bool check(run_ctx& ctx, stream_stats& st, checked_stream& s, int32_t res, fate f, int cancel_res,
             const std::string& where) {
    if (!s.buf) {
      report_op(ctx, "io_error", where, {}, "completion without its buffer");
      return false;
    }
    if (res == -ECANCELED) {
      if (f == fate::run) {
        // Its bytes were in the socket: they went elsewhere, or the
        // backend dropped them with its result. Lost bytes, either way.
        report_op(ctx, "stream_integrity", where, range_of(s.buf, 0, p_.bs),
                  fmt::format("never cancelled, yet completed -ECANCELED: the {} bytes waiting for it were lost (taken "
                              "by an op its backend let go of, ended by its 1 s deadline, or dropped with its result)",
                              s.tx->sent() - s.rx->total()));
        return false;
      }
      if (cancel_res == -ENOENT) {
        report_op(ctx, "lost_result", where, range_of(s.buf, 0, p_.bs),
                  "cancel() said the op was no longer pending, yet it completed -ECANCELED");
        return false;
      }
      return true;  // cancelled for real: its bytes are still in the socket
    }
    if (res <= 0 || uint64_t(res) > p_.bs) {
      report_op(ctx, "io_error", where, range_of(s.buf, 0, p_.bs),
                fmt::format("recv completed with {} (cancel: {})", res, scen::cancel_text(cancel_res)));
      return false;
    }
    st.bytes += uint64_t(res);
    return s.rx->take(ctx, where, s.buf, 0, uint64_t(res));
  }

  params p_;
  std::array<checked_stream, k_pairs> streams_;
  scen::stream_pair idle_;  // the dropped recvs' socket: never written to
  bool ops_can_wait_ = true;
};

}  // namespace

void register_cancel_submit_fail_scenarios() {
  register_scenario({
      .name = "cancel.submit_fail",
      .checks = "#12 submissions fail (EAGAIN/EBUSY injected) while ops are cancelled and dropped: every op stays "
                "alive until resolved, completes once, data intact",
      .defaults = scen::cancel_defaults(64, 4096),
      .uses = scen::cancel_uses(),
      .make = [](const params& p) -> std::unique_ptr<scenario> { return std::make_unique<submit_fail>(p); },
  });
}

}  // namespace ringside
