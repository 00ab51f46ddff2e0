// Checks: cancel and drop keep the backend contract — every op ends in
// exactly one completion; a cancel that loses the race never turns data into
// -ECANCELED, and one that wins loses no bytes; stale ids name no op.
#include <new>
#include <thread>

#include "tests/conformance/driver.hpp"

namespace ringside::conformance {
namespace {

// Description: a recv pending on an empty socket, cancelled from ANOTHER
// task, completes exactly once with -ECANCELED (and hands its buffer back);
// the socket stays usable afterwards.
TEST_P(backend, cancel_pending_recv_ecanceled_once) {
  driver d(GetParam());
  if (!d.caps().cancel_in_flight) GTEST_SKIP() << "caps.cancel_in_flight = false";
  // uring-raw's cancel is not awaited: its orphaned kernel recv may still eat
  // the next bytes, so only sound contracts promise the receive side.
  const bool sound = d.caps().contract != buffer_contract::borrowed_unsound;
  socket_pair sp = make_socketpair();
  d.adopt(sp.a);
  std::atomic<uint64_t> target{0};
  std::atomic<int> cancel_res{1};
  int32_t res = 1, send_res = 1, recv_res = 1;
  bool buffer_back = false, peer_got = false, recv_bytes_ok = false;
  int completions = 0;
  auto victim = [&]() -> task<> {
    probe p(d.be(), recv_op(sp.a.get(), d.pool().acquire(), 64), &target);
    completion c = co_await p;
    res = c.res;
    buffer_back = c.buf.valid();
    buffer b = std::move(c.buf);
    if (!b) b = d.pool().acquire();
    fill_pattern(b.first(16), 21, 0);
    completion s = co_await d.io().send(sp.a.get(), std::move(b), 16);
    send_res = s.res;
    std::byte got[16];
    peer_got = ::recv(sp.b.get(), got, sizeof got, MSG_WAITALL) == 16 && matches_pattern(got, 21, 0);
    if (sound) {
      std::byte out[16];
      fill_pattern(out, 22, 0);
      if (::send(sp.b.get(), out, sizeof out, 0) == 16) {
        completion r = co_await d.io().recv(sp.a.get(), std::move(s.buf), 16);
        recv_res = r.res;
        recv_bytes_ok = r.res == 16 && matches_pattern(r.buf.first(16), 22, 0);
      }
    }
    co_await d.io().sleep_ns(20'000'000);  // a late second completion would land in p now
    completions = p.completions();
  };
  auto canceller = [&]() -> task<> {
    const op_id id = co_await wait_for_id(d.io(), target);
    CO_ASSERT_TRUE(bool(id));
    // 20 ms: long enough that the recv is surely blocked in (or parked on)
    // the empty socket, not merely started.
    co_await d.io().sleep_ns(20'000'000);
    cancel_res.store(cancel_checked(d.be(), id));
  };
  d.spawn(victim());
  d.spawn(canceller());
  ASSERT_EQ(d.run(), 0) << "watchdog: the cancelled recv never completed";
  EXPECT_EQ(cancel_res.load(), 0);
  EXPECT_EQ(res, -ECANCELED);
  EXPECT_TRUE(buffer_back) << "the completion did not hand the buffer back";
  EXPECT_EQ(completions, 1);
  EXPECT_EQ(send_res, 16);
  EXPECT_TRUE(peer_got) << "send after the cancel did not reach the peer intact";
  if (sound) {
    EXPECT_EQ(recv_res, 16);
    EXPECT_TRUE(recv_bytes_ok) << "recv after the cancel did not get the bytes";
  }
}

// Description: cancel storm — 300 recvs on an empty socket, each cancelled
// the moment its id is known, each complete exactly once with -ECANCELED.
// Immediate cancels land in every phase of an op: before its syscall, in the
// instant before it blocks (the lost-wakeup window of signal-based cancel),
// and blocked; none may hang or complete twice. On thread-per-stream backends
// the canceller busy-waits for the id so it races the syscall entry; one-loop
// backends cannot busy-wait (the victim runs on the same thread).
TEST_P(backend, cancel_storm_each_completes_once) {
  driver d(GetParam());
  if (!d.caps().cancel_in_flight) GTEST_SKIP() << "caps.cancel_in_flight = false";
  const bool spin = d.caps().thread_per_stream;
  socket_pair sp = make_socketpair();
  d.adopt(sp.a);
  constexpr int rounds = 300;
  std::atomic<uint64_t> target{0};
  std::atomic<int> round_done{0}, bad_cancel_results{0};
  int cancelled = 0, other = 0, extra_completions = 0;
  auto victim = [&]() -> task<> {
    for (int r = 0; r < rounds; ++r) {
      probe p(d.be(), recv_op(sp.a.get(), d.pool().acquire(), 16), &target);
      completion c = co_await p;
      if (c.res == -ECANCELED) ++cancelled;
      else ++other;
      if (p.completions() != 1) ++extra_completions;
      round_done.store(r + 1, std::memory_order_release);
    }
  };
  auto canceller = [&]() -> task<> {
    for (int r = 0; r < rounds; ++r) {
      op_id id{};
      // 1e8 spins: far beyond the microseconds a publish takes; bounds it.
      for (int k = 0; spin && k < 100'000'000 && !id; ++k) id = op_id{target.load(std::memory_order_acquire)};
      if (!id) id = co_await wait_for_id(d.io(), target);
      CO_ASSERT_TRUE(bool(id));
      target.store(0);
      const int cr = cancel_checked(d.be(), id);
      if (cr != 0) bad_cancel_results.fetch_add(1);
      const bool next = co_await wait_until_at_least(d.io(), round_done, r + 1);
      CO_ASSERT_TRUE(next);
    }
  };
  d.spawn(victim());
  d.spawn(canceller());
  ASSERT_EQ(d.run(std::chrono::milliseconds(20s)), 0) << "watchdog: a cancelled recv never completed";
  EXPECT_EQ(cancelled, rounds);
  EXPECT_EQ(other, 0) << "a recv on an empty socket completed with something else";
  EXPECT_EQ(extra_completions, 0);
  EXPECT_EQ(bad_cancel_results.load(), 0) << "cancel of a pending op did not return 0";
}

// Description: cancelling an op that already completed returns -ENOENT and
// produces no second completion — for an op without I/O (nop) and for a recv
// that had data at once.
TEST_P(backend, cancel_after_completion_enoent) {
  driver d(GetParam());
  socket_pair sp = make_socketpair();
  d.adopt(sp.a);
  std::byte data[8];
  fill_pattern(data, 9, 0);
  ASSERT_EQ(::send(sp.b.get(), data, sizeof data, 0), 8);
  int nop_cancel = 1, recv_cancel = 1, nop_completions = 0, recv_completions = 0;
  int32_t recv_res = 0;
  auto body = [&]() -> task<> {
    probe n(d.be(), nop_op());
    co_await n;
    nop_cancel = cancel_checked(d.be(), n.id());
    probe r(d.be(), recv_op(sp.a.get(), d.pool().acquire(), 64));
    completion c = co_await r;
    recv_res = c.res;
    recv_cancel = cancel_checked(d.be(), r.id());
    co_await d.io().sleep_ns(10'000'000);  // a late second completion would land now
    nop_completions = n.completions();
    recv_completions = r.completions();
  };
  d.spawn(body());
  ASSERT_EQ(d.run(), 0) << "watchdog: the run hung";
  EXPECT_EQ(nop_cancel, -ENOENT);
  EXPECT_EQ(recv_res, 8);
  EXPECT_EQ(recv_cancel, -ENOENT);
  EXPECT_EQ(nop_completions, 1);
  EXPECT_EQ(recv_completions, 1);
}

// Description: ids carry generations (ABA). While a recv is pending, a cancel
// with its slot but an older or newer generation — or the id of the finished
// op that used the slot before — returns -ENOENT and leaves the pending recv
// alone: it later completes with its data, not -ECANCELED.
TEST_P(backend, cancel_stale_id_enoent) {
  driver d(GetParam());
  socket_pair sp = make_socketpair();
  d.adopt(sp.a);
  std::atomic<uint64_t> target{0}, finished_id{0};
  std::atomic<int> older = 1, newer = 1, previous = 1, zero = 1;
  int32_t res = 1;
  bool bytes_ok = false;
  int completions = 0;
  auto victim = [&]() -> task<> {
    probe n(d.be(), nop_op());
    co_await n;
    finished_id.store(n.id().value);
    probe p(d.be(), recv_op(sp.a.get(), d.pool().acquire(), 64), &target);
    completion c = co_await p;
    res = c.res;
    bytes_ok = c.res == 16 && matches_pattern(c.buf.first(16), 31, 0);
    co_await d.io().sleep_ns(10'000'000);
    completions = p.completions();
  };
  auto canceller = [&]() -> task<> {
    const op_id id = co_await wait_for_id(d.io(), target);
    CO_ASSERT_TRUE(bool(id));
    co_await d.io().sleep_ns(10'000'000);  // the recv is now blocked or parked
    older.store(cancel_checked(d.be(), op_id::make(id.slot(), id.gen() - 1)));
    newer.store(cancel_checked(d.be(), op_id::make(id.slot(), id.gen() + 1)));
    previous.store(cancel_checked(d.be(), op_id{finished_id.load()}));
    zero.store(cancel_checked(d.be(), op_id{}));
    co_await d.io().sleep_ns(10'000'000);  // a wrongly cancelled recv would complete now
    std::byte data[16];
    fill_pattern(data, 31, 0);
    CO_ASSERT_EQ(::send(sp.b.get(), data, sizeof data, 0), 16);
  };
  d.spawn(victim());
  d.spawn(canceller());
  ASSERT_EQ(d.run(), 0) << "watchdog: the run hung";
  EXPECT_EQ(older.load(), -ENOENT);
  EXPECT_EQ(newer.load(), -ENOENT);
  EXPECT_EQ(previous.load(), -ENOENT);
  EXPECT_EQ(zero.load(), -ENOENT);
  EXPECT_EQ(res, 16) << "a stale id cancelled the live op";
  EXPECT_TRUE(bytes_ok);
  EXPECT_EQ(completions, 1);
}

// Description: data is written to the socket, then the pending recv is
// cancelled. The recv completes exactly once, with the data or with
// -ECANCELED — never both, never neither — and after -ECANCELED the data is
// still in the socket (no byte lost). Rounds rotate through three timings so
// every outcome gets exercised:
//   0: cancel right after the write;
//   1: give the bytes a moment to land first (the cancel then usually loses);
//   2: (one-loop backends) the cancel runs from a completion delivered in the
//      same loop turn as the victim's — its result is known but not yet
//      delivered (io_uring: CQE reaped, not delivered; epoll: ready queue),
//      the window where a cancel must not turn data into -ECANCELED.
// Only a backend whose contract is borrowed_unsound (the negative control)
// may lose the bytes of a cancelled recv.
TEST_P(backend, cancel_racing_data_delivers_or_keeps_bytes) {
  driver d(GetParam());
  if (!d.caps().cancel_in_flight) GTEST_SKIP() << "caps.cancel_in_flight = false";
  const bool may_lose = d.caps().contract == buffer_contract::borrowed_unsound;
  const int modes = d.caps().thread_per_stream ? 2 : 3;
  socket_pair sp = make_socketpair();
  socket_pair trigger = make_socketpair();
  d.adopt(sp.a);
  d.adopt(trigger.a);
  constexpr int rounds = 63;
  constexpr uint32_t msg = 16;
  std::atomic<uint64_t> target{0};
  std::atomic<int> round_done{0};
  int delivered = 0, cancelled_kept = 0, lost = 0, bad = 0, extra_completions = 0;
  std::atomic<int> bad_cancel_results{0};
  auto victim = [&]() -> task<> {
    for (int r = 0; r < rounds; ++r) {
      const auto seed = static_cast<uint32_t>(r);
      probe p(d.be(), recv_op(sp.a.get(), d.pool().acquire(), msg), &target);
      completion c = co_await p;
      if (c.res == int32_t(msg) && matches_pattern(c.buf.first(msg), seed, 0)) {
        ++delivered;
      } else if (c.res == -ECANCELED) {
        std::byte left[msg];
        const ssize_t n = raw_recv_now(sp.a.get(), left);
        if (n == ssize_t(msg) && matches_pattern(left, seed, 0)) ++cancelled_kept;
        else if (n < 0 && may_lose) ++lost;
        else ++bad;
      } else {
        ADD_FAILURE() << "round " << r << ": res " << c.res;
        ++bad;
      }
      // 200 us: a late second completion (data after -ECANCELED) lands in p now.
      co_await d.io().sleep_ns(200'000);
      if (p.completions() != 1) ++extra_completions;
      round_done.store(r + 1, std::memory_order_release);
    }
  };
  auto racer = [&]() -> task<> {
    for (int r = 0; r < rounds; ++r) {
      const op_id id = co_await wait_for_id(d.io(), target);
      CO_ASSERT_TRUE(bool(id));
      target.store(0);
      std::byte data[msg];
      fill_pattern(data, static_cast<uint32_t>(r), 0);
      const int mode = r % modes;
      if (mode == 2) {
        // Pending before both writes; its bytes go first, so the loop sees
        // it ready first and delivers it first, with the victim's result
        // already known behind it. (A blocking backend's start() would block
        // here: modes skips this on thread-per-stream backends.)
        op_handle wake = start(d.be(), recv_op(trigger.a.get(), d.pool().acquire(), 1));
        const std::byte one{1};
        CO_ASSERT_EQ(::send(trigger.b.get(), &one, 1, 0), ssize_t(1));
        CO_ASSERT_EQ(::send(sp.b.get(), data, sizeof data, 0), ssize_t(msg));
        completion w = co_await wake;
        CO_ASSERT_EQ(w.res, 1);
      } else {
        CO_ASSERT_EQ(::send(sp.b.get(), data, sizeof data, 0), ssize_t(msg));
        if (mode == 1) co_await d.io().sleep_ns(1000);
      }
      const int cr = cancel_checked(d.be(), id);
      if (cr != 0 && cr != -ENOENT) bad_cancel_results.fetch_add(1);
      const bool next = co_await wait_until_at_least(d.io(), round_done, r + 1);
      CO_ASSERT_TRUE(next);
    }
  };
  d.spawn(victim());
  d.spawn(racer());
  ASSERT_EQ(d.run(), 0) << "watchdog: a recv never completed (neither data nor -ECANCELED)";
  EXPECT_EQ(delivered + cancelled_kept + lost, rounds);
  EXPECT_EQ(bad, 0) << "a cancelled recv lost its bytes, or bytes were wrong";
  EXPECT_EQ(extra_completions, 0) << "a recv completed twice (data and -ECANCELED)";
  EXPECT_EQ(bad_cancel_results.load(), 0) << "cancel returned neither 0 nor -ENOENT";
  RecordProperty("delivered", delivered);
  RecordProperty("cancelled_kept", cancelled_kept);
  RecordProperty("lost", lost);
}

// Description: destroying a coroutine frame with a pending recv (through its
// op_awaiter, and through an op_handle) does not crash, never calls the gone
// waiter, and the backend still runs other ops afterwards. On a
// thread-per-stream backend an op in progress blocks its own thread, so no
// frame can be destroyed under it; there the clause is that dropping a
// finished id is harmless.
TEST_P(backend, drop_pending_recv_then_continue) {
  driver d(GetParam());
  socket_pair sp = make_socketpair();
  socket_pair other = make_socketpair();
  d.adopt(sp.a);
  d.adopt(other.a);
  d.adopt(other.b);
  struct never_done final : task_observer {
    void on_task_done(std::exception_ptr) noexcept override { ADD_FAILURE() << "a dropped task ran to its end"; }
  } observer;
  bool inner_resumed = false, still_pending = false;
  int32_t nop_res = 1, sleep_res = 1, sent = 1, received = 1;
  auto inner = [&](int fd) -> task<> {
    completion c = co_await d.io().recv(fd, d.pool().acquire(), 64);
    inner_resumed = true;
  };
  auto body = [&]() -> task<> {
    if (d.caps().thread_per_stream) {
      probe n(d.be(), nop_op());
      co_await n;
      d.be().drop(n.id());
    } else {
      std::coroutine_handle<> h = make_detached(inner(sp.a.get()), &observer).release();
      h.resume();  // submits the recv, which stays pending: the socket is empty
      still_pending = !inner_resumed;
      h.destroy();  // the frame goes: its op_awaiter drops the op
      {
        op_handle dropped = start(d.be(), recv_op(sp.a.get(), d.pool().acquire(), 64));
        still_pending = still_pending && !dropped.done();
      }  // op_handle's destructor drops the op
    }
    nop_res = (co_await d.io().nop()).res;
    sleep_res = (co_await d.io().sleep_ns(1'000'000)).res;
    buffer b = d.pool().acquire();
    sent = co_await send_pattern(d.io(), other.a.get(), b, 17, 0, 4096);
    received = co_await recv_pattern(d.io(), other.b.get(), b, 17, 0, 4096);
  };
  d.spawn(body());
  ASSERT_EQ(d.run(), 0) << "watchdog: the backend stopped running ops after a drop";
  if (!d.caps().thread_per_stream) {
    EXPECT_TRUE(still_pending) << "the recv on an empty socket completed";
    EXPECT_FALSE(inner_resumed) << "the dropped frame was resumed";
  }
  EXPECT_EQ(nop_res, 0);
  EXPECT_EQ(sleep_res, 0);
  EXPECT_EQ(sent, 0);
  EXPECT_EQ(received, 0);
}

// Forwards everything to a real backend, and tells when a submit() has begun:
// by then the waiter (an op_handle under construction) is fully initialised,
// so another stream may call into it once it sees the count move.
class entry_spy final : public ringside::backend {
 public:
  explicit entry_spy(ringside::backend& inner) noexcept : inner_(inner) {}
  [[nodiscard]] std::string_view name() const noexcept override { return inner_.name(); }
  [[nodiscard]] const backend_caps& caps() const noexcept override { return inner_.caps(); }
  void adopt(int fd) override { inner_.adopt(fd); }
  void spawn(task<> t) override { inner_.spawn(std::move(t)); }
  int run(clock_type::time_point deadline) override { return inner_.run(deadline); }
  op_id submit(op&& o, op_waiter* w) noexcept override {
    entered_.fetch_add(1, std::memory_order_release);
    return inner_.submit(std::move(o), w);
  }
  int cancel(op_id id) noexcept override { return inner_.cancel(id); }
  void drop(op_id id) noexcept override { inner_.drop(id); }
  [[nodiscard]] int entered() const noexcept { return entered_.load(std::memory_order_acquire); }

 private:
  ringside::backend& inner_;
  std::atomic<int> entered_{0};
};

// Description: op_handle::cancel() called from ANOTHER stream while the
// handle's own stream is still inside submit() — on a thread-per-stream
// backend its constructor blocks there until the op ends — cancels the op:
// it returns 0 and the recv completes once with -ECANCELED. (The handle's
// id comes from on_started, not from submit()'s return, which a blocked
// submit has not produced; its state is read atomically.)
TEST_P(backend, op_handle_cancel_from_another_stream_while_it_blocks) {
  driver d(GetParam());
  if (!d.caps().cancel_in_flight) GTEST_SKIP() << "caps.cancel_in_flight = false";
  socket_pair sp = make_socketpair();
  d.adopt(sp.a);
  entry_spy spy(d.be());
  // Raw storage: the canceller needs the handle's address before its
  // constructor (blocking on some backends) returns.
  alignas(op_handle) std::byte storage[sizeof(op_handle)];
  auto* h = reinterpret_cast<op_handle*>(storage);
  std::atomic<int> cancel_res{1};
  int32_t res = 1;
  bool buffer_back = false;
  auto victim = [&]() -> task<> {
    ::new (storage) op_handle(spy, recv_op(sp.a.get(), d.pool().acquire(), 64));
    completion c = co_await await_handle(*h);
    res = c.res;
    buffer_back = c.buf.valid();
    h->~op_handle();
  };
  auto canceller = [&]() -> task<> {
    // 4000 x 500 us: about 2 s for the victim to reach submit() and start.
    bool started = false;
    for (int i = 0; i < 4000 && !started; ++i) {
      started = spy.entered() > 0 && bool(h->started_id());
      if (!started) co_await d.io().sleep_ns(500'000);
    }
    CO_ASSERT_TRUE(started);
    // 20 ms: the recv is surely blocked in (or parked on) the empty socket.
    co_await d.io().sleep_ns(20'000'000);
    cancel_res.store(h->cancel());
  };
  d.spawn(victim());
  d.spawn(canceller());
  ASSERT_EQ(d.run(), 0) << "watchdog: op_handle::cancel() from another stream did not cancel the op";
  EXPECT_EQ(cancel_res.load(), 0);
  EXPECT_EQ(res, -ECANCELED);
  EXPECT_TRUE(buffer_back) << "the completion did not hand the buffer back";
}

// Description: cancel() of a regular-file read in progress — which no
// signal interrupts (caps.cancel_file_io = false here) — returns without
// waiting for the read; the read completes once, with all its bytes or
// -ECANCELED. 64 MiB from the page cache takes milliseconds, so a cancel
// that waited for the read would take most of that time.
TEST_P(backend, cancel_of_file_read_in_progress_returns_at_once) {
  constexpr uint32_t size = 64u << 20;
  driver d(GetParam(), 1, size);
  if (!d.caps().file_io) GTEST_SKIP() << "caps.file_io = false";
  unique_fd f = temp_file(0, 0);
  {
    // 1 MiB of pattern, written 64 times: quick to make, all in the page cache.
    std::vector<std::byte> chunk(1u << 20);
    fill_pattern(chunk, 3, 0);
    for (uint64_t off = 0; off < size; off += chunk.size())
      ASSERT_EQ(::pwrite(f.get(), chunk.data(), chunk.size(), off_t(off)), ssize_t(chunk.size()));
  }
  d.adopt(f);
  std::atomic<uint64_t> target{0};
  std::atomic<int> cancel_res{1};
  clock_type::duration cancel_took{}, read_took{};
  int32_t res = 1;
  int completions = 0;
  auto victim = [&]() -> task<> {
    const auto t0 = clock_type::now();
    probe p(d.be(), payload_op(op_kind::read, f.get(), d.pool().acquire(), 0, size, 0), &target);
    completion c = co_await p;
    read_took = clock_type::now() - t0;
    res = c.res;
    co_await d.io().sleep_ns(5'000'000);  // a late second completion would land now
    completions = p.completions();
  };
  auto canceller = [&]() -> task<> {
    op_id id{};
    // 1e8 spins: far beyond the microseconds a publish takes; bounds it.
    for (int k = 0; d.caps().thread_per_stream && k < 100'000'000 && !id; ++k) id = op_id{target.load()};
    if (!id) id = co_await wait_for_id(d.io(), target);
    CO_ASSERT_TRUE(bool(id));
    // 1 ms into the read (thread-per-stream backends): inside its syscall.
    if (d.caps().thread_per_stream) std::this_thread::sleep_for(1ms);
    const auto t0 = clock_type::now();
    cancel_res.store(cancel_checked(d.be(), id));
    cancel_took = clock_type::now() - t0;
  };
  d.spawn(victim());
  d.spawn(canceller());
  ASSERT_EQ(d.run(std::chrono::milliseconds(20s)), 0) << "watchdog: the run hung";
  EXPECT_TRUE(cancel_res.load() == 0 || cancel_res.load() == -ENOENT) << cancel_res.load();
  EXPECT_TRUE(res == int32_t(size) || res == -ECANCELED) << res;
  EXPECT_EQ(completions, 1);
  RecordProperty("cancel_us", int(std::chrono::duration_cast<std::chrono::microseconds>(cancel_took).count()));
  RecordProperty("read_us", int(std::chrono::duration_cast<std::chrono::microseconds>(read_took).count()));
  if (cancel_res.load() == 0 && res == int32_t(size)) {
    // The cancel reached the read in its syscall and the read won: cancel()
    // must not have waited for it.
    EXPECT_LT(cancel_took, read_took / 2) << "cancel() waited for an uninterruptible file read";
  }
}

}  // namespace
}  // namespace ringside::conformance
