// Description: the two Asio backends (backends/asio.cpp: epoll reactor;
// backends/asio_uring.cpp: io_uring service) run side by side in one process,
// at the same time, each on its own thread — the runtime half of the ODR
// check (tests/unit/asio_odr_test.cpp) — and a close op on either never lets
// an op outlive the descriptor it closes.
#include <fcntl.h>

#include <atomic>
#include <thread>

#include "harness/meters.hpp"
#include "tests/conformance/driver.hpp"

namespace ringside::conformance {
namespace {

// 2000 round trips of 256 bytes through a socket pair, every byte checked.
int32_t echo_rounds(driver& d, socket_pair& sp, int rounds) {
  int32_t failures = 0;
  auto body = [&]() -> task<> {
    buffer out = d.pool().acquire();
    buffer in = d.pool().acquire();
    for (int i = 0; i < rounds; ++i) {
      fill_pattern(out.first(256), uint32_t(i), 0);
      completion s = co_await d.io().send(sp.a.get(), std::move(out), 256);
      out = std::move(s.buf);
      completion r = co_await d.io().recv(sp.b.get(), std::move(in), 256);
      in = std::move(r.buf);
      if (s.res != 256 || r.res != 256 || !std::equal(in.data(), in.data() + 256, out.data())) ++failures;
    }
  };
  d.spawn(body());
  if (d.run() != 0) return -1;
  return failures;
}

TEST(AsioBackends, both_configurations_run_at_once_in_one_process) {
  register_builtin_backends();
  ASSERT_NE(find_backend("asio"), nullptr);
  const backend_info* u = find_backend("asio-uring");
  ASSERT_NE(u, nullptr);
  if (!u->unavailable_reason().empty()) GTEST_SKIP() << u->unavailable_reason();
  driver a("asio"), b("asio-uring");
  socket_pair pa = make_socketpair(), pb = make_socketpair();
  a.adopt(pa.a), a.adopt(pa.b), b.adopt(pb.a), b.adopt(pb.b);
  std::atomic<int32_t> fa{-2}, fb{-2};
  std::thread ta([&] { fa = echo_rounds(a, pa, 2000); });
  std::thread tb([&] { fb = echo_rounds(b, pb, 2000); });
  ta.join();
  tb.join();
  EXPECT_EQ(fa.load(), 0) << "asio (-1: the run hung)";
  EXPECT_EQ(fb.load(), 0) << "asio-uring (-1: the run hung)";
  // Each really runs its own engine: the reactor keeps the fd non-blocking,
  // the io_uring flavour blocking (its ops wait in the kernel, not in poll).
  EXPECT_NE(::fcntl(pa.a.get(), F_GETFL) & O_NONBLOCK, 0);
  EXPECT_EQ(::fcntl(pb.a.get(), F_GETFL) & O_NONBLOCK, 0);
}

class AsioClose : public testing::TestWithParam<std::string> {};

// A recv pending on an fd, then a close op of that fd: the recv ends first
// (-ECANCELED), then the close (0), and the number is closed after it.
TEST_P(AsioClose, close_waits_for_the_fds_pending_ops) {
  register_builtin_backends();
  const backend_info* info = find_backend(GetParam());
  ASSERT_NE(info, nullptr);
  if (!info->unavailable_reason().empty()) GTEST_SKIP() << info->unavailable_reason();
  driver d(GetParam());
  socket_pair sp = make_socketpair();
  d.adopt(sp.a);
  const int fd = sp.a.get();
  int32_t recv_res = 1, close_res = 1;
  auto body = [&]() -> task<> {
    op_handle r = start(d.be(), recv_op(fd, d.pool().acquire(), 64));
    co_await d.io().nop();  // the recv is waiting now
    completion c = co_await d.io().close(fd);
    close_res = c.res;
    CO_ASSERT_TRUE(r.done());
    completion rc = co_await await_handle(r);
    recv_res = rc.res;
  };
  d.spawn(body());
  ASSERT_EQ(d.run(), 0) << "watchdog: the run hung";
  (void)sp.a.release();  // the close op closed it
  EXPECT_EQ(close_res, 0);
  EXPECT_EQ(recv_res, -ECANCELED);
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1) << "the close op did not close the descriptor";
}

INSTANTIATE_TEST_SUITE_P(asio, AsioClose, testing::Values("asio", "asio-uring"), param_name);

}  // namespace
}  // namespace ringside::conformance
