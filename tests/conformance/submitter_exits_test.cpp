// Checks: op.submitter_exits (cancel.thread_exit's hook). Where the backend
// says caps.submitter_can_exit, the op is pending and its submitting thread
// gone when submit() returns; the kernel then ends it itself (-ECANCELED at
// its next wakeup on Linux 6.x), and the backend delivers that once, with
// the buffer, leaving the bytes that woke it in the socket. Elsewhere the op
// completes -EOPNOTSUPP at once and the backend stays usable.
#include "tests/conformance/driver.hpp"

namespace ringside::conformance {
namespace {

// Submits an orphaned op at construction (so the test can act while it is
// pending), counts its completions, and is awaitable. Immovable: the backend
// holds its address.
class orphan final : public op_waiter {
 public:
  orphan(ringside::backend& be, op o) noexcept : be_(be) {
    o.submitter_exits = true;
    id_ = be_.submit(std::move(o), this);
  }
  orphan(const orphan&) = delete;
  orphan& operator=(const orphan&) = delete;
  ~orphan() {
    if (completions() == 0) be_.drop(id_);
  }
  int cancel() noexcept { return be_.cancel(id_); }
  [[nodiscard]] int completions() const noexcept { return completions_; }

  bool await_ready() const noexcept { return completions_ > 0; }
  void await_suspend(std::coroutine_handle<> h) noexcept { h_ = h; }
  completion await_resume() noexcept { return std::move(result_); }

 private:
  void on_complete(completion&& c) noexcept override {
    if (++completions_ > 1) {
      ADD_FAILURE() << "second completion for one op (res " << c.res << ")";
      return;
    }
    result_ = std::move(c);
    if (h_) std::exchange(h_, {}).resume();
  }

  ringside::backend& be_;
  op_id id_;
  completion result_;
  std::coroutine_handle<> h_;
  int completions_ = 0;
};

// Description: an orphaned recv on an empty socket does not complete on its
// own; 5 bytes from the peer end it once, -ECANCELED (or, on a kernel that
// lets it finish, with those bytes), buffer handed back; a later recv reads
// whatever it did not take.
TEST_P(backend, submitter_exits_recv_ends_at_wakeup_with_bytes_kept) {
  driver d(GetParam());
  socket_pair sp = make_socketpair();
  d.adopt(sp.a);
  const bool can = d.caps().submitter_can_exit;
  int32_t res = 1;
  bool early = true, buffer_back = false, rest_ok = false;
  int completions = 0;
  auto body = [&]() -> task<> {
    orphan p(d.be(), recv_op(sp.a.get(), d.pool().acquire(), 64));
    co_await d.io().sleep_ns(10'000'000);  // 10 ms: time to end early, if it wrongly would
    early = p.completions() != 0;
    std::byte out[5];
    fill_pattern(out, 18, 0);
    CO_ASSERT_EQ(::send(sp.b.get(), out, sizeof out, 0), 5);
    completion c = co_await p;
    res = c.res;
    buffer_back = c.buf.valid();
    co_await d.io().sleep_ns(10'000'000);  // a second completion would land in p now
    completions = p.completions();
    const uint32_t taken = c.res > 0 ? uint32_t(c.res) : 0;
    if (taken == 5) {
      rest_ok = matches_pattern(c.buf.first(5), 18, 0);
      co_return;
    }
    completion r = co_await d.io().recv(sp.a.get(), std::move(c.buf), 64);
    rest_ok = r.res == int32_t(5 - taken) && matches_pattern(r.buf.first(uint32_t(r.res)), 18, taken);
  };
  d.spawn(body());
  ASSERT_EQ(d.run(), 0) << "watchdog: the orphaned recv never completed";
  EXPECT_EQ(completions, 1);
  EXPECT_TRUE(buffer_back) << "the completion did not hand the buffer back";
  if (!can) {
    EXPECT_EQ(res, -EOPNOTSUPP);
    EXPECT_TRUE(rest_ok) << "the backend is not usable after refusing the op";
    return;
  }
  EXPECT_FALSE(early) << "the orphaned recv ended before anything woke it";
  EXPECT_TRUE(res == -ECANCELED || res > 0) << "res " << res;
  EXPECT_TRUE(rest_ok) << "bytes the orphaned recv did not deliver were lost";
}

// Description: an orphaned recv can be cancelled from the loop (its cancel
// must reach the ring that holds it): one -ECANCELED completion with the
// buffer, and the socket keeps its later bytes.
TEST_P(backend, submitter_exits_recv_can_be_cancelled) {
  driver d(GetParam());
  if (!d.caps().submitter_can_exit) GTEST_SKIP() << "no caps.submitter_can_exit";
#if RINGSIDE_ASAN || RINGSIDE_TSAN
  if (d.caps().contract == buffer_contract::borrowed_unsound)
    GTEST_SKIP() << "uring-raw's early hand-back is a sanitizer report in this build";
#endif
  socket_pair sp = make_socketpair();
  d.adopt(sp.a);
  int32_t res = 1, cancel_res = 1;
  bool buffer_back = false, next_ok = false;
  int completions = 0;
  auto body = [&]() -> task<> {
    orphan p(d.be(), recv_op(sp.a.get(), d.pool().acquire(), 64));
    cancel_res = p.cancel();
    completion c = co_await p;
    res = c.res;
    buffer_back = c.buf.valid();
    co_await d.io().sleep_ns(10'000'000);
    completions = p.completions();
    std::byte out[16];
    fill_pattern(out, 19, 0);
    CO_ASSERT_EQ(::send(sp.b.get(), out, sizeof out, 0), 16);
    completion r = co_await d.io().recv(sp.a.get(), std::move(c.buf), 16);
    next_ok = r.res == 16 && matches_pattern(r.buf.first(16), 19, 0);
  };
  d.spawn(body());
  ASSERT_EQ(d.run(), 0) << "watchdog: the cancel never reached the orphaned recv";
  EXPECT_EQ(cancel_res, 0);
  EXPECT_EQ(res, -ECANCELED);
  EXPECT_TRUE(buffer_back);
  EXPECT_EQ(completions, 1);
  EXPECT_TRUE(next_ok);
}

}  // namespace
}  // namespace ringside::conformance
