// Checks: an op's deadline (op.deadline_ns; io_uring's linked timeout)
// cancels it only if it is still pending when the deadline passes — the op
// then completes exactly once with -ECANCELED and its buffer — and never
// touches an op that completed first: a success is never lost to a deadline.
#include <chrono>

#include "tests/conformance/driver.hpp"

namespace ringside::conformance {
namespace {

op with_deadline(op o, uint64_t ns) {
  o.deadline_ns = ns;
  return o;
}

// Description: a recv on an empty socket with a 20 ms deadline completes
// once, -ECANCELED, with its buffer, not before the deadline; the socket
// still works afterwards: the cancelled recv ate none of the later bytes
// (sound contracts; uring-raw ends the op at the timeout's CQE, so its own
// CQE is the kernel's business).
TEST_P(backend, deadline_fires_on_pending_recv) {
  driver d(GetParam());
  const bool sound = d.caps().contract != buffer_contract::borrowed_unsound;
#if RINGSIDE_ASAN || RINGSIDE_TSAN
  // The negative control hands the buffer back while the kernel holds it:
  // the sanitizer hooks (harness/sanitize.hpp) report that and end the
  // process; tests/safety covers it in child processes.
  if (!sound) GTEST_SKIP() << "uring-raw's early hand-back is a sanitizer report in this build";
#endif
  socket_pair sp = make_socketpair();
  d.adopt(sp.a);
  int32_t res = 1, next_res = 1;
  bool buffer_back = false, next_ok = false;
  int completions = 0;
  std::chrono::nanoseconds took{};
  auto body = [&]() -> task<> {
    const auto t0 = clock_type::now();
    probe p(d.be(), with_deadline(recv_op(sp.a.get(), d.pool().acquire(), 64), 20'000'000));
    completion c = co_await p;
    took = clock_type::now() - t0;
    res = c.res;
    buffer_back = c.buf.valid();
    co_await d.io().sleep_ns(20'000'000);  // a late second completion would land in p now
    completions = p.completions();
    std::byte out[16];
    fill_pattern(out, 41, 0);
    CO_ASSERT_EQ(::send(sp.b.get(), out, sizeof out, 0), 16);
    completion r = co_await d.io().recv(sp.a.get(), std::move(c.buf), 16);
    next_res = r.res;
    next_ok = r.res == 16 && matches_pattern(r.buf.first(16), 41, 0);
  };
  d.spawn(body());
  ASSERT_EQ(d.run(), 0) << "watchdog: the deadline never ended the recv";
  EXPECT_EQ(res, -ECANCELED);
  EXPECT_TRUE(buffer_back) << "the completion did not hand the buffer back";
  EXPECT_EQ(completions, 1);
  // 15 ms: the deadline, less timer slack on the early side (none expected).
  EXPECT_GE(took, std::chrono::milliseconds(15)) << "the deadline fired early";
  if (sound) {
    EXPECT_EQ(next_res, 16);
    EXPECT_TRUE(next_ok) << "the cancelled recv ate bytes sent after it ended";
    d.be().shutdown();
    const auto v = d.violations();
    EXPECT_TRUE(v.empty()) << describe(v);
  }
}

// Description: a recv whose data is already there completes with it, and
// its deadline passing later does nothing: no second completion, no
// -ECANCELED, no stray report (the linked timeout's own CQE is the loop's,
// never the op's), on every backend, the negative control included.
TEST_P(backend, deadline_after_completion_does_nothing) {
  driver d(GetParam());
  socket_pair sp = make_socketpair();
  d.adopt(sp.a);
  std::byte data[32];
  fill_pattern(data, 43, 0);
  ASSERT_EQ(::send(sp.b.get(), data, sizeof data, 0), 32);
  int32_t res = 1, after_res = 1;
  bool bytes_ok = false;
  int completions = 0;
  auto body = [&]() -> task<> {
    probe p(d.be(), with_deadline(recv_op(sp.a.get(), d.pool().acquire(), 64), 10'000'000));
    completion c = co_await p;
    res = c.res;
    bytes_ok = c.res == 32 && matches_pattern(c.buf.first(32), 43, 0);
    co_await d.io().sleep_ns(40'000'000);  // well past the deadline
    completions = p.completions();
    // The same slot is likely reused now: a late timeout must not name it.
    probe q(d.be(), nop_op());
    completion n = co_await q;
    after_res = n.res;
  };
  d.spawn(body());
  ASSERT_EQ(d.run(), 0) << "watchdog: the run hung";
  EXPECT_EQ(res, 32);
  EXPECT_TRUE(bytes_ok);
  EXPECT_EQ(completions, 1);
  EXPECT_EQ(after_res, 0);
  d.be().shutdown();
  const auto v = d.violations();
  EXPECT_TRUE(v.empty()) << describe(v);
}

// Description: data that arrives before the deadline is delivered: a recv
// with a 2 s deadline, data sent 10 ms in by another stream, completes with
// the bytes, long before the deadline.
TEST_P(backend, deadline_success_never_lost) {
  driver d(GetParam());
  socket_pair sp = make_socketpair();
  d.adopt(sp.a);
  int32_t res = 1;
  bool bytes_ok = false;
  int completions = 0;
  std::atomic<int> sent{0};
  auto victim = [&]() -> task<> {
    probe p(d.be(), with_deadline(recv_op(sp.a.get(), d.pool().acquire(), 64), 2'000'000'000));
    completion c = co_await p;
    res = c.res;
    bytes_ok = c.res == 16 && matches_pattern(c.buf.first(16), 47, 0);
    co_await d.io().sleep_ns(10'000'000);
    completions = p.completions();
  };
  auto sender = [&]() -> task<> {
    co_await d.io().sleep_ns(10'000'000);  // the recv is now pending
    std::byte out[16];
    fill_pattern(out, 47, 0);
    CO_ASSERT_EQ(::send(sp.b.get(), out, sizeof out, 0), 16);
    sent.store(1);
  };
  d.spawn(victim());
  d.spawn(sender());
  const auto t0 = clock_type::now();
  ASSERT_EQ(d.run(), 0) << "watchdog: the run hung";
  EXPECT_EQ(sent.load(), 1);
  EXPECT_EQ(res, 16) << "the deadline took a recv whose data had come";
  EXPECT_TRUE(bytes_ok);
  EXPECT_EQ(completions, 1);
  EXPECT_LT(clock_type::now() - t0, std::chrono::seconds(1)) << "the recv waited for its deadline";
}

// Description: a deadline on a sleep: the earlier of the two ends it — a
// 1 s sleep with a 20 ms deadline is cancelled, a 10 ms sleep with a 1 s
// deadline succeeds.
TEST_P(backend, deadline_on_sleep) {
  driver d(GetParam());
  int32_t long_res = 1, short_res = 1;
  auto body = [&]() -> task<> {
    op a = with_deadline(nop_op(), 20'000'000);
    a.kind = op_kind::timeout;
    a.timeout_ns = 1'000'000'000;
    completion c = co_await d.io().submit(std::move(a));
    long_res = c.res;
    op b = with_deadline(nop_op(), 1'000'000'000);
    b.kind = op_kind::timeout;
    b.timeout_ns = 10'000'000;
    completion e = co_await d.io().submit(std::move(b));
    short_res = e.res;
  };
  d.spawn(body());
  const auto t0 = clock_type::now();
  ASSERT_EQ(d.run(), 0) << "watchdog: the run hung";
  EXPECT_EQ(long_res, -ECANCELED);
  EXPECT_EQ(short_res, 0);
  EXPECT_LT(clock_type::now() - t0, std::chrono::milliseconds(900)) << "the deadline did not end the long sleep";
}

}  // namespace
}  // namespace ringside::conformance