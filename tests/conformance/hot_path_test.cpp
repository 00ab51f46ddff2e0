// Checks: the per-op hot path allocates nothing once warmed up — allocs_per_op
// is a reported metric, and a backend that allocates per op skews every
// comparison built on it.
#include "harness/meters.hpp"
#include "tests/conformance/driver.hpp"

namespace ringside::conformance {
namespace {

// Description: after a warm-up, 1000 send+recv round trips (with a nop and a
// short sleep each 100) on one socket pair make zero heap allocations, counted
// by the counting operator new linked into this test.
TEST_P(backend, steady_state_ops_allocate_nothing) {
  ASSERT_TRUE(meters::alloc_counting_active()) << "the counting operator new is not linked in";
  driver d(GetParam());
  socket_pair sp = make_socketpair();
  d.adopt(sp.a);
  d.adopt(sp.b);
  // 100 warm-up rounds grow every table to its working size first.
  constexpr int warmup = 100, measured = 1000;
  uint64_t allocs = ~uint64_t{0};
  int failures = 0;
  auto body = [&]() -> task<> {
    buffer out = d.pool().acquire();
    buffer in = d.pool().acquire();
    fill_pattern(out.first(64), 1, 0);
    uint64_t before = 0;
    for (int i = 0; i < warmup + measured; ++i) {
      if (i == warmup) before = meters::read().allocs;
      completion s = co_await d.io().send(sp.a.get(), std::move(out), 64);
      out = std::move(s.buf);
      completion r = co_await d.io().recv(sp.b.get(), std::move(in), 64);
      in = std::move(r.buf);
      if (s.res != 64 || r.res != 64) ++failures;
      if (i % 100 == 0) {
        failures += (co_await d.io().nop()).res != 0;
        failures += (co_await d.io().sleep_ns(1000)).res != 0;
      }
    }
    allocs = meters::read().allocs - before;
  };
  d.spawn(body());
  ASSERT_EQ(d.run(), 0) << "watchdog: the run hung";
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(allocs, 0u) << "heap allocations in " << measured << " steady-state round trips";
}

}  // namespace
}  // namespace ringside::conformance
