// Checks: every submitted op gets exactly one completion, with many ops in
// flight at once, and every in-flight op has its own id.
#include <memory>
#include <set>

#include "tests/conformance/driver.hpp"

namespace ringside::conformance {
namespace {

// Description: 1000 nops submitted back to back each complete exactly once
// with 0, and their ids are distinct (ABA: an id names one op only).
TEST_P(backend, exactly_once_1000_nops) {
  constexpr size_t n = 1000;
  auto waiters = std::make_unique<counting_waiter[]>(n);  // outlive the backend
  latch all(n);
  std::vector<op_id> ids(n);
  driver d(GetParam());
  for (size_t i = 0; i < n; ++i) waiters[i].arm(&all);
  auto body = [&]() -> task<> {
    for (size_t i = 0; i < n; ++i) ids[i] = d.be().submit(nop_op(), &waiters[i]);
    co_await all.wait();
    co_await d.io().sleep_ns(10'000'000);  // a late second completion would land now
  };
  d.spawn(body());
  ASSERT_EQ(d.run(), 0) << "watchdog: some nop never completed";
  size_t once = 0, ok = 0;
  for (size_t i = 0; i < n; ++i) {
    once += waiters[i].completions() == 1;
    ok += waiters[i].res() == 0;
  }
  EXPECT_EQ(once, n);
  EXPECT_EQ(ok, n);
  std::set<uint64_t> distinct;
  for (auto id : ids) distinct.insert(id.value);
  EXPECT_EQ(distinct.size(), n) << "two ops shared an id";
  EXPECT_EQ(distinct.count(0), 0u) << "an op got the null id";
}

// Description: 1000 sends of 64 bytes in flight on one socket (more than its
// buffer holds, so many wait) each complete exactly once with 64, and the
// receiver gets exactly 64000 bytes, each send's block intact.
TEST_P(backend, exactly_once_1000_sends) {
  constexpr size_t n = 1000;
  constexpr uint32_t block = 64;
  constexpr uint32_t seed = 77;
  auto waiters = std::make_unique<counting_waiter[]>(n);  // outlive the backend
  latch all(n);
  // One buffer per send in flight, plus the receiver's.
  driver d(GetParam(), n + 16, 4096);
  socket_pair sp = make_socketpair();
  d.adopt(sp.a);
  d.adopt(sp.b);
  for (size_t i = 0; i < n; ++i) waiters[i].arm(&all);
  uint64_t received = 0;
  bool bytes_ok = true;
  int32_t recv_error = 0;
  auto sender = [&]() -> task<> {
    for (size_t i = 0; i < n; ++i) {
      buffer b = d.pool().acquire();
      if (!b) {
        ADD_FAILURE() << "pool exhausted";
        break;
      }
      fill_pattern(b.first(block), seed, 0);
      d.be().submit(send_op(sp.a.get(), std::move(b), block), &waiters[i]);
    }
    co_await all.wait();
    co_await d.io().sleep_ns(10'000'000);  // a late second completion would land now
  };
  auto receiver = [&]() -> task<> {
    buffer b = d.pool().acquire();
    // 100000 recvs: far more than 64000 bytes can need; bounds the loop.
    for (int k = 0; k < 100000 && received < uint64_t(n) * block; ++k) {
      completion c = co_await d.io().recv(sp.b.get(), std::move(b), 4096);
      b = std::move(c.buf);
      if (c.res <= 0) {
        recv_error = c.res == 0 ? -ENODATA : c.res;
        co_return;
      }
      for (int32_t j = 0; j < c.res; ++j)
        if (b.data()[j] != pattern_byte(seed, (received + uint64_t(j)) % block)) bytes_ok = false;
      received += uint64_t(c.res);
    }
  };
  d.spawn(receiver());
  d.spawn(sender());
  ASSERT_EQ(d.run(), 0) << "watchdog: some send never completed";
  size_t once = 0, full = 0;
  for (size_t i = 0; i < n; ++i) {
    once += waiters[i].completions() == 1;
    full += waiters[i].res() == int32_t(block);
  }
  EXPECT_EQ(once, n);
  EXPECT_EQ(full, n);
  EXPECT_EQ(recv_error, 0);
  EXPECT_EQ(received, uint64_t(n) * block);
  EXPECT_TRUE(bytes_ok) << "a send's bytes were torn or reordered within its block";
}

}  // namespace
}  // namespace ringside::conformance
