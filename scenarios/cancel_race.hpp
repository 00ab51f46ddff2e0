// Helpers of the race scenarios (#3 free_after_cancel, #4 ealready, #5
// enoent, #15 stop_vs_complete, #16 partial_write, #17 storm): a canceller in
// another stream that can wait for the op to make progress, and the
// scenario's own view of what the kernel still holds (bytes queued on a
// socket), which is how a lost result shows without waiting for data that
// will never come.
//
// Ops that have nothing to do yet (a recv on an empty socket, a send into a
// full one) block inside submit() on a thread-per-stream backend, so their
// cancel comes from ANOTHER stream on every backend (one loop runs both, in
// turn, on epoll and io_uring): one code path, never a branch on the
// execution model. posted_op, await_op and the poll bounds come from
// scenarios/cancel_lifecycle.hpp.
#pragma once

#include <sys/ioctl.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#include "harness/backend.hpp"
#include "harness/io.hpp"
#include "harness/meters.hpp"
#include "harness/sys.hpp"
#include "harness/task.hpp"
#include "harness/violation.hpp"
#include "scenarios/cancel_common.hpp"
#include "scenarios/cancel_lifecycle.hpp"

namespace ringside::scen {

// Bytes waiting to be read on a socket or pipe (FIONREAD), or -errno. After
// a recv was reported cancelled and the kernel had its say (one loop round
// trip), every byte it was offered must still be here: fewer means the
// kernel delivered them to an op whose result was thrown away.
inline int64_t queued_bytes(int fd) noexcept {
  int n = 0;
  meters::count_syscall();
  return ::ioctl(fd, FIONREAD, &n) < 0 ? -errno : int64_t(n);
}

// The peer takes everything queued on socket fd now, with plain
// non-blocking recvs into b (the environment of the race, not the system
// under test), every byte verified by rx. Bytes taken, or -errno (-EPIPE for
// an EOF). Bounded: each recv consumes what is queued, until EAGAIN.
inline int64_t peer_take(run_ctx& ctx, int fd, const buffer& b, stream_rx& rx, const std::string& op) {
  int64_t taken = 0;
  for (;;) {
    const int64_t r = sys::recv(fd, b.span(), MSG_DONTWAIT);
    if (r == -EINTR) continue;
    if (r == -EAGAIN) return taken;
    if (r <= 0) return r == 0 ? -EPIPE : r;
    if (!rx.take(ctx, op, b, 0, uint64_t(r))) return taken + r;
    taken += r;
  }
}

// Violations a scenario finds while it goes on with its rounds: the first
// of each kind is kept and reported when the stream ends (report_all), so a
// run shows every kind its rounds can show, whatever order the seed puts the
// rounds in: the verdict does not depend on the seed. (run_ctx::report stops
// the run at once: right for a broken stream, which cannot go on.)
class findings {
 public:
  void add(std::string kind, std::string op, std::string range, std::string detail) {
    for (const auto& v : kept_)
      if (v.kind == kind) return;
    kept_.push_back(violation{std::move(kind), std::move(detail), std::move(op), std::move(range)});
  }
  void report_all(run_ctx& ctx) noexcept {
    try {
      for (auto& v : kept_) ctx.report(std::move(v));
    } catch (...) {
      ctx.stop();
    }
    kept_.clear();
  }

 private:
  std::vector<violation> kept_;
};

// Reports a stream's findings however its frame ends.
struct report_findings_on_exit {
  findings& f;
  run_ctx& ctx;
  ~report_findings_on_exit() { f.report_all(ctx); }
};

// Cancels, from its own stream, the op the asking stream posts: one request
// at a time. Optionally it first waits until `progress_fd` has bytes queued
// (the op made partial progress, e.g. a send filled the peer's buffer), so
// the cancel lands on an op that has moved data and is stuck.
class race_canceller {
 public:
  race_canceller() = default;
  race_canceller(const race_canceller&) = delete;
  race_canceller& operator=(const race_canceller&) = delete;

  // Asking stream, BEFORE it starts the op it posts to post().
  void ask(int progress_fd = -1) noexcept {
    post_.store(0, std::memory_order_relaxed);
    progress_fd_ = progress_fd;
    asked_.fetch_add(1, std::memory_order_release);
  }
  [[nodiscard]] std::atomic<uint64_t>* post() noexcept { return &post_; }
  // Asking stream, after its op completed: the canceller has acted on the
  // last request. Wait for it with sleep ops in the asking coroutine itself,
  // not in a child task: on a thread-per-stream backend
  // every wait completes synchronously, and in unoptimized builds each
  // awaited child task would leave a stack frame behind for the rest of the
  // run (no tail call for the symmetric transfer back): 10,000 rounds
  // overflow the stack.
  [[nodiscard]] bool acted() const noexcept {
    return done_.load(std::memory_order_acquire) >= asked_.load(std::memory_order_relaxed);
  }
  // What cancel() said, once acted(); 1 if it never acted (stuck).
  [[nodiscard]] int result() const noexcept { return acted() ? result_ : 1; }
  // The asking stream is done (or gave up): the canceller ends.
  void stop() noexcept { stop_.store(true, std::memory_order_release); }

  // The canceller stream's body: spawn it next to the asking stream.
  task<> run(backend& be) {
    io x(be);
    uint64_t handled = 0;
    // Idle polls are bounded (k_poll_limit since the last request): a stuck
    // asking stream ends the canceller instead of keeping the run alive.
    for (uint64_t idle = 0; idle < k_poll_limit && !stop_.load(std::memory_order_acquire); ++idle) {
      // asked_ first: a post_ read before it may be the last request's id.
      const bool asked = asked_.load(std::memory_order_acquire) > handled;
      const uint64_t id = asked ? post_.load(std::memory_order_acquire) : 0;
      if (id == 0 || (progress_fd_ >= 0 && queued_bytes(progress_fd_) == 0)) {
        (void)co_await x.sleep_ns(k_poll_ns);
        continue;
      }
      idle = 0;
      ++handled;
      result_ = be.cancel(op_id{id});
      done_.store(handled, std::memory_order_release);
    }
  }

 private:
  // Written by the asking stream before asked_ is bumped (release), read by
  // the canceller after it sees the bump (acquire); result_ the other way
  // round through done_.
  int progress_fd_ = -1;
  int result_ = 1;
  std::atomic<uint64_t> post_{0};
  std::atomic<uint64_t> asked_{0};
  std::atomic<uint64_t> done_{0};
  std::atomic<bool> stop_{false};
};

// Stops a race_canceller however the asking stream's frame ends (a
// violation's early co_return, or destruction at teardown).
struct stop_race_canceller {
  race_canceller& c;
  ~stop_race_canceller() { c.stop(); }
};

}  // namespace ringside::scen
