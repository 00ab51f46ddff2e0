// The tasks (streams) one backend runs, kept the same way by every backend:
// spawned tasks waiting to start, the coroutine frames of live tasks (so
// shutdown() can destroy them after a hang), the observer each task reports
// its end to, and the one way a task's exception becomes a violation
// {kind "task_error", detail what()} — run() never rethrows it.
//
// One-loop backends call start_queued() from their loop; thread-per-stream
// backends take_queued() each frame and resume it on its own thread.
//
// Thread-safe: spawn() and the end of a task may happen on any thread. Cost
// is per task (a lock and, for a new record, an allocation), never per op.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <vector>

#include "harness/task.hpp"
#include "harness/violation.hpp"

namespace ringside {

class task_set {
 public:
  using clock = std::chrono::steady_clock;

  task_set() = default;
  // Destroys the frames of tasks that never ended (destroy_live()).
  ~task_set();
  task_set(const task_set&) = delete;
  task_set& operator=(const task_set&) = delete;
  task_set(task_set&&) = delete;
  task_set& operator=(task_set&&) = delete;

  // Queues t to start. After close(), t is destroyed unstarted and false is
  // returned. May throw std::bad_alloc (spawning is not on the per-op path).
  bool spawn(task<> t);

  // One-loop backends: resumes every queued task, in spawn order, each to its
  // first suspension (or its end); tasks spawned meanwhile start in later
  // rounds of the same call. Call from the loop thread only.
  void start_queued() noexcept;

  // Thread-per-stream backends: the frame of the oldest queued task, now
  // counted as started, or null. The caller resumes it (on its own thread);
  // it stays live (destroy_live() may destroy it) until it ends.
  std::coroutine_handle<> take_queued() noexcept;

  // Spawned and not ended, queued ones included.
  [[nodiscard]] size_t live() const noexcept { return live_.load(std::memory_order_acquire); }
  [[nodiscard]] bool has_queued() const noexcept { return queued_.load(std::memory_order_acquire) != 0; }

  // Blocks until live() == 0 or the deadline passes; true when all ended.
  bool wait_idle_until(clock::time_point deadline);

  // From now on spawn() refuses (a backend shutting down starts nothing new).
  void close() noexcept;
  [[nodiscard]] bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }

  // Closes the set, then destroys the frame of every task that has not ended
  // — queued, or suspended on something that will never resume it — and with
  // it the whole coroutine chain (its op awaiters drop() their ops; no
  // observer is told). Only when no thread is running any of them. Returns
  // how many.
  size_t destroy_live() noexcept;

  // task_error violations since the last call.
  void take_violations(std::vector<violation>& out);

 private:
  struct record final : task_observer {
    task_set* owner = nullptr;
    std::coroutine_handle<> frame;  // null once ended (the frame freed itself)
    uint32_t index = 0;
    bool live = false;
    bool queued = false;
    void on_task_done(std::exception_ptr error) noexcept override { owner->task_done(*this, error); }
  };

  void task_done(record& r, std::exception_ptr error) noexcept;

  mutable std::mutex mu_;
  std::condition_variable idle_;
  std::deque<record> records_;     // deque: a record's address is its task's observer
  std::vector<uint32_t> free_;     // reserved to records_.size(): task_done never allocates
  std::deque<uint32_t> queue_;     // spawned, not started, in order
  std::vector<violation> violations_;
  std::atomic<size_t> live_{0};
  std::atomic<size_t> queued_{0};
  std::atomic<bool> closed_{false};
};

}  // namespace ringside
