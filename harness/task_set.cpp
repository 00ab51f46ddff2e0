#include "harness/task_set.hpp"

#include <algorithm>
#include <string>
#include <utility>

namespace ringside {

task_set::~task_set() { destroy_live(); }

bool task_set::spawn(task<> t) {
  std::lock_guard lk(mu_);
  if (closed_.load(std::memory_order_relaxed)) return false;  // t is destroyed unstarted
  uint32_t i;
  if (!free_.empty()) {
    i = free_.back();
    free_.pop_back();
  } else {
    // Room first (grown geometrically), so task_done() can always give the
    // record back without allocating.
    if (free_.capacity() < records_.size() + 1) free_.reserve(std::max<size_t>(16, 2 * free_.capacity()));
    records_.emplace_back();
    i = static_cast<uint32_t>(records_.size() - 1);
    records_.back().index = i;
  }
  record& r = records_[i];
  try {
    queue_.push_back(i);
  } catch (...) {
    free_.push_back(i);
    throw;
  }
  try {
    r.frame = make_detached(std::move(t), &r).release();
  } catch (...) {
    queue_.pop_back();
    free_.push_back(i);
    throw;
  }
  r.owner = this;
  r.live = true;
  r.queued = true;
  live_.fetch_add(1, std::memory_order_acq_rel);
  queued_.fetch_add(1, std::memory_order_acq_rel);
  return true;
}

std::coroutine_handle<> task_set::take_queued() noexcept {
  std::lock_guard lk(mu_);
  while (!queue_.empty()) {
    record& r = records_[queue_.front()];
    queue_.pop_front();
    if (!r.queued) continue;  // destroyed meanwhile
    r.queued = false;
    queued_.fetch_sub(1, std::memory_order_acq_rel);
    return r.frame;
  }
  return {};
}

void task_set::start_queued() noexcept {
  // One at a time, the lock released while the task runs: it may spawn
  // (appending to the queue, so it starts later in this same call) or end.
  while (std::coroutine_handle<> h = take_queued()) h.resume();
}

bool task_set::wait_idle_until(clock::time_point deadline) {
  std::unique_lock lk(mu_);
  return idle_.wait_until(lk, deadline, [&] { return live_.load(std::memory_order_acquire) == 0; });
}

void task_set::close() noexcept {
  std::lock_guard lk(mu_);
  closed_.store(true, std::memory_order_release);
}

size_t task_set::destroy_live() noexcept {
  close();
  size_t n = 0;
  // A cursor, not a snapshot: nothing can be added (closed), and destroying
  // one frame may end nothing else, so one pass sees every record.
  for (size_t i = 0;; ++i) {
    std::coroutine_handle<> h;
    {
      std::lock_guard lk(mu_);
      if (i >= records_.size()) break;
      record& r = records_[i];
      if (!r.live) continue;
      h = std::exchange(r.frame, {});
      r.live = false;
      if (std::exchange(r.queued, false)) queued_.fetch_sub(1, std::memory_order_acq_rel);
      live_.fetch_sub(1, std::memory_order_acq_rel);
      free_.push_back(r.index);
    }
    // Outside the lock: the frame's destructors call back into the backend.
    if (h) {
      h.destroy();
      ++n;
    }
  }
  std::lock_guard lk(mu_);
  queue_.clear();
  idle_.notify_all();
  return n;
}

void task_set::task_done(record& r, std::exception_ptr error) noexcept {
  std::string what;
  if (error) {
    try {
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
        what = "unknown exception";
      }
    } catch (...) {
      // Out of memory formatting it: still reported, without the text.
    }
  }
  std::lock_guard lk(mu_);
  // The frame frees itself as soon as this returns.
  r.frame = {};
  r.live = false;
  free_.push_back(r.index);
  if (error) {
    try {
      violations_.push_back({"task_error", std::move(what)});
    } catch (...) {
      // Out of memory while reporting: the run's verdict loses this line.
    }
  }
  live_.fetch_sub(1, std::memory_order_acq_rel);
  idle_.notify_all();
}

void task_set::take_violations(std::vector<violation>& out) {
  std::lock_guard lk(mu_);
  for (auto& v : violations_) out.push_back(std::move(v));
  violations_.clear();
}

}  // namespace ringside
