// Checks: a backend's life around its ops — every op hears on_started before
// its one completion, even one that ends at once or is submitted while the
// backend shuts down; a task's exception is a task_error violation, the same
// on every backend, and run() still returns; shutdown() is idempotent, and
// what teardown finds reaches collect_violations() after it.
#include <stdexcept>

#include "tests/conformance/driver.hpp"

namespace ringside::conformance {
namespace {

// Description: ops that end without waiting — a nop, a recv whose range does
// not fit its buffer, a recv without a buffer, a read of a closed fd — each
// get on_started, then exactly one completion, with the expected result.
TEST_P(backend, early_completions_start_first) {
  driver d(GetParam());
  socket_pair sp = make_socketpair();
  d.adopt(sp.a);
  int closed_fd;
  {
    unique_fd s = tcp_socket();
    closed_fd = s.get();
  }
  counting_waiter nop_w, range_w, nobuf_w, badfd_w;
  latch all(4);
  for (auto* w : {&nop_w, &range_w, &nobuf_w, &badfd_w}) w->arm(&all);
  auto body = [&]() -> task<> {
    d.be().submit(nop_op(), &nop_w);
    buffer b = d.pool().acquire();
    const auto cap = static_cast<uint32_t>(b.capacity());
    d.be().submit(payload_op(op_kind::recv, sp.a.get(), std::move(b), cap - 8, 9), &range_w);
    d.be().submit(recv_op(sp.a.get(), buffer{}, 16), &nobuf_w);
    d.be().submit(payload_op(op_kind::read, closed_fd, d.pool().acquire(), 0, 64, 0), &badfd_w);
    co_await all.wait();
    co_await d.io().sleep_ns(5'000'000);  // a late second completion would land now
  };
  d.spawn(body());
  ASSERT_EQ(d.run(), 0) << "watchdog: an op that ends at once never completed";
  for (auto* w : {&nop_w, &range_w, &nobuf_w, &badfd_w}) {
    EXPECT_TRUE(w->started());
    EXPECT_EQ(w->completions(), 1);
  }
  EXPECT_EQ(nop_w.res(), 0);
  EXPECT_EQ(range_w.res(), -EINVAL);
  EXPECT_EQ(nobuf_w.res(), -EINVAL);
  EXPECT_EQ(badfd_w.res(), -EBADF);
}

// Description: a task that throws ends as one violation {task_error, its
// what()}; run() returns 0 (it does not rethrow) and the other tasks run to
// their end.
TEST_P(backend, task_exception_is_a_task_error_violation) {
  driver d(GetParam());
  bool other_done = false;
  auto thrower = [&]() -> task<> {
    co_await d.io().nop();
    throw std::runtime_error("scenario bug 42");
  };
  auto other = [&]() -> task<> {
    co_await d.io().sleep_ns(2'000'000);
    other_done = true;
  };
  d.spawn(thrower());
  d.spawn(other());
  int rc = 1;
  EXPECT_NO_THROW(rc = d.run());
  EXPECT_EQ(rc, 0);
  EXPECT_TRUE(other_done);
  d.be().shutdown();
  const auto v = d.violations();
  ASSERT_EQ(v.size(), 1u) << describe(v);
  EXPECT_EQ(v[0].kind, "task_error");
  EXPECT_EQ(v[0].detail, "scenario bug 42");
}

// Description: after a hang, shutdown() ends the stuck task (its buffer
// comes back), may be called twice, and what teardown found is collected
// after it: nothing on a sound contract; on the negative control
// (borrowed_unsound) the ledger catches the buffer its teardown released
// while the kernel still held it.
TEST_P(backend, shutdown_after_hang_reports_what_teardown_found) {
  driver d(GetParam());
  socket_pair sp = make_socketpair();
  d.adopt(sp.a);
  auto stuck = [&]() -> task<> {
    completion c = co_await d.io().recv(sp.a.get(), d.pool().acquire(), 64);
    (void)c;
  };
  d.spawn(stuck());
  ASSERT_EQ(d.run(100ms), -ETIME);
  const auto t0 = clock_type::now();
  d.be().shutdown();
  d.be().shutdown();  // idempotent
  // 3 s: the blocking backend may spend its 2 s interrupt budget.
  EXPECT_LT(clock_type::now() - t0, 3s);
  EXPECT_EQ(d.pool().available(), d.pool().count()) << "shutdown() left a buffer out of the pool";
  const auto v = d.violations();
  if (d.caps().contract == buffer_contract::borrowed_unsound) {
    EXPECT_TRUE(has_kind(v, "ledger")) << describe(v);
  } else {
    EXPECT_TRUE(v.empty()) << describe(v);
  }
  const int again = d.run(100ms);  // nothing left to run: returns at once
  EXPECT_TRUE(again == 0 || again == -ETIME) << again;
}

// Starts a nop through `be` from its completion: the op whose completion
// arrives during shutdown submits another.
class chaining_waiter final : public op_waiter {
 public:
  chaining_waiter(ringside::backend& be, counting_waiter& next) noexcept : be_(be), next_(next) {}
  [[nodiscard]] int completions() const noexcept { return completions_.load(); }
  [[nodiscard]] int32_t res() const noexcept { return res_.load(); }

 private:
  void on_started(op_id) noexcept override { started_.store(true); }
  void on_complete(completion&& c) noexcept override {
    if (!started_.load()) ADD_FAILURE() << "completion before on_started (res " << c.res << ")";
    res_.store(c.res);
    if (completions_.fetch_add(1) == 0) be_.submit(nop_op(), &next_);
  }
  ringside::backend& be_;
  counting_waiter& next_;
  std::atomic<bool> started_{false};
  std::atomic<int> completions_{0};
  std::atomic<int32_t> res_{1};
};

// Description: a recv whose waiter lives outside any task is pending when
// the run hangs; shutdown() completes it once (-ECANCELED), and the nop its
// completion submits — while the backend is shutting down — still gets
// on_started, then exactly one completion.
TEST_P(backend, op_submitted_during_shutdown_starts_then_completes_once) {
  counting_waiter second;
  driver d(GetParam());
  chaining_waiter first(d.be(), second);
  socket_pair sp = make_socketpair();
  socket_pair other = make_socketpair();
  d.adopt(sp.a);
  d.adopt(other.a);
  auto body = [&]() -> task<> {
    // A thread-per-stream backend blocks here, inside submit(), until the
    // watchdog interrupts it; a loop backend returns and blocks below.
    d.be().submit(recv_op(sp.a.get(), d.pool().acquire(), 64), &first);
    completion c = co_await d.io().recv(other.a.get(), d.pool().acquire(), 64);
    (void)c;
  };
  d.spawn(body());
  ASSERT_EQ(d.run(100ms), -ETIME);
  d.be().shutdown();
  EXPECT_EQ(first.completions(), 1);
  EXPECT_EQ(first.res(), -ECANCELED);
  EXPECT_TRUE(second.started()) << "an op submitted during shutdown never heard on_started";
  EXPECT_EQ(second.completions(), 1);
  EXPECT_TRUE(second.res() == 0 || second.res() == -ECANCELED) << second.res();
  d.destroy_backend();
  EXPECT_EQ(second.completions(), 1);
  EXPECT_EQ(d.pool().available(), d.pool().count());
}

}  // namespace
}  // namespace ringside::conformance
