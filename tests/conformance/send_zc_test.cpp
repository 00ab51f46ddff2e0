// Checks: a zero-copy send (op_kind::send_zc) delivers its bytes like a send,
// completes exactly once with the send's result, and hands its buffer back
// only with that completion; kernel copies are counted honestly (loopback
// copies after all, and says so); sockets without zero copy (AF_UNIX) send
// plainly on every backend.
#include "harness/meters.hpp"
#include "tests/conformance/driver.hpp"

namespace ringside::conformance {
namespace {

// Description: 64 KiB of a seeded stream in 16 KiB zero-copy sends over
// loopback TCP arrive intact and in order; every completion carries its
// buffer; the kernel copy meter counts the sent bytes once each (loopback
// reports every zero-copy send as copied) on the sending side. (uring-raw
// hands the buffer back at the send's first CQE, so reusing it corrupts the
// stream: tests/safety/newops_test.cpp shows that; here it is skipped.)
TEST_P(backend, send_zc_delivers_stream) {
  driver d(GetParam());
  if (!d.caps().zero_copy_send) GTEST_SKIP() << "caps.zero_copy_send = false";
  if (d.caps().contract == buffer_contract::borrowed_unsound)
    GTEST_SKIP() << "the negative control reuses buffers the kernel still reads (see safety tests)";
  tcp_pair tp = make_tcp_pair();
  d.adopt(tp.client);
  constexpr uint64_t total = 65536;
  constexpr uint32_t chunk = 16384;
  int32_t err = 0;
  int sends = 0, buffers_back = 0;
  uint64_t copied = 0;
  auto sender = [&]() -> task<> {
    const uint64_t before = meters::read().kernel_copy_bytes;
    for (uint64_t off = 0; off < total;) {
      buffer b = d.pool().acquire();
      const auto n = static_cast<uint32_t>(std::min<uint64_t>(chunk, total - off));
      fill_pattern(b.first(n), 51, off);
      completion c = co_await d.io().submit(payload_op(op_kind::send_zc, tp.client.get(), std::move(b), 0, n));
      ++sends;
      if (c.buf.valid()) ++buffers_back;
      if (c.res <= 0) {
        err = c.res < 0 ? c.res : -EIO;
        co_return;
      }
      off += uint64_t(c.res);
    }
    copied = meters::read().kernel_copy_bytes - before;
  };
  d.spawn(sender());
  ASSERT_EQ(d.run(), 0) << "watchdog: a zero-copy send never completed";
  EXPECT_EQ(err, 0);
  EXPECT_EQ(buffers_back, sends);
  EXPECT_EQ(copied, total) << "loopback copies every zero-copy send; the meter must say so";
  // The test's own side: plain blocking reads (not metered).
  std::vector<std::byte> got(total);
  ASSERT_EQ(::recv(tp.server.get(), got.data(), got.size(), MSG_WAITALL), ssize_t(total));
  EXPECT_TRUE(matches_pattern(got, 51, 0)) << "the stream arrived corrupted";
  d.be().shutdown();
  const auto v = d.violations();
  EXPECT_TRUE(v.empty()) << describe(v);
}

// Description: on an AF_UNIX socket (no zero copy there) send_zc still sends:
// every backend falls back to a plain send, so scenarios run alike.
TEST_P(backend, send_zc_unix_socket_falls_back) {
  driver d(GetParam());
  if (!d.caps().zero_copy_send) GTEST_SKIP() << "caps.zero_copy_send = false";
  socket_pair sp = make_socketpair();
  d.adopt(sp.a);
  int32_t res = 1;
  bool buffer_back = false;
  auto body = [&]() -> task<> {
    buffer b = d.pool().acquire();
    fill_pattern(b.first(100), 53, 0);
    completion c = co_await d.io().submit(payload_op(op_kind::send_zc, sp.a.get(), std::move(b), 0, 100));
    res = c.res;
    buffer_back = c.buf.valid();
  };
  d.spawn(body());
  ASSERT_EQ(d.run(), 0) << "watchdog: the run hung";
  EXPECT_EQ(res, 100);
  EXPECT_TRUE(buffer_back);
  std::byte got[100];
  ASSERT_EQ(::recv(sp.b.get(), got, sizeof got, MSG_DONTWAIT), 100);
  EXPECT_TRUE(matches_pattern(got, 53, 0));
}

// Description: cancelling a zero-copy send that has already sent its bytes
// cannot take them back: the op still completes once, with the byte count
// (never -ECANCELED), and the peer gets the bytes — on sound contracts.
TEST_P(backend, send_zc_cancel_after_send_keeps_result) {
  driver d(GetParam());
  if (!d.caps().zero_copy_send) GTEST_SKIP() << "caps.zero_copy_send = false";
  if (d.caps().contract == buffer_contract::borrowed_unsound)
    GTEST_SKIP() << "the negative control completes at the first CQE; its cancel has nothing to race";
  tcp_pair tp = make_tcp_pair();
  d.adopt(tp.client);
  int32_t res = 1;
  int completions = 0;
  auto body = [&]() -> task<> {
    buffer b = d.pool().acquire();
    fill_pattern(b.first(4096), 55, 0);
    op_handle h(d.be(), payload_op(op_kind::send_zc, tp.client.get(), std::move(b), 0, 4096));
    (void)h.cancel();  // 0 or -ENOENT: either way the send's result stands
    completion c = co_await await_handle(h);
    res = c.res;
    completions = 1;
  };
  d.spawn(body());
  ASSERT_EQ(d.run(), 0) << "watchdog: the run hung";
  EXPECT_EQ(completions, 1);
  // A cancel that reached the send before any byte moved may say -ECANCELED;
  // then nothing may have arrived.
  std::vector<std::byte> got(4096);
  const ssize_t n = ::recv(tp.server.get(), got.data(), got.size(), MSG_DONTWAIT);
  if (res == -ECANCELED) {
    EXPECT_LT(n, 0) << "cancelled, yet the bytes went out";
  } else {
    EXPECT_EQ(res, 4096);
    EXPECT_EQ(n, 4096);
    EXPECT_TRUE(matches_pattern(std::span(got).first(4096), 55, 0));
  }
}

}  // namespace
}  // namespace ringside::conformance
