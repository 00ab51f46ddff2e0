// Description: the io_uring event loop both io_uring backends share, run
// through the real uring-raw and uring-owned backends. Every op kind reaches
// the kernel and completes exactly once; cancel and drop follow each
// backend's buffer contract (a cancel that loses the race delivers the data on
// uring-owned and loses it on uring-raw, the negative control); ids carry
// generations; many streams share one enter per loop pass; the per-op path
// does not allocate; a hung loop tears down in bounded time and gives every
// buffer back.
#include "harness/uring_loop.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness/io.hpp"
#include "harness/meters.hpp"
#include "harness/sanitize.hpp"
#include "harness/sys.hpp"
#include "harness/task.hpp"
#include "tests/unit/uring_test_util.hpp"

namespace ringside {
namespace {

using namespace std::chrono_literals;
using test::fill_pattern;
using test::fixed_loop;
using test::has_pattern;

// Completions per op, for exactly-once checks.
struct counting_waiter final : op_waiter {
  int count = 0;
  int32_t res = 1;
  void on_complete(completion&& c) noexcept override {
    ++count;
    res = c.res;
  }
};

unique_fd listen_loopback(sockaddr_in& addr) {
  unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw std::system_error(errno, std::generic_category(), "socket");
  addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  // 16: the most connections any test here leaves waiting to be accepted.
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd.get(), 16) != 0 ||
      ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw std::system_error(errno, std::generic_category(), "bind/listen");
  return fd;
}

size_t open_fds() {
  size_t n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (::readdir(d) != nullptr) ++n;
    ::closedir(d);
  }
  return n;
}

class uring_loop_test : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    RINGSIDE_REQUIRE_URING();
    be_ = test::make_backend(GetParam());
    ASSERT_NE(be_, nullptr);
    if (sanitize::lends_checked && be_->caps().contract == buffer_contract::borrowed_unsound)
      GTEST_SKIP() << sanitize::lends_checked_skip;
    be_->attach_pool(pool_);
  }
  backend& be() { return *be_; }
  bool owned() const { return be_->caps().contract == buffer_contract::owned; }

  // 1100: the cancel storm's 1000 ops plus the other tests' few. Declared
  // first: the backend must go before the pool it used.
  buffer_pool pool_{1100, 8192};
  std::unique_ptr<backend> be_;
};

// gtest's ASSERT_* return from the function; a coroutine must co_return.
#define CO_ASSERT_TRUE(c)                              \
  do {                                                 \
    if (!(c)) {                                        \
      ADD_FAILURE() << "expected true: " #c;           \
      co_return;                                       \
    }                                                  \
  } while (0)
#define CO_ASSERT_EQ(a, b)                                                        \
  do {                                                                            \
    const auto a_ = (a);                                                          \
    const auto b_ = (b);                                                          \
    if (!(a_ == b_)) {                                                            \
      ADD_FAILURE() << #a " == " #b ": " << a_ << " vs " << b_;                   \
      co_return;                                                                  \
    }                                                                             \
  } while (0)
#define CO_ASSERT_GE(a, b)                                                        \
  do {                                                                            \
    const auto a_ = (a);                                                          \
    const auto b_ = (b);                                                          \
    if (!(a_ >= b_)) {                                                            \
      ADD_FAILURE() << #a " >= " #b ": " << a_ << " vs " << b_;                   \
      co_return;                                                                  \
    }                                                                             \
  } while (0)

// ------------------------------------------------------------ op kinds ----

task<> echo_rounds(backend& be, buffer_pool& pool, int a, int b, int rounds, int* ok) {
  io io_(be);
  for (int k = 0; k < rounds; ++k) {
    buffer out = pool.acquire();
    fill_pattern(out.first(3000), uint8_t(k));
    auto rh = start(be, op{.kind = op_kind::recv, .fd = b, .len = 8192, .buf = pool.acquire()});
    completion s = co_await io_.send(a, std::move(out), 3000);
    EXPECT_EQ(s.res, 3000);
    EXPECT_TRUE(s.buf.valid());  // the buffer comes back with the completion
    completion r_ = co_await rh;
    if (r_.res != 3000 || !has_pattern(r_.buf.first(3000), uint8_t(k))) co_return;
  }
  *ok = 1;
}

TEST_P(uring_loop_test, send_recv_round_trips_over_a_socketpair) {
  auto sp = test::make_socketpair();
  int ok = 0;
  be().spawn(echo_rounds(be(), pool_, sp.a.get(), sp.b.get(), 200, &ok));
  ASSERT_EQ(test::run_briefly(be()), 0);
  EXPECT_EQ(ok, 1);
  EXPECT_EQ(pool_.available(), pool_.count());
}

task<> file_ops(backend& be, buffer_pool& pool, int fd, int* step) {
  io io_(be);
  buffer out = pool.acquire();
  fill_pattern(out.first(8192), 5);
  completion w = co_await io_.write(fd, std::move(out), 8192, 4096);
  CO_ASSERT_EQ(w.res, 8192);
  *step = 1;
  completion s = co_await io_.fsync(fd);
  CO_ASSERT_EQ(s.res, 0);
  *step = 2;
  completion r = co_await io_.read(fd, pool.acquire(), 8192, 4096);
  CO_ASSERT_EQ(r.res, 8192);
  CO_ASSERT_TRUE(has_pattern(r.buf.first(8192), 5));
  *step = 3;
  // Short read: 1000 bytes before EOF; then EOF itself.
  completion sh = co_await io_.read(fd, std::move(r.buf), 8192, 4096 + 8192 - 1000);
  CO_ASSERT_EQ(sh.res, 1000);
  completion eof = co_await io_.read(fd, std::move(sh.buf), 8192, 4096 + 8192);
  CO_ASSERT_EQ(eof.res, 0);
  *step = 4;
}

TEST_P(uring_loop_test, file_write_fsync_read_short_read_eof) {
  test::temp_file f;
  be().adopt(f.fd.get());
  int step = 0;
  be().spawn(file_ops(be(), pool_, f.fd.get(), &step));
  ASSERT_EQ(test::run_briefly(be()), 0);
  EXPECT_EQ(step, 4);
}

task<> accept_one(backend& be, int lfd, int* accepted) {
  io io_(be);
  completion c = co_await io_.accept(lfd);
  *accepted = c.res;
}

task<> connect_send_close(backend& be, buffer_pool& pool, const sockaddr_in* addr, int* step) {
  io io_(be);
  const int fd = sys::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CO_ASSERT_GE(fd, 0);
  be.adopt(fd);
  // The address is a copy in the op slot: this frame's sockaddr may die.
  sockaddr_in local = *addr;
  completion c = co_await io_.connect(fd, reinterpret_cast<const sockaddr*>(&local), sizeof local);
  CO_ASSERT_EQ(c.res, 0);
  *step = 1;
  buffer b = pool.acquire();
  fill_pattern(b.first(100), 77);
  completion s = co_await io_.send(fd, std::move(b), 100);
  CO_ASSERT_EQ(s.res, 100);
  completion cl = co_await io_.close(fd);
  CO_ASSERT_EQ(cl.res, 0);
  *step = 2;
}

TEST_P(uring_loop_test, accept_connect_send_close_on_loopback) {
  sockaddr_in addr{};
  unique_fd lfd = listen_loopback(addr);
  be().adopt(lfd.get());
  int accepted = -1, step = 0;
  be().spawn(accept_one(be(), lfd.get(), &accepted));
  be().spawn(connect_send_close(be(), pool_, &addr, &step));
  ASSERT_EQ(test::run_briefly(be()), 0);
  ASSERT_EQ(step, 2);
  ASSERT_GE(accepted, 0);
  unique_fd conn(accepted);
  std::byte got[200];
  ASSERT_EQ(sys::recv(conn.get(), got, 0), 100);
  EXPECT_TRUE(has_pattern({got, 100}, 77));
  EXPECT_EQ(sys::recv(conn.get(), got, 0), 0);  // the op closed the client
}

task<> sleep_and_time(backend& be, uint64_t ns, int32_t* res, std::chrono::nanoseconds* took) {
  io io_(be);
  const auto t0 = clock_type::now();
  completion c = co_await io_.sleep_ns(ns);
  *took = clock_type::now() - t0;
  *res = c.res;
}

TEST_P(uring_loop_test, timeout_sleeps_at_least_its_duration_and_reports_zero) {
  int32_t res = 1;
  std::chrono::nanoseconds took{};
  be().spawn(sleep_and_time(be(), 5'000'000, &res, &took));
  ASSERT_EQ(test::run_briefly(be()), 0);
  EXPECT_EQ(res, 0);  // IORING_OP_TIMEOUT's -ETIME means it ran its course
  EXPECT_GE(took, 5ms);
  EXPECT_LT(took, 2s);
}

// -------------------------------------------------------------- cancel ----

task<> cancel_pending_recv(backend& be, buffer_pool& pool, int a, int b, int* step) {
  io io_(be);
  auto h = start(be, op{.kind = op_kind::recv, .fd = b, .len = 4096, .buf = pool.acquire()});
  co_await io_.nop();  // a loop pass: the recv waits in the kernel
  CO_ASSERT_EQ(h.cancel(), 0);
  completion c = co_await h;
  CO_ASSERT_EQ(c.res, -ECANCELED);
  EXPECT_TRUE(c.buf.valid());
  EXPECT_EQ(be.cancel(h.id()), -ENOENT);  // done: nothing left to cancel
  *step = 1;
  // The socket still works.
  buffer out = pool.acquire();
  fill_pattern(out.first(10), 1);
  EXPECT_EQ((co_await io_.send(a, std::move(out), 10)).res, 10);
  completion r = co_await io_.recv(b, std::move(c.buf), 4096);
  EXPECT_EQ(r.res, 10);
  *step = 2;
}

TEST_P(uring_loop_test, cancel_pending_recv_completes_once_with_ecanceled) {
  auto sp = test::make_socketpair();
  int step = 0;
  be().spawn(cancel_pending_recv(be(), pool_, sp.a.get(), sp.b.get(), &step));
  ASSERT_EQ(test::run_briefly(be()), 0);
  EXPECT_EQ(step, 2);
}

// The data is already in the socket when the recv is submitted and the
// cancel follows it in the same enter: the recv wins the race in the kernel.
task<> cancel_loses_to_data(backend& be, buffer_pool& pool, int a, int b, int32_t* res, bool* data_left) {
  io io_(be);
  const std::byte msg[64] = {std::byte{42}};
  EXPECT_EQ(sys::send(a, msg, 0), 64);
  auto h = start(be, op{.kind = op_kind::recv, .fd = b, .len = 4096, .buf = pool.acquire()});
  EXPECT_EQ(h.cancel(), 0);
  completion c = co_await h;
  *res = c.res;
  co_await io_.nop();  // whatever was queued has reached the kernel now
  std::byte probe[64];
  *data_left = sys::recv(b, probe, MSG_DONTWAIT) == 64;
}

TEST_P(uring_loop_test, cancel_losing_the_race_never_turns_data_into_ecanceled) {
  auto sp = test::make_socketpair();
  int32_t res = 0;
  bool data_left = false;
  be().spawn(cancel_loses_to_data(be(), pool_, sp.a.get(), sp.b.get(), &res, &data_left));
  ASSERT_EQ(test::run_briefly(be()), 0);
  if (owned()) {
    EXPECT_EQ(res, 64);  // the op's real result, not -ECANCELED
    EXPECT_FALSE(data_left);
  } else {
    // Negative control (borrowed_unsound): the op "completed" -ECANCELED
    // while the kernel consumed the bytes. They are gone: the bug is real.
    EXPECT_EQ(res, -ECANCELED);
    EXPECT_FALSE(data_left);
  }
}

task<> cancel_sleep(backend& be, int32_t* res, std::chrono::nanoseconds* took) {
  io io_(be);
  const auto t0 = clock_type::now();
  auto h = start(be, op{.kind = op_kind::timeout, .timeout_ns = 10'000'000'000, .buf = {}});
  co_await io_.nop();
  CO_ASSERT_EQ(h.cancel(), 0);
  completion c = co_await h;
  *res = c.res;
  *took = clock_type::now() - t0;
}

TEST_P(uring_loop_test, cancelled_sleep_ends_early_with_ecanceled) {
  int32_t res = 1;
  std::chrono::nanoseconds took{};
  be().spawn(cancel_sleep(be(), &res, &took));
  ASSERT_EQ(test::run_briefly(be()), 0);
  EXPECT_EQ(res, -ECANCELED);
  EXPECT_LT(took, 2s);  // not the 10 s it asked for
}

task<> stale_ids(backend& be, int* step) {
  io io_(be);
  op_id first;
  {
    auto h = start(be, op{.kind = op_kind::nop, .buf = {}});
    first = h.id();
    completion c = co_await h;
    EXPECT_EQ(c.res, 0);
  }
  EXPECT_EQ(be.cancel(first), -ENOENT);
  // The freed slot is reused (LIFO) under a new generation; the old id must
  // not reach the new op.
  counting_waiter w;
  const op_id second = be.submit(op{.kind = op_kind::timeout, .timeout_ns = 1'000'000, .buf = {}}, &w);
  EXPECT_EQ(second.slot(), first.slot());
  EXPECT_NE(second.gen(), first.gen());
  EXPECT_EQ(be.cancel(first), -ENOENT);
  be.drop(first);  // must not detach the new op's waiter
  co_await io_.sleep_ns(3'000'000);
  EXPECT_EQ(w.count, 1);
  EXPECT_EQ(w.res, 0);
  EXPECT_EQ(be.cancel(op_id{}), -ENOENT);
  *step = 1;
}

TEST_P(uring_loop_test, stale_generation_is_enoent_and_never_touches_the_new_op) {
  int step = 0;
  be().spawn(stale_ids(be(), &step));
  ASSERT_EQ(test::run_briefly(be()), 0);
  EXPECT_EQ(step, 1);
}

task<> cancel_then_drop(backend& be, buffer_pool& pool, int fd, counting_waiter* w) {
  io io_(be);
  const op_id id = be.submit(op{.kind = op_kind::recv, .fd = fd, .len = 4096, .buf = pool.acquire()}, w);
  co_await io_.nop();
  EXPECT_EQ(be.cancel(id), 0);
  be.drop(id);  // before the completion was delivered: the waiter is gone
  co_await io_.sleep_ns(2'000'000);
}

TEST_P(uring_loop_test, dropped_waiter_is_never_called_even_after_cancel) {
  auto sp = test::make_socketpair();
  counting_waiter w;
  be().spawn(cancel_then_drop(be(), pool_, sp.b.get(), &w));
  ASSERT_EQ(test::run_briefly(be()), 0);
  EXPECT_EQ(w.count, 0);
  be_.reset();
  EXPECT_EQ(pool_.available(), pool_.count());
}

task<> storm(backend& be, buffer_pool& pool, int fd, std::vector<counting_waiter>* ws) {
  io io_(be);
  for (size_t i = 0; i < ws->size(); ++i) {
    const op_id id = be.submit(op{.kind = op_kind::recv, .fd = fd, .len = 4096, .buf = pool.acquire()}, &(*ws)[i]);
    EXPECT_EQ(be.cancel(id), 0);
    if (i % 64 == 63) co_await io_.nop();  // let some land mid-storm
  }
  // Bounded: every op has completed after a few passes.
  for (int k = 0; k < 200; ++k) {
    bool all = true;
    for (auto& w : *ws) all = all && w.count > 0;
    if (all) break;
    co_await io_.sleep_ns(1'000'000);
  }
}

TEST_P(uring_loop_test, cancel_storm_completes_every_op_exactly_once) {
  auto sp = test::make_socketpair();
  std::vector<counting_waiter> ws(1000);
  be().spawn(storm(be(), pool_, sp.b.get(), &ws));
  ASSERT_EQ(test::run_briefly(be()), 0);
  for (size_t i = 0; i < ws.size(); ++i) {
    ASSERT_EQ(ws[i].count, 1) << "op " << i;
    ASSERT_EQ(ws[i].res, -ECANCELED) << "op " << i;
  }
}

task<> accept_then_drop(backend& be, int lfd) {
  io io_(be);
  {
    // A connection is already waiting: the accept completes in the kernel
    // before the drop's cancel reaches it.
    auto h = start(be, op{.kind = op_kind::accept, .fd = lfd, .buf = {}});
  }
  co_await io_.sleep_ns(2'000'000);
}

TEST_P(uring_loop_test, dropped_accept_that_won_closes_its_connection) {
  sockaddr_in addr{};
  unique_fd lfd = listen_loopback(addr);
  unique_fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const size_t fds_before = open_fds();
  be().spawn(accept_then_drop(be(), lfd.get()));
  ASSERT_EQ(test::run_briefly(be()), 0);
  EXPECT_EQ(open_fds(), fds_before);
  std::byte b[1];
  EXPECT_EQ(sys::recv(client.get(), b, 0), 0);  // the server side was closed
}

// ----------------------------------------------------------- buf_offset ----

TEST_P(uring_loop_test, ledger_records_the_subrange_an_op_lends) {
  auto sp = test::make_socketpair();
  auto& loop = dynamic_cast<uring_loop&>(be());
  bool first_in = false, last_in = false, before_in = true, after_in = true;
  int32_t res = 1;
  auto body = [&]() -> task<> {
    io io_(be());
    buffer b = pool_.acquire();
    const std::byte* base = b.data();
    auto h =
        start(be(), op{.kind = op_kind::recv, .fd = sp.b.get(), .len = 50, .buf_offset = 100, .buf = std::move(b)});
    co_await io_.nop();  // a loop pass: the recv waits in the kernel
    first_in = loop.ledger().lends(base + 100);
    last_in = loop.ledger().lends(base + 149);
    before_in = loop.ledger().lends(base + 99);
    after_in = loop.ledger().lends(base + 150);
    EXPECT_EQ(h.cancel(), 0);
    res = (co_await h).res;
  };
  be().spawn(body());
  ASSERT_EQ(test::run_briefly(be()), 0);
  EXPECT_TRUE(first_in) << "the first byte at buf_offset is not recorded as lent";
  EXPECT_TRUE(last_in) << "the last byte of the range is not recorded as lent";
  EXPECT_FALSE(before_in) << "the byte before buf_offset is recorded as lent";
  EXPECT_FALSE(after_in) << "the byte after the range is recorded as lent";
  EXPECT_EQ(res, -ECANCELED);
}

// ------------------------------------------------------ kernel copies ----

// The kernel copies a result's bytes whoever takes them: counted at the CQE,
// for a dropped op (graveyard, or a buffer uring-raw already gave back) and
// for an op whose completion uring-raw handed out early.
TEST_P(uring_loop_test, kernel_copies_of_dropped_and_early_completed_ops_are_counted) {
  auto sp = test::make_socketpair();
  uint64_t copied = 0;
  int32_t cancelled_res = 1;
  auto body = [&]() -> task<> {
    io io_(be());
    const std::byte msg[64] = {};
    EXPECT_EQ(sys::send(sp.a.get(), msg, 0), 64);
    EXPECT_EQ(sys::send(sp.a.get(), msg, 0), 64);
    const uint64_t before = meters::read().kernel_copy_bytes;
    {
      // Dropped before it reaches the kernel; the data is there, so the
      // kernel completes it anyway, for nobody.
      auto h = start(be(), op{.kind = op_kind::recv, .fd = sp.b.get(), .len = 64, .buf = pool_.acquire()});
    }
    // Cancelled at once: the recv wins in the kernel (uring-raw has already
    // handed out -ECANCELED and discards the CQE).
    auto h2 = start(be(), op{.kind = op_kind::recv, .fd = sp.b.get(), .len = 64, .buf = pool_.acquire()});
    EXPECT_EQ(h2.cancel(), 0);
    cancelled_res = (co_await h2).res;
    co_await io_.sleep_ns(2'000'000);
    copied = meters::read().kernel_copy_bytes - before;
  };
  be().spawn(body());
  ASSERT_EQ(test::run_briefly(be()), 0);
  EXPECT_EQ(copied, 128u) << "kernel copies of results nobody took were not counted";
  EXPECT_EQ(cancelled_res, owned() ? 64 : -ECANCELED);
}

// ---------------------------------------------------------------- tasks ----

task<> child(backend& be, int* done) {
  io io_(be);
  co_await io_.nop();
  ++*done;
}

task<> parent(backend& be, int* done) {
  io io_(be);
  for (int i = 0; i < 10; ++i) be.spawn(child(be, done));
  co_await io_.nop();
  ++*done;
}

TEST_P(uring_loop_test, spawn_from_inside_a_running_task) {
  int done = 0;
  be().spawn(parent(be(), &done));
  ASSERT_EQ(test::run_briefly(be()), 0);
  EXPECT_EQ(done, 11);
}

task<> thrower(backend& be) {
  io io_(be);
  co_await io_.nop();
  throw std::runtime_error("scenario bug");
}

TEST_P(uring_loop_test, task_exception_is_reported_as_a_violation) {
  be().spawn(thrower(be()));
  ASSERT_EQ(test::run_briefly(be()), 0);
  std::vector<violation> v;
  be().collect_violations(v);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, "task_error");
  EXPECT_NE(v[0].detail.find("scenario bug"), std::string::npos);
}

// ----------------------------------------------------------- efficiency ----

task<> nops(backend& be, int n) {
  io io_(be);
  for (int i = 0; i < n; ++i) co_await io_.nop();
}

TEST_P(uring_loop_test, many_streams_share_one_enter_per_loop_pass) {
  constexpr int streams = 64, per_stream = 100;
  for (int i = 0; i < streams; ++i) be().spawn(nops(be(), per_stream));
  const auto before = meters::read();
  ASSERT_EQ(test::run_briefly(be()), 0);
  const auto d = meters::read() - before;
  // One enter per pass carries all 64 streams' next nops: ~100 enters for
  // 6400 ops. 0.05 leaves room for passes split by CQ batching.
  EXPECT_LT(double(d.syscalls) / (streams * per_stream), 0.05) << d.syscalls << " enters";
}

task<> steady_state(backend& be, buffer_pool& pool, int a, int b, uint64_t* allocs) {
  io io_(be);
  buffer out = pool.acquire();
  buffer in = pool.acquire();
  // Warm-up (first use of each slot, ledger table, ring), then measure.
  for (int i = 0; i < 100; ++i) {
    out = std::move((co_await io_.send(a, std::move(out), 512)).buf);
    in = std::move((co_await io_.recv(b, std::move(in), 4096)).buf);
    co_await io_.nop();
  }
  const auto before = meters::read();
  for (int i = 0; i < 1000; ++i) {
    out = std::move((co_await io_.send(a, std::move(out), 512)).buf);
    in = std::move((co_await io_.recv(b, std::move(in), 4096)).buf);
    co_await io_.nop();
    co_await io_.sleep_ns(1000);
  }
  *allocs = (meters::read() - before).allocs;
}

TEST_P(uring_loop_test, per_op_path_does_not_allocate) {
  ASSERT_TRUE(meters::alloc_counting_active());
  auto sp = test::make_socketpair();
  uint64_t allocs = ~0ull;
  be().spawn(steady_state(be(), pool_, sp.a.get(), sp.b.get(), &allocs));
  ASSERT_EQ(test::run_briefly(be()), 0);
  EXPECT_EQ(allocs, 0u) << "heap allocations over 4000 ops";
}

// ------------------------------------------------------------- teardown ----

task<> wait_forever(backend& be, buffer_pool& pool, int fd) {
  io io_(be);
  auto h = start(be, op{.kind = op_kind::recv, .fd = fd, .len = 4096, .buf = pool.acquire()});
  completion c = co_await io_.recv(fd, pool.acquire(), 4096);
  (void)c;
}

TEST_P(uring_loop_test, hang_teardown_is_bounded_and_gives_every_buffer_back) {
  auto sp = test::make_socketpair();
  for (int i = 0; i < 8; ++i) be().spawn(wait_forever(be(), pool_, sp.b.get()));
  be().spawn(nops(be(), 1));  // an ordinary task among the hung ones
  const auto t0 = clock_type::now();
  ASSERT_EQ(be().run(t0 + 30ms), -ETIME);
  EXPECT_GE(clock_type::now() - t0, 30ms);
  EXPECT_LT(pool_.available(), pool_.count());
  be_.reset();
  EXPECT_LT(clock_type::now() - t0, 1500ms);
  EXPECT_EQ(pool_.available(), pool_.count());
}

INSTANTIATE_TEST_SUITE_P(backends, uring_loop_test, ::testing::Values("uring-raw", "uring-owned"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (auto& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

// ---------------------------------------------------- the loop by itself ----

TEST(uring_loop, fixed_buffers_carry_file_io) {
  RINGSIDE_REQUIRE_URING();
  uring_loop_options o = uring_loop_defaults({});
  o.fixed_buffers = true;
  buffer_pool pool(4, 8192);
  fixed_loop loop(o);
  loop.attach_pool(pool);
  if (!loop.fixed_buffers_active()) GTEST_SKIP() << "buffer registration refused here";
  test::temp_file f;
  int step = 0;
  loop.spawn(file_ops(loop, pool, f.fd.get(), &step));
  ASSERT_EQ(test::run_briefly(loop), 0);
  EXPECT_EQ(step, 4);
}

TEST(uring_loop, single_issuer_defer_taskrun_ring_runs_socket_io) {
  RINGSIDE_REQUIRE_URING();
  uring_loop_options o = uring_loop_defaults({});
  o.ring.single_issuer = true;  // completions are posted only when the loop waits
  buffer_pool pool(4, 8192);
  fixed_loop loop(o);
  loop.attach_pool(pool);
  if ((loop.uring().setup_flags() & IORING_SETUP_DEFER_TASKRUN) == 0) GTEST_SKIP() << "kernel refused DEFER_TASKRUN";
  auto sp = test::make_socketpair();
  int ok = 0;
  loop.spawn(echo_rounds(loop, pool, sp.a.get(), sp.b.get(), 50, &ok));
  ASSERT_EQ(test::run_briefly(loop), 0);
  EXPECT_EQ(ok, 1);
}

TEST(uring_loop, teardown_reports_ops_still_in_the_kernel_as_a_hang) {
  RINGSIDE_REQUIRE_URING();
  uring_loop_options o = uring_loop_defaults({});
  o.teardown_budget = std::chrono::milliseconds(0);  // no time for the kernel to give anything back
  buffer_pool pool(4, 4096);
  fixed_loop loop(o);
  loop.attach_pool(pool);
  auto sp = test::make_socketpair();
  loop.spawn(wait_forever(loop, pool, sp.b.get()));  // two recvs that never complete
  ASSERT_EQ(loop.run(clock_type::now() + 30ms), -ETIME);
  loop.shutdown();
  loop.shutdown();  // idempotent: reported once
  std::vector<violation> v;
  loop.collect_violations(v);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, "hang");
  EXPECT_NE(v[0].detail.find("2 ops still in the kernel"), std::string::npos) << v[0].detail;
  // Never handed back: the kernel may still write into them.
  EXPECT_EQ(pool.available(), pool.count() - 2);
}

TEST(uring_loop, slots_grow_past_the_initial_slab_without_moving) {
  RINGSIDE_REQUIRE_URING();
  uring_loop_options o = uring_loop_defaults({});
  o.initial_slots = 1;  // one chunk; 3000 ops in flight force several growths
  buffer_pool pool(1, 4096);
  fixed_loop loop(o);
  loop.attach_pool(pool);
  std::vector<counting_waiter> ws(3000);
  loop.spawn([](backend& be, std::vector<counting_waiter>* ws) -> task<> {
    io io_(be);
    for (auto& w : *ws) be.submit(op{.kind = op_kind::timeout, .timeout_ns = 2'000'000, .buf = {}}, &w);
    co_await io_.sleep_ns(20'000'000);
  }(loop, &ws));
  ASSERT_EQ(test::run_briefly(loop), 0);
  for (auto& w : ws) {
    ASSERT_EQ(w.count, 1);
    ASSERT_EQ(w.res, 0);
  }
}

}  // namespace
}  // namespace ringside
