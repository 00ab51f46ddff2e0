// The blocking backend: one thread per stream, every op one synchronous
// syscall performed inside submit() (inline completion). Buffers are borrowed
// only for the duration of that syscall.
//
// Cancellation is the interesting part. A blocked syscall can only be left
// early by a signal: cancel() marks the op and sends a real-time signal whose
// handler is installed WITHOUT SA_RESTART, so the syscall fails with EINTR and
// the op completes with -ECANCELED. An EINTR nobody asked for (a stray signal,
// see below) restarts the syscall. Regular-file I/O sleeps uninterruptibly, so
// it cannot be cancelled once issued (caps.cancel_file_io = false): cancel()
// then returns at once and the op completes with its real result.
//
// Deadlines (op.deadline_ns): the op's thread arms a POSIX timer
// (SIGEV_THREAD_ID, the same interrupt signal) at the deadline, re-firing
// every millisecond after it, so the signal cannot be lost in the window
// before the syscall blocks; an EINTR after the deadline completes the op
// -ECANCELED, and a result that came first wins. Chosen over SO_RCVTIMEO /
// SO_SNDTIMEO, which are per socket (not per op), cost two setsockopt calls
// per op, and do not cover pipes, connect's wait or sleeps. Regular-file I/O
// cannot be interrupted: its deadline is ignored (caps.cancel_file_io).
//
// Zero-copy sends (send_zc): send(MSG_ZEROCOPY) on a socket with SO_ZEROCOPY,
// then the op's thread waits (poll for POLLERR, recvmsg(MSG_ERRQUEUE)) until
// the kernel's notification covers the send's number: only then may the
// buffer go back. Sends are numbered per socket by the kernel, so one socket
// must have one zero-copy sender at a time (a stream socket with two
// concurrent senders interleaves its bytes anyway). Sockets without
// SO_ZEROCOPY (AF_UNIX) send plainly.
//
// Multishot recv (recv_multishot) is emulated inside submit(): one blocking
// recv per buffer of the group, each delivered at once through on_more (on
// the op's thread), until EOF (0), an error, a cancel (-ECANCELED: the
// signal, or a cancel() from inside on_more) or the group running dry
// (-ENOBUFS); the unused buffers go back to the group, then the final
// completion.
//
// Hangs. When run() passes its deadline it makes every op fail with
// -ECANCELED and interrupts the blocked ones, for a bounded time. A stream
// that still does not stop (it spins in scenario code, or sleeps where no
// signal reaches) cannot be killed: its thread is detached by shutdown(),
// which reports {kind "hang", detail "N stream threads could not be
// stopped"}. Everything such a thread can touch inside the backend lives in
// an `engine` it holds by shared_ptr, kept alive until the process ends; and
// from then on the thread never returns into scenario code from an op, nor
// starts one (it parks), so it cannot touch the run's scenario or context
// after run() gave up on it. A thread stuck in scenario code outside any op,
// though, runs on: a detached thread is a leak the process must end soon (the
// CLI exits after writing its results).
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <coroutine>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "harness/backend.hpp"
#include "harness/buffer_group.hpp"
#include "harness/meters.hpp"
#include "harness/perform.hpp"
#include "harness/sys.hpp"
#include "harness/task_set.hpp"

namespace ringside {
namespace {

using namespace std::chrono_literals;

// SIGRTMIN + 5: a real-time signal (queued, never coalesced with the standard
// ones) that neither glibc (it reserves the ones below SIGRTMIN), the
// sanitizer runtimes, Boost.Asio nor liburing use.
int interrupt_signal() noexcept { return SIGRTMIN + 5; }

// Does nothing: its only job is to exist without SA_RESTART, so that the
// interrupted syscall returns EINTR instead of being restarted by the kernel.
void on_interrupt_signal(int) {}

void install_interrupt_handler() {
  static const int err = [] {
    struct sigaction sa {};
    sa.sa_handler = on_interrupt_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: a blocked syscall fails with EINTR
    meters::count_syscall();
    return ::sigaction(interrupt_signal(), &sa, nullptr) == 0 ? 0 : errno;
  }();
  if (err != 0) throw std::system_error(err, std::generic_category(), "blocking: sigaction");
}

// 1 s: far longer than any interruptible syscall takes to notice a signal,
// short enough that a broken cancel cannot stall the cancelling stream for long.
constexpr auto cancel_ack_bound = 1s;
// First re-send after 50 us (the lost-wakeup window is a few instructions wide,
// so the first re-send almost always lands inside the syscall), doubling up to
// 10 ms so a slow-to-return op costs few signals.
constexpr auto first_resend = 50us;
constexpr auto max_resend = 10ms;
// Watchdog and teardown: interrupt every thread every 10 ms for at most 2 s.
constexpr auto teardown_interval = 10ms;
constexpr auto teardown_bound = 2s;
// After its deadline a timer re-fires every 1 ms until the op leaves its
// syscall: covers a signal that landed just before the syscall blocked.
constexpr auto deadline_refire = 1ms;
// A zero-copy notification follows the peer's ACK (microseconds on
// loopback); 2 s without one means the socket is gone: hand the buffer back.
constexpr auto zc_wait_bound = 2s;
// 10 ms: how long one poll for the notification sleeps before re-checking.
constexpr int zc_poll_ms = 10;

thread_local pid_t tls_tid = 0;
pid_t current_tid() noexcept {
  if (tls_tid == 0) {
    meters::count_syscall();
    tls_tid = static_cast<pid_t>(::syscall(SYS_gettid));
  }
  return tls_tid;
}

timespec timespec_after(uint64_t ns) noexcept {
  timespec t{};
  ::clock_gettime(CLOCK_MONOTONIC, &t);  // vDSO: not a syscall
  // 1e8 s (about 3 years) caps it so tv_sec cannot overflow.
  ns = std::min<uint64_t>(ns, uint64_t{100'000'000} * 1'000'000'000);
  t.tv_sec += static_cast<time_t>(ns / 1'000'000'000);
  t.tv_nsec += static_cast<long>(ns % 1'000'000'000);
  if (t.tv_nsec >= 1'000'000'000) {
    t.tv_nsec -= 1'000'000'000;
    ++t.tv_sec;
  }
  return t;
}

enum class zc_mode : uint8_t { unknown, zerocopy, plain };
// Per socket: whether it takes MSG_ZEROCOPY, and the kernel's number for its
// next zero-copy send.
struct zc_socket {
  zc_mode mode = zc_mode::unknown;
  uint32_t next = 0;
};

// pread/pwrite and fsync work on regular files (sockets and pipes have no
// offset: ESPIPE), and regular-file I/O sleeps uninterruptibly: a signal
// does not end it, so cancel() has nothing to wait for.
constexpr bool uninterruptible(const op& o) noexcept {
  return o.kind == op_kind::fsync ||
         ((o.kind == op_kind::read || o.kind == op_kind::write) && o.offset != ~uint64_t{0});
}

enum class slot_state : uint8_t {
  idle,        // no op
  claimed,     // op started (on_started may run), syscall not entered yet
  in_syscall,  // between the last cancel check and the syscall's return
};

// One op in progress. Ops are synchronous, so a thread has at most one; each
// stream thread keeps its own slot (no shared lock per op). The slot's mutex
// orders the op thread against cancel() from other threads.
struct op_slot {
  explicit op_slot(uint32_t i) noexcept : index(i) {}
  op_slot(const op_slot&) = delete;
  op_slot& operator=(const op_slot&) = delete;

  const uint32_t index;
  std::mutex mu;
  std::condition_variable left_syscall;  // cancel() waits here for its acknowledgement
  // All below guarded by mu.
  uint32_t gen = 1;  // 0 is never used, so no id is ever 0 ("no op")
  slot_state state = slot_state::idle;
  bool cancel_requested = false;
  bool interruptible = true;  // a signal ends the op's syscall
  uint32_t cancel_waiters = 0;
  pthread_t thread{};
  // The op thread's own (not guarded): the deadline timer, created for the
  // thread that uses the slot (SIGEV_THREAD_ID) and kept for its next ops.
  timer_t timer{};
  pid_t timer_tid = 0;  // 0: no timer
  bool deadline_armed = false;
  timespec deadline_due{};

  ~op_slot() {
    if (timer_tid != 0) {
      meters::count_syscall();
      ::timer_delete(timer);
    }
  }
};

// The slot a stream thread uses for its ops, keyed by the engine's serial
// number (not its address, which a later engine may reuse).
struct thread_slot_cache {
  uint64_t serial = 0;
  op_slot* slot = nullptr;
  bool busy = false;
};
thread_local thread_slot_cache tls_slot;

std::atomic<uint64_t> next_engine_serial{1};

// A stream thread that will never return into scenario code: run() gave up on
// it. pause() returns after each (interrupt) signal; it sleeps again.
[[noreturn]] void park_forever() noexcept {
  for (;;) {
    meters::count_syscall();
    ::pause();
  }
}

// One spawned task's thread.
struct stream_thread {
  std::thread thread;
  bool returned = false;  // guarded by engine::mu_: past its task (ended or suspended)
};

// Everything a stream thread touches: op slots, stream threads, tasks. The
// backend and every stream thread hold it by shared_ptr; when threads had to
// be detached it is kept until the process ends (keep_forever), so no stuck
// thread ever touches freed memory and no frame a stuck thread may run is
// ever destroyed.
class engine final : public std::enable_shared_from_this<engine> {
 public:
  engine() = default;
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  void spawn(task<> t) {
    std::lock_guard lk(mu_);
    if (!tasks_.spawn(std::move(t))) return;  // shut down: destroyed unstarted
    if (running_) start_queued_locked();
  }

  int run(clock_type::time_point deadline) {
    {
      std::lock_guard lk(mu_);
      if (abandoned_.load(std::memory_order_acquire)) return -ETIME;
      running_ = true;
      start_queued_locked();
    }
    if (!tasks_.wait_idle_until(deadline)) {
      {
        std::lock_guard lk(mu_);
        running_ = false;
      }
      // Watchdog: from now on every op fails with -ECANCELED instead of
      // blocking, and blocked ones are interrupted, so the tasks can unwind.
      stop_all(clock_type::now() + teardown_bound);
      return -ETIME;
    }
    // Every task ended (so none can spawn); join the threads here so that
    // no frame (and no buffer a frame holds) outlives run().
    std::unique_lock lk(mu_);
    running_ = false;
    std::vector<std::thread*> joinable;
    for (auto& st : streams_)
      if (st.thread.joinable()) joinable.push_back(&st.thread);
    lk.unlock();
    for (auto* t : joinable) t->join();
    lk.lock();
    streams_.clear();
    return 0;
  }

  op_id submit(op&& o, op_waiter* w) noexcept {
    if (abandoned_.load(std::memory_order_acquire) && own_stream_thread()) park();
    op_slot* s = claim_slot();
    if (s == nullptr) {
      return end_unstarted(w, -ENOMEM, std::move(o.buf));
    }
    uint32_t gen;
    {
      std::lock_guard lk(s->mu);
      s->state = slot_state::claimed;
      s->cancel_requested = false;
      s->interruptible = !uninterruptible(o);
      s->thread = ::pthread_self();
      gen = s->gen;
    }
    const op_id id = op_id::make(s->index, gen);
    w->on_started(id);
    // No thread but the stream's own can issue its op (caps.submitter_can_exit).
    int32_t res = o.submitter_exits ? -EOPNOTSUPP : arm_deadline(*s, o);
    if (res == 0) res = o.kind == op_kind::recv_multishot ? recv_multishot(o, *s, w) : perform(o, *s);
    disarm_deadline(*s);
    {
      std::lock_guard lk(s->mu);
      s->state = slot_state::idle;
      if (++s->gen == 0) s->gen = 1;
      if (s->cancel_waiters > 0) s->left_syscall.notify_all();
    }
    unclaim_slot(s);
    if (abandoned_.load(std::memory_order_acquire) && own_stream_thread()) {
      // run() gave up on this thread while it was blocked: the scenario may
      // be gone. Nobody takes the result.
      discard_result(o.kind, res);
      park();
    }
    w->on_complete(completion{res, 0, std::move(o.buf)});
    return id;
  }

  // The next `count` blocking syscalls (any stream's) say EINTR without being
  // made: the restart path a stray signal takes (inject_submit_failures).
  void inject_eintr(uint32_t count) noexcept { inject_eintr_.store(count, std::memory_order_release); }

  int cancel(op_id id) noexcept {
    op_slot* s = find_slot(id.slot());
    if (s == nullptr) return -ENOENT;
    std::unique_lock lk(s->mu);
    if (s->gen != id.gen() || s->state == slot_state::idle) return -ENOENT;
    if (s->cancel_requested) return 0;
    s->cancel_requested = true;
    // A regular-file op: not in its syscall yet, it sees the flag and
    // completes -ECANCELED; in it, no signal ends it and it completes with
    // its real result. Either way there is nothing to wait for.
    if (!s->interruptible) return 0;
    // Lost wakeup: the op thread checks cancel_requested under mu, then drops
    // mu and enters the syscall. A signal landing in that window runs the
    // (empty) handler before the syscall starts, and the syscall then blocks.
    // So keep re-sending until the op acknowledges by leaving in_syscall
    // (its thread takes mu and bumps gen, which we wait for on left_syscall),
    // bounded by cancel_ack_bound. Sending under mu while the op is still
    // in_syscall also guarantees the target thread is alive (it is inside the
    // op), so pthread_kill never sees a finished thread.
    // In state `claimed` no signal is needed: the op sees the flag before it
    // enters the syscall.
    ++s->cancel_waiters;
    auto wait = std::chrono::duration_cast<std::chrono::microseconds>(first_resend);
    const auto give_up = clock_type::now() + cancel_ack_bound;
    while (s->gen == id.gen() && s->state == slot_state::in_syscall && clock_type::now() < give_up) {
      meters::count_syscall();
      ::pthread_kill(s->thread, interrupt_signal());
      s->left_syscall.wait_for(lk, wait, [&] { return s->gen != id.gen(); });
      wait = std::min(wait * 2, std::chrono::duration_cast<std::chrono::microseconds>(max_resend));
    }
    --s->cancel_waiters;
    return 0;
  }

  // Idempotent. Returns true when the engine must be kept forever (threads
  // were detached).
  bool shutdown() noexcept {
    {
      std::lock_guard lk(mu_);
      if (shut_down_) return false;
      shut_down_ = true;
      running_ = false;
    }
    tasks_.close();
    // Instant when every thread is already past its task; after a hang that
    // run() already gave up on, not worth another wait.
    if (!abandoned_.load(std::memory_order_acquire)) stop_all(clock_type::now() + teardown_bound);
    std::unique_lock lk(mu_);
    size_t stuck = 0;
    std::vector<std::thread*> joinable;
    for (auto& st : streams_) {
      if (!st.returned) ++stuck;
      else if (st.thread.joinable()) joinable.push_back(&st.thread);
    }
    lk.unlock();
    for (auto* t : joinable) t->join();
    lk.lock();
    if (stuck > 0) {
      abandoned_.store(true, std::memory_order_release);
      for (auto& st : streams_)
        if (st.thread.joinable()) st.thread.detach();
      try {
        violations_.push_back({"hang", fmt::format("{} stream threads could not be stopped", stuck)});
      } catch (...) {
      }
      // No frame is destroyed: a stuck thread may be running (or may resume)
      // any of them.
      return true;
    }
    streams_.clear();
    lk.unlock();
    // No thread runs any task now: frames that never ended (never started,
    // or suspended on something that will never resume them) go.
    tasks_.destroy_live();
    return false;
  }

  void collect(std::vector<violation>& out) {
    tasks_.take_violations(out);
    std::lock_guard lk(mu_);
    for (auto& v : violations_) out.push_back(std::move(v));
    violations_.clear();
  }

 private:
  // ---- op slots ----
  [[nodiscard]] bool own_stream_thread() const noexcept { return tls_slot.serial == serial_; }

  op_slot* claim_slot() noexcept {
    auto& c = tls_slot;
    if (c.serial == serial_ && !c.busy) {
      c.busy = true;
      return c.slot;
    }
    // Not a stream thread of ours, or a nested submit (from on_started).
    return take_free_slot();
  }
  void unclaim_slot(op_slot* s) noexcept {
    auto& c = tls_slot;
    if (c.serial == serial_ && c.slot == s) {
      c.busy = false;
      return;
    }
    put_free_slot(s);
  }
  op_slot* take_free_slot() noexcept {
    std::lock_guard lk(table_mu_);
    if (!free_.empty()) {
      op_slot* s = &slots_[free_.back()];
      free_.pop_back();
      return s;
    }
    try {
      // Reserve first, so put_free_slot() never allocates.
      free_.reserve(slots_.size() + 1);
      return &slots_.emplace_back(static_cast<uint32_t>(slots_.size()));
    } catch (...) {
      return nullptr;
    }
  }
  void put_free_slot(op_slot* s) noexcept {
    std::lock_guard lk(table_mu_);
    free_.push_back(s->index);
  }
  op_slot* find_slot(uint32_t index) noexcept {
    std::lock_guard lk(table_mu_);
    // deque: elements never move, so the pointer stays valid after unlock.
    return index < slots_.size() ? &slots_[index] : nullptr;
  }

  // ---- ops ----
  [[nodiscard]] bool cancelled(const op_slot& s) const noexcept {
    return s.cancel_requested || stopping_.load(std::memory_order_acquire);
  }

  // Runs call() (which returns a result or -errno) as the op's blocking
  // syscall: -ECANCELED if cancelled before it starts or while it is blocked
  // (EINTR); an EINTR nobody asked for restarts it. A result with data always
  // wins over a cancel that came too late.
  template <typename F>
  int32_t blocking_call(op_slot& s, F&& call) noexcept {
    {
      std::lock_guard lk(s.mu);
      if (cancelled(s)) return -ECANCELED;
      s.state = slot_state::in_syscall;
    }
    for (;;) {
      const int64_t r = take_injected_eintr() ? -EINTR : call();
      if (r != -EINTR) return static_cast<int32_t>(r);
      std::lock_guard lk(s.mu);
      if (cancelled(s) || deadline_passed(s)) return -ECANCELED;
    }
  }

  // ---- deadlines ----
  // 0, or -errno when no timer could be had (the op then fails with it).
  int32_t arm_deadline(op_slot& s, const op& o) noexcept {
    if (o.deadline_ns == 0 || uninterruptible(o)) return 0;
    const pid_t tid = current_tid();
    if (s.timer_tid != tid) {
      if (s.timer_tid != 0) {
        meters::count_syscall();
        ::timer_delete(s.timer);
        s.timer_tid = 0;
      }
      sigevent sev{};
      sev.sigev_notify = SIGEV_THREAD_ID;
      sev.sigev_signo = interrupt_signal();
      sev._sigev_un._tid = tid;  // sigev_notify_thread_id (glibc 2.36 lacks the macro)
      meters::count_syscall();
      if (::timer_create(CLOCK_MONOTONIC, &sev, &s.timer) != 0) return -errno;
      s.timer_tid = tid;
    }
    s.deadline_due = timespec_after(o.deadline_ns);
    itimerspec its{};
    its.it_value = s.deadline_due;
    its.it_interval.tv_nsec = std::chrono::nanoseconds(deadline_refire).count();
    meters::count_syscall();
    if (::timer_settime(s.timer, TIMER_ABSTIME, &its, nullptr) != 0) return -errno;
    s.deadline_armed = true;
    return 0;
  }
  void disarm_deadline(op_slot& s) noexcept {
    if (!s.deadline_armed) return;
    s.deadline_armed = false;
    const itimerspec off{};
    meters::count_syscall();
    ::timer_settime(s.timer, 0, &off, nullptr);
    // A signal already queued only makes a later syscall restart (EINTR
    // nobody asked for).
  }
  static bool deadline_passed(const op_slot& s) noexcept {
    if (!s.deadline_armed) return false;
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > s.deadline_due.tv_sec ||
           (now.tv_sec == s.deadline_due.tv_sec && now.tv_nsec >= s.deadline_due.tv_nsec);
  }

  // ---- multishot recv (emulated) ----
  int32_t recv_multishot(op& o, op_slot& s, op_waiter* w) noexcept {
    if (o.group == nullptr) return -EINVAL;
    std::vector<buffer> held;  // empty: swapping allocates nothing
    o.group->swap_buffers(held);
    int32_t res = -ENOBUFS;
    for (auto& b : held) {
      const size_t len = std::min<size_t>(b.capacity(), o.len != 0 ? o.len : b.capacity());
      const int32_t r = blocking_call(s, [&]() -> int64_t { return sys::recv(o.fd, b.first(len), 0); });
      if (r <= 0) {
        res = r;
        break;
      }
      count_kernel_copy(op_kind::recv, r);
      {
        // In the waiter's code now, not a syscall: a cancel() (even from
        // inside on_more) just marks the op, and the next recv sees it.
        std::lock_guard lk(s.mu);
        s.state = slot_state::claimed;
        if (s.cancel_waiters > 0) s.left_syscall.notify_all();
      }
      w->on_more(completion{r, 0, std::move(b)});
    }
    return_unused(held, o.group);
    return res;
  }

  // ---- zero-copy sends ----
  zc_socket* zc_entry_locked(int fd) noexcept {
    if (fd < 0) return nullptr;
    if (size_t(fd) >= zc_.size()) {
      try {
        zc_.resize(size_t(fd) + 1);
      } catch (...) {
        return nullptr;
      }
    }
    return &zc_[size_t(fd)];
  }

 public:
  // fd names a new socket now (adopted, accepted) or none (closed): forget
  // what was known of the old one.
  void forget_zc(int fd) noexcept {
    std::lock_guard lk(zc_mu_);
    if (fd >= 0 && size_t(fd) < zc_.size()) zc_[size_t(fd)] = {};
  }

 private:
  int32_t send_zc(op& o, op_slot& s) noexcept {
    zc_mode mode = zc_mode::plain;
    {
      std::lock_guard lk(zc_mu_);
      if (zc_socket* z = zc_entry_locked(o.fd)) {
        if (z->mode == zc_mode::unknown) z->mode = enable_zerocopy(o.fd) == 0 ? zc_mode::zerocopy : zc_mode::plain;
        mode = z->mode;
      }
    }
    if (mode == zc_mode::plain)
      return blocking_call(s, [&]() -> int64_t { return perform_sync(o, sync_mode::blocking); });
    const int32_t res = blocking_call(s, [&]() -> int64_t { return send_zerocopy(o, sync_mode::blocking); });
    if (res <= 0) return res;  // nothing sent: no number, no notification
    uint32_t seq;
    {
      std::lock_guard lk(zc_mu_);
      seq = zc_[size_t(o.fd)].next++;
    }
    {
      // Sent: a cancel can no longer take it back, and no signal need end
      // the wait (cancel() returns at once in this state).
      std::lock_guard lk(s.mu);
      s.state = slot_state::claimed;
      if (s.cancel_waiters > 0) s.left_syscall.notify_all();
    }
    count_zerocopy_result(res, await_zc_notification(o.fd, seq));
    return res;
  }

  // Waits until the notification covering send `seq` on fd; returns whether
  // the kernel copied after all (true, too, when it never came: counted as
  // a copy rather than hidden).
  static bool await_zc_notification(int fd, uint32_t seq) noexcept {
    const auto give_up = clock_type::now() + zc_wait_bound;
    for (;;) {
      zerocopy_notification n;
      int32_t r;
      while ((r = read_zerocopy_notification(fd, n)) == 0)
        if (covers(n, seq)) return n.copied;
      if (r != -EAGAIN || clock_type::now() >= give_up) return true;
      // POLLERR is reported whatever `events` says: the error queue has one.
      pollfd p{fd, 0, 0};
      meters::count_syscall();
      ::poll(&p, 1, zc_poll_ms);  // EINTR (a cancel's signal): look again
    }
  }

  int32_t perform(op& o, op_slot& s) noexcept {
    switch (o.kind) {
      case op_kind::nop:
        return perform_sync(o, sync_mode::blocking);
      case op_kind::close:  // never blocks, never restarted (see perform_sync)
        forget_zc(o.fd);
        return perform_sync(o, sync_mode::blocking);
      case op_kind::connect: {
        bool issued = false;
        return blocking_call(s, [&]() -> int64_t {
          if (!issued) {
            issued = true;
            return perform_sync(o, sync_mode::blocking);
          }
          // Interrupted without a cancel: the handshake goes on in the
          // kernel, and a second connect() would only say EALREADY. Wait for
          // it instead (poll may be interrupted too: the loop restarts it).
          return wait_connected(o.fd);
        });
      }
      case op_kind::timeout: {
        // Absolute deadline, so a restarted sleep does not start over.
        timespec due{};
        ::clock_gettime(CLOCK_MONOTONIC, &due);  // vDSO: not a syscall
        // 1e8 s (about 3 years) caps the sleep so tv_sec cannot overflow.
        const uint64_t ns = std::min<uint64_t>(o.timeout_ns, uint64_t{100'000'000} * 1'000'000'000);
        due.tv_sec += static_cast<time_t>(ns / 1'000'000'000);
        due.tv_nsec += static_cast<long>(ns % 1'000'000'000);
        if (due.tv_nsec >= 1'000'000'000) {
          due.tv_nsec -= 1'000'000'000;
          ++due.tv_sec;
        }
        return blocking_call(s, [&]() -> int64_t {
          meters::count_syscall();
          return -::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, nullptr);
        });
      }
      case op_kind::send_zc:
        return send_zc(o, s);
      case op_kind::accept: {
        const int32_t r = blocking_call(s, [&]() -> int64_t { return perform_sync(o, sync_mode::blocking); });
        if (r >= 0) forget_zc(r);
        return r;
      }
      default:
        // A blocking fd, as this backend wants: accepted fds come back
        // blocking (adopted).
        return blocking_call(s, [&]() -> int64_t { return perform_sync(o, sync_mode::blocking); });
    }
  }

  static int64_t wait_connected(int fd) noexcept {
    pollfd p{fd, POLLOUT, 0};
    meters::count_syscall();
    if (::poll(&p, 1, -1) < 0) return -errno;
    return connect_result(fd);
  }

  // ---- threads ----
  // A stream thread run() gave up on stops here for good. Taking mu_ first
  // orders everything it did before — its calls through the backend object
  // included — before shutdown(), which takes mu_ too, and so before the
  // backend's destruction.
  [[noreturn]] void park() noexcept {
    { std::lock_guard lk(mu_); }
    park_forever();
  }

  // Under mu_. Throws std::system_error when no thread can be created (the
  // task stays live; shutdown() destroys it).
  void start_queued_locked() {
    while (std::coroutine_handle<> h = tasks_.take_queued()) {
      stream_thread& st = streams_.emplace_back();
      try {
        st.thread = std::thread([self = shared_from_this(), &st, h] { self->stream_main(st, h); });
      } catch (...) {
        streams_.pop_back();
        throw;
      }
    }
  }

  void stream_main(stream_thread& st, std::coroutine_handle<> frame) noexcept {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, interrupt_signal());
    meters::count_syscall();
    ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);  // inherited masks may block it
    op_slot* own = take_free_slot();
    if (own != nullptr) tls_slot = {serial_, own, false};
    frame.resume();  // runs the task to its end (or first suspension): every op completes inline
    tls_slot = {};
    if (own != nullptr) put_free_slot(own);
    std::lock_guard lk(mu_);
    st.returned = true;
    returned_.notify_all();
  }

  // Makes every op fail with -ECANCELED and interrupts the blocked ones,
  // until every started thread is past its task or `until` passes; then the
  // threads still running are abandoned. Re-sending covers the lost-wakeup
  // window, as in cancel().
  void stop_all(clock_type::time_point until) noexcept {
    stopping_.store(true, std::memory_order_release);
    std::unique_lock lk(mu_);
    for (;;) {
      bool all_returned = true;
      for (auto& st : streams_) {
        if (st.returned) continue;
        all_returned = false;
        // Neither joined nor detached (only returned threads are joined, and
        // threads are detached only after this gave up), so the handle names
        // a live thread.
        meters::count_syscall();
        ::pthread_kill(st.thread.native_handle(), interrupt_signal());
      }
      if (all_returned) return;
      if (clock_type::now() >= until) {
        // From here on a stuck thread parks at its next op (or when its
        // current one returns) instead of running scenario code.
        abandoned_.store(true, std::memory_order_release);
        return;
      }
      returned_.wait_for(lk, teardown_interval);
    }
  }

  const uint64_t serial_ = next_engine_serial.fetch_add(1, std::memory_order_relaxed);
  std::atomic<bool> stopping_{false};
  std::atomic<bool> abandoned_{false};
  std::atomic<uint32_t> inject_eintr_{0};

  // True (one fewer left) when this syscall is to fail with an injected EINTR.
  bool take_injected_eintr() noexcept {
    uint32_t left = inject_eintr_.load(std::memory_order_relaxed);
    while (left > 0 && !inject_eintr_.compare_exchange_weak(left, left - 1, std::memory_order_acq_rel)) {
    }
    return left > 0;
  }

  // Streams and run state.
  std::mutex mu_;
  std::condition_variable returned_;
  std::deque<stream_thread> streams_;  // deque: a stream's address is its thread's
  bool running_ = false;
  bool shut_down_ = false;
  std::vector<violation> violations_;

  // Op slots: the deque never moves them, so ids map to stable addresses.
  std::mutex table_mu_;
  std::deque<op_slot> slots_;
  std::vector<uint32_t> free_;

  // Zero-copy state per socket, indexed by fd.
  std::mutex zc_mu_;
  std::vector<zc_socket> zc_;

  task_set tasks_;
};

// Engines whose threads were detached stay reachable until the process ends:
// never destroyed (a stuck thread may still use one, and a frame it may run
// must never be destroyed under it), and not reported as leaks.
void keep_forever(std::shared_ptr<engine> e) noexcept {
  static std::mutex mu;
  static auto* kept = new std::vector<std::shared_ptr<engine>>;
  std::lock_guard lk(mu);
  try {
    kept->push_back(std::move(e));
  } catch (...) {
    (void)new std::shared_ptr<engine>(std::move(e));  // out of memory: leaked plainly
  }
}

class blocking_backend final : public backend {
 public:
  blocking_backend() : e_(std::make_shared<engine>()) { install_interrupt_handler(); }
  blocking_backend(const blocking_backend&) = delete;
  blocking_backend& operator=(const blocking_backend&) = delete;
  ~blocking_backend() override { shutdown(); }

  [[nodiscard]] std::string_view name() const noexcept override { return "blocking"; }
  [[nodiscard]] const backend_caps& caps() const noexcept override { return caps_; }

  void adopt(int fd) override {
    e_->forget_zc(fd);  // a number seen before may name a new socket now
    meters::count_syscall();
    const int fl = ::fcntl(fd, F_GETFL);
    if (fl < 0) throw std::system_error(errno, std::generic_category(), "blocking: fcntl(F_GETFL)");
    if ((fl & O_NONBLOCK) == 0) return;
    meters::count_syscall();
    if (::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
      throw std::system_error(errno, std::generic_category(), "blocking: fcntl(F_SETFL)");
  }

  void spawn(task<> t) override { e_->spawn(std::move(t)); }
  int run(clock_type::time_point deadline) override { return e_->run(deadline); }
  op_id submit(op&& o, op_waiter* w) noexcept override { return e_->submit(std::move(o), w); }
  int cancel(op_id id) noexcept override { return e_->cancel(id); }
  // A blocking syscall's transient failure is EINTR: the next `count`
  // syscalls say it (whatever err) and are restarted, as after a stray signal.
  int inject_submit_failures(int err, uint32_t count) noexcept override {
    if (err != EAGAIN && err != EBUSY) return -EINVAL;
    e_->inject_eintr(count);
    return 0;
  }
  // Ops are synchronous: the frame of an op in progress is blocked inside
  // submit() on its own thread and cannot be destroyed from another, so only
  // finished (stale) ids ever get here. Nothing to release.
  void drop(op_id id) noexcept override { (void)id; }

  void shutdown() noexcept override {
    if (e_->shutdown()) keep_forever(e_);
  }
  void collect_violations(std::vector<violation>& out) override { e_->collect(out); }

 private:
  backend_caps caps_{.contract = buffer_contract::borrowed_in_syscall,
                     .thread_per_stream = true,
                     .file_io = true,
                     .async_file_io = false,
                     .cancel_in_flight = true,
                     .cancel_file_io = false,
                     .zero_copy_send = true};
  const std::shared_ptr<engine> e_;
};

}  // namespace

void register_blocking_backend() {
  register_backend(backend_info{
      .name = "blocking",
      .description = "thread per stream, synchronous syscalls; cancel interrupts with a signal",
      .unavailable_reason = [] { return std::string(); },
      .make = [](const backend_options&) -> std::unique_ptr<backend> {
        return std::make_unique<blocking_backend>();
      },
  });
}

}  // namespace ringside
