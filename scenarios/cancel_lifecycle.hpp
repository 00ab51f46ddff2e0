// Helpers of the lifecycle cancel.* scenarios (#1 accept_timer, #10
// close_pending, #11 fd_reuse, #14 frame_drop, #18 thread_exit): ops that
// other streams can cancel, waiting for another stream without a lock,
// frames destroyed mid-flight, and a stream check that allows the one gap a
// dropped op may legitimately leave.
//
// Why two streams: on a thread-per-stream backend (blocking) an op that has
// nothing to do yet blocks inside its stream's submit(), so only ANOTHER
// stream can cancel it. The scenarios therefore run the op in one stream and
// the canceller in another on every backend (one loop runs both, in turn, on
// epoll and io_uring): one code path, no branch on the execution model where
// the op can be cancelled from outside. The id crosses streams through an
// atomic the op's waiter fills in on_started, which every backend calls
// before the op can block.
#pragma once

#include <sys/socket.h>

#include <fmt/format.h>

#include <atomic>
#include <cerrno>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "harness/backend.hpp"
#include "harness/io.hpp"
#include "harness/pattern.hpp"
#include "harness/scenario.hpp"
#include "harness/sys.hpp"
#include "harness/task.hpp"
#include "scenarios/cancel_common.hpp"

namespace ringside::scen {

// ---- an op other streams can name ----
// Submitted on construction, like op_handle; its id is stored into `post`
// (when given) from on_started, before a blocking submit() blocks, so a
// canceller in another stream can name it. Destroyed while pending: drop().
// Immovable: the backend holds its address until its one completion.
class posted_op final : op_waiter {
 public:
  posted_op(backend& be, op&& o, std::atomic<uint64_t>* post = nullptr) noexcept : be_(be), post_(post) {
    submitting_ = true;
    id_ = be_.submit(std::move(o), this);
    submitting_ = false;
  }
  posted_op(const posted_op&) = delete;
  posted_op& operator=(const posted_op&) = delete;
  ~posted_op() {
    if (!done()) be_.drop(started_.load(std::memory_order_acquire));
  }

  [[nodiscard]] op_id id() const noexcept { return started_.load(std::memory_order_acquire); }
  [[nodiscard]] bool done() const noexcept { return done_.load(std::memory_order_acquire); }
  // From this op's own stream.
  int cancel() noexcept { return done() ? -ENOENT : be_.cancel(id()); }

  bool await_ready() const noexcept { return done(); }
  void await_suspend(std::coroutine_handle<> h) noexcept { h_ = h; }
  completion await_resume() noexcept { return std::move(result_); }

 private:
  void on_started(op_id id) noexcept override {
    started_.store(id, std::memory_order_release);
    if (post_ != nullptr) post_->store(id.value, std::memory_order_release);
  }
  void on_complete(completion&& c) noexcept override {
    result_ = std::move(c);
    done_.store(true, std::memory_order_release);
    if (!submitting_ && h_) std::exchange(h_, {}).resume();
  }

  backend& be_;
  std::atomic<uint64_t>* post_;
  completion result_;
  op_id id_;
  std::coroutine_handle<> h_;
  std::atomic<op_id> started_{};
  std::atomic<bool> done_{false};
  bool submitting_ = false;
};

// `co_await await_op(*p)`: awaits an immovable op reached through a pointer
// (g++ 12 copies an awaitable named through a reference).
template <typename Op>
struct op_ref_awaiter {
  Op* o;
  bool await_ready() const noexcept { return o->await_ready(); }
  void await_suspend(std::coroutine_handle<> c) noexcept { o->await_suspend(c); }
  completion await_resume() noexcept { return o->await_resume(); }
};
template <typename Op>
op_ref_awaiter<Op> await_op(Op& o) noexcept {
  return {&o};
}

// ---- waiting for another stream ----
// 20 us: a poll step short against a round (a loop backend runs the other
// stream meanwhile; a thread-per-stream backend sleeps this stream's thread),
// long enough that a waiting thread does not eat one of the two cores.
inline constexpr uint64_t k_poll_ns = 20'000;
// 5 s of polls: far beyond any hand-over between two streams (microseconds);
// reaching it means the other stream is stuck, which is reported.
inline constexpr uint64_t k_poll_limit = 250'000;

// Yields to the backend (a short sleep op) until flag >= value. False if the
// limit passed first. The flag is written by another stream: an atomic, so a
// loop backend (same thread) and a thread-per-stream one see it alike.
inline task<bool> wait_at_least(backend& be, const std::atomic<uint64_t>& flag, uint64_t value) {
  io x(be);
  for (uint64_t i = 0; i < k_poll_limit; ++i) {
    if (flag.load(std::memory_order_acquire) >= value) co_return true;
    (void)co_await x.sleep_ns(k_poll_ns);
  }
  co_return flag.load(std::memory_order_acquire) >= value;
}

// Until an op id is posted (non-zero); the null id if the limit passed first.
inline task<op_id> wait_posted(backend& be, const std::atomic<uint64_t>& post) {
  io x(be);
  for (uint64_t i = 0; i < k_poll_limit; ++i) {
    if (const uint64_t v = post.load(std::memory_order_acquire)) co_return op_id{v};
    (void)co_await x.sleep_ns(k_poll_ns);
  }
  co_return op_id{post.load(std::memory_order_acquire)};
}

// ---- a canceller in another stream ----
// Acts on the asking stream's pending op: the op runs (and on a
// thread-per-stream backend blocks) in the asking stream, this one closes,
// cancels and sends for it. One request at a time; each is a plan whose
// steps run in this order:
//   close `close_fd` through the backend's close op (the op's fd, say);
//   cancel `cancel_other` (e.g. a stale id of an op that ended);
//   cancel the posted op (the asking stream's op, once its id is posted);
//   send `push_len` bytes of `tx` to `push_fd` (the peer), plain syscalls.
struct cancel_plan {
  int close_fd = -1;
  op_id cancel_other{};
  bool cancel_posted = false;
  int push_fd = -1;
  uint64_t push_len = 0;
};

class remote_canceller {
 public:
  explicit remote_canceller(stream_tx& tx) noexcept : tx_(tx) {}
  remote_canceller(const remote_canceller&) = delete;
  remote_canceller& operator=(const remote_canceller&) = delete;

  // Asking stream, BEFORE it starts the op it posts to post() (if the plan
  // cancels it).
  void ask(const cancel_plan& plan) noexcept {
    post_.store(0, std::memory_order_relaxed);
    plan_ = plan;
    asked_.fetch_add(1, std::memory_order_release);
  }
  [[nodiscard]] std::atomic<uint64_t>* post() noexcept { return &post_; }
  // Asking stream: until the canceller has carried out the last plan (its
  // close op completed, its bytes sent). False if it never did.
  task<bool> finished(backend& be) { return wait_at_least(be, done_, asked_.load(std::memory_order_acquire)); }
  // Valid after finished(): what each step said (1: the step was not in the plan).
  [[nodiscard]] int close_result() const noexcept { return close_res_; }
  [[nodiscard]] int cancel_other_result() const noexcept { return other_res_; }
  [[nodiscard]] int cancel_result() const noexcept { return cancel_res_; }
  [[nodiscard]] int push_result() const noexcept { return push_res_; }
  // The asking stream is done (or gave up): the canceller ends.
  void stop() noexcept { stop_.store(true, std::memory_order_release); }

  // The canceller stream's body: spawn it next to the asking stream.
  task<> run(backend& be) {
    io x(be);
    uint64_t handled = 0;
    // Idle polls are bounded (k_poll_limit since the last request): a
    // stuck asking stream ends the canceller instead of keeping it alive.
    for (uint64_t idle = 0; idle < k_poll_limit && !stop_.load(std::memory_order_acquire); ++idle) {
      if (asked_.load(std::memory_order_acquire) <= handled ||
          (plan_.cancel_posted && post_.load(std::memory_order_acquire) == 0)) {
        (void)co_await x.sleep_ns(k_poll_ns);
        continue;
      }
      idle = 0;
      ++handled;
      const cancel_plan plan = plan_;
      close_res_ = other_res_ = cancel_res_ = push_res_ = 1;
      if (plan.close_fd >= 0) close_res_ = (co_await x.close(plan.close_fd)).res;
      if (plan.cancel_other) other_res_ = be.cancel(plan.cancel_other);
      if (plan.cancel_posted) cancel_res_ = be.cancel(op_id{post_.load(std::memory_order_acquire)});
      if (plan.push_fd >= 0) push_res_ = tx_.push(plan.push_fd, plan.push_len);
      done_.store(handled, std::memory_order_release);
    }
  }

 private:
  stream_tx& tx_;
  // Written by the asking stream before asked_ is bumped (release), read by
  // the canceller after it sees the bump (acquire); results the other way
  // round through done_.
  cancel_plan plan_;
  int close_res_ = 1, other_res_ = 1, cancel_res_ = 1, push_res_ = 1;
  std::atomic<uint64_t> post_{0};
  std::atomic<uint64_t> asked_{0};
  std::atomic<uint64_t> done_{0};
  std::atomic<bool> stop_{false};
};

// Stops a remote_canceller when the asking stream's frame ends, however it
// ends (a violation's early co_return, or destruction at teardown).
struct stop_on_exit {
  remote_canceller& c;
  ~stop_on_exit() { c.stop(); }
};

// ---- frames destroyed mid-flight ----
// A coroutine that runs at once to its first suspension and whose
// destruction destroys it, and every frame it awaits, wherever it is
// suspended: a child task<> dropped unfinished. Its awaiters' destructors
// drop() their pending ops.
class eager_frame {
 public:
  struct promise_type {
    eager_frame get_return_object() noexcept {
      return eager_frame(std::coroutine_handle<promise_type>::from_promise(*this));
    }
    std::suspend_never initial_suspend() const noexcept { return {}; }
    std::suspend_always final_suspend() const noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { error_ = std::current_exception(); }
    std::exception_ptr error_;
  };

  eager_frame(eager_frame&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  eager_frame(const eager_frame&) = delete;
  eager_frame& operator=(const eager_frame&) = delete;
  ~eager_frame() {
    if (h_) h_.destroy();
  }
  [[nodiscard]] bool done() const noexcept { return !h_ || h_.done(); }

 private:
  explicit eager_frame(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
  std::coroutine_handle<promise_type> h_;
};

// Starts t now; t lives in the returned frame (destroying it destroys t).
inline eager_frame start_child(task<> t) { co_await std::move(t); }

// ---- a stream check that allows one gap ----
// The receiving side of a stream_tx stream, where a dropped or orphaned op
// may have consumed some bytes that nobody will see: expect_gap() says how
// many it could have taken at most, and the next bytes received must then
// continue the stream either right there (it took nothing) or exactly that
// many bytes later (it took them all: a recv takes what is queued, up to its
// length). Everything else is verified byte by byte, as in stream_rx.
class gap_rx {
 public:
  gap_rx(uint64_t seed, uint64_t bs) : pat_(seed, std::max<uint64_t>(bs, 1), verify_mode::full) {}

  // Stream offset of the next byte expected.
  [[nodiscard]] uint64_t offset() const noexcept { return offset_; }
  [[nodiscard]] bool broken() const noexcept { return broken_; }
  // Bytes skipped because a dropped op consumed them.
  [[nodiscard]] uint64_t skipped() const noexcept { return skipped_; }

  // The next bytes may start up to `len` bytes later.
  void expect_gap(uint64_t len) noexcept { gap_ = len; }

  // n bytes arrived at b.data() + from. False (reported once) if they do
  // not continue the stream. Call with at least 16 bytes after a gap, so
  // the two candidate offsets cannot both match by chance.
  bool take(run_ctx& ctx, const std::string& op, const buffer& b, uint64_t from, uint64_t n) {
    if (broken_) return false;
    const auto got = std::span<const std::byte>(b.data() + from, n);
    if (gap_ != 0) {
      const uint64_t gap = std::exchange(gap_, 0);
      if (pat_.check(got, offset_) && !pat_.check(got, offset_ + gap)) {
        offset_ += gap;
        skipped_ += gap;
      }
    }
    if (auto bad = pat_.check(got, offset_)) {
      broken_ = true;
      report_op(ctx, "stream_integrity", op, range_of(b, from, n),
                fmt::format("received byte {} of the stream is 0x{:02x}, expected 0x{:02x}: bytes before it were "
                            "lost or duplicated (seed {:#x})",
                            *bad, unsigned(got[*bad - offset_]), unsigned(pat_.at(*bad)), pat_.seed()));
      return false;
    }
    offset_ += n;
    return true;
  }

 private:
  pattern pat_;
  uint64_t offset_ = 0;
  uint64_t gap_ = 0;
  uint64_t skipped_ = 0;
  bool broken_ = false;
};

// ---- the peer's view of a closed end ----
// After the last descriptor of a stream socket is closed and no op holds
// it, the peer's send fails with EPIPE: nothing could still eat the data.
// Returns what one 1-byte send(MSG_NOSIGNAL | MSG_DONTWAIT) on peer says:
// -EPIPE when closed, 1 when something still holds the socket open.
inline int64_t probe_peer_send(int peer) noexcept {
  const std::byte one[1] = {std::byte{0x5a}};
  return sys::send(peer, one, MSG_NOSIGNAL | MSG_DONTWAIT);
}

// ---- reading back what the peer sent ----
// Receives through the backend until rx has reached `until` (everything the
// peer sent so far), verifying every byte (rx accepts a gap it was told
// of). False, reported, on EOF, an error, a byte out of place or a read
// past `until`. rbuf is the reader's buffer: moved into each recv and back.
// `where` names the reads in reports; st counts the bytes.
inline task<bool> read_sent(backend& be, run_ctx& ctx, int fd, buffer& rbuf, uint64_t bs, gap_rx& rx, uint64_t until,
                            std::string where, stream_stats& st) {
  io x(be);
  while (rx.offset() < until && !rx.broken()) {
    auto c = co_await x.recv(fd, std::move(rbuf), uint32_t(bs));
    rbuf = std::move(c.buf);
    if (c.res <= 0 || !rbuf || uint64_t(c.res) > bs) {
      report_op(ctx, c.res == 0 ? "stream_integrity" : "io_error", where, range_of(rbuf, 0, bs),
                c.res == 0 ? fmt::format("EOF at stream byte {} of {}", rx.offset(), until)
                           : fmt::format("recv: {}", c.res < 0 ? errno_text(-c.res) : "no buffer"));
      co_return false;
    }
    if (!rx.take(ctx, where, rbuf, 0, uint64_t(c.res))) co_return false;
    st.bytes += uint64_t(c.res);
    if (rx.offset() > until) {
      report_op(ctx, "stream_integrity", where, range_of(rbuf, 0, uint64_t(c.res)),
                fmt::format("read past the {} bytes sent (stream byte {})", until, rx.offset()));
      co_return false;
    }
  }
  co_return !rx.broken();
}

// Exactly once, at the end: the peer shuts its sending side and nothing is
// left behind the `sent` bytes (the next recv says EOF). Reported if not.
// rbuf: the reader's buffer, moved into the recv and back.
inline task<> expect_end(backend& be, run_ctx& ctx, int fd, int peer, buffer& rbuf, uint64_t bs, uint64_t sent,
                         std::string_view scenario) {
  if (int r = shutdown_fd(peer, SHUT_WR); r < 0) {
    report_io(ctx, fmt::format("{}: shutdown", scenario), "", r);
    co_return;
  }
  io x(be);
  auto c = co_await x.recv(fd, std::move(rbuf), uint32_t(bs));
  rbuf = std::move(c.buf);
  if (c.res != 0)
    report_op(ctx, c.res > 0 ? "stream_integrity" : "io_error", op_at(op_kind::recv, ~0ull, "end"),
              range_of(rbuf, 0, bs),
              c.res > 0 ? fmt::format("{} bytes beyond the {} sent", c.res, sent)
                        : fmt::format("recv at the end: {}", errno_text(-c.res)));
}

}  // namespace ringside::scen
