// Description: the shared io_uring ring wrapper. SQEs prepared through it reach
// the kernel and their CQEs come back (real files, a real socket pair); every
// io_uring_enter is counted exactly once and nothing else is counted (checked
// against strace where it can run); batching costs one enter per batch, not
// per op; the SQ never silently runs out; the ledger holds a buffer range from
// its SQE until its final CQE.
#include "harness/ring.hpp"

#include <gtest/gtest.h>
#include <liburing.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "harness/buffer.hpp"
#include "harness/ledger.hpp"
#include "harness/meters.hpp"
#include "harness/sys.hpp"
#include "tests/unit/uring_test_util.hpp"

namespace ringside {
namespace {

using namespace std::chrono_literals;
using test::fill_pattern;
using test::has_pattern;

struct cqe_copy {
  uint64_t user_data = 0;
  int32_t res = 0;
  uint32_t flags = 0;
};

// Waits (bounded) until `want` CQEs were reaped into out.
void wait_for(ring& r, std::vector<cqe_copy>& out, size_t want) {
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (out.size() < want && std::chrono::steady_clock::now() < until) {
    ASSERT_GE(r.submit_and_wait(100ms), 0);
    r.reap([&](const io_uring_cqe& c) { out.push_back({c.user_data, c.res, c.flags}); });
  }
  ASSERT_EQ(out.size(), want);
}

TEST(ring, probe_says_available_here) {
  // This machine's kernel has io_uring enabled (DESIGN.md); if the probe says
  // otherwise, every io_uring test below skips with its reason.
  RINGSIDE_REQUIRE_URING();
  EXPECT_EQ(uring_unavailable_reason(), "");
}

TEST(ring, setup_failure_throws_system_error) {
  RINGSIDE_REQUIRE_URING();
  // 0 entries: io_uring_setup refuses with EINVAL whatever the flags.
  EXPECT_THROW(ring(ring_options{.entries = 0}), std::system_error);
}

TEST(ring, file_write_then_read_round_trip) {
  RINGSIDE_REQUIRE_URING();
  test::temp_file f;
  buffer_pool pool(2, 8192);
  ring r;
  buffer out = pool.acquire();
  buffer in = pool.acquire();
  fill_pattern(out.first(8192), 3);

  ASSERT_TRUE(r.prepare(1, op_kind::write, {}, [&](io_uring_sqe* s) {
    io_uring_prep_write(s, f.fd.get(), out.data(), 8192, 4096);
  }));
  std::vector<cqe_copy> got;
  wait_for(r, got, 1);
  EXPECT_EQ(got[0].user_data, 1u);
  EXPECT_EQ(got[0].res, 8192);

  // Read back from 1000 bytes before the end: a short read of exactly 1000.
  ASSERT_TRUE(r.prepare(2, op_kind::read, {}, [&](io_uring_sqe* s) {
    io_uring_prep_read(s, f.fd.get(), in.data(), 8192, 4096 + 8192 - 1000);
  }));
  got.clear();
  wait_for(r, got, 1);
  EXPECT_EQ(got[0].user_data, 2u);
  ASSERT_EQ(got[0].res, 1000);
  for (size_t i = 0; i < 1000; ++i) ASSERT_EQ(in.data()[i], test::pattern_byte(3, 8192 - 1000 + i)) << i;
}

TEST(ring, socketpair_send_recv_round_trip) {
  RINGSIDE_REQUIRE_URING();
  auto sp = test::make_socketpair();
  buffer_pool pool(2, 4096);
  ring r;
  buffer out = pool.acquire();
  buffer in = pool.acquire();
  fill_pattern(out.first(3000), 9);

  // The recv goes first and waits in the kernel for the send.
  ASSERT_TRUE(r.prepare(10, op_kind::recv, {}, [&](io_uring_sqe* s) {
    io_uring_prep_recv(s, sp.b.get(), in.data(), 4096, 0);
  }));
  ASSERT_GE(r.submit(), 1);
  ASSERT_TRUE(r.prepare(11, op_kind::send, {}, [&](io_uring_sqe* s) {
    io_uring_prep_send(s, sp.a.get(), out.data(), 3000, MSG_NOSIGNAL);
  }));
  std::vector<cqe_copy> got;
  wait_for(r, got, 2);
  for (auto& c : got) {
    EXPECT_TRUE(c.user_data == 10 || c.user_data == 11) << c.user_data;
    EXPECT_EQ(c.res, 3000) << "op " << c.user_data;
  }
  EXPECT_TRUE(has_pattern(in.first(3000), 9));
}

// The known sequence: returns the enters this process should have made.
uint64_t run_known_sequence(ring& r) {
  std::vector<cqe_copy> got;
  auto reap = [&] { return r.reap([&](const io_uring_cqe& c) { got.push_back({c.user_data, c.res, c.flags}); }); };
  uint64_t expected = 0;

  EXPECT_EQ(r.submit(), 0);  // nothing queued: no enter
  for (uint64_t i = 1; i <= 3; ++i) r.prepare(i, op_kind::nop, {}, [](io_uring_sqe* s) { io_uring_prep_nop(s); });
  EXPECT_GE(r.submit_and_wait(1s), 0);  // submit 3 + wait: one enter
  ++expected;
  EXPECT_EQ(r.cq_ready(), 3u);           // nops complete during the submit
  EXPECT_EQ(r.submit_and_wait(1s), 0);  // CQEs ready, nothing queued: no enter
  EXPECT_EQ(reap(), 3u);                 // reaping never enters
  EXPECT_EQ(r.submit_and_wait(1ms), 0);  // nothing anywhere: one enter that times out
  ++expected;
  r.prepare(4, op_kind::nop, {}, [](io_uring_sqe* s) { io_uring_prep_nop(s); });
  EXPECT_EQ(r.submit(), 1);  // one enter
  ++expected;
  EXPECT_EQ(r.submit_and_wait(1s), 0);  // its CQE is ready: no enter
  EXPECT_EQ(reap(), 1u);
  EXPECT_EQ(r.submit_and_get_events(), 0);  // nothing queued: still one enter (GETEVENTS)
  ++expected;
  r.prepare(5, op_kind::nop, {}, [](io_uring_sqe* s) { io_uring_prep_nop(s); });
  EXPECT_EQ(r.submit_and_get_events(), 1);  // submit + GETEVENTS: one enter
  ++expected;
  EXPECT_EQ(r.submit_and_wait(1s), 0);  // its CQE is ready: no enter
  EXPECT_EQ(reap(), 1u);
  EXPECT_EQ(got.size(), 5u);
  return expected;
}

TEST(ring_syscalls, known_sequence_counted_exactly) {
  RINGSIDE_REQUIRE_URING();
  ring r;
  const uint64_t enters0 = r.enters();
  const auto before = meters::read();
  const uint64_t expected = run_known_sequence(r);
  const auto delta = meters::read() - before;
  EXPECT_EQ(expected, 5u);
  EXPECT_EQ(r.enters() - enters0, expected);
  EXPECT_EQ(delta.syscalls, expected);
}

TEST(ring_syscalls, strace_agrees_with_count) {
  RINGSIDE_REQUIRE_URING();
  if (std::getenv("RINGSIDE_STRACE_CHILD") != nullptr) {
    // Child role: run the sequence under strace and print our own count.
    ring r;
    const uint64_t before = r.enters();
    run_known_sequence(r);
    std::printf("RINGSIDE_ENTERS=%llu\n", static_cast<unsigned long long>(r.enters() - before));
    return;
  }
  if (std::system("command -v strace >/dev/null 2>&1") != 0) GTEST_SKIP() << "strace not installed";
  char self[PATH_MAX] = {};
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  ASSERT_GT(n, 0);
  test::temp_file trace, out;
  // LeakSanitizer cannot run under ptrace: the traced child (only) goes without it.
  const std::string cmd = std::string(
                              "RINGSIDE_STRACE_CHILD=1 ASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0\" strace -f -qq -e trace=io_uring_enter -o '") +
                          trace.path + "' '" + self +
                          "' --gtest_filter=ring_syscalls.strace_agrees_with_count > '" + out.path + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  std::stringstream child_out;
  child_out << std::ifstream(out.path).rdbuf();
  if (rc != 0 && child_out.str().find("RINGSIDE_ENTERS=") == std::string::npos)
    GTEST_SKIP() << "strace cannot trace here (ptrace refused?): " << child_out.str().substr(0, 300);
  ASSERT_EQ(WEXITSTATUS(rc), 0) << child_out.str();

  const std::string text = child_out.str();
  const auto pos = text.find("RINGSIDE_ENTERS=");
  ASSERT_NE(pos, std::string::npos) << text;
  const uint64_t counted = std::strtoull(text.c_str() + pos + 16, nullptr, 10);

  std::ifstream tr(trace.path);
  uint64_t traced = 0;
  for (std::string line; std::getline(tr, line);)
    if (line.find("io_uring_enter(") != std::string::npos) ++traced;
  EXPECT_EQ(counted, 5u);
  EXPECT_EQ(traced, counted) << "strace saw " << traced << " io_uring_enter calls, the meters " << counted;
}

TEST(ring_syscalls, batching_costs_one_enter_per_batch) {
  RINGSIDE_REQUIRE_URING();
  // 1000 nops in batches of 100 (the SQ holds 128): 10 enters, not 1000.
  constexpr uint64_t ops = 1000, batch = 100;
  ring r(ring_options{.entries = 128});
  const auto before = meters::read();
  uint64_t reaped = 0;
  for (uint64_t b = 0; b < ops / batch; ++b) {
    for (uint64_t i = 0; i < batch; ++i)
      ASSERT_TRUE(r.prepare(b * batch + i + 1, op_kind::nop, {}, [](io_uring_sqe* s) { io_uring_prep_nop(s); }));
    const uint64_t want = reaped + batch;
    for (int tries = 0; reaped < want && tries < 100; ++tries) {
      ASSERT_GE(r.submit_and_wait(1s), 0);
      reaped += r.reap([](const io_uring_cqe&) {});
    }
  }
  const auto delta = meters::read() - before;
  EXPECT_EQ(reaped, ops);
  EXPECT_LE(delta.syscalls, ops / batch * 2) << "batched nops should cost about one enter per batch";
  EXPECT_GE(delta.syscalls, ops / batch);
}

TEST(ring, full_sq_submits_to_make_room) {
  RINGSIDE_REQUIRE_URING();
  // An SQ of 8 and 20 ops prepared without an explicit submit: get_sqe must
  // submit the full SQ (twice) rather than fail.
  ring r(ring_options{.entries = 8});
  ASSERT_EQ(r.sq_entries(), 8u);
  for (uint64_t i = 1; i <= 20; ++i)
    ASSERT_TRUE(r.prepare(i, op_kind::nop, {}, [](io_uring_sqe* s) { io_uring_prep_nop(s); })) << i;
  EXPECT_EQ(r.enters(), 2u);
  std::vector<cqe_copy> got;
  wait_for(r, got, 20);
  std::vector<bool> seen(21, false);
  for (auto& c : got) {
    ASSERT_LE(c.user_data, 20u);
    EXPECT_FALSE(seen[c.user_data]) << "duplicate CQE " << c.user_data;
    seen[c.user_data] = true;
  }
}

TEST(ring, single_issuer_defer_taskrun_round_trip) {
  RINGSIDE_REQUIRE_URING();
  ring r(ring_options{.single_issuer = true});
  if ((r.setup_flags() & IORING_SETUP_DEFER_TASKRUN) == 0) GTEST_SKIP() << "kernel refused DEFER_TASKRUN (< 6.1)";
  auto sp = test::make_socketpair();
  buffer_pool pool(1, 4096);
  buffer in = pool.acquire();
  ASSERT_TRUE(r.prepare(5, op_kind::recv, {}, [&](io_uring_sqe* s) {
    io_uring_prep_recv(s, sp.b.get(), in.data(), 4096, 0);
  }));
  ASSERT_EQ(r.submit(), 1);
  const std::byte msg[3] = {std::byte{1}, std::byte{2}, std::byte{3}};
  ASSERT_EQ(sys::send(sp.a.get(), msg, 0), 3);
  // With deferred task work, the completion is posted only when we wait.
  std::vector<cqe_copy> got;
  wait_for(r, got, 1);
  EXPECT_EQ(got[0].res, 3);
  EXPECT_EQ(in.data()[2], std::byte{3});
}

TEST(ring, fixed_buffers_read_into_registered_pool) {
  RINGSIDE_REQUIRE_URING();
  test::temp_file f;
  buffer_pool pool(4, 4096);
  ring r;
  ASSERT_EQ(r.register_buffers(pool), 0);
  buffer b = pool.acquire();
  buffer c = pool.acquire();
  ASSERT_TRUE(r.is_fixed(c));
  fill_pattern(b.first(4096), 21);
  ASSERT_EQ(sys::pwrite(f.fd.get(), b.first(4096), 0), 4096);
  ASSERT_TRUE(r.prepare(7, op_kind::read, {}, [&](io_uring_sqe* s) {
    io_uring_prep_read_fixed(s, f.fd.get(), c.data(), 4096, 0, int(c.index()));
  }));
  std::vector<cqe_copy> got;
  wait_for(r, got, 1);
  EXPECT_EQ(got[0].res, 4096);
  EXPECT_TRUE(has_pattern(c.first(4096), 21));

  buffer_pool other(1, 4096);
  buffer o = other.acquire();
  EXPECT_FALSE(r.is_fixed(o));
}

TEST(ring, ledger_holds_range_until_final_cqe) {
  RINGSIDE_REQUIRE_URING();
  auto sp = test::make_socketpair();
  buffer_pool pool(2, 4096);
  buffer_ledger ledger;
  ledger.watch(pool);
  ring r;
  r.set_ledger(&ledger);
  buffer in = pool.acquire();
  const byte_range lent[] = {{in.data(), 4096}};
  ASSERT_TRUE(r.prepare(0x100000001, op_kind::recv, lent, [&](io_uring_sqe* s) {
    io_uring_prep_recv(s, sp.b.get(), in.data(), 4096, 0);
  }));
  ASSERT_EQ(r.submit(), 1);
  EXPECT_EQ(ledger.in_flight(), 1u);
  EXPECT_TRUE(ledger.in_flight_on(in.index()));

  const std::byte msg[5] = {};
  ASSERT_EQ(sys::send(sp.a.get(), msg, 0), 5);
  std::vector<cqe_copy> got;
  bool freed_before_callback = false;
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (got.empty() && std::chrono::steady_clock::now() < until) {
    ASSERT_GE(r.submit_and_wait(100ms), 0);
    r.reap([&](const io_uring_cqe& c) {
      // The ledger forgets the op before the callback, so the callback may
      // hand the buffer back.
      freed_before_callback = !ledger.in_flight_on(in.index());
      got.push_back({c.user_data, c.res, c.flags});
    });
  }
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(freed_before_callback);
  EXPECT_EQ(ledger.in_flight(), 0u);
  in.reset();
  std::vector<violation> v;
  ledger.take_violations(v);
  EXPECT_TRUE(v.empty()) << v.front().detail;
}

}  // namespace
}  // namespace ringside
