// cancel.* scenarios around closing a descriptor that has an op on it
// (DESIGN.md's safety catalogue #10 and #11).
//
// Both run two streams (scenarios/cancel_lifecycle.hpp): a worker whose recv
// is pending — on a thread-per-stream backend it blocks in its submit() —
// and a canceller that closes and cancels for it, as a second thread of a
// real program would. A backend's close op that runs while an op is pending
// on the fd is exercised only where the op does not hold the stream's
// thread (caps.thread_per_stream false): with a thread per stream, a close
// from another thread races the op's syscall for the fd number (#11's bug).
//
// cancel.close_pending (#10): one connection per round.
//   1. Its data is already there: a recv completes in the kernel, and the
//      user, about to close, cancels it before its completion is reaped
//      (the barrier, scenarios/cancel_common.hpp). The cancel loses: the
//      bytes must be delivered.
//   2. Nothing is there: a recv is pending. The user closes correctly:
//      cancel, await the op's one completion, then close — or (seeded, one-
//      loop backends) the backend's close op first, then cancel, then await.
//      The op's buffer goes back to the pool at once: it is the user's
//      again, so a backend that handed it back before the kernel let go
//      (uring-raw) shows as a ledger violation.
//   3. Bytes the peer sends after that completion must not be eaten: they
//      are read, exactly once, by a fresh recv (when not closed yet).
//   4. The fd is closed through the backend's close op, and nothing may
//      hold the socket open any more: the peer's send fails with EPIPE.
//      An op that lives on after its completion was delivered fails this.
// uring-raw: stream_integrity (its cancel of the finished recv discards the
// bytes), and ledger (the pending recv's buffer released while the kernel
// still holds it).
//
// cancel.fd_reuse (#11): one old and one new connection per round. A recv
// is pending on the old socket; the old fd is closed (cancel-await-close, or
// seeded on one-loop backends: the close op first, the recv still pending);
// a new socket pair then gets the old number (the kernel hands out the
// lowest free one); a recv is pending on it; the canceller cancels the OLD
// op by its id (stale by then, or still pending after a close-first) and
// sends the new peer's bytes. The new recv must complete with those bytes —
// an id names one op, never "whatever is on fd N" — and the old peer's send
// must fail with EPIPE once the old op completed. uring-raw: ledger (the old
// recv's buffer released while the kernel holds it); its cancels are by id,
// so the new socket's op is never touched.
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <optional>
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

// The end of a payload completion a scenario can use: bytes (checked into
// rx), or -ECANCELED. Anything else, or a buffer not handed back, is
// reported. A cancel that said the op was no longer pending (-ENOENT) while
// the op completed -ECANCELED is a lost result, unless something else (a
// close op) may have ended the op.
// Returns false when the round cannot go on.
bool take_result(run_ctx& ctx, stream_stats& st, scen::stream_rx& rx, const completion& c, uint32_t asked,
                 int cancel_res, bool others_may_cancel, const std::string& where) {
  if (!c.buf) {
    report_op(ctx, "io_error", where, {}, "completion without its buffer");
    return false;
  }
  if (c.res == -ECANCELED) {
    if (cancel_res == -ENOENT && !others_may_cancel) {
      report_op(ctx, "lost_result", where, range_of(c.buf, 0, asked),
                "cancel() said the op was no longer pending, yet it completed -ECANCELED");
      return false;
    }
    return true;
  }
  if (c.res <= 0 || uint32_t(c.res) > asked) {
    report_op(ctx, "io_error", where, range_of(c.buf, 0, asked),
              fmt::format("recv completed with {} (cancel: {})", c.res, scen::cancel_text(cancel_res)));
    return false;
  }
  st.bytes += uint64_t(c.res);
  return rx.take(ctx, where, c.buf, 0, uint64_t(c.res));
}

// Closes fd through the backend (the descriptor is then the kernel's to
// free: released from its unique_fd first). False (reported) on failure.
task<bool> close_through(backend& be, run_ctx& ctx, scen::stream_pair& p, const std::string& where) {
  io x(be);
  const int fd = p.a.release();
  auto c = co_await x.close(fd);
  if (c.res != 0) {
    report_op(ctx, "io_error", where, {}, fmt::format("close op: {}", scen::errno_text(-c.res)));
    co_return false;
  }
  co_return true;
}

// The peer of a closed end: its send must fail with EPIPE. False (reported)
// if something still holds the socket open.
bool expect_peer_closed(run_ctx& ctx, int peer, const std::string& where) {
  const int64_t r = scen::probe_peer_send(peer);
  if (r == -EPIPE) return true;
  if (r > 0)
    report_op(ctx, "stream_integrity", where, {},
              "the peer could still send after the fd was closed and its op completed: an op lives on and "
              "eats the peer's data");
  else
    report_op(ctx, "io_error", where, {}, fmt::format("peer send after close: {}", scen::errno_text(int(-r))));
  return false;
}

class close_scenario : public scenario {
 public:
  explicit close_scenario(const params& p) : p_(p), tx_(p.seed, p.bs), rx_(p.seed, p.bs), canceller_(tx_) {
    scen::check_bs(p);
  }

  // The worker's read buffer, the op being cancelled, and the one a
  // correct backend may still hold for a moment.
  [[nodiscard]] size_t buffers_needed() const override { return 4; }
  // Connections are made per round, in the worker.
  void prepare(backend& be) override { (void)be; }

  void start(backend& be, buffer_pool& pool, run_ctx& ctx) override {
    be.spawn(worker(be, pool, ctx));
    be.spawn(canceller_.run(be));
  }

 protected:
  virtual task<> rounds(backend& be, buffer_pool& pool, run_ctx& ctx, stream_stats& st) = 0;

  // Reads until rx has `until` bytes, with rbuf_.
  task<bool> read_to(backend& be, run_ctx& ctx, stream_stats& st, int fd, uint64_t until, uint64_t round) {
    io x(be);
    const uint32_t bs = uint32_t(p_.bs);
    while (rx_.total() < until && !rx_.broken()) {
      const uint32_t want = uint32_t(std::min<uint64_t>(bs, until - rx_.total()));
      auto c = co_await x.recv(fd, std::move(rbuf_), want);
      rbuf_ = std::move(c.buf);
      const std::string where = op_at(op_kind::recv, round, "read");
      if (c.res <= 0 || !rbuf_ || uint32_t(c.res) > want) {
        rx_.mark_broken();
        report_op(ctx, c.res == 0 ? "stream_integrity" : "io_error", where, range_of(rbuf_, 0, want),
                  c.res == 0 ? fmt::format("EOF after {} of {} bytes", rx_.total(), until)
                             : fmt::format("recv: {}", c.res < 0 ? scen::errno_text(-c.res) : "no buffer"));
        co_return false;
      }
      st.bytes += uint64_t(c.res);
      if (!rx_.take(ctx, where, rbuf_, 0, uint64_t(c.res))) co_return false;
    }
    co_return !rx_.broken();
  }

  params p_;
  scen::stream_tx tx_;
  scen::stream_rx rx_;
  scen::remote_canceller canceller_;
  buffer rbuf_;
  bool close_first_allowed_ = false;

 private:
  task<> worker(backend& be, buffer_pool& pool, run_ctx& ctx) {
    scen::stop_on_exit stop{canceller_};
    stream_stats& st = ctx.new_stream();
    close_first_allowed_ = !be.caps().thread_per_stream;
    rbuf_ = scen::take_buffer(pool, ctx, "cancel: read buffer");
    if (!rbuf_) co_return;
    co_await rounds(be, pool, ctx, st);
    // Everything sent was delivered once.
    if (!rx_.broken() && !ctx.stopped()) rx_.expect_total(ctx, op_at(op_kind::recv, ~0ull, "end"), tx_.sent());
  }
};

// ---------------------------------------------------------------- #10 ----

class close_pending final : public close_scenario {
 public:
  using close_scenario::close_scenario;

 private:
  task<> rounds(backend& be, buffer_pool& pool, run_ctx& ctx, stream_stats& st) override {
    prng sched(derive_seed(p_.seed, 10));
    const uint32_t bs = uint32_t(p_.bs);
    for (uint64_t round = 0; !rx_.broken() && ctx.keep_going(); ++round) {
      const auto t0 = clock_type::now();
      scen::stream_pair pair = scen::unix_pair(be);
      const int fd = pair.a.get();
      const int peer = pair.b.get();

      // 1. The data is already there when the user decides to close.
      {
        buffer b = scen::take_buffer(pool, ctx, "cancel.close_pending");
        if (!b) co_return;
        if (int r = tx_.push(peer, 1 + sched.below(bs)); r < 0) co_return scen::report_io(ctx, "push", "", r);
        auto barrier = ringside::start(be, op{.kind = op_kind::nop});
        auto target = ringside::start(be, scen::payload_op(op_kind::recv, fd, std::move(b), 0, bs));
        (void)co_await barrier;
        const int cr = target.cancel();
        completion c = co_await target;
        if (!take_result(ctx, st, rx_, c, bs, cr, false,
                         op_at(op_kind::recv, round, fmt::format("completed, cancel {}", scen::cancel_text(cr)))))
          co_return;
      }  // its buffer goes back to the pool: the completion made it the user's

      // 2. Nothing there: a pending recv, closed correctly.
      const bool close_first = close_first_allowed_ && sched.below(2) == 0;
      const std::string how = close_first ? "close op, then cancel" : "cancel, then close";
      {
        buffer b = scen::take_buffer(pool, ctx, "cancel.close_pending");
        if (!b) co_return;
        canceller_.ask({.close_fd = close_first ? fd : -1, .cancel_posted = true});
        if (close_first) (void)pair.a.release();  // the canceller's close op frees it
        scen::posted_op target(be, scen::payload_op(op_kind::recv, fd, std::move(b), 0, bs), canceller_.post());
        completion c = co_await scen::await_op(target);
        if (!co_await canceller_.finished(be)) co_return ctx.report("hang", "cancel.close_pending: canceller stuck");
        const std::string where = op_at(op_kind::recv, round, fmt::format("pending, {}", how));
        if (close_first && canceller_.close_result() != 0)
          co_return report_op(ctx, "io_error", where, {},
                              fmt::format("close op: {}", scen::errno_text(-canceller_.close_result())));
        if (!take_result(ctx, st, rx_, c, bs, canceller_.cancel_result(), close_first, where)) co_return;
      }  // released now: the completion was delivered, so the kernel is done with it

      // 3. Bytes sent after the completion are still there, once.
      if (!close_first) {
        if (int r = tx_.push(peer, 1 + sched.below(bs)); r < 0) co_return scen::report_io(ctx, "push", "", r);
        if (!co_await read_to(be, ctx, st, fd, tx_.sent(), round)) co_return;
        // 4. Closed through the backend.
        if (!co_await close_through(be, ctx, pair, op_at(op_kind::close, round))) co_return;
      }
      if (!expect_peer_closed(ctx, peer, op_at(op_kind::send, round, fmt::format("peer, after {}", how)))) co_return;
      st.latency.record(uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t0).count()));
      ++st.ops;
    }
  }
};

// ---------------------------------------------------------------- #11 ----

class fd_reuse final : public close_scenario {
 public:
  using close_scenario::close_scenario;

 private:
  task<> rounds(backend& be, buffer_pool& pool, run_ctx& ctx, stream_stats& st) override {
    prng sched(derive_seed(p_.seed, 11));
    const uint32_t bs = uint32_t(p_.bs);
    for (uint64_t round = 0; !rx_.broken() && ctx.keep_going(); ++round) {
      const auto t0 = clock_type::now();
      scen::stream_pair old_pair = scen::unix_pair(be);
      const int old_fd = old_pair.a.get();
      const bool close_first = close_first_allowed_ && sched.below(2) == 0;
      const std::string how = close_first ? "old fd closed with its recv pending" : "old recv cancelled, then closed";

      // The old socket's recv, pending.
      buffer b = scen::take_buffer(pool, ctx, "cancel.fd_reuse");
      if (!b) co_return;
      std::optional<scen::posted_op> old_op;
      op_id old_id;
      if (close_first) {
        // One loop: the recv stays pending in this stream while the old fd
        // is closed under it and the new socket takes the number.
        old_op.emplace(be, scen::payload_op(op_kind::recv, old_fd, std::move(b), 0, bs));
        old_id = old_op->id();
        (void)old_pair.a.release();  // closed by the close op
        canceller_.ask({.close_fd = old_fd});
        if (!co_await canceller_.finished(be)) co_return ctx.report("hang", "cancel.fd_reuse: canceller stuck");
        if (canceller_.close_result() != 0)
          co_return report_op(ctx, "io_error", op_at(op_kind::close, round), {},
                              fmt::format("close op: {}", scen::errno_text(-canceller_.close_result())));
      } else {
        canceller_.ask({.cancel_posted = true});
        scen::posted_op target(be, scen::payload_op(op_kind::recv, old_fd, std::move(b), 0, bs), canceller_.post());
        completion c = co_await scen::await_op(target);
        if (!co_await canceller_.finished(be)) co_return ctx.report("hang", "cancel.fd_reuse: canceller stuck");
        old_id = target.id();
        if (!take_result(ctx, st, rx_, c, bs, canceller_.cancel_result(), false,
                         op_at(op_kind::recv, round, "old, cancelled")))
          co_return;
        c.buf.reset();  // the user's again: back to the pool now
        if (!co_await close_through(be, ctx, old_pair, op_at(op_kind::close, round, "old"))) co_return;
      }

      // The new socket, under the old number.
      scen::stream_pair new_pair = scen::unix_pair(be);
      const int new_fd = new_pair.a.get();
      if (new_fd != old_fd)
        co_return report_op(ctx, "error", op_at(op_kind::recv, round, "new"), {},
                            fmt::format("the new socket got fd {}, not the old number {}: the scenario's premise "
                                        "(the lowest free number is reused) did not hold",
                                        new_fd, old_fd));
      buffer nb = scen::take_buffer(pool, ctx, "cancel.fd_reuse");
      if (!nb) co_return;
      const uint64_t n = 1 + sched.below(bs);
      const uint64_t until = tx_.sent() + n;
      // The old op is cancelled by its id while the new one waits on the
      // same number; then the new peer's bytes come.
      canceller_.ask({.cancel_other = old_id, .push_fd = new_pair.b.get(), .push_len = n});
      scen::posted_op fresh(be, scen::payload_op(op_kind::recv, new_fd, std::move(nb), 0, bs));
      completion c = co_await scen::await_op(fresh);
      if (!co_await canceller_.finished(be)) co_return ctx.report("hang", "cancel.fd_reuse: canceller stuck");
      if (canceller_.push_result() < 0) co_return scen::report_io(ctx, "push", "", canceller_.push_result());
      const std::string where =
          op_at(op_kind::recv, round, fmt::format("new fd {} ({}), old op cancel {}", new_fd, how,
                                                  scen::cancel_text(canceller_.cancel_other_result())));
      if (c.res == -ECANCELED)
        co_return report_op(ctx, "lost_result", where, range_of(c.buf, 0, bs),
                            "the new socket's recv completed -ECANCELED: a cancel meant for the old op on the same "
                            "fd number hit it");
      if (!take_result(ctx, st, rx_, c, bs, 0, false, where)) co_return;
      c.buf.reset();
      if (!close_first && canceller_.cancel_other_result() != -ENOENT)
        co_return report_op(ctx, "exactly_once", where, {},
                            fmt::format("cancel of the old op, completed before, said {} (expected -ENOENT)",
                                        canceller_.cancel_other_result()));
      if (old_op) {
        completion oc = co_await scen::await_op(*old_op);
        if (!take_result(ctx, st, rx_, oc, bs, canceller_.cancel_other_result(), true,
                         op_at(op_kind::recv, round, "old, closed first")))
          co_return;
        old_op.reset();  // its buffer goes back to the pool with it
      }
      if (!co_await read_to(be, ctx, st, new_fd, until, round)) co_return;
      // Nothing holds the old socket any more; then the new one is closed too.
      if (!expect_peer_closed(ctx, old_pair.b.get(), op_at(op_kind::send, round, "old peer"))) co_return;
      if (!co_await close_through(be, ctx, new_pair, op_at(op_kind::close, round, "new"))) co_return;
      if (!expect_peer_closed(ctx, new_pair.b.get(), op_at(op_kind::send, round, "new peer"))) co_return;
      st.latency.record(uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t0).count()));
      ++st.ops;
    }
  }
};

}  // namespace

void register_cancel_close_scenarios() {
  register_scenario({
      .name = "cancel.close_pending",
      .checks = "#10 close with a recv pending: cancel, await its one completion, close; no byte eaten afterwards, "
                "nothing holds the socket",
      .defaults = scen::cancel_defaults(64, 4096),
      .uses = scen::cancel_uses(),
      .make = [](const params& p) -> std::unique_ptr<scenario> { return std::make_unique<close_pending>(p); },
  });
  register_scenario({
      .name = "cancel.fd_reuse",
      .checks = "#11 fd number reused after close: cancelling the old op (by id) never touches the new socket's op",
      .defaults = scen::cancel_defaults(64, 4096),
      .uses = scen::cancel_uses(),
      .make = [](const params& p) -> std::unique_ptr<scenario> { return std::make_unique<fd_reuse>(p); },
  });
}

}  // namespace ringside
