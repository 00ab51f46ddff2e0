// Checks: every backend returns what the kernel returns — short counts, EOF
// as 0, failures as -errno — and moves bytes intact.
#include <chrono>

#include "tests/conformance/driver.hpp"

namespace ringside::conformance {
namespace {

// Description: an 8192-byte read 1000 bytes before EOF of a real file returns
// 1000 and exactly those bytes; a read at EOF returns 0.
TEST_P(backend, short_read_at_eof_returns_rest_then_0) {
  driver d(GetParam());
  if (!d.caps().file_io) GTEST_SKIP() << "caps.file_io = false";
  constexpr uint64_t file_size = 10000;
  constexpr uint32_t seed = 11;
  unique_fd f = temp_file(file_size, seed);
  d.adopt(f);
  int32_t short_res = 1, eof_res = 1;
  bool bytes_ok = false;
  auto body = [&]() -> task<> {
    completion c = co_await d.io().read(f.get(), d.pool().acquire(), 8192, file_size - 1000);
    short_res = c.res;
    bytes_ok = c.res == 1000 && c.buf.valid() && matches_pattern(c.buf.first(1000), seed, file_size - 1000);
    c = co_await d.io().read(f.get(), std::move(c.buf), 8192, file_size);
    eof_res = c.res;
  };
  d.spawn(body());
  ASSERT_EQ(d.run(), 0) << "watchdog: the run hung";
  EXPECT_EQ(short_res, 1000);
  EXPECT_TRUE(bytes_ok) << "the short read returned the wrong bytes";
  EXPECT_EQ(eof_res, 0);
}

// Description: 1 MiB sent through the backend on loopback TCP arrives intact
// and in order, whatever the short sends and short receives on the way.
TEST_P(backend, tcp_bytes_arrive_intact) {
  driver d(GetParam());
  tcp_pair p = make_tcp_pair();
  d.adopt(p.client);
  d.adopt(p.server);
  constexpr uint64_t total = 1 << 20;
  constexpr uint32_t seed = 42;
  int32_t sent = 1, received = 1;
  auto sender = [&]() -> task<> {
    buffer b = d.pool().acquire();
    sent = co_await send_pattern(d.io(), p.client.get(), b, seed, 0, total);
  };
  auto receiver = [&]() -> task<> {
    buffer b = d.pool().acquire();
    received = co_await recv_pattern(d.io(), p.server.get(), b, seed, 0, total);
  };
  d.spawn(receiver());
  d.spawn(sender());
  ASSERT_EQ(d.run(), 0) << "watchdog: the run hung";
  EXPECT_EQ(sent, 0);
  EXPECT_EQ(received, 0) << "(-EBADMSG: bytes differ from those sent)";
}

// Description: a recv of 4096 when only 100 bytes are available returns 100
// (it does not wait for more), with those bytes.
TEST_P(backend, recv_short_when_less_available) {
  driver d(GetParam());
  socket_pair sp = make_socketpair();
  d.adopt(sp.a);
  constexpr uint32_t seed = 3;
  std::vector<std::byte> data(100);
  fill_pattern(data, seed, 0);
  ASSERT_EQ(::send(sp.b.get(), data.data(), data.size(), 0), 100);
  int32_t res = 0;
  bool bytes_ok = false;
  auto body = [&]() -> task<> {
    completion c = co_await d.io().recv(sp.a.get(), d.pool().acquire(), 4096);
    res = c.res;
    bytes_ok = c.res == 100 && matches_pattern(c.buf.first(100), seed, 0);
  };
  d.spawn(body());
  ASSERT_EQ(d.run(), 0) << "watchdog: the run hung";
  EXPECT_EQ(res, 100);
  EXPECT_TRUE(bytes_ok);
}

// Description: after the peer closes, recv returns 0 (EOF), not an error.
TEST_P(backend, recv_peer_close_returns_0) {
  driver d(GetParam());
  socket_pair sp = make_socketpair();
  d.adopt(sp.a);
  sp.b.reset();
  int32_t res = 1;
  auto body = [&]() -> task<> {
    completion c = co_await d.io().recv(sp.a.get(), d.pool().acquire(), 64);
    res = c.res;
  };
  d.spawn(body());
  ASSERT_EQ(d.run(), 0) << "watchdog: the run hung";
  EXPECT_EQ(res, 0);
}

// Description: a send after the peer closed fails with -EPIPE or -ECONNRESET
// (and does not kill the process with SIGPIPE).
TEST_P(backend, send_after_peer_close_epipe) {
  driver d(GetParam());
  socket_pair sp = make_socketpair();
  d.adopt(sp.a);
  sp.b.reset();
  int32_t res = 1;
  auto body = [&]() -> task<> {
    buffer b = d.pool().acquire();
    fill_pattern(b.first(64), 1, 0);
    completion c = co_await d.io().send(sp.a.get(), std::move(b), 64);
    res = c.res;
  };
  d.spawn(body());
  ASSERT_EQ(d.run(), 0) << "watchdog: the run hung";
  EXPECT_TRUE(res == -EPIPE || res == -ECONNRESET) << "res = " << res;
}

// Description: a read on a descriptor that was closed fails with -EBADF.
TEST_P(backend, read_closed_fd_ebadf) {
  driver d(GetParam());
  int closed_fd;
  {
    unique_fd s = tcp_socket();
    closed_fd = s.get();
  }
  int32_t res = 1;
  auto body = [&]() -> task<> {
    completion c = co_await d.io().read(closed_fd, d.pool().acquire(), 64, 0);
    res = c.res;
  };
  d.spawn(body());
  ASSERT_EQ(d.run(), 0) << "watchdog: the run hung";
  EXPECT_EQ(res, -EBADF);
}

// Description: a connect to a loopback port nobody listens on fails with
// -ECONNREFUSED. The port stays bound (not listening) for the whole test, so
// no other process can take it.
TEST_P(backend, connect_closed_port_econnrefused) {
  driver d(GetParam());
  unique_fd bound = bind_loopback(false);
  const sockaddr_in addr = bound_address(bound.get());
  unique_fd s = tcp_socket();
  d.adopt(s);
  int32_t res = 1;
  auto body = [&]() -> task<> {
    completion c = co_await d.io().connect(s.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    res = c.res;
  };
  d.spawn(body());
  ASSERT_EQ(d.run(), 0) << "watchdog: the run hung";
  EXPECT_EQ(res, -ECONNREFUSED);
}

// Description: accept and connect through the backend on loopback both
// succeed, and the accepted fd (adopted by the backend itself) carries bytes
// both ways.
TEST_P(backend, accept_connect_accepted_fd_usable) {
  driver d(GetParam());
  unique_fd listener = bind_loopback(true);
  d.adopt(listener);
  const sockaddr_in addr = bound_address(listener.get());
  unique_fd client = tcp_socket();
  d.adopt(client);
  constexpr uint64_t msg = 3000;  // a few pieces for small pools, one for large
  unique_fd accepted;
  int32_t accept_res = -1, connect_res = 1, server_send = 1, server_recv = 1, client_send = 1, client_recv = 1;
  auto server = [&]() -> task<> {
    completion c = co_await d.io().accept(listener.get());
    accept_res = c.res;
    CO_ASSERT_TRUE(c.res >= 0);
    accepted.reset(c.res);
    buffer b = d.pool().acquire();
    server_send = co_await send_pattern(d.io(), c.res, b, 5, 0, msg);
    server_recv = co_await recv_pattern(d.io(), c.res, b, 6, 0, msg);
  };
  auto client_task = [&]() -> task<> {
    completion c = co_await d.io().connect(client.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    connect_res = c.res;
    CO_ASSERT_EQ(c.res, 0);
    buffer b = d.pool().acquire();
    client_recv = co_await recv_pattern(d.io(), client.get(), b, 5, 0, msg);
    client_send = co_await send_pattern(d.io(), client.get(), b, 6, 0, msg);
  };
  d.spawn(server());
  d.spawn(client_task());
  ASSERT_EQ(d.run(), 0) << "watchdog: the run hung";
  EXPECT_GE(accept_res, 0);
  EXPECT_EQ(connect_res, 0);
  EXPECT_EQ(server_send, 0);
  EXPECT_EQ(client_recv, 0);
  EXPECT_EQ(client_send, 0);
  EXPECT_EQ(server_recv, 0);
}

// Description: a timeout op sleeps at least its duration (and completes with
// 0); the upper bound is generous, this is not a timing test.
TEST_P(backend, timeout_sleeps_at_least_duration) {
  driver d(GetParam());
  constexpr auto duration = 20ms;
  int32_t res = 1;
  clock_type::duration elapsed{};
  auto body = [&]() -> task<> {
    const auto t0 = clock_type::now();
    completion c = co_await d.io().sleep_ns(std::chrono::nanoseconds(duration).count());
    elapsed = clock_type::now() - t0;
    res = c.res;
  };
  d.spawn(body());
  ASSERT_EQ(d.run(), 0) << "watchdog: the run hung";
  EXPECT_EQ(res, 0);
  EXPECT_GE(elapsed, duration);
  EXPECT_LT(elapsed, 2s);
}

}  // namespace
}  // namespace ringside::conformance
