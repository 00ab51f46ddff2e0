// Description: the buffer ledger fires when a pool buffer is released,
// re-acquired or lent again while a range inside it is still in flight, and
// stays silent when the release comes after the op's final CQE. Checked both
// directly and through the real backends: uring-raw's drop and cancel (the
// negative control) must trip it; uring-owned's must not.
#include "harness/ledger.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "harness/buffer.hpp"
#include "harness/io.hpp"
#include "harness/meters.hpp"
#include "harness/sanitize.hpp"
#include "harness/sys.hpp"
#include "harness/task.hpp"
#include "harness/uring_loop.hpp"
#include "tests/unit/uring_test_util.hpp"

namespace ringside {
namespace {

using namespace std::chrono_literals;

std::vector<violation> take(buffer_ledger& l) {
  std::vector<violation> v;
  l.take_violations(v);
  return v;
}

std::string details(const std::vector<violation>& v) {
  std::string s;
  for (auto& x : v) s += x.kind + ": " + x.detail + "\n";
  return s;
}

// ---------------------------------------------------------------- direct ----

TEST(ledger, release_while_in_flight_is_a_violation) {
  buffer_pool pool(4, 4096);
  buffer_ledger ledger;
  ledger.watch(pool);
  buffer b = pool.acquire();
  const uint32_t idx = b.index();
  const byte_range r[] = {{b.data() + 100, 1000}};
  ledger.on_submit(0x300000002, op_kind::recv, r);
  b.reset();  // the kernel may still write [100, 1100) of it
  auto v = take(ledger);
  ASSERT_EQ(v.size(), 1u) << details(v);
  EXPECT_EQ(v[0].kind, "ledger");
  EXPECT_NE(v[0].detail.find("buffer " + std::to_string(idx) + " ["), std::string::npos) << v[0].detail;
  EXPECT_NE(v[0].detail.find("released while op 0x300000002 (recv) in flight"), std::string::npos) << v[0].detail;
  ledger.on_final(0x300000002);
  EXPECT_EQ(ledger.in_flight(), 0u);
}

TEST(ledger, release_after_final_cqe_is_clean) {
  buffer_pool pool(4, 4096);
  buffer_ledger ledger;
  ledger.watch(pool);
  buffer b = pool.acquire();
  const byte_range r[] = {{b.data(), 4096}};
  ledger.on_submit(7, op_kind::read, r);
  EXPECT_TRUE(ledger.in_flight_on(b.index()));
  ledger.on_final(7);
  EXPECT_FALSE(ledger.in_flight_on(b.index()));
  b.reset();
  buffer again = pool.acquire();
  EXPECT_TRUE(take(ledger).empty());
}

// uring-bounce lends two pools (its internal one to reads, the run's to
// sends): a release in either, while in flight, is caught and named by the
// buffer's index in its own pool; watching both costs the first nothing.
TEST(ledger, watches_a_second_pool) {
  buffer_pool internal(4, 4096);
  buffer_pool run(3, 8192);
  buffer_ledger ledger;
  ledger.watch(internal);
  ledger.watch_also(run);
  ledger.watch_also(run);  // twice: still one observer, one set of counts
  EXPECT_EQ(ledger.watched(), &internal);
  buffer a = internal.acquire();
  buffer b = run.acquire();
  buffer c = run.acquire();
  const byte_range ra[] = {{a.data(), 4096}};
  const byte_range rc[] = {{c.data() + 8, 100}};
  ledger.on_submit(11, op_kind::recv, ra);
  ledger.on_submit(12, op_kind::send, rc);
  EXPECT_TRUE(ledger.in_flight_on(internal, a.index()));
  EXPECT_TRUE(ledger.in_flight_on(run, c.index()));
  EXPECT_FALSE(ledger.in_flight_on(run, b.index()));
  b.reset();  // not lent: clean
  EXPECT_TRUE(take(ledger).empty());
  const uint32_t ci = c.index();
  c.reset();  // the kernel may still read it
  auto v = take(ledger);
  ASSERT_EQ(v.size(), 1u) << details(v);
  EXPECT_NE(v[0].detail.find("buffer " + std::to_string(ci) + " ["), std::string::npos) << v[0].detail;
  EXPECT_NE(v[0].detail.find(",+8192) released while op 0xc (send) in flight"), std::string::npos) << v[0].detail;
  ledger.on_final(11);
  a.reset();
  EXPECT_TRUE(take(ledger).empty());
  ledger.on_final(12);
  ledger.unwatch();
  EXPECT_EQ(ledger.watched(), nullptr);
  EXPECT_FALSE(ledger.in_flight_on(run, 0));
}

TEST(ledger, reacquire_of_memory_in_flight_is_a_violation) {
  buffer_pool pool(1, 4096);
  buffer_ledger ledger;
  ledger.watch(pool);
  buffer b = pool.acquire();
  std::byte* stale = b.data();
  b.reset();  // nothing in flight yet: clean
  EXPECT_TRUE(take(ledger).empty());
  // A stale pointer lent to the kernel (what a borrowed API does after
  // handing the buffer back), then the pool hands the memory out again.
  const byte_range r[] = {{stale, 512}};
  ledger.on_submit(9, op_kind::recv, r);
  buffer c = pool.acquire();
  auto v = take(ledger);
  ASSERT_EQ(v.size(), 1u) << details(v);
  EXPECT_NE(v[0].detail.find("re-acquired while op 0x9 (recv) in flight"), std::string::npos) << v[0].detail;
}

TEST(ledger, lending_a_buffer_the_kernel_writes_is_a_violation) {
  buffer_pool pool(2, 4096);
  buffer_ledger ledger;
  ledger.watch(pool);
  buffer b = pool.acquire();
  const byte_range r[] = {{b.data(), 4096}};
  // Two sends of one buffer only read it: allowed.
  ledger.on_submit(1, op_kind::send, r);
  ledger.on_submit(2, op_kind::send, r);
  EXPECT_TRUE(take(ledger).empty());
  // A recv into memory a send still holds: the send may transmit bytes the
  // recv is overwriting.
  ledger.on_submit(3, op_kind::recv, r);
  auto v = take(ledger);
  ASSERT_FALSE(v.empty());
  EXPECT_NE(v[0].detail.find("lent to another op"), std::string::npos) << v[0].detail;
  EXPECT_NE(v[0].detail.find("new op 0x3 (recv)"), std::string::npos) << v[0].detail;
  for (uint64_t ud : {1, 2, 3}) ledger.on_final(ud);
  EXPECT_EQ(ledger.in_flight(), 0u);
}

TEST(ledger, one_violation_per_op_in_flight) {
  buffer_pool pool(1, 4096);
  buffer_ledger ledger;
  ledger.watch(pool);
  buffer b = pool.acquire();
  const byte_range r[] = {{b.data(), 64}};
  ledger.on_submit(5, op_kind::read, r);
  b.reset();                     // violation
  buffer c = pool.acquire();     // same op, same buffer: not reported twice
  c.reset();
  EXPECT_EQ(take(ledger).size(), 1u);
}

TEST(ledger, ranges_outside_the_pool_are_tracked_but_never_conflict) {
  buffer_pool pool(1, 4096);
  buffer_ledger ledger;
  ledger.watch(pool);
  std::byte outside[64];
  const byte_range r[] = {{outside, sizeof outside}};
  ledger.on_submit(11, op_kind::recv, r);
  EXPECT_EQ(ledger.in_flight(), 1u);
  buffer b = pool.acquire();
  b.reset();
  EXPECT_TRUE(take(ledger).empty());
  ledger.on_final(11);
  EXPECT_EQ(ledger.in_flight(), 0u);
}

TEST(ledger, grows_past_its_initial_size_and_forgets_everything) {
  constexpr uint32_t n = 5000;  // far past the 64-entry table it starts with
  buffer_pool pool(n, 4096);
  buffer_ledger ledger(16);
  ledger.watch(pool);
  std::vector<buffer> bufs;
  bufs.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    bufs.push_back(pool.acquire());
    const byte_range r[] = {{bufs.back().data(), 4096}};
    ledger.on_submit(uint64_t(i + 1) << 32 | i, op_kind::read, r);
  }
  EXPECT_EQ(ledger.in_flight(), n);
  // Finals in an order unrelated to submission (7919 is prime and does not
  // divide n, so k * 7919 % n visits every i once): backward-shift deletion
  // must keep every probe chain reachable.
  for (uint32_t k = 0; k < n; ++k) {
    const uint32_t i = (k * 7919u) % n;
    ledger.on_final(uint64_t(i + 1) << 32 | i);
  }
  EXPECT_EQ(ledger.in_flight(), 0u);
  for (uint32_t i = 0; i < n; ++i) ASSERT_FALSE(ledger.in_flight_on(i)) << i;
  bufs.clear();
  EXPECT_TRUE(take(ledger).empty());
}

TEST(ledger, no_heap_allocation_per_op) {
  ASSERT_TRUE(meters::alloc_counting_active());
  buffer_pool pool(64, 4096);
  buffer_ledger ledger(64);
  ledger.watch(pool);
  std::vector<buffer> bufs;
  for (int i = 0; i < 64; ++i) bufs.push_back(pool.acquire());
  auto cycle = [&](uint64_t round) {
    for (uint32_t i = 0; i < 64; ++i) {
      const byte_range r[] = {{bufs[i].data(), 4096}};
      ledger.on_submit(round << 32 | (i + 1), op_kind::recv, r);
    }
    for (uint32_t i = 0; i < 64; ++i) ledger.on_final(round << 32 | (i + 1));
  };
  cycle(1);  // warm-up
  const auto before = meters::read();
  for (uint64_t round = 2; round < 200; ++round) cycle(round);
  EXPECT_EQ((meters::read() - before).allocs, 0u);
}

TEST(ledger, capture_stacks_names_both_sites) {
  buffer_pool pool(1, 4096);
  buffer_ledger ledger;
  ledger.set_capture_stacks(true);
  ledger.watch(pool);
  buffer b = pool.acquire();
  const byte_range r[] = {{b.data(), 4096}};
  ledger.on_submit(3, op_kind::recv, r);
  b.reset();
  auto v = take(ledger);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_NE(v[0].detail.find("submitted at: "), std::string::npos) << v[0].detail;
  EXPECT_NE(v[0].detail.find("released at: "), std::string::npos) << v[0].detail;
  // Both stacks pass through this test's body.
  const auto first = v[0].detail.find("capture_stacks_names_both_sites");
  ASSERT_NE(first, std::string::npos) << v[0].detail;
  EXPECT_NE(v[0].detail.find("capture_stacks_names_both_sites", first + 1), std::string::npos) << v[0].detail;
}

// ------------------------------------------------------- via the backends ----

// Declaration order is destruction order reversed: the backend goes first,
// then the sockets and the pool it used (as in the runner).
struct backend_run {
  buffer_pool pool{4, 4096};
  test::socket_pair sp = test::make_socketpair();
  std::unique_ptr<backend> be;
  explicit backend_run(std::string_view name) : be(test::make_backend(name)) {
    be->attach_pool(pool);
    be->adopt(sp.a.get());
    be->adopt(sp.b.get());
  }
  std::vector<violation> violations() {
    std::vector<violation> v;
    be->collect_violations(v);
    return v;
  }
};

// Starts a recv that cannot complete (no data), lets the loop submit it, then
// drops it by destroying its handle. Records what the pool saw.
task<> drop_pending_recv(backend& be, buffer_pool& pool, int fd, size_t* available_after_drop) {
  io io_(be);
  {
    auto h = start(be, op{.kind = op_kind::recv, .fd = fd, .len = 4096, .buf = pool.acquire()});
    co_await io_.nop();  // one loop pass: the recv is now in the kernel
  }                      // h destroyed here: drop()
  *available_after_drop = pool.available();
  co_await io_.sleep_ns(2'000'000);  // 2 ms: the drop's cancel lands meanwhile
}

TEST(ledger_backends, uring_raw_drop_trips_the_ledger) {
  RINGSIDE_REQUIRE_URING();
  if (sanitize::lends_checked) GTEST_SKIP() << sanitize::lends_checked_skip;
  backend_run r("uring-raw");
  size_t available = 0;
  r.be->spawn(drop_pending_recv(*r.be, r.pool, r.sp.b.get(), &available));
  ASSERT_EQ(test::run_briefly(*r.be), 0);
  // Negative control: the buffer went back to the pool while the kernel held it.
  EXPECT_EQ(available, r.pool.count());
  auto v = r.violations();
  ASSERT_EQ(v.size(), 1u) << details(v);
  EXPECT_EQ(v[0].kind, "ledger");
  EXPECT_NE(v[0].detail.find("released while op"), std::string::npos) << v[0].detail;
  EXPECT_NE(v[0].detail.find("(recv) in flight"), std::string::npos) << v[0].detail;
}

TEST(ledger_backends, uring_owned_drop_is_clean) {
  RINGSIDE_REQUIRE_URING();
  backend_run r("uring-owned");
  size_t available = 0;
  r.be->spawn(drop_pending_recv(*r.be, r.pool, r.sp.b.get(), &available));
  ASSERT_EQ(test::run_briefly(*r.be), 0);
  // The dropped op kept its buffer (graveyard) until its final CQE...
  EXPECT_EQ(available, r.pool.count() - 1);
  // ...which the cancel produced during the sleep: the buffer is back now.
  EXPECT_EQ(r.pool.available(), r.pool.count());
  auto v = r.violations();
  EXPECT_TRUE(v.empty()) << details(v);
}

// Cancels a pending recv and releases the buffer its completion hands back.
task<> cancel_then_release(backend& be, buffer_pool& pool, int fd, int32_t* res) {
  io io_(be);
  auto h = start(be, op{.kind = op_kind::recv, .fd = fd, .len = 4096, .buf = pool.acquire()});
  co_await io_.nop();  // the recv is in the kernel now
  EXPECT_EQ(h.cancel(), 0);
  completion c = co_await h;
  *res = c.res;
  c.buf.reset();  // the caller's to free, says the contract
  co_await io_.sleep_ns(2'000'000);
}

TEST(ledger_backends, uring_raw_cancel_then_release_trips_the_ledger) {
  RINGSIDE_REQUIRE_URING();
  if (sanitize::lends_checked) GTEST_SKIP() << sanitize::lends_checked_skip;
  backend_run r("uring-raw");
  int32_t res = 0;
  r.be->spawn(cancel_then_release(*r.be, r.pool, r.sp.b.get(), &res));
  ASSERT_EQ(test::run_briefly(*r.be), 0);
  EXPECT_EQ(res, -ECANCELED);
  auto v = r.violations();
  ASSERT_EQ(v.size(), 1u) << details(v);
  EXPECT_NE(v[0].detail.find("released while op"), std::string::npos) << v[0].detail;
}

TEST(ledger_backends, uring_owned_cancel_then_release_is_clean) {
  RINGSIDE_REQUIRE_URING();
  backend_run r("uring-owned");
  int32_t res = 0;
  r.be->spawn(cancel_then_release(*r.be, r.pool, r.sp.b.get(), &res));
  ASSERT_EQ(test::run_briefly(*r.be), 0);
  EXPECT_EQ(res, -ECANCELED);
  auto v = r.violations();
  EXPECT_TRUE(v.empty()) << details(v);
}

TEST(ledger_backends, uring_raw_teardown_with_op_in_flight_trips_the_ledger) {
  RINGSIDE_REQUIRE_URING();
  if (sanitize::lends_checked) GTEST_SKIP() << sanitize::lends_checked_skip;
  // A hang: the task waits on a recv forever; the watchdog ends the run and
  // shutdown() tears the loop down. The violation is recorded at the frame's
  // destruction (the ledger must not crash or hang doing so) and collected
  // after shutdown(), as the runner does.
  backend_run r("uring-raw");
  size_t available = 0;
  r.be->spawn([](backend& be, buffer_pool& pool, int fd, size_t* out) -> task<> {
    io io_(be);
    completion c = co_await io_.recv(fd, pool.acquire(), 4096);
    *out = c.buf ? 1 : 0;
  }(*r.be, r.pool, r.sp.b.get(), &available));
  EXPECT_EQ(r.be->run(clock_type::now() + 20ms), -ETIME);
  r.be->shutdown();
  auto v = r.violations();
  ASSERT_EQ(v.size(), 1u) << details(v);
  EXPECT_EQ(v[0].kind, "ledger");
  EXPECT_NE(v[0].detail.find("released while op"), std::string::npos) << v[0].detail;
  r.be.reset();
  EXPECT_EQ(r.pool.available(), r.pool.count());
}

TEST(ledger_backends, uring_owned_teardown_with_op_in_flight_is_clean) {
  RINGSIDE_REQUIRE_URING();
  backend_run r("uring-owned");
  r.be->spawn([](backend& be, buffer_pool& pool, int fd) -> task<> {
    io io_(be);
    completion c = co_await io_.recv(fd, pool.acquire(), 4096);
    (void)c;
  }(*r.be, r.pool, r.sp.b.get()));
  EXPECT_EQ(r.be->run(clock_type::now() + 20ms), -ETIME);
  r.be->shutdown();
  auto v = r.violations();
  EXPECT_TRUE(v.empty()) << details(v);
  EXPECT_EQ(r.pool.available(), r.pool.count());
}

}  // namespace
}  // namespace ringside
