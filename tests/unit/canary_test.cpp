// Checks: the canary quarantine (and its guard-page mode) catches a write into a buffer after it was
// released — the kernel finishing an op whose buffer uring-raw (the negative
// control) handed back on drop — and stays silent when a correct backend
// (uring-owned) keeps the buffer until the kernel is done with it.
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <optional>

#include "harness/backend.hpp"
#include "harness/buffer.hpp"
#include "harness/io.hpp"
#include "harness/sanitize.hpp"
#include "harness/unique_fd.hpp"

namespace ringside {
namespace {

bool has_kind(const std::vector<violation>& v, std::string_view kind) {
  for (const auto& x : v)
    if (x.kind == kind) return true;
  return false;
}

// A write the kernel makes (read(2) into the buffer), not seen by ASan:
// exactly the kind of late write the canary exists for.
void kernel_write(std::byte* dst, size_t n) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  std::vector<char> src(n, 'K');
  ASSERT_EQ(::write(p[1], src.data(), n), ssize_t(n));
  ASSERT_EQ(::syscall(SYS_read, p[0], dst, n), long(n));
  ::close(p[0]);
  ::close(p[1]);
}

TEST(canary_quarantine, a_write_after_release_is_caught) {
  buffer_pool pool(4, 4096);
  pool.enable_quarantine(2);
  std::byte* data;
  {
    buffer b = pool.acquire();
    data = b.data();
  }  // released: canary filled, quarantined
  EXPECT_EQ(pool.quarantined(), 1u);
  kernel_write(data + 100, 8);
  pool.check_quarantine();
  std::vector<violation> v;
  pool.collect_violations(v);
  ASSERT_TRUE(has_kind(v, "canary"));
  EXPECT_NE(v[0].detail.find("[100, 107]"), std::string::npos) << v[0].detail;
}

TEST(canary_quarantine, untouched_buffers_pass_and_are_reused) {
  buffer_pool pool(2, 4096);
  pool.enable_quarantine(1);
  for (int i = 0; i < 50; ++i) {
    buffer a = pool.acquire();
    ASSERT_TRUE(a);
    a.span()[0] = std::byte{1};  // written while owned: fine
  }
  pool.check_quarantine();
  std::vector<violation> v;
  pool.collect_violations(v);
  EXPECT_TRUE(v.empty()) << v[0].detail;
  // Quarantine never starves the pool: both buffers can be held at once.
  buffer a = pool.acquire(), b = pool.acquire();
  EXPECT_TRUE(a && b);
}

TEST(canary_quarantine, a_late_write_found_when_the_buffer_leaves_quarantine) {
  buffer_pool pool(4, 4096);
  pool.enable_quarantine(1);
  std::byte* first;
  {
    buffer b = pool.acquire();
    first = b.data();
  }
  kernel_write(first, 1);
  { buffer c = pool.acquire(); }  // second release pushes the first out: checked now
  std::vector<violation> v;
  pool.collect_violations(v);
  EXPECT_TRUE(has_kind(v, "canary"));
}

// The real thing: a recv dropped mid-flight, then data arrives.
std::vector<violation> drop_pending_recv_then_send(const char* backend_name, bool guard = false) {
  register_builtin_backends();
  const auto* info = find_backend(backend_name);
  if (!info) return {{"missing", backend_name}};
  if (info->unavailable_reason && !info->unavailable_reason().empty()) return {{"skip", info->unavailable_reason()}};
  if (sanitize::lends_checked && info->make({})->caps().contract == buffer_contract::borrowed_unsound)
    return {{"skip", sanitize::lends_checked_skip}};
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return {{"setup", "socketpair"}};
  unique_fd a(sv[0]), b(sv[1]);
  std::vector<violation> out;
  buffer_pool pool(8, 4096);
  pool.enable_quarantine(4);
  pool.enable_guard_pages(guard);
  {
    auto be = info->make({});
    be->attach_pool(pool);
    be->adopt(a.get());
    be->adopt(b.get());
    auto t = [](backend& be, buffer_pool& pool, int rfd, int wfd) -> task<> {
      io x(be);
      {
        // Dropped while pending: the handle dies before the recv completes.
        op_handle h = start(be, op{.kind = op_kind::recv, .fd = rfd, .len = 4096, .buf = pool.acquire()});
      }
      // Now the data arrives; a backend that let go of the buffer too early
      // lets the kernel write it into the quarantined buffer.
      buffer w = pool.acquire();
      for (size_t i = 0; i < 64; ++i) w.span()[i] = std::byte{'D'};
      auto c = co_await x.send(wfd, std::move(w), 64);
      (void)c;
      // 20 ms: long enough for the kernel to complete the orphaned recv.
      (void)co_await x.sleep_ns(20'000'000);
    };
    be->spawn(t(*be, pool, a.get(), b.get()));
    const int rc = be->run(clock_type::now() + std::chrono::seconds(5));
    if (rc != 0) out.push_back({"run", std::to_string(rc)});
    be->shutdown();
    be->collect_violations(out);
  }
  pool.check_quarantine();
  pool.collect_violations(out);
  return out;
}

TEST(canary_quarantine, catches_uring_raw_drop_negative_control) {
  const auto v = drop_pending_recv_then_send("uring-raw");
  if (has_kind(v, "skip")) GTEST_SKIP() << v[0].detail;
  EXPECT_TRUE(has_kind(v, "canary")) << (v.empty() ? "no violations" : v[0].kind + ": " + v[0].detail);
}

TEST(canary_quarantine, silent_on_uring_owned_drop) {
  const auto v = drop_pending_recv_then_send("uring-owned");
  if (has_kind(v, "skip")) GTEST_SKIP() << v[0].detail;
  for (const auto& x : v) ADD_FAILURE() << x.kind << ": " << x.detail;
}

TEST(canary_quarantine, silent_on_epoll_drop) {
  const auto v = drop_pending_recv_then_send("epoll");
  for (const auto& x : v) ADD_FAILURE() << x.kind << ": " << x.detail;
}

TEST(guard_pages, a_kernel_write_into_a_quarantined_buffer_faults_and_leaves_it_intact) {
  buffer_pool pool(4, 4096);
  pool.enable_quarantine(2);
  pool.enable_guard_pages(true);
  std::byte* data;
  {
    buffer b = pool.acquire();
    data = b.data();
  }
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  ASSERT_EQ(::write(p[1], "late", 4), 4);
  errno = 0;
  EXPECT_EQ(::syscall(SYS_read, p[0], data, 4), -1);
  EXPECT_EQ(errno, EFAULT);
  ::close(p[0]);
  ::close(p[1]);
  pool.check_quarantine();
  std::vector<violation> v;
  pool.collect_violations(v);
  EXPECT_TRUE(v.empty()) << v[0].detail;
  // Leaving quarantine makes the buffer usable again.
  buffer a = pool.acquire(), b = pool.acquire(), c = pool.acquire(), d = pool.acquire();
  for (auto* x : {&a, &b, &c, &d}) {
    ASSERT_TRUE(*x);
    x->span()[0] = std::byte{1};
  }
}

TEST(guard_pages, catch_uring_raw_drop_negative_control) {
  const auto v = drop_pending_recv_then_send("uring-raw", true);
  if (has_kind(v, "skip")) GTEST_SKIP() << v[0].detail;
  EXPECT_TRUE(has_kind(v, "guard_page")) << (v.empty() ? "no violations" : v[0].kind + ": " + v[0].detail);
  EXPECT_FALSE(has_kind(v, "canary")) << "the guard page should have stopped the write";
}

TEST(guard_pages, silent_on_uring_owned_and_epoll_drop) {
  for (const char* b : {"uring-owned", "epoll"}) {
    const auto v = drop_pending_recv_then_send(b, true);
    if (has_kind(v, "skip")) continue;
    for (const auto& x : v) ADD_FAILURE() << b << ": " << x.kind << ": " << x.detail;
  }
}

}  // namespace
}  // namespace ringside
