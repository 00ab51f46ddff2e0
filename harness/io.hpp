// The awaitable face of a backend: what scenario code calls.
//
//   auto c = co_await io.recv(fd, std::move(buf), len);   // c.res, c.buf
//
// op_awaiter submits when awaited; op_handle submits at once and can be
// cancelled or dropped before it is awaited. Both are immovable: the backend
// holds their address until their one completion.
#pragma once

#include <atomic>
#include <cerrno>
#include <coroutine>
#include <cstdint>
#include <utility>

#include "harness/backend.hpp"

namespace ringside {

class op_awaiter final : op_waiter {
 public:
  op_awaiter(backend& be, op&& o) noexcept : be_(be), op_(std::move(o)) {}
  op_awaiter(const op_awaiter&) = delete;
  op_awaiter& operator=(const op_awaiter&) = delete;
  ~op_awaiter() {
    // Destroyed while pending: the frame that awaited us is being dropped.
    if (state_ == state::pending) be_.drop(id_);
  }

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) noexcept {
    h_ = h;
    state_ = state::submitting;
    id_ = be_.submit(std::move(op_), this);
    if (state_ == state::done) return false;  // completed inline
    state_ = state::pending;
    return true;
  }
  completion await_resume() noexcept { return std::move(result_); }

  [[nodiscard]] op_id id() const noexcept { return id_; }

 private:
  enum class state : uint8_t { idle, submitting, pending, done };
  void on_complete(completion&& c) noexcept override {
    result_ = std::move(c);
    const bool resume = state_ == state::pending;
    state_ = state::done;
    if (resume) h_.resume();
  }

  backend& be_;
  op op_;
  completion result_;
  op_id id_;
  std::coroutine_handle<> h_;
  state state_ = state::idle;
};

// Submitted on construction; cancel() and drop-by-destruction work before the
// result is awaited. Construct in place: `auto h = start(io, op)` relies on
// guaranteed copy elision, so `this` is final when submit() sees it.
//
// On a thread-per-stream backend the constructor blocks inside submit() until
// the op completes, and another stream may cancel it meanwhile: through
// started_id(), or through cancel() once it holds the handle's address. Both
// read only atomics set by the backend's callbacks (on_started, on_complete).
class op_handle final : op_waiter {
 public:
  op_handle(backend& be, op&& o) noexcept : be_(be) {
    submitting_ = true;
    id_ = be_.submit(std::move(o), this);
    submitting_ = false;
  }
  // Observable from other streams while submit() is still blocking.
  [[nodiscard]] op_id started_id() const noexcept { return started_.load(std::memory_order_acquire); }
  op_handle(const op_handle&) = delete;
  op_handle& operator=(const op_handle&) = delete;
  ~op_handle() {
    if (!done()) be_.drop(id_);
  }

  // 0 if requested, -ENOENT if it already completed. The id comes from
  // on_started (every backend calls it before the op can block), not from
  // submit()'s return, which a blocking submit has not produced yet.
  int cancel() noexcept { return done() ? -ENOENT : be_.cancel(started_id()); }
  [[nodiscard]] bool done() const noexcept { return done_.load(std::memory_order_acquire); }
  [[nodiscard]] op_id id() const noexcept { return id_; }

  bool await_ready() const noexcept { return done(); }
  void await_suspend(std::coroutine_handle<> h) noexcept { h_ = h; }
  completion await_resume() noexcept { return std::move(result_); }

 private:
  void on_started(op_id id) noexcept override { started_.store(id, std::memory_order_release); }
  void on_complete(completion&& c) noexcept override {
    result_ = std::move(c);
    done_.store(true, std::memory_order_release);
    if (!submitting_ && h_) std::exchange(h_, {}).resume();
  }

  backend& be_;
  completion result_;
  op_id id_;
  std::coroutine_handle<> h_;
  std::atomic<op_id> started_{};
  std::atomic<bool> done_{false};
  bool submitting_ = false;
};

// Starts an op now; `auto h = start(be, op{...});` (no copy, no move).
inline op_handle start(backend& be, op&& o) noexcept { return op_handle(be, std::move(o)); }

// Convenience constructors: one line per op kind in scenario code.
class io {
 public:
  explicit io(backend& be) noexcept : be_(be) {}
  [[nodiscard]] backend& get() const noexcept { return be_; }

  op_awaiter submit(op&& o) noexcept { return op_awaiter(be_, std::move(o)); }

  op_awaiter read(int fd, buffer b, uint32_t len, uint64_t off) noexcept {
    return submit(op{.kind = op_kind::read, .fd = fd, .offset = off, .len = len, .buf = std::move(b)});
  }
  op_awaiter write(int fd, buffer b, uint32_t len, uint64_t off) noexcept {
    return submit(op{.kind = op_kind::write, .fd = fd, .offset = off, .len = len, .buf = std::move(b)});
  }
  op_awaiter recv(int fd, buffer b, uint32_t len) noexcept {
    return submit(op{.kind = op_kind::recv, .fd = fd, .len = len, .buf = std::move(b)});
  }
  op_awaiter send(int fd, buffer b, uint32_t len) noexcept {
    return submit(op{.kind = op_kind::send, .fd = fd, .len = len, .buf = std::move(b)});
  }
  op_awaiter accept(int fd) noexcept { return submit(op{.kind = op_kind::accept, .fd = fd}); }
  // Borrowed: addr must stay valid until the completion is delivered.
  op_awaiter connect(int fd, const sockaddr* addr, socklen_t len) noexcept {
    return submit(op{.kind = op_kind::connect, .fd = fd, .addr = addr, .addrlen = len});
  }
  op_awaiter close(int fd) noexcept { return submit(op{.kind = op_kind::close, .fd = fd}); }
  op_awaiter fsync(int fd) noexcept { return submit(op{.kind = op_kind::fsync, .fd = fd}); }
  op_awaiter nop() noexcept { return submit(op{.kind = op_kind::nop}); }
  op_awaiter sleep_ns(uint64_t ns) noexcept { return submit(op{.kind = op_kind::timeout, .timeout_ns = ns}); }

 private:
  backend& be_;
};

}  // namespace ringside
