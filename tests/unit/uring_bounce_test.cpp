// Description: uring-bounce (backends/uring_bounce.cpp), through the real
// backend from the registry, real rings, sockets and files:
// - the copy count: every payload byte received costs exactly one user copy
//   (uring-owned: none), every byte sent none (a send lends the caller's
//   buffer, held to its final CQE like uring-owned's);
// - the stash: a read cancelled while the kernel runs it completes
//   -ECANCELED at once, the bytes the kernel then reads land in the internal
//   buffer and the next read on that fd gets them: no byte lost;
// - internal buffers go back to their pool only at their op's final CQE: the
//   ledger stays clean, and with the test-only fault that frees the internal
//   buffer at cancel (RINGSIDE_BOUNCE_FAULT) the ledger catches it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include "harness/io.hpp"
#include "harness/meters.hpp"
#include "harness/perform.hpp"
#include "harness/sanitize.hpp"
#include "harness/task.hpp"
#include "harness/uring_loop.hpp"
#include "tests/unit/uring_test_util.hpp"

namespace ringside {
namespace {

using namespace std::chrono_literals;
using test::fill_pattern;
using test::has_pattern;

#define CO_ASSERT_EQ(a, b)                                      \
  do {                                                          \
    const auto a_ = (a);                                        \
    const auto b_ = (b);                                        \
    if (!(a_ == b_)) {                                          \
      ADD_FAILURE() << #a " == " #b ": " << a_ << " vs " << b_; \
      co_return;                                                \
    }                                                           \
  } while (0)

// Sets an environment variable for one scope (the fault switch).
struct scoped_env {
  std::string name;
  scoped_env(std::string n, const char* v) : name(std::move(n)) { ::setenv(name.c_str(), v, 1); }
  ~scoped_env() { ::unsetenv(name.c_str()); }
};

// ------------------------------------------------------------ copy count ----

// One-way transfer of `chunks` x `bs` bytes from a to b (a tcp.stream in
// miniature: a sender and a receiver stream, one loop).
task<> stream_sender(backend& be, buffer_pool& pool, int fd, uint32_t bs, int chunks) {
  io x(be);
  buffer buf = pool.acquire();
  for (int k = 0; k < chunks; ++k) {
    fill_pattern(buf.first(bs), uint8_t(k));
    for (uint32_t done = 0; done < bs;) {
      // A named op: g++ 12 mishandles an aggregate temporary with a buffer
      // inside a co_await expression (its destructor runs twice).
      op o{.kind = op_kind::send, .fd = fd, .len = bs - done, .buf_offset = done, .buf = std::move(buf)};
      auto c = co_await x.submit(std::move(o));
      buf = std::move(c.buf);
      if (c.res <= 0) {
        ADD_FAILURE() << "send: " << c.res;
        co_return;
      }
      done += uint32_t(c.res);
    }
  }
}
task<> stream_receiver(backend& be, buffer_pool& pool, int fd, uint64_t total, uint64_t* got) {
  io x(be);
  buffer buf = pool.acquire();
  const auto len = uint32_t(buf.capacity());
  while (*got < total) {
    auto c = co_await x.recv(fd, std::move(buf), len);
    buf = std::move(c.buf);
    if (c.res <= 0) {
      ADD_FAILURE() << "recv: " << c.res;
      co_return;
    }
    *got += uint64_t(c.res);
  }
}

struct transfer_meters {
  uint64_t user = 0;
  uint64_t kernel = 0;
  uint64_t payload = 0;  // bytes carried by the stream (each sent once, received once)
};

transfer_meters measure_transfer(const char* name) {
  constexpr uint32_t bs = 16384;
  constexpr int chunks = 256;  // 4 MiB: many ops, a second at most
  buffer_pool pool(4, bs);
  auto be = test::make_backend(name);
  EXPECT_NE(be, nullptr);
  if (!be) return {};
  be->attach_pool(pool);
  auto sp = test::make_socketpair();
  uint64_t got = 0;
  const auto m0 = meters::read();
  be->spawn(stream_receiver(*be, pool, sp.b.get(), uint64_t(bs) * chunks, &got));
  be->spawn(stream_sender(*be, pool, sp.a.get(), bs, chunks));
  EXPECT_EQ(test::run_briefly(*be), 0);
  const auto d = meters::read() - m0;
  EXPECT_EQ(got, uint64_t(bs) * chunks);
  return {d.user_copy_bytes, d.kernel_copy_bytes, got};
}

TEST(uring_bounce, one_user_copy_more_per_payload_byte_than_uring_owned) {
  RINGSIDE_REQUIRE_URING();
  const transfer_meters owned = measure_transfer("uring-owned");
  const transfer_meters bounce = measure_transfer("uring-bounce");
  ASSERT_GT(owned.payload, 0u);
  ASSERT_EQ(owned.payload, bounce.payload);
  // The kernel copies each byte twice either way (into the socket, out of
  // it). uring-owned copies nothing in user space; uring-bounce copies each
  // byte received once (internal buffer -> caller's span) and none sent (a
  // send lends the caller's buffer to its final CQE): exactly one user copy
  // per payload byte more than uring-owned, partial sends or not.
  EXPECT_EQ(owned.kernel, 2 * owned.payload);
  EXPECT_EQ(bounce.kernel, 2 * bounce.payload);
  EXPECT_EQ(owned.user, 0u);
  EXPECT_EQ(bounce.user, bounce.payload);
  EXPECT_DOUBLE_EQ(double(bounce.user) / double(bounce.payload) - double(owned.user) / double(owned.payload), 1.0);
}

// ----------------------------------------------------------------- stash ----

// A regular file of `size` pattern bytes (seed 9); reads at ~0 use and move
// its current position, like a stream.
unique_fd pattern_file(uint32_t size) {
  test::temp_file f;
  std::vector<std::byte> data(size);
  fill_pattern(data, 9);
  EXPECT_EQ(::pwrite(f.fd.get(), data.data(), data.size(), 0), ssize_t(size));
  return unique_fd(::open(f.path.c_str(), O_RDONLY | O_CLOEXEC));  // unlinked with f; the fd keeps it
}

struct stash_round {
  int32_t first = 1;        // the cancelled read's result
  off_t pos_after = -1;     // the file position once the kernel was done with it
  int32_t second = 1;       // the next read's result
  bool second_from_start = false;
  size_t in_kernel_at_cancel_completion = 0;
};

// Reads the whole file at ~0 (forced to io-wq), cancels it 2 ms later —
// the worker is running it then: started (a new ring's worker thread takes
// tens of microseconds to start) and not done (64 MiB from the page cache
// takes ~10 ms) — then lets the kernel finish and reads again at ~0.
task<> stash_task(backend& be, uring_loop& loop, buffer_pool& pool, int fd, uint32_t size, stash_round* out) {
  io x(be);
  op o{.kind = op_kind::read, .fd = fd, .offset = ~uint64_t{0}, .len = size, .buf = pool.acquire()};
  o.force_async = true;
  auto t = start(be, std::move(o));
  (void)co_await x.sleep_ns(2'000'000);
  CO_ASSERT_EQ(t.cancel(), 0);
  completion c = co_await t;
  out->first = c.res;
  out->in_kernel_at_cancel_completion = loop.ops_in_kernel();
  c.buf.reset();
  // 20 x 10 ms: the kernel's read of a few MiB from the page cache is over
  // long before; the internal op's final CQE is reaped meanwhile.
  for (int i = 0; i < 20 && loop.ops_in_kernel() > 0; ++i) (void)co_await x.sleep_ns(10'000'000);
  out->pos_after = ::lseek(fd, 0, SEEK_CUR);
  completion d = co_await x.read(fd, pool.acquire(), size, ~uint64_t{0});
  out->second = d.res;
  out->second_from_start = d.res > 0 && has_pattern(d.buf.first(size_t(d.res)), 9);
}

TEST(uring_bounce, cancelled_read_bytes_go_to_the_next_read_on_the_fd) {
  RINGSIDE_REQUIRE_URING();
  // 64 MiB: ~10 ms to copy, so a cancel 2 ms after the submit finds the
  // read running in its worker (-EALREADY); the kernel then lets it finish.
  constexpr uint32_t size = 64u << 20;
  // Up to 24 rounds, until 2 used the stash: on a loaded machine the worker
  // may not have begun the read yet (the kernel then cancels it: nothing
  // read, the file position unmoved) or be done already; the rounds where
  // it was running are the ones that exercise the stash.
  constexpr int rounds = 24;
  int stashed = 0;
  for (int r = 0; r < rounds && stashed < 2; ++r) {
    buffer_pool pool(2, size);
    auto be = test::make_backend("uring-bounce");
    ASSERT_NE(be, nullptr);
    be->attach_pool(pool);
    auto* loop = dynamic_cast<uring_loop*>(be.get());
    ASSERT_NE(loop, nullptr);
    unique_fd f = pattern_file(size);
    stash_round out;
    be->spawn(stash_task(*be, *loop, pool, f.get(), size, &out));
    ASSERT_EQ(test::run_briefly(*be, 10s), 0);
    std::vector<violation> v;
    be->shutdown();
    be->collect_violations(v);
    EXPECT_TRUE(v.empty()) << v.front().kind << ": " << v.front().detail;
    if (out.first == int32_t(size)) continue;  // the read won outright: nothing to stash
    ASSERT_EQ(out.first, -ECANCELED);
    // Whatever the kernel did, the next read starts where the caller's
    // stream is: at byte 0 of the file.
    EXPECT_TRUE(out.second_from_start) << "round " << r << ": next read " << out.second << ", file position "
                                       << out.pos_after;
    if (out.pos_after == off_t(size)) {
      // The kernel read it all into the internal buffer after the caller
      // was told -ECANCELED (the completion came before the internal op's
      // final CQE): the next read was served from the stash.
      ++stashed;
      EXPECT_GT(out.in_kernel_at_cancel_completion, 0u);
      EXPECT_EQ(out.second, int32_t(size));
    }
  }
  RecordProperty("stashed_rounds", stashed);
  EXPECT_GT(stashed, 0) << "no round had the kernel finish a read after its cancel: the stash went untested";
}

// -------------------------------------------------------- ledger and fault ----

// A recv pending on an empty socket, cancelled: -ECANCELED with the caller's
// buffer; the internal buffer stays lent until the recv's own CQE.
task<> cancel_pending_recv(backend& be, buffer_pool& pool, int fd, int32_t* res, bool* buf_back) {
  io x(be);
  auto t = start(be, op{.kind = op_kind::recv, .fd = fd, .len = 4096, .buf = pool.acquire()});
  (void)co_await x.nop();  // the recv is in the kernel, parked on the empty socket
  CO_ASSERT_EQ(t.cancel(), 0);
  completion c = co_await t;
  *res = c.res;
  *buf_back = c.buf.valid();
}

std::vector<violation> run_cancelled_recv(int32_t* res, bool* buf_back) {
  buffer_pool pool(4, 4096);
  auto be = test::make_backend("uring-bounce");
  EXPECT_NE(be, nullptr);
  if (!be) return {};
  be->attach_pool(pool);
  auto sp = test::make_socketpair();
  be->spawn(cancel_pending_recv(*be, pool, sp.a.get(), res, buf_back));
  EXPECT_EQ(test::run_briefly(*be), 0);
  be->shutdown();
  std::vector<violation> v;
  be->collect_violations(v);
  return v;
}

TEST(uring_bounce, internal_buffer_released_only_at_final_cqe_keeps_ledger_clean) {
  RINGSIDE_REQUIRE_URING();
  int32_t res = 1;
  bool buf_back = false;
  const auto v = run_cancelled_recv(&res, &buf_back);
  EXPECT_EQ(res, -ECANCELED);
  EXPECT_TRUE(buf_back);
  EXPECT_TRUE(v.empty()) << v.front().kind << ": " << v.front().detail;
}

TEST(uring_bounce, fault_releasing_internal_buffer_at_cancel_is_caught_by_the_ledger) {
  RINGSIDE_REQUIRE_URING();
  // ASan/TSan builds report the early release themselves (poisoned / racing
  // kernel range) and stop the test binary: the ledger is checked in release.
  if (sanitize::lends_checked) GTEST_SKIP() << sanitize::lends_checked_skip;
  scoped_env fault("RINGSIDE_BOUNCE_FAULT", "release-internal-on-cancel");
  int32_t res = 1;
  bool buf_back = false;
  const auto v = run_cancelled_recv(&res, &buf_back);
  EXPECT_EQ(res, -ECANCELED);
  bool ledger = false;
  for (const auto& x : v) ledger = ledger || x.kind == "ledger";
  EXPECT_TRUE(ledger) << "the internal buffer went back to its pool while the kernel held it, unseen";
}

// A send lends the caller's buffer itself (no bounce copy): while it is
// parked on a full socket the ledger sees that run-pool buffer in flight;
// dropped, it waits in the graveyard for its final CQE and comes back to
// the pool then, with the ledger clean.
struct parked_send {
  bool lent_while_parked = false;
  uint64_t user_copies = ~uint64_t{0};
  size_t available_while_parked = 0;
};
task<> park_and_drop_send(backend& be, uring_loop& loop, buffer_pool& pool, int fd, parked_send* out) {
  io x(be);
  const auto m0 = meters::read();
  {
    buffer b = pool.acquire();
    fill_pattern(b.first(4096), 3);
    const uint32_t idx = b.index();
    op o{.kind = op_kind::send, .fd = fd, .len = 4096, .buf = std::move(b)};
    auto t = start(be, std::move(o));
    (void)co_await x.nop();  // the send is in the kernel, parked on the full socket
    out->lent_while_parked = loop.ledger().in_flight_on(pool, idx);
    out->available_while_parked = pool.available();
  }  // dropped
  (void)co_await x.nop();
  out->user_copies = (meters::read() - m0).user_copy_bytes;
}

TEST(uring_bounce, send_lends_the_callers_buffer_to_its_final_cqe) {
  RINGSIDE_REQUIRE_URING();
  constexpr size_t count = 4;
  buffer_pool pool(count, 4096);
  auto be = test::make_backend("uring-bounce");
  ASSERT_NE(be, nullptr);
  be->attach_pool(pool);
  auto* loop = dynamic_cast<uring_loop*>(be.get());
  ASSERT_NE(loop, nullptr);
  auto sp = test::make_socketpair();
  // Fill a's send buffer (and b's receive buffer): 10,000 x 4 KiB at most.
  std::vector<char> junk(4096);
  for (int i = 0; i < 10000 && ::send(sp.a.get(), junk.data(), junk.size(), MSG_DONTWAIT) > 0; ++i) {
  }
  parked_send out;
  be->spawn(park_and_drop_send(*be, *loop, pool, sp.a.get(), &out));
  EXPECT_EQ(test::run_briefly(*be), 0);
  EXPECT_TRUE(out.lent_while_parked) << "the send's buffer (the run's pool) is not what the kernel holds";
  EXPECT_EQ(out.available_while_parked, count - 1);
  EXPECT_EQ(out.user_copies, 0u) << "a send must not copy";
  be->shutdown();
  std::vector<violation> v;
  be->collect_violations(v);
  EXPECT_TRUE(v.empty()) << v.front().kind << ": " << v.front().detail;
  EXPECT_EQ(pool.available(), count);
}

TEST(uring_bounce, unknown_fault_switch_fails_construction) {
  RINGSIDE_REQUIRE_URING();
  scoped_env fault("RINGSIDE_BOUNCE_FAULT", "no-such-fault");
  EXPECT_THROW(test::make_backend("uring-bounce"), std::invalid_argument);
}

}  // namespace
}  // namespace ringside
