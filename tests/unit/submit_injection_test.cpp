// Description: submit-failure injection (backend::inject_submit_failures,
// ring::inject_submit_failures), what cancel.submit_fail drives. The ring
// fails the next N submits that have SQEs queued with -err, without entering
// the kernel, and the SQEs stay queued; every backend keeps its ops alive
// through its own transient failure (io_uring: SQEs queued or in the loop's
// backlog; epoll: an EAGAIN that parks the op; blocking: an EINTR that
// restarts the syscall) and completes each exactly once, with its data.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <deque>
#include <memory>
#include <string>

#include "harness/backend.hpp"
#include "harness/exactly_once.hpp"
#include "harness/io.hpp"
#include "harness/ring.hpp"
#include "harness/task.hpp"
#include "tests/unit/uring_test_util.hpp"

namespace ringside {
namespace {

using namespace std::chrono_literals;

// ---- the ring ----

TEST(ring_injection, a_failed_submit_keeps_the_sqe_queued_and_does_not_enter) {
  RINGSIDE_REQUIRE_URING();
  ring r;
  ASSERT_TRUE(r.prepare(1, op_kind::nop, {}, [](io_uring_sqe* sqe) { io_uring_prep_nop(sqe); }));
  r.inject_submit_failures(EAGAIN, 2);
  const uint64_t enters = r.enters();
  EXPECT_EQ(r.submit(), -EAGAIN);
  EXPECT_EQ(r.submit_and_get_events(), -EAGAIN);
  EXPECT_EQ(r.enters(), enters);
  EXPECT_EQ(r.sq_pending(), 1u);
  EXPECT_EQ(r.injected_failures_left(), 0u);
  EXPECT_EQ(r.submit(), 1);
  EXPECT_EQ(r.enters(), enters + 1);
}

TEST(ring_injection, only_submits_with_sqes_queued_count) {
  RINGSIDE_REQUIRE_URING();
  ring r;
  r.inject_submit_failures(EBUSY, 1);
  EXPECT_EQ(r.submit(), 0);  // nothing queued: nothing to fail
  EXPECT_EQ(r.injected_failures_left(), 1u);
  ASSERT_TRUE(r.prepare(1, op_kind::nop, {}, [](io_uring_sqe* sqe) { io_uring_prep_nop(sqe); }));
  EXPECT_EQ(r.submit_and_wait(std::chrono::milliseconds(1)), -EBUSY);
  EXPECT_EQ(r.sq_pending(), 1u);
  EXPECT_EQ(r.submit_and_wait(std::chrono::seconds(1)), 1);
  EXPECT_EQ(r.reap([](const io_uring_cqe& c) { EXPECT_EQ(c.res, 0); }), 1u);
}

// ---- every backend ----

class submit_injection : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    register_builtin_backends();
    const backend_info* b = find_backend(GetParam());
    ASSERT_NE(b, nullptr);
    if (b->unavailable_reason)
      if (auto why = b->unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    // Through the exactly-once decorator: it forwards the injection, and
    // reports an op completed twice or never.
    be_ = std::make_unique<exactly_once_backend>(b->make({}));
    be_->attach_pool(pool_);
  }
  void TearDown() override {
    if (!be_) return;
    be_->shutdown();
    std::vector<violation> v;
    be_->collect_violations(v);
    for (const auto& x : v) ADD_FAILURE() << x.kind << ": " << x.detail;
  }
  backend& be() { return *be_; }

  buffer_pool pool_{16, 4096};
  std::unique_ptr<backend> be_;
};

TEST_P(submit_injection, rejects_other_errors) {
  EXPECT_EQ(be().inject_submit_failures(ENOMEM, 1), -EINVAL);
  EXPECT_EQ(be().inject_submit_failures(EAGAIN, 1), 0);
  EXPECT_EQ(be().inject_submit_failures(EBUSY, 0), 0);
}

// Rounds of: inject failures, then a recv whose bytes are already there.
task<> recv_through_failures(backend& be, buffer_pool& pool, int fd, int peer, int rounds, int* ok) {
  for (int k = 0; k < rounds; ++k) {
    const int err = k % 2 == 0 ? EAGAIN : EBUSY;
    if (be.inject_submit_failures(err, uint32_t(1 + k % 4)) != 0) co_return;
    buffer out = pool.acquire();
    test::fill_pattern(out.first(100), uint8_t(k));
    if (::send(peer, out.data(), 100, MSG_NOSIGNAL) != 100) co_return;
    auto h = start(be, op{.kind = op_kind::recv, .fd = fd, .len = 4096, .buf = pool.acquire()});
    completion c = co_await h;
    if (c.res != 100 || !c.buf || !test::has_pattern(c.buf.first(100), uint8_t(k))) {
      ADD_FAILURE() << "round " << k << ": recv completed with " << c.res;
      co_return;
    }
  }
  *ok = 1;
}

TEST_P(submit_injection, ops_survive_failed_submissions_with_their_data) {
  auto sp = test::make_socketpair();
  be().adopt(sp.a.get());
  int ok = 0;
  be().spawn(recv_through_failures(be(), pool_, sp.a.get(), sp.b.get(), 32, &ok));
  ASSERT_EQ(test::run_briefly(be()), 0);
  EXPECT_EQ(ok, 1);
}

// A cancel of an op whose submission is failing resolves it exactly once:
// -ECANCELED (data left in the socket) or its data (the cancel lost).
task<> cancel_through_failures(backend& be, buffer_pool& pool, int fd, int peer, int* ok) {
  buffer out = pool.acquire();
  test::fill_pattern(out.first(64), 7);
  if (::send(peer, out.data(), 64, MSG_NOSIGNAL) != 64) co_return;
  if (be.inject_submit_failures(EAGAIN, 3) != 0) co_return;
  auto h = start(be, op{.kind = op_kind::recv, .fd = fd, .len = 4096, .buf = pool.acquire()});
  const int cr = h.cancel();
  completion c = co_await h;
  if (!c.buf) co_return;
  if (c.res == -ECANCELED) {
    if (cr != 0) co_return;
    // The bytes are still there for the next recv.
    completion d = co_await io(be).recv(fd, std::move(c.buf), 4096);
    if (d.res != 64 || !test::has_pattern(d.buf.first(64), 7)) co_return;
  } else if (c.res != 64 || !test::has_pattern(c.buf.first(64), 7)) {
    co_return;
  }
  *ok = 1;
}

TEST_P(submit_injection, a_cancel_while_submission_fails_resolves_the_op_once) {
  if (be().caps().contract == buffer_contract::borrowed_unsound)
    GTEST_SKIP() << "the negative control hands the buffer back at cancel on purpose (cancel.submit_fail catches it)";
  auto sp = test::make_socketpair();
  be().adopt(sp.a.get());
  int ok = 0;
  be().spawn(cancel_through_failures(be(), pool_, sp.a.get(), sp.b.get(), &ok));
  ASSERT_EQ(test::run_briefly(be()), 0);
  EXPECT_EQ(ok, 1);
}

// More ops than the SQ holds while submits fail: the io_uring loop's
// backlog (ops without an SQE) must drain once submission recovers.
task<> burst_through_failures(backend& be, int n, int* done) {
  if (be.inject_submit_failures(EBUSY, 4) != 0) co_return;
  std::deque<op_handle> hs;
  for (int i = 0; i < n; ++i) hs.emplace_back(be, op{.kind = op_kind::nop});
  for (auto& h : hs) {
    completion c = co_await h;
    if (c.res == 0) ++*done;
  }
}

TEST_P(submit_injection, a_burst_beyond_the_sq_completes) {
  int done = 0;
  // 300: several times the 64-entry SQ a default-sized io_uring backend has.
  be().spawn(burst_through_failures(be(), 300, &done));
  ASSERT_EQ(test::run_briefly(be()), 0);
  EXPECT_EQ(done, 300);
}

INSTANTIATE_TEST_SUITE_P(all, submit_injection, testing::Values("blocking", "epoll", "uring-raw", "uring-owned"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& ch : s)
                             if (ch == '-') ch = '_';
                           return s;
                         });

// epoll's injected EAGAIN forces the wait path: the op parks instead of
// completing inside submit(), and the loop still completes it (an injected
// EAGAIN re-arms no edge, so the loop retries the fd itself).
TEST(submit_injection_epoll, an_injected_eagain_parks_the_op_and_the_loop_finishes_it) {
  register_builtin_backends();
  auto be = find_backend("epoll")->make({});
  buffer_pool pool(4, 4096);
  be->attach_pool(pool);
  auto sp = test::make_socketpair();
  be->adopt(sp.a.get());
  ASSERT_EQ(::send(sp.b.get(), "abcd", 4, MSG_NOSIGNAL), 4);
  bool inline_done = true;
  int32_t res = 0;
  auto t = [](backend& be, buffer_pool& pool, int fd, bool& inline_done, int32_t& res) -> task<> {
    (void)be.inject_submit_failures(EAGAIN, 1);
    auto h = start(be, op{.kind = op_kind::recv, .fd = fd, .len = 4096, .buf = pool.acquire()});
    inline_done = h.done();
    res = (co_await h).res;
  };
  be->spawn(t(*be, pool, sp.a.get(), inline_done, res));
  ASSERT_EQ(be->run(clock_type::now() + 5s), 0);
  EXPECT_FALSE(inline_done);
  EXPECT_EQ(res, 4);
}

}  // namespace
}  // namespace ringside
