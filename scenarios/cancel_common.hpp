// Helpers shared by the cancel.* safety scenarios (scenarios/cancel_*.cpp):
// rounds, seeded schedules, socket pairs whose data the scenario controls, a
// seeded byte stream checked end to end, and reports that name the op and the
// buffer range.
//
// How the races are made deterministic (never by sleeping):
// - Data exists before an op is submitted (stream_tx::push on a socket pair):
//   the op completes at its first attempt, inside the kernel's submit path.
// - The barrier: `auto b = start(be, nop); auto t = start(be, op); co_await b;`.
//   On io_uring both SQEs go to the kernel in one enter and complete in
//   submission order; with SINGLE_ISSUER|DEFER_TASKRUN nothing is posted until
//   the loop enters, and the loop reaps in order, so the nop's completion
//   resumes this coroutine (op_handle resumes inline) while t's CQE is posted
//   and NOT yet reaped: `t.cancel()` then races an op the kernel has finished
//   (its ASYNC_CANCEL finds nothing: -ENOENT). On epoll and blocking the same
//   code runs with t already complete (inline), and cancel() says -ENOENT.
// - A seeded prng (harness/pattern.hpp) picks sizes and which round cancels,
//   drops or lets an op run; the same seed gives the same schedule.
//
// A round is one instance of the race; params.ops is the number of rounds
// (claimed through ctx.keep_going(), so an interrupt stops at a round's end).
#pragma once

#include <sys/socket.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "harness/backend.hpp"
#include "harness/buffer.hpp"
#include "harness/io.hpp"
#include "harness/pattern.hpp"
#include "harness/scenario.hpp"
#include "harness/sys.hpp"
#include "harness/task.hpp"
#include "harness/unique_fd.hpp"
#include "scenarios/common.hpp"

namespace ringside::scen {

// Defaults of a cancel.* scenario: `rounds` rounds of `bs`-byte messages.
// duration_s only bounds a run given --duration instead of --ops.
inline params cancel_defaults(uint64_t rounds, uint64_t bs = 4096) {
  params p;
  p.ops = rounds;
  p.bs = bs;
  p.qd = 1;
  p.conns = 1;
  p.duration_s = 1.0;
  return p;
}

// Every cancel.* scenario names its rows by bs only (ops is the round count).
inline std::vector<param_use> cancel_uses() { return {{"bs", "bs"}}; }

// ---- reports ----
// "buffer 3 [0, 4096)": the pool index and the op's bytes (stable across runs).
inline std::string range_of(const buffer& b, uint64_t from, uint64_t len) {
  if (!b) return fmt::format("no buffer [{}, {})", from, from + len);
  return fmt::format("buffer {} [{}, {})", b.index(), from, from + len);
}
// round ~0: after the last round (the final drain).
inline std::string op_at(op_kind k, uint64_t round, std::string_view what = {}) {
  if (round == ~0ull) return what.empty() ? fmt::format("{} after the rounds", to_string(k))
                                          : fmt::format("{} after the rounds ({})", to_string(k), what);
  return what.empty() ? fmt::format("{} round {}", to_string(k), round)
                      : fmt::format("{} round {} ({})", to_string(k), round, what);
}
// Records the violation (and stops the run: the first one is the repro).
inline void report_op(run_ctx& ctx, std::string kind, std::string op, std::string range, std::string detail) {
  ctx.report(violation{std::move(kind), std::move(detail), std::move(op), std::move(range)});
}

// What cancel() said, for details: "requested", "-ENOENT", ...
inline std::string cancel_text(int r) {
  if (r == 0) return "requested";
  if (r == -ENOENT) return "-ENOENT (not pending)";
  return fmt::format("{} ({})", r, errno_text(-r));
}

// ---- socket pairs ----
// A connected AF_UNIX stream pair, both ends adopted by be: `a` is the end
// the backend's ops use, `b` the peer the scenario drives with plain syscalls
// (the environment of the race, not the system under test). Setup: throws.
struct stream_pair {
  unique_fd a, b;
};
inline stream_pair unix_pair(backend& be) {
  int sv[2];
  meters::count_syscall();
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    throw std::system_error(errno, std::generic_category(), "socketpair");
  stream_pair p{unique_fd(sv[0]), unique_fd(sv[1])};
  be.adopt(p.a.get());
  be.adopt(p.b.get());
  return p;
}

// ---- the seeded byte stream ----
// The sending side: bytes of a pattern at increasing offsets.
class stream_tx {
 public:
  stream_tx(uint64_t seed, uint64_t bs) : pat_(seed, std::max<uint64_t>(bs, 1), verify_mode::full) {}

  [[nodiscard]] const pattern& pat() const noexcept { return pat_; }
  [[nodiscard]] uint64_t sent() const noexcept { return sent_; }

  // Writes the next len bytes of the stream to fd now, with plain syscalls:
  // the data exists before any op is submitted. Keep len well below the
  // socket buffer (AF_UNIX: ~200 KiB) so this never waits. 0 or -errno.
  int push(int fd, uint64_t len) noexcept {
    try {
      scratch_.resize(len);
    } catch (...) {
      return -ENOMEM;
    }
    pat_.fill(scratch_, sent_);
    for (uint64_t done = 0; done < len;) {
      const int64_t r = sys::write(fd, std::span<const std::byte>(scratch_).subspan(done, len - done));
      if (r == -EINTR) continue;
      if (r <= 0) return r < 0 ? int(r) : -EIO;
      done += uint64_t(r);
      sent_ += uint64_t(r);
    }
    return 0;
  }
  // For sends through the backend: the next len bytes into dst (then
  // advance(res) with what the send reported).
  // Borrowed: dst only for the duration of the call.
  void fill(std::span<std::byte> dst) const noexcept { pat_.fill(dst, sent_); }
  void advance(uint64_t n) noexcept { sent_ += n; }

 private:
  pattern pat_;
  uint64_t sent_ = 0;
  std::vector<std::byte> scratch_;
};

// The receiving side: every delivered byte is checked at its offset, so a
// lost piece (a success reported as cancelled) or a duplicated one shows as
// the first wrong byte; total() must reach what was sent.
class stream_rx {
 public:
  stream_rx(uint64_t seed, uint64_t bs) : pat_(seed, std::max<uint64_t>(bs, 1), verify_mode::full) {}

  [[nodiscard]] uint64_t total() const noexcept { return received_; }
  [[nodiscard]] bool broken() const noexcept { return broken_; }
  // Someone else reported the stream broken (an EOF too early, say).
  void mark_broken() noexcept { broken_ = true; }

  // n bytes arrived at b.data() + from. False (reported once) if they are
  // not the stream's next bytes.
  bool take(run_ctx& ctx, std::string op, const buffer& b, uint64_t from, uint64_t n) {
    const auto got = std::span<const std::byte>(b.data() + from, n);
    if (auto bad = pat_.check(got, received_); bad && !broken_) {
      broken_ = true;
      report_op(ctx, "stream_integrity", std::move(op), range_of(b, from, n),
                fmt::format("received byte {} of the stream is 0x{:02x}, expected 0x{:02x}: bytes before it were "
                            "lost or duplicated (seed {:#x})",
                            *bad, unsigned(got[*bad - received_]), unsigned(pat_.at(*bad)), pat_.seed()));
    }
    received_ += n;
    return !broken_;
  }

  // At the end: everything sent was delivered, once.
  void expect_total(run_ctx& ctx, std::string op, uint64_t sent) {
    if (broken_ || received_ == sent) return;
    broken_ = true;
    report_op(ctx, "stream_integrity", std::move(op), {},
              fmt::format("received {} bytes of the {} sent: {} {}", received_, sent,
                          received_ < sent ? sent - received_ : received_ - sent,
                          received_ < sent ? "lost" : "duplicated"));
  }

 private:
  pattern pat_;
  uint64_t received_ = 0;
  bool broken_ = false;
};

// Receives through the backend until rx has `until` bytes (or EOF, an error,
// or a violation). Returns the buffer (always handed back). `round` names
// the ops in reports.
inline task<buffer> recv_until(backend& be, run_ctx& ctx, int fd, buffer buf, uint32_t len, stream_rx& rx,
                               uint64_t until, uint64_t round) {
  io x(be);
  while (rx.total() < until && !rx.broken()) {
    const uint32_t want = uint32_t(std::min<uint64_t>(len, until - rx.total()));
    auto c = co_await x.recv(fd, std::move(buf), want);
    buf = std::move(c.buf);
    if (c.res <= 0 || !buf || uint32_t(c.res) > want) {
      rx.mark_broken();
      report_op(ctx, c.res == 0 ? "stream_integrity" : "io_error", op_at(op_kind::recv, round, "drain"),
                range_of(buf, 0, want),
                c.res == 0 ? fmt::format("EOF after {} of {} bytes", rx.total(), until)
                           : fmt::format("recv: {}", c.res < 0 ? errno_text(-c.res) : fmt::format("{} bytes", c.res)));
      break;
    }
    if (!rx.take(ctx, op_at(op_kind::recv, round, "drain"), buf, 0, uint64_t(c.res))) break;
  }
  co_return buf;
}

// Acquires a pool buffer or reports why not (the pool is sized by
// buffers_needed(); running out is a harness bug, reported, not thrown).
inline buffer take_buffer(buffer_pool& pool, run_ctx& ctx, std::string_view scenario) {
  buffer b = pool.acquire();
  if (!b) ctx.report("io_error", fmt::format("{}: buffer pool exhausted", scenario));
  return b;
}

}  // namespace ringside::scen
