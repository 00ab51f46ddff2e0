// Description: epoll-backend behaviour the conformance suite cannot see from
// outside: a close op costs only the close (no EPOLL_CTL_DEL first), and the
// fd number, reused afterwards, works, even while a dup of the closed file
// keeps its old registration alive; a loop whose streams always have results
// ready polls epoll only every 16th pass, not every pass.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>

#include "harness/io.hpp"
#include "harness/meters.hpp"
#include "tests/unit/uring_test_util.hpp"

namespace ringside {
namespace {

using namespace std::chrono_literals;

struct epoll_run {
  buffer_pool pool{8, 4096};
  std::unique_ptr<backend> be = test::make_backend("epoll");
  epoll_run() { be->attach_pool(pool); }
};

TEST(epoll_backend, close_costs_one_syscall_and_the_number_is_reusable) {
  epoll_run r;
  auto first = test::make_socketpair();
  // A dup keeps the first socket's file open after the backend closes its
  // number: that registration outlives the number.
  unique_fd dup(::dup(first.a.get()));
  ASSERT_TRUE(dup.valid());
  r.be->adopt(first.a.get());
  const int number = first.a.get();
  uint64_t close_syscalls = ~0ull;
  int32_t closed = 1, first_res = 1, reused_res = 1;
  bool reused_number = false, reused_bytes_ok = false;
  test::socket_pair second;
  auto body = [&]() -> task<> {
    io io_(*r.be);
    // Parks (registers the fd with epoll), then completes.
    auto h = start(*r.be, op{.kind = op_kind::recv, .fd = number, .len = 64, .buf = r.pool.acquire()});
    co_await io_.nop();
    const std::byte one[1] = {std::byte{1}};
    EXPECT_EQ(::send(first.b.get(), one, 1, 0), 1);
    first_res = (co_await h).res;

    const uint64_t before = meters::read().syscalls;
    closed = (co_await io_.close(number)).res;
    close_syscalls = meters::read().syscalls - before;
    first.a.release();  // closed by the op

    second = test::make_socketpair();  // the lowest free number: the one just closed
    reused_number = second.a.get() == number;
    r.be->adopt(second.a.get());
    auto h2 = start(*r.be, op{.kind = op_kind::recv, .fd = second.a.get(), .len = 64, .buf = r.pool.acquire()});
    co_await io_.nop();  // parked on the new file
    // An event of the old file's surviving registration names the same
    // number: it may only make the loop retry the new recv, which waits on.
    EXPECT_EQ(::send(first.b.get(), one, 1, 0), 1);
    co_await io_.sleep_ns(2'000'000);
    EXPECT_FALSE(h2.done()) << "the new recv completed with no data of its own";
    std::byte data[8];
    test::fill_pattern(data, 6);
    EXPECT_EQ(::send(second.b.get(), data, sizeof data, 0), 8);
    completion c = co_await h2;
    reused_res = c.res;
    reused_bytes_ok = c.res == 8 && test::has_pattern(c.buf.first(8), 6);
  };
  r.be->spawn(body());
  ASSERT_EQ(test::run_briefly(*r.be), 0);
  EXPECT_EQ(first_res, 1);
  EXPECT_EQ(closed, 0);
  EXPECT_EQ(close_syscalls, 1u) << "close through epoll should cost only close(), no EPOLL_CTL_DEL";
  EXPECT_TRUE(reused_number) << "the test needs the number reused (lowest free fd)";
  EXPECT_EQ(reused_res, 8);
  EXPECT_TRUE(reused_bytes_ok);
}

TEST(epoll_backend, always_ready_streams_poll_epoll_every_16th_pass) {
  epoll_run r;
  auto sp = test::make_socketpair();
  r.be->adopt(sp.a.get());
  // 20800 ops that fail at once (-EINVAL, no syscall): 64 inline per loop
  // pass plus one through the ready queue, so 320 passes; polling every 16th
  // pass is 20 epoll_pwait2 calls, every pass would be 320.
  constexpr int ops = 20800;
  uint64_t syscalls = ~0ull;
  int bad = 0;
  auto body = [&]() -> task<> {
    io io_(*r.be);
    const uint64_t before = meters::read().syscalls;
    for (int i = 0; i < ops; ++i)
      if ((co_await io_.recv(sp.a.get(), buffer{}, 16)).res != -EINVAL) ++bad;
    syscalls = meters::read().syscalls - before;
  };
  r.be->spawn(body());
  ASSERT_EQ(test::run_briefly(*r.be), 0);
  EXPECT_EQ(bad, 0);
  EXPECT_LE(syscalls, 40u) << "the busy loop polled epoll too often";
}

}  // namespace
}  // namespace ringside
