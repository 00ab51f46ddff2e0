// Checks: a result nobody takes is still dealt with — an accepted connection
// whose op was dropped is closed (never leaked), and bytes the kernel moved
// for a dropped op are counted as kernel copies.
//
// The drop must land when the result is known but not yet delivered. On a
// one-loop backend that is arranged, not slept on: a trigger recv and the
// victim become ready in the same loop turn, the trigger (ready first) is
// delivered first, and its task drops the victim. A thread-per-stream
// backend completes ops inside submit(), so no frame can be dropped then.
#include <dirent.h>
#include <poll.h>

#include <optional>

#include "harness/meters.hpp"
#include "tests/conformance/driver.hpp"

namespace ringside::conformance {
namespace {

size_t open_fds() {
  size_t n = 0;
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    while (::readdir(dir) != nullptr) ++n;
    ::closedir(dir);
  }
  return n;
}

// Description: an accept whose connection has arrived, dropped before its
// completion is delivered, closes the accepted connection: the client sees
// EOF and no descriptor is left open.
TEST_P(backend, dropped_accept_with_a_connection_closes_it) {
  driver d(GetParam());
  if (d.caps().thread_per_stream) GTEST_SKIP() << "ops complete inside submit(): no frame can be dropped mid-op";
  unique_fd listener = bind_loopback(true);
  d.adopt(listener);
  const sockaddr_in addr = bound_address(listener.get());
  socket_pair trigger = make_socketpair();
  d.adopt(trigger.a);
  unique_fd client = tcp_socket();
  const size_t fds_before = open_fds();
  bool dropped_ready = false;
  auto body = [&]() -> task<> {
    op_handle wake = start(d.be(), recv_op(trigger.a.get(), d.pool().acquire(), 1));
    std::optional<op_handle> victim;
    victim.emplace(d.be(), accept_op(listener.get()));
    co_await d.io().nop();  // both are waiting (in the kernel, or parked)
    const std::byte one{1};
    CO_ASSERT_EQ(::send(trigger.b.get(), &one, 1, 0), ssize_t(1));
    CO_ASSERT_EQ(::connect(client.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
    completion w = co_await wake;
    CO_ASSERT_EQ(w.res, 1);
    if (victim->done()) {
      // The accept was delivered before the trigger: not the case under
      // test; the connection is ours to close.
      completion c = co_await await_handle(*victim);
      if (c.res >= 0) ::close(c.res);
    } else {
      dropped_ready = true;
    }
    victim.reset();  // drop: the accept's result, if known, is nobody's
    co_await d.io().sleep_ns(10'000'000);  // a graveyard accept lands meanwhile
  };
  d.spawn(body());
  ASSERT_EQ(d.run(), 0) << "watchdog: the run hung";
  RecordProperty("dropped_ready", dropped_ready ? 1 : 0);
  // The server side of the connection was closed: the client reads EOF.
  pollfd p{client.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 2000), 1) << "the accepted connection was never closed (leaked)";
  std::byte b[1];
  EXPECT_EQ(::recv(client.get(), b, 1, MSG_DONTWAIT), 0);
  EXPECT_EQ(open_fds(), fds_before) << "a descriptor was left open";
}

// Description: a recv whose bytes have arrived, dropped before its
// completion is delivered: the kernel copied them, so they are counted as
// kernel copy bytes (with the trigger's byte), though nobody takes them.
TEST_P(backend, dropped_recv_bytes_count_as_kernel_copies) {
  driver d(GetParam());
  if (d.caps().thread_per_stream) GTEST_SKIP() << "ops complete inside submit(): no frame can be dropped mid-op";
  socket_pair sp = make_socketpair();
  socket_pair trigger = make_socketpair();
  d.adopt(sp.a);
  d.adopt(trigger.a);
  constexpr uint32_t msg = 16;
  uint64_t copied = 0;
  auto body = [&]() -> task<> {
    const uint64_t before = meters::read().kernel_copy_bytes;
    op_handle wake = start(d.be(), recv_op(trigger.a.get(), d.pool().acquire(), 1));
    std::optional<op_handle> victim;
    victim.emplace(d.be(), recv_op(sp.a.get(), d.pool().acquire(), msg));
    co_await d.io().nop();  // both are waiting
    const std::byte one{1};
    std::byte data[msg];
    fill_pattern(data, 4, 0);
    CO_ASSERT_EQ(::send(trigger.b.get(), &one, 1, 0), ssize_t(1));
    CO_ASSERT_EQ(::send(sp.b.get(), data, sizeof data, 0), ssize_t(msg));
    completion w = co_await wake;
    CO_ASSERT_EQ(w.res, 1);
    victim.reset();                        // dropped, delivered or not
    co_await d.io().sleep_ns(10'000'000);  // a graveyard recv lands meanwhile
    copied = meters::read().kernel_copy_bytes - before;
  };
  d.spawn(body());
  ASSERT_EQ(d.run(), 0) << "watchdog: the run hung";
  // At least: the trigger's byte and the victim's 16 (whoever took them).
  EXPECT_GE(copied, uint64_t(1 + msg)) << "bytes the kernel moved for a dropped op were not counted";
}

}  // namespace
}  // namespace ringside::conformance
