// cancel.* scenarios where the cancel races an op the kernel is running or
// has finished (DESIGN.md's safety catalogue): #4 ealready, #5 enoent, #15
// stop_vs_complete, #16 partial_write. In every one the cancel loses, fully
// or in part, and the op's real result must reach the caller: bytes moved,
// an accepted connection, a partial count. A backend that reports such an op
// cancelled (uring-raw: -ECANCELED at once, with the buffer, whatever the
// kernel then does) loses that result, and hands back a buffer the kernel
// still holds (the ledger).
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <system_error>
#include <vector>

#include "harness/io.hpp"
#include "harness/scenario.hpp"
#include "scenarios/cancel_common.hpp"
#include "scenarios/cancel_race.hpp"
#include "scenarios/common.hpp"

namespace ringside {

namespace {

using scen::op_at;
using scen::range_of;
using scen::report_op;

uint64_t elapsed_ns(clock_type::time_point t0) {
  return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t0).count());
}

// 16 bytes: enough that a range matching the expected pattern by chance
// (2^-128) never passes for a write that happened.
constexpr uint64_t k_probe = 16;

// ---------------------------------------------------------------- #4 ----
// cancel.ealready: the cancel reaches a write that an io_uring worker is
// already running; the kernel's ASYNC_CANCEL says -EALREADY and the write
// ends on its own CQE (complete, or -ECANCELED if the worker had not begun
// the copy). Correct: the buffer comes back only with that CQE. Buggy: it
// comes back on the cancel (uring-raw: at once; the test-only fault
// release-on-cancel-cqe: at the cancel's CQE, which comes first) while the
// kernel is still reading it: the ledger.
//
// Deterministic "running": both writes go to one file with IOSQE_ASYNC
// (op.force_async). io-wq runs writes to one inode in order, in one worker
// (hashed work), so when the small lead write's completion arrives the worker
// has already moved on to the large target. The target is big (--bs, 1 MiB)
// so the cancel, a loop round trip later, finds it in the worker. Measured
// on 6.18/ext4 at 1 MiB: -EALREADY in ~3 of 4 rounds (the write then
// completes in full, or -ECANCELED when the worker had taken it but not yet
// begun the copy), -ENOENT (already done) in the rest; never a cancel of a
// write still queued. Which one a round gets is up to the kernel; the
// verdict is not: every outcome is correct for a correct backend, and every
// one lets uring-raw release the buffer before the write's CQE.
// A tail write, hashed behind the target, completes only after it: then
// the file says what the kernel really did, which must match what the
// completion said (a write reported cancelled must not have happened).
// Where file I/O runs inline (epoll, blocking) the same code runs with every
// write already complete, and the cancel says -ENOENT.
class ealready final : public scenario {
 public:
  explicit ealready(const params& p) : p_(p), place_(p) {
    scen::check_bs(p);
    if (p.bs < 2 * k_lead) throw usage_error(fmt::format("--bs {}: at least {} for cancel.ealready", p.bs, 2 * k_lead));
  }

  [[nodiscard]] std::string unsupported_reason(const backend_caps& caps) const override {
    return caps.file_io ? std::string{} : "no regular-file I/O";
  }
  // Lead, target, tail write, and the read-back.
  [[nodiscard]] size_t buffers_needed() const override { return 4; }

  void prepare(backend& be) override {
    file_ = place_.create("data");
    be.adopt(file_.get());
  }
  void start(backend& be, buffer_pool& pool, run_ctx& ctx) override { be.spawn(run(be, pool, ctx)); }

 private:
  // 4 KiB: one page, so the lead write is quick and is not itself the op the
  // worker is busy with when the cancel lands.
  static constexpr uint64_t k_lead = 4096;

  op write_op(buffer b, uint64_t len, uint64_t off) const {
    op o = scen::payload_op(op_kind::write, file_.get(), std::move(b), 0, len, off);
    o.force_async = true;
    return o;
  }

  task<> run(backend& be, buffer_pool& pool, run_ctx& ctx) {
    stream_stats& st = ctx.new_stream();
    const uint64_t bs = p_.bs;
    // Round r writes the pattern's bytes [r * bs, (r + 1) * bs) at file
    // offset 0, so every round's content differs from the last one's.
    const pattern pat(p_.seed, bs, verify_mode::full);
    buffer check = scen::take_buffer(pool, ctx, "cancel.ealready");
    if (!check) co_return;
    for (uint64_t round = 0; ctx.keep_going(); ++round) {
      buffer lead = scen::take_buffer(pool, ctx, "cancel.ealready");
      buffer target = scen::take_buffer(pool, ctx, "cancel.ealready");
      if (!lead || !target) co_return;
      pat.fill(lead.first(k_lead), 0);
      pat.fill(target.first(bs), round * bs);
      const auto t0 = clock_type::now();
      // The lead goes past the target's range, so the two never overlap.
      auto w = ringside::start(be, write_op(std::move(lead), k_lead, bs));
      auto t = ringside::start(be, write_op(std::move(target), bs, 0));
      completion cw = co_await w;
      const int cr = t.cancel();
      completion c = co_await t;
      st.latency.record(elapsed_ns(t0));
      ++st.ops;
      const std::string what = fmt::format("cancel {}", scen::cancel_text(cr));
      if (!c.buf || !cw.buf) {
        report_op(ctx, "io_error", op_at(op_kind::write, round, what), {}, "completion without its buffer");
        co_return;
      }
      const std::string range = range_of(c.buf, 0, bs);
      // Both buffers go back to the pool the moment their completions are
      // in hand: a backend that handed the target back early has it
      // released while the worker still copies from it.
      cw.buf.reset();
      c.buf.reset();
      if (cw.res != int32_t(k_lead)) {
        scen::report_io(ctx, "cancel.ealready: lead write", "", cw.res);
        co_return;
      }
      if (c.res != -ECANCELED && (c.res <= 0 || uint64_t(c.res) > bs)) {
        report_op(ctx, "io_error", op_at(op_kind::write, round, what), range, fmt::format("write: {}", c.res));
        co_return;
      }
      if (c.res > 0) st.bytes += uint64_t(c.res);
      // The tail runs after the target in the kernel's worker: after it,
      // the file holds whatever the target really wrote.
      buffer tail = scen::take_buffer(pool, ctx, "cancel.ealready");
      if (!tail) co_return;
      pat.fill(tail.first(k_lead), 0);
      completion ct = co_await io(be).submit(write_op(std::move(tail), k_lead, bs));
      if (ct.res != int32_t(k_lead)) {
        scen::report_io(ctx, "cancel.ealready: tail write", "", ct.res);
        co_return;
      }
      // What the file says, with a plain pread (the race's environment).
      const uint64_t want = c.res > 0 ? uint64_t(c.res) : k_probe;
      const int64_t got = sys::pread(file_.get(), check.first(want), 0);
      if (got != int64_t(want)) {
        scen::report_io(ctx, "cancel.ealready: read back", "", got < 0 ? got : -EIO);
        co_return;
      }
      const auto bad = pat.check(check.first(want), round * bs);
      if (c.res > 0 && bad) {
        report_op(ctx, "data_mismatch", op_at(op_kind::write, round, what), range,
                  fmt::format("the write reported {} bytes, but file byte {} is not what it wrote", c.res,
                              *bad - round * bs));
        co_return;
      }
      if (c.res == -ECANCELED && !bad) {
        report_op(ctx, "lost_result", op_at(op_kind::write, round, what), range,
                  "the write completed -ECANCELED, yet the kernel wrote its bytes to the file: its real result "
                  "was thrown away");
        co_return;
      }
    }
  }

  params p_;
  scen::file_place place_;
  unique_fd file_;
};

// ---------------------------------------------------------------- #5 ----
// cancel.enoent: the op has completed in the kernel but its completion is
// not reaped yet (the barrier, scenarios/cancel_common.hpp), so the kernel's
// ASYNC_CANCEL finds nothing (-ENOENT) and the op's result must be used. A
// seeded mix of op kinds, each with its own way to show a thrown-away result:
//   send   (room in the socket buffer): the peer has the bytes, so a send
//          reported cancelled would be sent again (lost_result);
//   accept (a connection queued): the connection is delivered and served;
//          reported cancelled, the kernel's fd is closed unserved and the
//          client sees EOF (connection_leak);
//   read   (a file range): the bytes are checked; reported cancelled, the
//          buffer came back while the kernel held it (the ledger);
//   write  (a file range): the file must hold what the completion says; a
//          write reported cancelled whose bytes are in the file: lost_result.
// Where ops complete inline (epoll, blocking) the same code runs with each op
// complete before the cancel, which says -ENOENT.
class enoent final : public scenario {
 public:
  explicit enoent(const params& p) : p_(p), place_(p) { scen::check_bs(p); }

  // The op's buffer, and the peer's / the read-back's.
  [[nodiscard]] size_t buffers_needed() const override { return 2; }

  void prepare(backend& be) override {
    pair_ = scen::unix_pair(be);
    listener_ = scen::listen_loopback();
    be.adopt(listener_.fd.get());
    file_io_ = be.caps().file_io;
    if (!file_io_) return;
    file_ = place_.create("data");
    be.adopt(file_.get());
    // The write region reads as zeros until written (never the pattern).
    meters::count_syscall();
    if (::ftruncate(file_.get(), off_t(2 * k_slots * p_.bs)) != 0)
      throw std::system_error(errno, std::generic_category(), "cancel.enoent: ftruncate");
    // The read region: k_slots chunks of the pattern, written before the run.
    const pattern pat(derive_seed(p_.seed, 5), p_.bs, verify_mode::full);
    std::vector<std::byte> chunk(p_.bs);
    for (uint64_t k = 0; k < k_slots; ++k) {
      pat.fill(chunk, k * p_.bs);
      if (sys::pwrite(file_.get(), chunk, k * p_.bs) != int64_t(p_.bs))
        throw std::system_error(EIO, std::generic_category(), "cancel.enoent: prefill");
    }
  }
  void start(backend& be, buffer_pool& pool, run_ctx& ctx) override { be.spawn(run(be, pool, ctx)); }

  void verify(run_ctx& ctx) override {
    // Connections the scenario already reported lost are not counted twice.
    if (made_ != served_ + lost_)
      ctx.report(violation{"connection_leak",
                           fmt::format("{} connections made, {} served", made_, served_), "accept", {}});
  }

 private:
  // 8 chunks to read from, 8 more to write: offsets vary between rounds.
  static constexpr uint64_t k_slots = 8;

  enum class kind : uint8_t { send, accept, read, write };

  task<> run(backend& be, buffer_pool& pool, run_ctx& ctx) {
    stream_stats& st = ctx.new_stream();
    scen::report_findings_on_exit report{found_, ctx};
    io x(be);
    const uint64_t bs = p_.bs;
    scen::stream_tx tx(p_.seed, bs);
    scen::stream_rx rx(p_.seed, bs);
    const pattern file_pat(derive_seed(p_.seed, 5), bs, verify_mode::full);
    const pattern write_pat(derive_seed(p_.seed, 6), bs, verify_mode::full);
    prng sched(derive_seed(p_.seed, 7));
    buffer aux = scen::take_buffer(pool, ctx, "cancel.enoent");
    if (!aux) co_return;
    for (uint64_t round = 0; !rx.broken() && ctx.keep_going(); ++round) {
      const auto k = kind(sched.below(file_io_ ? 4 : 2));
      const uint64_t slot = sched.below(k_slots);
      const uint64_t n = 1 + sched.below(bs);
      buffer buf;
      op o;
      unique_fd client;
      switch (k) {
        case kind::send:
          buf = scen::take_buffer(pool, ctx, "cancel.enoent");
          if (!buf) co_return;
          tx.fill(buf.first(n));
          o = scen::payload_op(op_kind::send, pair_.a.get(), std::move(buf), 0, n);
          break;
        case kind::accept: {
          // Connected (queued in the listener's backlog) before the accept.
          const int c = sys::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
          if (c < 0) {
            scen::report_io(ctx, "cancel.enoent: socket", "", c);
            co_return;
          }
          client.reset(c);
          if (int r = sys::connect(c, reinterpret_cast<const sockaddr*>(&listener_.addr), sizeof listener_.addr);
              r < 0) {
            scen::report_io(ctx, "cancel.enoent: connect", "", r);
            co_return;
          }
          ++made_;
          o = op{.kind = op_kind::accept, .fd = listener_.fd.get()};
          break;
        }
        case kind::read:
          buf = scen::take_buffer(pool, ctx, "cancel.enoent");
          if (!buf) co_return;
          o = scen::payload_op(op_kind::read, file_.get(), std::move(buf), 0, bs, slot * bs);
          break;
        case kind::write:
          buf = scen::take_buffer(pool, ctx, "cancel.enoent");
          if (!buf) co_return;
          write_pat.fill(buf.first(bs), round * bs);
          o = scen::payload_op(op_kind::write, file_.get(), std::move(buf), 0, bs, (k_slots + slot) * bs);
          break;
      }
      const op_kind ok = o.kind;
      const uint64_t off = o.offset;
      const auto t0 = clock_type::now();
      auto barrier = ringside::start(be, op{.kind = op_kind::nop});
      auto t = ringside::start(be, std::move(o));
      (void)co_await barrier;
      const int cr = t.cancel();
      completion c = co_await t;
      st.latency.record(elapsed_ns(t0));
      ++st.ops;
      const std::string what = fmt::format("cancel {}", scen::cancel_text(cr));
      const std::string name = op_at(ok, round, what);
      const std::string range = c.buf ? range_of(c.buf, 0, ok == op_kind::send ? n : bs) : std::string{};
      if (moves_payload(ok) && !c.buf) {
        report_op(ctx, "io_error", name, {}, "completion without its buffer");
        co_return;
      }
      if (c.res < 0 && c.res != -ECANCELED) {
        report_op(ctx, "io_error", name, range, fmt::format("{}: {}", to_string(ok), scen::errno_text(-c.res)));
        co_return;
      }
      // The result is used here; then the op's buffer goes back to the pool.
      switch (k) {
        case kind::send: {
          if (c.res > 0) tx.advance(uint64_t(c.res));
          c.buf.reset();
          (void)co_await x.nop();  // on io_uring: whatever the kernel still does, now
          const int64_t got = scen::peer_take(ctx, pair_.b.get(), aux, rx, name);
          if (got < 0) {
            scen::report_io(ctx, "cancel.enoent: peer", "", got);
            co_return;
          }
          if (rx.broken()) co_return;
          if (rx.total() > tx.sent()) {
            found_.add("lost_result", name, range,
                       fmt::format("the send completed {}; the sender counts {} bytes sent, the peer received {}: a "
                                   "success reported as cancelled (sending them again would duplicate them)",
                                   c.res, tx.sent(), rx.total()));
            tx.advance(rx.total() - tx.sent());  // go on from what the peer has
          } else if (rx.total() < tx.sent()) {
            report_op(ctx, "stream_integrity", name, range,
                      fmt::format("the send completed {}, but the peer received {} of the {} bytes sent", c.res,
                                  rx.total(), tx.sent()));
            co_return;
          }
          if (c.res > 0) st.bytes += uint64_t(c.res);
          break;
        }
        case kind::accept: {
          if (c.res >= 0) {
            unique_fd conn(c.res);
            const bool served = co_await serve(ctx, conn, client, name);  // not in the if: g++ 12
            if (!served) co_return;
            break;
          }
          // Reported cancelled: the connection must still be queued, and
          // is accepted now (a plain co_await: it is there).
          (void)co_await x.nop();
          std::byte one[1];
          if (const int64_t r = sys::recv(client.get(), one, MSG_PEEK | MSG_DONTWAIT); r != -EAGAIN) {
            found_.add("connection_leak", name, {},
                       fmt::format("the accept completed -ECANCELED, but its connection is gone (the client's "
                                   "recv says {}): accepted by the kernel and closed unserved",
                                   r < 0 ? scen::errno_text(int(-r)) : fmt::format("{}", r)));
            ++lost_;
            break;
          }
          completion again = co_await x.accept(listener_.fd.get());
          if (again.res < 0) {
            scen::report_io(ctx, "cancel.enoent: accept again", "", again.res);
            co_return;
          }
          unique_fd conn(again.res);
          const bool served = co_await serve(ctx, conn, client, name);
          if (!served) co_return;
          break;
        }
        case kind::read: {
          if (c.res > 0) {
            if (auto bad = file_pat.check(c.buf.first(uint64_t(c.res)), off)) {
              report_op(ctx, "data_mismatch", name, range, fmt::format("file byte {} read wrong", *bad));
              co_return;
            }
            st.bytes += uint64_t(c.res);
          }
          c.buf.reset();
          break;
        }
        case kind::write: {
          c.buf.reset();
          (void)co_await x.nop();
          const uint64_t want = c.res > 0 ? uint64_t(c.res) : k_probe;
          if (const int64_t got = sys::pread(file_.get(), aux.first(want), off); got != int64_t(want)) {
            scen::report_io(ctx, "cancel.enoent: read back", "", got < 0 ? got : -EIO);
            co_return;
          }
          const auto bad = write_pat.check(aux.first(want), round * bs);
          if (c.res > 0 && bad) {
            report_op(ctx, "data_mismatch", name, range, "the file does not hold what the write reported writing");
            co_return;
          }
          if (c.res == -ECANCELED && !bad)
            found_.add("lost_result", name, range,
                       "the write completed -ECANCELED, yet its bytes are in the file: its real result was thrown "
                       "away");
          if (c.res > 0) st.bytes += uint64_t(c.res);
          break;
        }
      }
    }
  }

  // An accepted connection is served: one byte from the server end, read by
  // the client, then closed. False (reported) if that fails.
  task<bool> serve(run_ctx& ctx, unique_fd& conn, unique_fd& client, const std::string& name) {
    const std::byte token[1] = {std::byte{0x5a}};
    std::byte got[1];
    const int64_t w = sys::write(conn.get(), token);
    // The client is blocking (never adopted): the byte is there already.
    const int64_t r = w == 1 ? sys::recv(client.get(), got, 0) : w;
    if (r != 1) {
      report_op(ctx, "io_error", name, {}, fmt::format("serving the accepted connection: {}", r));
      co_return false;
    }
    ++served_;
    conn.reset();
    co_return true;
  }

  params p_;
  scen::file_place place_;
  scen::stream_pair pair_;
  scen::tcp_listener listener_;
  unique_fd file_;
  bool file_io_ = true;
  uint64_t made_ = 0;
  uint64_t served_ = 0;
  uint64_t lost_ = 0;
  scen::findings found_;
};

// --------------------------------------------------------------- #15 ----
// cancel.stop_vs_complete: a stop is requested (a std::stop_source the
// reader honours, whose callback cancels the reader's outstanding op) in the
// same loop pass as the op's completion. The op's success must be delivered,
// not reported as stopped: the reader hands on every byte the kernel gave
// it, and stops only after that.
//
// Deterministic "same pass": the stop is requested from the completion of a
// nop submitted just before the read (the barrier, scenarios/
// cancel_common.hpp): on io_uring both complete in one enter and the nop's
// completion runs (and requests the stop) while the read's completion is
// posted but not reaped. In every other round the stop comes first, just
// after the read was started with its data already there (the stop callback
// runs at once when registered on a stopped token): on io_uring the cancel
// follows the read into the same enter and the read, completing inline, wins.
// The source alternates between a socket (recv) and a pipe (read). Where ops
// complete inline (epoll, blocking) the same code runs with every read done
// before the stop.
class stop_vs_complete final : public scenario {
 public:
  explicit stop_vs_complete(const params& p) : p_(p) { scen::check_bs(p); }

  // The reader's buffer and its successor's.
  [[nodiscard]] size_t buffers_needed() const override { return 2; }

  void prepare(backend& be) override {
    pair_ = scen::unix_pair(be);
    int fds[2];
    meters::count_syscall();
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
    pipe_r_.reset(fds[0]);
    pipe_w_.reset(fds[1]);
    be.adopt(pipe_r_.get());
    be.adopt(pipe_w_.get());
  }
  void start(backend& be, buffer_pool& pool, run_ctx& ctx) override { be.spawn(run(be, pool, ctx)); }

 private:
  // One source of bytes: where the reader reads, where the peer writes, and
  // the stream both ends check.
  struct source {
    op_kind kind;
    int rd, wr;
    scen::stream_tx tx;
    scen::stream_rx rx;
  };

  task<> run(backend& be, buffer_pool& pool, run_ctx& ctx) {
    stream_stats& st = ctx.new_stream();
    io x(be);
    const uint32_t bs = uint32_t(p_.bs);
    source srcs[2] = {
        {op_kind::recv, pair_.a.get(), pair_.b.get(), {p_.seed, bs}, {p_.seed, bs}},
        // read at ~0: the current position (a pipe has none).
        {op_kind::read, pipe_r_.get(), pipe_w_.get(), {derive_seed(p_.seed, 15), bs}, {derive_seed(p_.seed, 15), bs}},
    };
    prng sched(derive_seed(p_.seed, 16));
    buffer drain = scen::take_buffer(pool, ctx, "cancel.stop_vs_complete");
    if (!drain) co_return;
    for (uint64_t round = 0; ctx.keep_going(); ++round) {
      source& src = srcs[sched.below(2)];
      // 4096 at most: a pipe write of up to PIPE_BUF is atomic and never
      // waits, and the pipe (64 KiB) never fills in one round.
      const uint64_t n = 1 + sched.below(std::min<uint32_t>(bs, 4096));
      // The two orders alternate, the same-pass one first: every run has
      // both, and the first round a backend fails (the run stops there)
      // does not depend on the seed, nor does the verdict.
      const bool stop_first = round % 2 == 1;
      // The stopped reader's buffer: freed once its completion is handled.
      buffer buf = scen::take_buffer(pool, ctx, "cancel.stop_vs_complete");
      if (!buf) co_return;
      if (int r = src.tx.push(src.wr, n); r < 0) {
        scen::report_io(ctx, "cancel.stop_vs_complete: push", "", r);
        co_return;
      }
      std::stop_source stop;
      int cr = 1;
      const auto t0 = clock_type::now();
      op o = scen::payload_op(src.kind, src.rd, std::move(buf), 0, bs, ~uint64_t{0});
      completion c;
      if (stop_first) {
        stop.request_stop();
        auto t = ringside::start(be, std::move(o));
        std::stop_callback on_stop(stop.get_token(), [&] { cr = t.cancel(); });  // runs now: stopped already
        c = co_await t;
      } else {
        auto barrier = ringside::start(be, op{.kind = op_kind::nop});
        auto t = ringside::start(be, std::move(o));
        std::stop_callback on_stop(stop.get_token(), [&] { cr = t.cancel(); });
        (void)co_await barrier;
        stop.request_stop();  // the read's completion is posted, not yet reaped
        c = co_await t;
      }
      st.latency.record(elapsed_ns(t0));
      ++st.ops;
      const std::string name =
          op_at(src.kind, round, fmt::format("stop {}, cancel {}", stop_first ? "first" : "in the same pass",
                                             scen::cancel_text(cr)));
      buf = std::move(c.buf);
      if (!buf) {
        report_op(ctx, "io_error", name, {}, "completion without its buffer");
        co_return;
      }
      if (c.res > 0 && uint32_t(c.res) <= bs) {
        st.bytes += uint64_t(c.res);
        if (!src.rx.take(ctx, name, buf, 0, uint64_t(c.res))) co_return;
      } else if (c.res != -ECANCELED) {
        report_op(ctx, "io_error", name, range_of(buf, 0, bs), fmt::format("{}: {}", to_string(src.kind), c.res));
        co_return;
      }
      const std::string range = range_of(buf, 0, bs);
      buf.reset();  // the reader is gone: its buffer goes back to the pool
      // Stopped: whatever was not delivered must still be in the source,
      // once the kernel has had its say (one loop round trip).
      (void)co_await x.nop();
      const uint64_t owed = src.tx.sent() - src.rx.total();
      if (const int64_t q = scen::queued_bytes(src.rd); q < 0 || uint64_t(q) != owed) {
        report_op(ctx, "lost_result", name, range,
                  q < 0 ? fmt::format("FIONREAD: {}", scen::errno_text(int(-q)))
                        : fmt::format("the op completed {} when the stop came; {} bytes were not delivered, but {} "
                                      "are left in the source: the success was reported as stopped",
                                      c.res, owed, q));
        co_return;
      }
      // The stopped reader's successor picks up the rest.
      if (owed > 0) {
        drain = co_await read_until(be, ctx, src, std::move(drain), round);
        if (!drain || src.rx.broken()) co_return;
      }
    }
  }

  // Like recv_until (scenarios/cancel_common.hpp), for either source kind.
  static task<buffer> read_until(backend& be, run_ctx& ctx, source& src, buffer buf, uint64_t round) {
    io x(be);
    while (src.rx.total() < src.tx.sent()) {
      const uint64_t want = std::min<uint64_t>(buf.capacity(), src.tx.sent() - src.rx.total());
      auto c = co_await x.submit(scen::payload_op(src.kind, src.rd, std::move(buf), 0, want, ~uint64_t{0}));
      buf = std::move(c.buf);
      if (scen::bad_transfer(c.res, want, buf)) {
        src.rx.mark_broken();
        report_op(ctx, "io_error", op_at(src.kind, round, "drain"), {}, fmt::format("{}", c.res));
        co_return buf;
      }
      if (!src.rx.take(ctx, op_at(src.kind, round, "drain"), buf, 0, uint64_t(c.res))) break;
    }
    co_return buf;
  }

  params p_;
  scen::stream_pair pair_;
  unique_fd pipe_r_, pipe_w_;
};

// --------------------------------------------------------------- #16 ----
// cancel.partial_write: a send larger than the room in the socket (the
// sender's SO_SNDBUF shrunk; AF_UNIX queues a stream's bytes against the
// sender's buffer) moves part of its bytes and waits for room; then it is
// cancelled, from another stream once the peer has bytes queued. The
// completion must report the partial count exactly: the stream goes on from
// there, and the peer, draining with plain reads, checks it received exactly
// what the sender counts (a gap or a duplicate fails the byte check).
// uring-raw reports -ECANCELED with the bytes already sent: the stream
// repeats them. Where a non-blocking send returns its partial count at once
// (epoll), the cancel finds it complete (-ENOENT); blocking's send is
// interrupted by the cancel's signal and returns the count.
class partial_write final : public scenario {
 public:
  explicit partial_write(const params& p) : p_(p) {
    scen::check_bs(p);
    if (p.bs <= 4 * k_sndbuf)
      throw usage_error(fmt::format("--bs {}: cancel.partial_write needs more than {} (the send buffer, 4x)", p.bs,
                                    4 * k_sndbuf));
  }

  // The send's buffer and the peer's.
  [[nodiscard]] size_t buffers_needed() const override { return 2; }

  void prepare(backend& be) override {
    pair_ = scen::unix_pair(be);
    scen::set_int_opt(pair_.a.get(), SOL_SOCKET, SO_SNDBUF, k_sndbuf, "setsockopt SO_SNDBUF");
  }
  void start(backend& be, buffer_pool& pool, run_ctx& ctx) override {
    be.spawn(run(be, pool, ctx));
    be.spawn(canceller_.run(be));
  }

 private:
  // 16 KiB (the kernel doubles it): a few skbs of room, so a --bs send
  // (256 KiB) always stops part-way.
  static constexpr int k_sndbuf = 16 * 1024;

  task<> run(backend& be, buffer_pool& pool, run_ctx& ctx) {
    scen::stop_race_canceller stop{canceller_};
    stream_stats& st = ctx.new_stream();
    io x(be);
    const uint64_t bs = p_.bs;
    scen::stream_tx tx(p_.seed, bs);
    scen::stream_rx rx(p_.seed, bs);
    buffer peer = scen::take_buffer(pool, ctx, "cancel.partial_write");
    if (!peer) co_return;
    for (uint64_t round = 0; ctx.keep_going(); ++round) {
      buffer buf = scen::take_buffer(pool, ctx, "cancel.partial_write");
      if (!buf) co_return;
      tx.fill(buf.first(bs));
      const auto t0 = clock_type::now();
      canceller_.ask(pair_.b.get());  // cancel once the peer has bytes: partial progress
      op o = scen::payload_op(op_kind::send, pair_.a.get(), std::move(buf), 0, bs);
      o.wait_all = true;  // io_uring: pending with part sent, not a short count at once
      scen::posted_op t(be, std::move(o), canceller_.post());
      completion c = co_await scen::await_op(t);
      // Waited for here, not in a child task (race_canceller::acted).
      for (uint64_t i = 0; i < scen::k_poll_limit && !canceller_.acted(); ++i)
        (void)co_await x.sleep_ns(scen::k_poll_ns);
      const int cr = canceller_.result();
      st.latency.record(elapsed_ns(t0));
      ++st.ops;
      const std::string name = op_at(op_kind::send, round, fmt::format("cancel {}", scen::cancel_text(cr)));
      if (!c.buf) {
        report_op(ctx, "io_error", name, {}, "completion without its buffer");
        co_return;
      }
      const std::string range = range_of(c.buf, 0, bs);
      c.buf.reset();
      if (c.res != -ECANCELED && (c.res <= 0 || uint64_t(c.res) > bs)) {
        report_op(ctx, "io_error", name, range, fmt::format("send: {}", c.res));
        co_return;
      }
      // The stream goes on from exactly what the send reported.
      if (c.res > 0) {
        tx.advance(uint64_t(c.res));
        st.bytes += uint64_t(c.res);
      }
      (void)co_await x.nop();  // on io_uring: whatever the kernel still does, now
      const int64_t got = scen::peer_take(ctx, pair_.b.get(), peer, rx, name);
      if (got < 0) {
        scen::report_io(ctx, "cancel.partial_write: peer", "", got);
        co_return;
      }
      if (rx.broken()) co_return;
      if (rx.total() != tx.sent()) {
        report_op(ctx, "stream_integrity", name, range,
                  fmt::format("the send completed {}: the sender counts {} bytes sent, the peer received {} ({})",
                              c.res, tx.sent(), rx.total(),
                              rx.total() > tx.sent() ? "the partial count was not reported: they would be sent "
                                                       "twice"
                                                     : "bytes reported sent never arrived"));
        co_return;
      }
    }
  }

  params p_;
  scen::stream_pair pair_;
  scen::race_canceller canceller_;
};

}  // namespace

void register_cancel_race_scenarios() {
  register_scenario({
      .name = "cancel.ealready",
      .checks = "#4 cancel of a write an io_uring worker is running (-EALREADY): its buffer comes back only with the "
                "write's own completion, whose result is the truth",
      // 1 MiB: a copy long enough (~0.1-1 ms) that the cancel finds it running.
      .defaults = scen::cancel_defaults(32, 1 << 20),
      .uses = scen::cancel_uses(),
      .make = [](const params& p) -> std::unique_ptr<scenario> { return std::make_unique<ealready>(p); },
  });
  register_scenario({
      .name = "cancel.enoent",
      .checks = "#5 cancel of an op done in the kernel but not yet reaped (-ENOENT): its result (bytes, a connection, "
                "a file range) is used, never dropped",
      .defaults = scen::cancel_defaults(64, 4096),
      .uses = scen::cancel_uses(),
      .make = [](const params& p) -> std::unique_ptr<scenario> { return std::make_unique<enoent>(p); },
  });
  register_scenario({
      .name = "cancel.stop_vs_complete",
      .checks = "#15 stop requested in the same loop pass as a read's completion: the success is delivered, not "
                "reported as stopped",
      .defaults = scen::cancel_defaults(64, 4096),
      .uses = scen::cancel_uses(),
      .make = [](const params& p) -> std::unique_ptr<scenario> { return std::make_unique<stop_vs_complete>(p); },
  });
  register_scenario({
      .name = "cancel.partial_write",
      .checks = "#16 send cancelled after partial progress: the completion reports the partial count exactly and "
                "the stream goes on without a gap or duplicate",
      // 256 KiB: far more than the shrunk send buffer holds.
      .defaults = scen::cancel_defaults(32, 256 << 10),
      .uses = scen::cancel_uses(),
      .make = [](const params& p) -> std::unique_ptr<scenario> { return std::make_unique<partial_write>(p); },
  });
}

}  // namespace ringside
