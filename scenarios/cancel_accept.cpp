// cancel.accept_timer (#1): an accept races a timer; whichever completes
// first cancels the other.
//
// Checks: every connection a client made is served (the server sends a
// greeting, the client verifies it) or still waits in the listen queue for
// a later accept — never accepted and then lost. An accept that "lost" to
// the timer but had already taken a connection in the kernel must still
// deliver it (a cancel never turns a success into -ECANCELED). Clients
// never hang: they only ever look at their socket without blocking.
// Connections made vs served ("connection_leak"); the runner's fd census
// catches an accepted fd nobody closed.
//
// Two streams, because on a thread-per-stream backend the accept and the
// timer each block their own thread: the acceptor runs the accept (and
// serves what it returns), the driver runs the timer and plays the clients
// (plain syscalls: the environment, not the system under test). Each round
// (seeded) is one of:
// - early: a client connects before the accept is submitted; the timer is
//   long. The accept wins and cancels the timer.
// - late:  nobody is there; the timer is 0 and wins. Then, before its
//   cancel of the accept reaches the kernel, a client connects: the accept
//   is in the kernel (a nop barrier took it there first), the connection
//   wakes it, and a second barrier lets the kernel complete it in the same
//   pass that posts the barrier's completion, ahead of it (scenarios/
//   cancel_common.hpp) — so the driver cancels an accept that has already
//   accepted. A correct backend delivers the fd (served); uring-raw's
//   cancel completes -ECANCELED at once and its loop closes the accepted fd
//   unserved: the client reads EOF instead of the greeting.
// - never: nobody connects; the timer is 0 and cancels the pending accept.
// On the one-loop backends other than io_uring, a late connection whose
// accept was cancelled first simply stays queued; later accepts (and a
// drain at the end, timer-guarded too) serve every queued client.
#include <poll.h>

#include <fmt/format.h>

#include <atomic>
#include <cerrno>
#include <memory>
#include <string>
#include <vector>

#include "harness/io.hpp"
#include "harness/pattern.hpp"
#include "harness/scenario.hpp"
#include "scenarios/cancel_common.hpp"
#include "scenarios/cancel_lifecycle.hpp"
#include "scenarios/common.hpp"

namespace ringside {

namespace {

using scen::op_at;
using scen::report_op;

enum class arrival : uint8_t { early, late, never, drain };
constexpr std::string_view to_string(arrival a) noexcept {
  switch (a) {
    case arrival::early: return "client before the accept";
    case arrival::late: return "client after the timer fired";
    case arrival::never: return "no client";
    case arrival::drain: return "queued client";
  }
  return "?";
}

// 2 s: a timer the accept must beat (a client is queued); it is always
// cancelled within microseconds, and if an accept wrongly never completed
// it ends the round instead of hanging it.
constexpr uint64_t k_long_timer_ns = 2'000'000'000;
// 16 bytes of greeting: one small send, delivered whole on loopback.
constexpr uint32_t k_greeting = 16;

enum class winner : uint8_t { none, accept, timer };

class accept_timer final : public scenario {
 public:
  explicit accept_timer(const params& p) : p_(p), greeting_(p.seed, k_greeting, verify_mode::full) {
    scen::check_bs(p);
    if (p.bs < k_greeting)
      throw usage_error(fmt::format("--bs {}: cancel.accept_timer needs at least {} (its greeting)", p.bs, k_greeting));
  }

  // The greeting's buffer (accept and timeout ops carry none).
  [[nodiscard]] size_t buffers_needed() const override { return 2; }

  void prepare(backend& be) override {
    listener_ = scen::listen_loopback();
    be.adopt(listener_.fd.get());
  }

  void start(backend& be, buffer_pool& pool, run_ctx& ctx) override {
    be.spawn(acceptor(be, pool, ctx));
    be.spawn(driver(be, ctx));
  }

 private:
  struct client {
    unique_fd fd;
    uint64_t round = 0;
  };

  // ---- the acceptor stream ----
  task<> acceptor(backend& be, buffer_pool& pool, run_ctx& ctx) {
    for (uint64_t r = 1;; ++r) {
      if (!co_await scen::wait_at_least(be, go_, r) || stop_.load(std::memory_order_acquire)) co_return;
      scen::posted_op acc(be, op{.kind = op_kind::accept, .fd = listener_.fd.get()}, &accept_post_);
      completion c = co_await scen::await_op(acc);
      if (claim(winner::accept)) {
        // The accept completed first: the timer goes.
        const op_id t = co_await scen::wait_posted(be, timer_post_);
        timer_cancel_ = t ? be.cancel(t) : -ENOENT;
      }
      accept_res_ = c.res;
      if (c.res >= 0) {
        // Whoever won, an accepted connection is served.
        if (co_await serve(be, pool, ctx, c.res, r - 1)) served_by_server_.fetch_add(1, std::memory_order_relaxed);
      } else if (c.res != -ECANCELED) {
        report_op(ctx, "io_error", op_at(op_kind::accept, r - 1), {}, fmt::format("accept: {}", scen::errno_text(-c.res)));
      }
      accept_done_.store(r, std::memory_order_release);
    }
  }

  // Sends the greeting and closes, both through the backend.
  task<bool> serve(backend& be, buffer_pool& pool, run_ctx& ctx, int fd, uint64_t round) {
    io x(be);
    buffer b = pool.acquire();
    bool ok = false;
    if (!b) {
      ctx.report("io_error", "cancel.accept_timer: buffer pool exhausted");
    } else {
      greeting_.fill(b.first(k_greeting), 0);
      auto s = co_await x.send(fd, std::move(b), k_greeting);
      ok = s.res == int32_t(k_greeting);
      if (!ok)
        report_op(ctx, "io_error", op_at(op_kind::send, round, "greeting"), scen::range_of(s.buf, 0, k_greeting),
                  fmt::format("greeting send: {}", s.res < 0 ? scen::errno_text(-s.res) : fmt::format("{} bytes", s.res)));
    }
    auto cl = co_await x.close(fd);
    if (cl.res != 0) {
      report_op(ctx, "io_error", op_at(op_kind::close, round, "served"), {},
                fmt::format("close of the accepted fd: {}", scen::errno_text(-cl.res)));
      ok = false;
    }
    co_return ok;
  }

  // ---- the driver stream: timer and clients ----
  task<> driver(backend& be, run_ctx& ctx) {
    struct stop_acceptor {
      accept_timer& s;
      ~stop_acceptor() {
        s.stop_.store(true, std::memory_order_release);
        s.go_.store(~0ull, std::memory_order_release);
      }
    } stop{*this};
    stream_stats& st = ctx.new_stream();
    prng sched(derive_seed(p_.seed, 1));
    uint64_t r = 0;
    for (; !ctx.stopped() && ctx.keep_going(); ++r) {
      const auto t0 = clock_type::now();
      const auto how = arrival(sched.below(3));
      if (!co_await round(be, ctx, r, how)) co_return;
      st.latency.record(uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t0).count()));
      ++st.ops;
    }
    // Clients still queued: accept them, one per round, each still raced
    // by a (long) timer so a connection that is not there ends the round.
    for (size_t left = queued(); left > 0 && !ctx.stopped(); left = queued(), ++r)
      if (!co_await round(be, ctx, r, arrival::drain)) co_return;
    if (ctx.stopped()) co_return;
    for (const auto& c : clients_)
      if (c.fd)
        report_op(ctx, "connection_leak", op_at(op_kind::accept, c.round, "client"), {},
                  "a client's connection was never served");
    const uint64_t served = served_by_server_.load(std::memory_order_relaxed);
    if (served != made_ || verified_ != made_)
      report_op(ctx, "connection_leak", op_at(op_kind::accept, ~0ull, "end"), {},
                fmt::format("{} connections made, {} served by the server, {} greetings verified by clients", made_,
                            served, verified_));
  }

  task<bool> round(backend& be, run_ctx& ctx, uint64_t r, arrival how) {
    io x(be);
    const std::string where = op_at(op_kind::accept, r, to_string(how));
    if (how == arrival::early && !connect_client(ctx, r)) co_return false;
    accept_post_.store(0, std::memory_order_relaxed);
    timer_post_.store(0, std::memory_order_relaxed);
    won_.store(winner::none, std::memory_order_relaxed);
    timer_cancel_ = 1;
    go_.store(r + 1, std::memory_order_release);  // the acceptor starts its accept
    const bool long_timer = how == arrival::early || how == arrival::drain;
    scen::posted_op timer(be, op{.kind = op_kind::timeout, .timeout_ns = long_timer ? k_long_timer_ns : 0}, &timer_post_);
    completion t = co_await scen::await_op(timer);
    if (t.res != 0 && t.res != -ECANCELED) {
      report_op(ctx, "io_error", op_at(op_kind::timeout, r), {}, fmt::format("timer: {}", scen::errno_text(-t.res)));
      co_return false;
    }
    int accept_cancel = 1;
    if (t.res == 0 && claim(winner::timer)) {
      // The timer fired first: the accept goes.
      const op_id a = co_await scen::wait_posted(be, accept_post_);
      if (!a) {
        ctx.report("hang", "cancel.accept_timer: the acceptor never started its accept");
        co_return false;
      }
      if (how == arrival::late) {
        // The accept is in the kernel (armed) once a later nop completes;
        // then the client comes, and the next nop's pass completes the
        // accept behind the nop's own completion: cancel it from there.
        (void)co_await x.nop();
        if (!connect_client(ctx, r)) co_return false;
        auto barrier = ringside::start(be, op{.kind = op_kind::nop});
        (void)co_await barrier;
      }
      accept_cancel = be.cancel(a);
    }
    if (!co_await scen::wait_at_least(be, accept_done_, r + 1)) {
      ctx.report("hang", "cancel.accept_timer: the accept never completed");
      co_return false;
    }
    if (ctx.stopped()) co_return false;
    if (accept_res_ == -ECANCELED && accept_cancel == -ENOENT) {
      report_op(ctx, "lost_result", where, {}, "cancel() said the accept was no longer pending, yet it completed -ECANCELED");
      co_return false;
    }
    if (t.res == -ECANCELED && timer_cancel_ == -ENOENT) {
      report_op(ctx, "lost_result", op_at(op_kind::timeout, r), {},
                "cancel() said the timer was no longer pending, yet it completed -ECANCELED");
      co_return false;
    }
    co_return check_clients(ctx, where);
  }

  // Whichever op completes first claims the round.
  bool claim(winner w) noexcept {
    winner none = winner::none;
    return won_.compare_exchange_strong(none, w, std::memory_order_acq_rel);
  }

  // A client connects now (plain blocking connect: loopback, and the listen
  // queue has room, so it returns at once).
  bool connect_client(run_ctx& ctx, uint64_t r) {
    const int fd = sys::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      scen::report_io(ctx, "cancel.accept_timer: client socket", "", fd);
      return false;
    }
    client c{unique_fd(fd), r};
    if (int e = sys::connect(fd, reinterpret_cast<const sockaddr*>(&listener_.addr), sizeof listener_.addr); e < 0) {
      scen::report_io(ctx, "cancel.accept_timer: client connect", "", e);
      return false;
    }
    clients_.push_back(std::move(c));
    ++made_;
    return true;
  }

  // Each client still waiting looks at its socket without blocking: the
  // greeting (served: verified, closed), nothing yet (still queued), or
  // EOF / reset without a greeting (accepted and lost: a leak).
  bool check_clients(run_ctx& ctx, const std::string& where) {
    for (auto& c : clients_) {
      if (!c.fd) continue;
      std::byte got[2 * k_greeting];
      const int64_t n = sys::recv(c.fd.get(), got, MSG_DONTWAIT);
      if (n == -EAGAIN) continue;
      if (n == int64_t(k_greeting) && !greeting_.check(std::span<const std::byte>(got, k_greeting), 0)) {
        ++verified_;
        c.fd.reset();
        continue;
      }
      report_op(ctx, "connection_leak", where, {},
                n == 0 ? fmt::format("client of round {} read EOF instead of the greeting: its connection was "
                                     "accepted and closed unserved",
                                     c.round)
                       : fmt::format("client of round {} read {} instead of the {}-byte greeting", c.round,
                                     n < 0 ? scen::errno_text(int(-n)) : fmt::format("{} bytes", n), k_greeting));
      return false;
    }
    return true;
  }

  // Clients made and neither served nor found lost yet.
  [[nodiscard]] size_t queued() const noexcept {
    size_t n = 0;
    for (const auto& c : clients_) n += c.fd ? 1 : 0;
    return n;
  }

  params p_;
  pattern greeting_;
  scen::tcp_listener listener_;
  std::vector<client> clients_;  // the driver's only
  uint64_t made_ = 0, verified_ = 0;

  // Between the streams: the round the acceptor may start (go_), ids of the
  // two racing ops, who won, and the acceptor's outcome (accept_done_
  // publishes accept_res_ and timer_cancel_, release/acquire).
  std::atomic<uint64_t> go_{0};
  std::atomic<uint64_t> accept_done_{0};
  std::atomic<uint64_t> accept_post_{0};
  std::atomic<uint64_t> timer_post_{0};
  std::atomic<winner> won_{winner::none};
  std::atomic<uint64_t> served_by_server_{0};
  std::atomic<bool> stop_{false};
  int32_t accept_res_ = 0;
  int timer_cancel_ = 1;
};

}  // namespace

void register_cancel_accept_scenarios() {
  register_scenario({
      .name = "cancel.accept_timer",
      .checks = "#1 accept raced by a timer: every connection a client made is served or stays queued; an accept "
                "that won in the kernel is delivered, never closed unserved",
      .defaults = scen::cancel_defaults(64, 4096),
      .uses = scen::cancel_uses(),
      .make = [](const params& p) -> std::unique_ptr<scenario> { return std::make_unique<accept_timer>(p); },
  });
}

}  // namespace ringside
