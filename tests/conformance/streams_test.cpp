// Checks: one backend serves many concurrent streams — accepts, connects,
// receives and sends interleaved across connections — and every stream ends.
#include <atomic>

#include "tests/conformance/driver.hpp"

namespace ringside::conformance {
namespace {

// Description: 32 clients connect to one listener; an acceptor task accepts
// them and spawns (from inside the run) one echo-style server per connection.
// Each client sends 1024 bytes seeded by its index, each server checks them
// and answers 1024 bytes of its own, then closes through the backend. Every
// stream completes, and nothing crosses connections.
TEST_P(backend, many_connections_all_complete) {
  constexpr int conns = 32;
  constexpr uint64_t msg = 1024;
  constexpr uint32_t answer = 100;  // server seeds are client seeds + 100
  // One buffer per client and per server, with room to spare.
  driver d(GetParam(), 2 * conns + 16, 4096);
  unique_fd listener = bind_loopback(true);
  d.adopt(listener);
  const sockaddr_in addr = bound_address(listener.get());
  std::vector<unique_fd> clients;
  for (int i = 0; i < conns; ++i) d.adopt(clients.emplace_back(tcp_socket()));
  std::atomic<int> accepted{0}, servers_ok{0}, clients_ok{0};

  auto server = [&](int fd) -> task<> {
    buffer b = d.pool().acquire();
    completion first = co_await d.io().recv(fd, std::move(b), 1);
    CO_ASSERT_EQ(first.res, 1);
    b = std::move(first.buf);
    const auto seed = static_cast<uint32_t>(b.data()[0]);  // byte 0 of a pattern is its seed
    const int32_t got = co_await recv_pattern(d.io(), fd, b, seed, 1, msg);
    CO_ASSERT_EQ(got, 0);
    const int32_t sent = co_await send_pattern(d.io(), fd, b, seed + answer, 0, msg);
    CO_ASSERT_EQ(sent, 0);
    completion closed = co_await d.io().close(fd);
    CO_ASSERT_EQ(closed.res, 0);
    servers_ok.fetch_add(1);
  };
  auto acceptor = [&]() -> task<> {
    for (int i = 0; i < conns; ++i) {
      completion c = co_await d.io().accept(listener.get());
      CO_ASSERT_TRUE(c.res >= 0);
      accepted.fetch_add(1);
      d.spawn(server(c.res));
    }
  };
  auto client = [&](int i) -> task<> {
    const int fd = clients[size_t(i)].get();
    completion c = co_await d.io().connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    CO_ASSERT_EQ(c.res, 0);
    buffer b = d.pool().acquire();
    const int32_t sent = co_await send_pattern(d.io(), fd, b, uint32_t(i), 0, msg);
    CO_ASSERT_EQ(sent, 0);
    const int32_t got = co_await recv_pattern(d.io(), fd, b, uint32_t(i) + answer, 0, msg);
    CO_ASSERT_EQ(got, 0);
    clients_ok.fetch_add(1);
  };
  d.spawn(acceptor());
  for (int i = 0; i < conns; ++i) d.spawn(client(i));
  ASSERT_EQ(d.run(), 0) << "watchdog: some stream never completed";
  EXPECT_EQ(accepted.load(), conns);
  EXPECT_EQ(servers_ok.load(), conns);
  EXPECT_EQ(clients_ok.load(), conns);
}

// Description: a stream whose ops are always ready (nops here; regular-file
// reads behave the same) does not starve the others: while it spins, another
// stream's 1 ms timer still fires and its task runs. Without a fairness rule a
// one-loop backend would complete every nop inline and never turn its loop.
TEST_P(backend, always_ready_stream_does_not_starve_others) {
  driver d(GetParam());
  // 1e6 nops: tens of milliseconds when completed inline without a break,
  // far more than the 1 ms the other stream needs.
  constexpr int max_spins = 1'000'000;
  std::atomic<bool> other_ran{false};
  int spins = 0;
  auto spinner = [&]() -> task<> {
    while (!other_ran.load(std::memory_order_acquire) && spins < max_spins) {
      completion c = co_await d.io().nop();
      CO_ASSERT_EQ(c.res, 0);
      ++spins;
    }
  };
  auto other = [&]() -> task<> {
    co_await d.io().sleep_ns(1'000'000);
    other_ran.store(true, std::memory_order_release);
  };
  d.spawn(spinner());
  d.spawn(other());
  ASSERT_EQ(d.run(), 0) << "watchdog: the run hung";
  EXPECT_TRUE(other_ran.load());
  EXPECT_LT(spins, max_spins) << "the always-ready stream never let the other one run";
}

// Description: a stream whose ops fail at once, without a syscall (a recv
// with no buffer: -EINVAL), does not starve the others either: another
// stream's 1 ms timer still fires. A loop that keeps finding such work must
// still enter the kernel now and then — to submit the timer at all, and
// (io_uring with DEFER_TASKRUN) to have its completion posted.
TEST_P(backend, always_failing_stream_does_not_starve_others) {
  driver d(GetParam());
  socket_pair sp = make_socketpair();
  d.adopt(sp.a);
  // 1e6 ops: seconds of spinning at worst, far more than the 1 ms needed.
  constexpr int max_spins = 1'000'000;
  std::atomic<bool> other_ran{false};
  int spins = 0;
  auto spinner = [&]() -> task<> {
    while (!other_ran.load(std::memory_order_acquire) && spins < max_spins) {
      completion c = co_await d.io().recv(sp.a.get(), buffer{}, 16);
      CO_ASSERT_EQ(c.res, -EINVAL);
      ++spins;
    }
  };
  auto other = [&]() -> task<> {
    co_await d.io().sleep_ns(1'000'000);
    other_ran.store(true, std::memory_order_release);
  };
  d.spawn(other());
  d.spawn(spinner());
  ASSERT_EQ(d.run(std::chrono::milliseconds(20s)), 0) << "watchdog: the run hung";
  EXPECT_TRUE(other_ran.load());
  EXPECT_LT(spins, max_spins) << "the always-failing stream never let the other one run";
}

// Description: the watchdog. A task blocked forever on a recv makes run()
// return -ETIME at its deadline (not much later), and destroying the backend
// afterwards returns in bounded time and gives every buffer back to the pool
// (the stuck frame is destroyed or unwound, its op cancelled and drained).
TEST_P(backend, watchdog_etime_then_bounded_teardown) {
  driver d(GetParam());
  socket_pair sp = make_socketpair();
  d.adopt(sp.a);
  auto stuck = [&]() -> task<> {
    completion c = co_await d.io().recv(sp.a.get(), d.pool().acquire(), 64);
    (void)c;
  };
  d.spawn(stuck());
  constexpr auto deadline = 200ms;
  const auto t0 = clock_type::now();
  const int r = d.run(deadline);
  const auto ran = clock_type::now() - t0;
  d.destroy_backend();
  const auto torn_down = clock_type::now() - t0 - ran;
  EXPECT_EQ(r, -ETIME);
  EXPECT_GE(ran, deadline);
  // 3 s: a deadline is a promise to return, not a timing test; the blocking
  // backend may spend up to its 2 s interrupt budget unwinding.
  EXPECT_LT(ran, deadline + 3s);
  EXPECT_LT(torn_down, 3s);
  EXPECT_EQ(d.pool().available(), d.pool().count()) << "a buffer never came back to the pool";
}

}  // namespace
}  // namespace ringside::conformance
