// Description: the task set every backend keeps its streams in. Tasks start
// in spawn order (tasks they spawn start in the same call, after them); live()
// counts a task until it ends; a task's exception becomes one violation
// {task_error, what()}; destroy_live() destroys unstarted and suspended
// frames (and their whole chain) and refuses later spawns; tasks may be
// resumed and end on other threads, and wait_idle_until() sees them end.
#include "harness/task_set.hpp"

#include "harness/meters.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace ringside {
namespace {

using namespace std::chrono_literals;

// Suspends its awaiter until resumed by hand (a stand-in for an op that
// never completes).
struct gate {
  std::coroutine_handle<> waiting;
  struct awaiter {
    gate* g;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) noexcept { g->waiting = h; }
    void await_resume() const noexcept {}
  };
  awaiter wait() noexcept { return {this}; }
};

// Counts its destruction: lives in a frame, so a destroyed frame counts.
struct frame_marker {
  int* destroyed;
  ~frame_marker() { ++*destroyed; }
};

task<> record(std::vector<int>* order, int n) {
  order->push_back(n);
  co_return;
}

task<> spawner(task_set* set, std::vector<int>* order) {
  order->push_back(1);
  set->spawn(record(order, 3));
  co_return;
}

TEST(task_set, starts_in_spawn_order_and_nested_spawns_in_the_same_call) {
  task_set set;
  std::vector<int> order;
  set.spawn(spawner(&set, &order));
  set.spawn(record(&order, 2));
  EXPECT_EQ(set.live(), 2u);
  EXPECT_TRUE(set.has_queued());
  set.start_queued();
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(set.live(), 0u);
  EXPECT_FALSE(set.has_queued());
}

task<> wait_at(gate* g, int* destroyed) {
  frame_marker m{destroyed};
  co_await g->wait();
}

TEST(task_set, live_counts_a_suspended_task_until_it_ends) {
  task_set set;
  gate g;
  int destroyed = 0;
  set.spawn(wait_at(&g, &destroyed));
  set.start_queued();
  EXPECT_EQ(set.live(), 1u);
  EXPECT_FALSE(set.has_queued());
  ASSERT_TRUE(g.waiting);
  g.waiting.resume();  // ends the task: its frame frees itself
  EXPECT_EQ(destroyed, 1);
  EXPECT_EQ(set.live(), 0u);
  EXPECT_EQ(set.destroy_live(), 0u);
}

task<> throws_std() {
  co_await std::suspend_never{};
  throw std::runtime_error("scenario bug");
}
task<> throws_int() {
  co_await std::suspend_never{};
  throw 42;
}

TEST(task_set, an_exception_becomes_one_task_error_violation) {
  task_set set;
  set.spawn(throws_std());
  set.spawn(throws_int());
  set.start_queued();
  EXPECT_EQ(set.live(), 0u);
  std::vector<violation> v;
  set.take_violations(v);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].kind, "task_error");
  EXPECT_EQ(v[0].detail, "scenario bug");
  EXPECT_EQ(v[1].kind, "task_error");
  EXPECT_EQ(v[1].detail, "unknown exception");
  v.clear();
  set.take_violations(v);
  EXPECT_TRUE(v.empty()) << "violations are handed out once";
}

task<> nested_wait(gate* g, int* destroyed) {
  frame_marker m{destroyed};
  co_await wait_at(g, destroyed);  // the inner frame is part of the chain
}

TEST(task_set, destroy_live_destroys_unstarted_and_suspended_chains_and_closes) {
  task_set set;
  gate g;
  int destroyed = 0;
  set.spawn(nested_wait(&g, &destroyed));
  set.start_queued();
  set.spawn(wait_at(&g, &destroyed));  // never started
  EXPECT_EQ(set.live(), 2u);
  EXPECT_EQ(set.destroy_live(), 2u);
  // The suspended chain's two frames; the unstarted task never built its marker.
  EXPECT_EQ(destroyed, 2);
  EXPECT_EQ(set.live(), 0u);
  EXPECT_TRUE(set.closed());
  EXPECT_FALSE(set.spawn(wait_at(&g, &destroyed)));  // refused: destroyed unstarted
  EXPECT_EQ(set.live(), 0u);
  std::vector<violation> v;
  set.take_violations(v);
  EXPECT_TRUE(v.empty()) << "a destroyed task is not an error";
}

TEST(task_set, destructor_destroys_what_is_left) {
  gate g;
  int destroyed = 0;
  {
    task_set set;
    set.spawn(wait_at(&g, &destroyed));
    set.start_queued();
  }
  EXPECT_EQ(destroyed, 1);
}

task<> count_to(std::atomic<int>* done, int spins) {
  volatile int x = 0;
  for (int i = 0; i < spins; ++i) x = x + 1;
  done->fetch_add(1);
  co_return;
}

TEST(task_set, tasks_taken_and_resumed_on_threads_end_there) {
  task_set set;
  std::atomic<int> done{0};
  constexpr int tasks = 16;
  for (int i = 0; i < tasks; ++i) set.spawn(count_to(&done, 1000 * i));
  std::vector<std::thread> threads;
  while (std::coroutine_handle<> h = set.take_queued()) threads.emplace_back([h] { h.resume(); });
  EXPECT_EQ(threads.size(), size_t(tasks));
  EXPECT_TRUE(set.wait_idle_until(task_set::clock::now() + 5s));
  for (auto& t : threads) t.join();
  EXPECT_EQ(done.load(), tasks);
  EXPECT_EQ(set.live(), 0u);
}

TEST(task_set, wait_idle_until_times_out_while_a_task_is_suspended) {
  task_set set;
  gate g;
  int destroyed = 0;
  set.spawn(wait_at(&g, &destroyed));
  set.start_queued();
  const auto t0 = task_set::clock::now();
  EXPECT_FALSE(set.wait_idle_until(t0 + 20ms));
  EXPECT_GE(task_set::clock::now() - t0, 20ms);
  std::thread t([&] { g.waiting.resume(); });  // ends on another thread
  EXPECT_TRUE(set.wait_idle_until(task_set::clock::now() + 5s));
  t.join();
  EXPECT_EQ(destroyed, 1);
}

TEST(task_set, records_are_reused) {
  ASSERT_TRUE(meters::alloc_counting_active());
  task_set set;
  std::vector<int> order;
  order.reserve(1100);
  // 100 warm-up tasks, then 1000 one after another: each record is free
  // again when its task ends, so a task costs its two frames (the task's and
  // the detached wrapper's) and nothing for its record.
  uint64_t before = 0;
  for (int i = 0; i < 1100; ++i) {
    if (i == 100) before = meters::read().allocs;
    set.spawn(record(&order, i));
    set.start_queued();
  }
  const uint64_t allocs = meters::read().allocs - before;
  EXPECT_EQ(order.size(), 1100u);
  EXPECT_EQ(set.live(), 0u);
  // 2100: two frames per task plus the start queue's occasional new block.
  EXPECT_LE(allocs, 2100u);
}

}  // namespace
}  // namespace ringside
