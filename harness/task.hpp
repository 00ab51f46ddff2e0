// task<T>: a lazy C++20 coroutine, awaited by its caller (symmetric transfer),
// and the glue a backend uses to run a detached top-level task (a "stream").
#pragma once

#include <coroutine>
#include <exception>
#include <optional>
#include <utility>

namespace ringside {

template <typename T = void>
class task;

namespace detail {

struct final_awaiter {
  bool await_ready() const noexcept { return false; }
  template <typename P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
    if (auto c = h.promise().continuation_) return c;
    return std::noop_coroutine();
  }
  void await_resume() const noexcept {}
};

struct promise_base {
  std::coroutine_handle<> continuation_;
  std::exception_ptr error_;
  std::suspend_always initial_suspend() const noexcept { return {}; }
  final_awaiter final_suspend() const noexcept { return {}; }
  void unhandled_exception() noexcept { error_ = std::current_exception(); }
};

}  // namespace detail

template <typename T>
class [[nodiscard]] task {
 public:
  struct promise_type : detail::promise_base {
    std::optional<T> value_;
    task get_return_object() noexcept { return task(std::coroutine_handle<promise_type>::from_promise(*this)); }
    template <typename U>
    void return_value(U&& v) { value_.emplace(std::forward<U>(v)); }
  };

  task(task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  task& operator=(task&& o) noexcept {
    if (this != &o) { if (h_) h_.destroy(); h_ = std::exchange(o.h_, {}); }
    return *this;
  }
  task(const task&) = delete;
  ~task() { if (h_) h_.destroy(); }

  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> c) noexcept {
    h_.promise().continuation_ = c;
    return h_;
  }
  T await_resume() {
    if (h_.promise().error_) std::rethrow_exception(h_.promise().error_);
    return std::move(*h_.promise().value_);
  }

 private:
  explicit task(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
  std::coroutine_handle<promise_type> h_;
};

template <>
class [[nodiscard]] task<void> {
 public:
  struct promise_type : detail::promise_base {
    task get_return_object() noexcept { return task(std::coroutine_handle<promise_type>::from_promise(*this)); }
    void return_void() noexcept {}
  };

  task() noexcept = default;
  task(task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  task& operator=(task&& o) noexcept {
    if (this != &o) { if (h_) h_.destroy(); h_ = std::exchange(o.h_, {}); }
    return *this;
  }
  task(const task&) = delete;
  ~task() { if (h_) h_.destroy(); }

  explicit operator bool() const noexcept { return bool(h_); }
  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> c) noexcept {
    h_.promise().continuation_ = c;
    return h_;
  }
  void await_resume() {
    if (h_.promise().error_) std::rethrow_exception(h_.promise().error_);
  }

 private:
  explicit task(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
  std::coroutine_handle<promise_type> h_;
};

// Told when a detached top-level task ends (error is null on success).
class task_observer {
 public:
  virtual void on_task_done(std::exception_ptr error) noexcept = 0;

 protected:
  ~task_observer() = default;
};

// A top-level task a backend runs. Created suspended; resume() starts it; the
// frame frees itself when the task ends, after telling the observer. Destroying
// an unstarted or suspended detached task destroys its whole coroutine chain
// (that is "dropping" every op it awaits).
class detached_task {
 public:
  struct promise_type {
    task_observer* observer_ = nullptr;
    detached_task get_return_object() noexcept {
      return detached_task(std::coroutine_handle<promise_type>::from_promise(*this));
    }
    std::suspend_always initial_suspend() const noexcept { return {}; }
    std::suspend_never final_suspend() const noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }  // wrap() catches all
  };

  detached_task(detached_task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  detached_task(const detached_task&) = delete;
  ~detached_task() { if (h_) h_.destroy(); }

  // Starts the task; ownership passes to the coroutine itself.
  void start() noexcept { std::exchange(h_, {}).resume(); }
  std::coroutine_handle<> release() noexcept { return std::exchange(h_, {}); }

 private:
  explicit detached_task(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
  std::coroutine_handle<promise_type> h_;
};

// Wraps t so that its end (or exception) is reported to obs.
inline detached_task make_detached(task<> t, task_observer* obs) {
  std::exception_ptr err;
  try {
    co_await std::move(t);
  } catch (...) {
    err = std::current_exception();
  }
  obs->on_task_done(err);
}

}  // namespace ringside
