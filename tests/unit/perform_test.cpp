// Description: the op execution and result handling the backends share. An
// op moves exactly the bytes at buf.data() + buf_offset, and a range that
// does not fit is -EINVAL before any syscall; read/write use pread/pwrite
// unless the offset is ~0; the non-blocking mode never blocks and gives
// accepted fds O_NONBLOCK; the kernel's copies are counted where the result
// is produced; a discarded accept result closes its fd. Real sockets, pipes
// and files.
#include "harness/perform.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "harness/buffer.hpp"
#include "harness/meters.hpp"
#include "tests/unit/uring_test_util.hpp"

namespace ringside {
namespace {

using test::fill_pattern;
using test::has_pattern;

op payload(op_kind kind, int fd, buffer b, uint32_t buf_offset, uint32_t len, uint64_t offset = ~uint64_t{0}) {
  return op{.kind = kind, .fd = fd, .offset = offset, .len = len, .buf_offset = buf_offset, .buf = std::move(b)};
}

TEST(perform_sync, send_and_recv_move_exactly_the_range_at_buf_offset) {
  auto sp = test::make_socketpair();
  buffer_pool pool(2, 4096);
  buffer out = pool.acquire();
  std::memset(out.data(), 0xEE, out.capacity());
  fill_pattern({out.data() + 100, 50}, 3);
  op s = payload(op_kind::send, sp.a.get(), std::move(out), 100, 50);
  const uint64_t copied0 = meters::read().kernel_copy_bytes;
  EXPECT_EQ(perform_sync(s, sync_mode::blocking), 50);

  buffer in = pool.acquire();
  std::memset(in.data(), 0xEE, in.capacity());
  op r = payload(op_kind::recv, sp.b.get(), std::move(in), 1000, 64);
  EXPECT_EQ(perform_sync(r, sync_mode::nonblocking), 50);
  EXPECT_EQ(meters::read().kernel_copy_bytes - copied0, 100u) << "both transfers are kernel copies";
  EXPECT_TRUE(has_pattern({r.buf.data() + 1000, 50}, 3));
  EXPECT_EQ(r.buf.data()[999], std::byte{0xEE});
  EXPECT_EQ(r.buf.data()[1050], std::byte{0xEE});
}

TEST(perform_sync, range_past_capacity_is_einval_without_a_syscall) {
  auto sp = test::make_socketpair();
  buffer_pool pool(1, 4096);
  const auto before = meters::read();
  for (op_kind k : {op_kind::read, op_kind::write, op_kind::recv, op_kind::send}) {
    op o = payload(k, sp.a.get(), pool.acquire(), 4090, 7);
    EXPECT_EQ(perform_sync(o, sync_mode::blocking), -EINVAL) << to_string(k);
    EXPECT_TRUE(o.buf.valid());
  }
  op nobuf = payload(op_kind::recv, sp.a.get(), buffer{}, 0, 1);
  EXPECT_EQ(perform_sync(nobuf, sync_mode::blocking), -EINVAL);
  EXPECT_EQ((meters::read() - before).syscalls, 0u);
}

TEST(perform_sync, nonblocking_recv_on_an_empty_blocking_socket_is_eagain) {
  auto sp = test::make_socketpair();  // blocking fds
  buffer_pool pool(1, 4096);
  op r = payload(op_kind::recv, sp.a.get(), pool.acquire(), 0, 64);
  EXPECT_EQ(perform_sync(r, sync_mode::nonblocking), -EAGAIN);
}

TEST(perform_sync, offset_selects_pread_or_read) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  unique_fd rd(p[0]), wr(p[1]);
  buffer_pool pool(3, 4096);
  buffer b = pool.acquire();
  fill_pattern(b.first(10), 9);
  op w = payload(op_kind::write, wr.get(), std::move(b), 0, 10);  // ~0: plain write
  EXPECT_EQ(perform_sync(w, sync_mode::blocking), 10);
  op positional = payload(op_kind::read, rd.get(), pool.acquire(), 0, 10, 0);
  EXPECT_EQ(perform_sync(positional, sync_mode::blocking), -ESPIPE) << "offset 0 must mean pread";
  op plain = payload(op_kind::read, rd.get(), std::move(positional.buf), 0, 10);
  EXPECT_EQ(perform_sync(plain, sync_mode::blocking), 10);
  EXPECT_TRUE(has_pattern(plain.buf.first(10), 9));

  test::temp_file f;
  buffer fb = pool.acquire();
  fill_pattern(fb.first(100), 4);
  op fw = payload(op_kind::write, f.fd.get(), std::move(fb), 0, 100, 5000);
  EXPECT_EQ(perform_sync(fw, sync_mode::blocking), 100);
  op fr = payload(op_kind::read, f.fd.get(), std::move(fw.buf), 7, 100, 5000);
  EXPECT_EQ(perform_sync(fr, sync_mode::blocking), 100);
  EXPECT_TRUE(has_pattern({fr.buf.data() + 7, 100}, 4));
}

TEST(perform_sync, accepted_fd_mode_connect_result_close_and_discard) {
  unique_fd l(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(l.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(l.get(), 4), 0);
  ASSERT_EQ(::getsockname(l.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);

  unique_fd c1(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  op conn{.kind = op_kind::connect, .fd = c1.get(), .addr = reinterpret_cast<const sockaddr*>(&addr),
          .addrlen = sizeof addr};
  const int32_t cr = perform_sync(conn, sync_mode::nonblocking);
  EXPECT_TRUE(cr == 0 || cr == -EINPROGRESS) << cr;
  op acc{.kind = op_kind::accept, .fd = l.get()};
  const int32_t a1 = perform_sync(acc, sync_mode::nonblocking);
  ASSERT_GE(a1, 0);
  EXPECT_NE(::fcntl(a1, F_GETFL) & O_NONBLOCK, 0) << "a non-blocking backend's accepted fd must be non-blocking";
  EXPECT_EQ(connect_result(c1.get()), 0);

  unique_fd c2(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_EQ(::connect(c2.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  const int32_t a2 = perform_sync(acc, sync_mode::blocking);
  ASSERT_GE(a2, 0);
  EXPECT_EQ(::fcntl(a2, F_GETFL) & O_NONBLOCK, 0);

  // A result nobody takes: the accepted fd is closed (counted).
  const auto before = meters::read();
  discard_result(op_kind::accept, a1);
  EXPECT_EQ((meters::read() - before).syscalls, 1u);
  EXPECT_EQ(::fcntl(a1, F_GETFD), -1) << "the discarded accept result is still open";
  discard_result(op_kind::recv, a2);  // not an fd: left alone
  EXPECT_NE(::fcntl(a2, F_GETFD), -1);

  op cl{.kind = op_kind::close, .fd = a2};
  EXPECT_EQ(perform_sync(cl, sync_mode::blocking), 0);
  EXPECT_EQ(::fcntl(a2, F_GETFD), -1);
  op t{.kind = op_kind::timeout, .timeout_ns = 1};
  EXPECT_EQ(perform_sync(t, sync_mode::blocking), -EINVAL) << "timeouts are each backend's own";
}

TEST(count_kernel_copy, counts_payload_results_only) {
  const uint64_t before = meters::read().kernel_copy_bytes;
  count_kernel_copy(op_kind::recv, 10);
  count_kernel_copy(op_kind::write, 5);
  count_kernel_copy(op_kind::accept, 7);  // an fd, not bytes
  count_kernel_copy(op_kind::read, -EAGAIN);
  count_kernel_copy(op_kind::send, 0);
  EXPECT_EQ(meters::read().kernel_copy_bytes - before, 15u);
}

}  // namespace
}  // namespace ringside
