// Description: the blocking backend after a hang it cannot end. A stream
// that spins in scenario code ignores every interrupt: shutdown() detaches
// its thread and reports {hang, "1 stream threads could not be stopped"}
// (while a stream blocked in an op is unwound normally); the thread, if it
// ever reaches the backend again, parks instead of running scenario code;
// and a detached thread that finishes after the backend is gone touches no
// freed memory (ASan checks that).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "harness/io.hpp"
#include "tests/unit/uring_test_util.hpp"

namespace ringside {
namespace {

using namespace std::chrono_literals;

// Waits (bounded) until flag is set.
bool wait_for(const std::atomic<bool>& flag, std::chrono::milliseconds limit) {
  const auto until = clock_type::now() + limit;
  while (!flag.load() && clock_type::now() < until) std::this_thread::sleep_for(1ms);
  return flag.load();
}

// Spins in scenario code, outside any op, until released. sleep_for
// restarts itself after a signal, so no interrupt ends this.
task<> spin_until(const std::atomic<bool>* release, std::atomic<bool>* spinning) {
  spinning->store(true);
  while (!release->load()) std::this_thread::sleep_for(1ms);
  co_return;
}

TEST(blocking_backend, unstoppable_stream_is_a_hang_violation_and_is_safe_after_destruction) {
  buffer_pool pool(4, 4096);
  auto be = test::make_backend("blocking");
  be->attach_pool(pool);
  auto sp = test::make_socketpair();
  be->adopt(sp.a.get());
  std::atomic<bool> release{false}, spinning{false}, finished{false};
  int32_t blocked_res = 1;
  be->spawn([](const std::atomic<bool>* rel, std::atomic<bool>* spin, std::atomic<bool>* fin) -> task<> {
    co_await spin_until(rel, spin);
    fin->store(true);
  }(&release, &spinning, &finished));
  be->spawn([](backend& b, buffer_pool& p, int fd, int32_t* res) -> task<> {
    io io_(b);
    *res = (co_await io_.recv(fd, p.acquire(), 64)).res;  // no data: blocks until the watchdog
  }(*be, pool, sp.a.get(), &blocked_res));
  EXPECT_EQ(be->run(clock_type::now() + 100ms), -ETIME);
  EXPECT_TRUE(spinning.load());
  EXPECT_EQ(blocked_res, -ECANCELED) << "the stream blocked in an op was not unwound";
  const auto t0 = clock_type::now();
  be->shutdown();
  EXPECT_LT(clock_type::now() - t0, 1s) << "shutdown() waited again for threads run() gave up on";
  std::vector<violation> v;
  be->collect_violations(v);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, "hang");
  EXPECT_EQ(v[0].detail, "1 stream threads could not be stopped");
  be.reset();
  // The detached thread ends its task after the backend is gone: it may
  // touch only state it keeps alive itself.
  release.store(true);
  EXPECT_TRUE(wait_for(finished, 2000ms));
  std::this_thread::sleep_for(20ms);  // the thread leaves the backend's code
  EXPECT_EQ(pool.available(), pool.count());
}

TEST(blocking_backend, abandoned_stream_parks_at_its_next_op) {
  buffer_pool pool(4, 4096);
  auto be = test::make_backend("blocking");
  be->attach_pool(pool);
  std::atomic<bool> release{false}, spinning{false}, reached_op{false}, after_op{false};
  be->spawn([](backend& b, const std::atomic<bool>* rel, std::atomic<bool>* spin, std::atomic<bool>* reached,
               std::atomic<bool>* after) -> task<> {
    io io_(b);
    co_await spin_until(rel, spin);
    reached->store(true);
    co_await io_.nop();  // run() gave up on this thread: it parks here
    after->store(true);
  }(*be, &release, &spinning, &reached_op, &after_op));
  EXPECT_EQ(be->run(clock_type::now() + 50ms), -ETIME);
  release.store(true);
  EXPECT_TRUE(wait_for(reached_op, 2000ms));
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(after_op.load()) << "an abandoned stream returned into scenario code";
  be->shutdown();
  std::vector<violation> v;
  be->collect_violations(v);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, "hang");
  be.reset();  // the parked thread keeps what it needs; the process ends it
}

}  // namespace
}  // namespace ringside
