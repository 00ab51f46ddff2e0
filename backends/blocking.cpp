// The blocking backend: one thread per stream, every op one synchronous
// syscall performed inside submit() (inline completion). Buffers are borrowed
// only for the duration of that syscall.
//
// Cancellation is the interesting part. A blocked syscall can only be left
// early by a signal: cancel() marks the op and sends a real-time signal whose
// handler is installed WITHOUT SA_RESTART, so the syscall fails with EINTR and
// the op completes with -ECANCELED. An EINTR nobody asked for (a stray signal,
// see below) restarts the syscall. Regular-file I/O sleeps uninterruptibly, so
// it cannot be cancelled once issued (caps.cancel_file_io = false).
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <coroutine>
#include <cstdio>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "harness/backend.hpp"
#include "harness/meters.hpp"
#include "harness/sys.hpp"

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
// 10 ms so a slow-to-return op (a regular-file read) costs few signals.
constexpr auto first_resend = 50us;
constexpr auto max_resend = 10ms;
// Watchdog and teardown: interrupt every thread every 10 ms for at most 2 s.
constexpr auto teardown_interval = 10ms;
constexpr auto teardown_bound = 2s;

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
  uint32_t cancel_waiters = 0;
  pthread_t thread{};
};

// The slot a stream thread uses for its ops, keyed by the backend's serial
// number (not its address, which a later backend may reuse).
struct thread_slot_cache {
  uint64_t backend_serial = 0;
  op_slot* slot = nullptr;
  bool busy = false;
};
thread_local thread_slot_cache tls_slot;

std::atomic<uint64_t> next_backend_serial{1};

class blocking_backend;

// One spawned task and the thread that runs it.
struct stream final : task_observer {
  explicit stream(blocking_backend& b) noexcept : owner(b) {}
  stream(const stream&) = delete;
  stream& operator=(const stream&) = delete;
  void on_task_done(std::exception_ptr error) noexcept override;

  blocking_backend& owner;
  // The detached task frame. Destroyed by the backend's destructor if the
  // task never ended (it frees itself when it ends).
  std::coroutine_handle<> frame;
  std::thread thread;
  // Guarded by the backend's mu_.
  bool started = false;   // thread created
  bool returned = false;  // thread function is past the task (frame ended or suspended)
  bool done = false;      // task ended (observer told)
};

class blocking_backend final : public backend {
 public:
  blocking_backend() {
    install_interrupt_handler();
  }
  blocking_backend(const blocking_backend&) = delete;
  blocking_backend& operator=(const blocking_backend&) = delete;
  ~blocking_backend() override { teardown(); }

  [[nodiscard]] std::string_view name() const noexcept override { return "blocking"; }
  [[nodiscard]] const backend_caps& caps() const noexcept override { return caps_; }

  void adopt(int fd) override {
    meters::count_syscall();
    const int fl = ::fcntl(fd, F_GETFL);
    if (fl < 0) throw std::system_error(errno, std::generic_category(), "blocking: fcntl(F_GETFL)");
    if ((fl & O_NONBLOCK) == 0) return;
    meters::count_syscall();
    if (::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
      throw std::system_error(errno, std::generic_category(), "blocking: fcntl(F_SETFL)");
  }

  void spawn(task<> t) override {
    std::lock_guard lk(mu_);
    stream& st = streams_.emplace_back(*this);
    st.frame = make_detached(std::move(t), &st).release();
    ++live_;
    if (running_) start_locked(st);
  }

  int run(clock_type::time_point deadline) override {
    std::unique_lock lk(mu_);
    running_ = true;
    for (auto& st : streams_)
      if (!st.started && !st.done) start_locked(st);
    if (!cv_.wait_until(lk, deadline, [&] { return live_ == 0; })) {
      // Watchdog: from now on every op fails with -ECANCELED instead of
      // blocking, and blocked ones are interrupted, so the tasks can unwind.
      running_ = false;
      lk.unlock();
      stop_all(clock_type::now() + teardown_bound);
      return -ETIME;
    }
    running_ = false;
    // Every task ended; join the threads here so that no frame (and no buffer
    // a frame holds) outlives run().
    std::vector<std::thread*> joinable;
    for (auto& st : streams_)
      if (st.thread.joinable()) joinable.push_back(&st.thread);
    lk.unlock();
    for (auto* t : joinable) t->join();
    lk.lock();
    if (live_ == 0) streams_.clear();  // unless another thread spawned meanwhile
    if (auto e = std::exchange(error_, nullptr)) std::rethrow_exception(e);
    return 0;
  }

  op_id submit(op&& o, op_waiter* w) noexcept override {
    op_slot* s = claim_slot();
    if (s == nullptr) {
      w->on_complete(completion{-ENOMEM, 0, std::move(o.buf)});
      return {};
    }
    uint32_t gen;
    {
      std::lock_guard lk(s->mu);
      s->state = slot_state::claimed;
      s->cancel_requested = false;
      s->thread = ::pthread_self();
      gen = s->gen;
    }
    const op_id id = op_id::make(s->index, gen);
    w->on_started(id);
    const int32_t res = perform(o, *s);
    {
      std::lock_guard lk(s->mu);
      s->state = slot_state::idle;
      if (++s->gen == 0) s->gen = 1;
      if (s->cancel_waiters > 0) s->left_syscall.notify_all();
    }
    unclaim_slot(s);
    w->on_complete(completion{res, 0, std::move(o.buf)});
    return id;
  }

  int cancel(op_id id) noexcept override {
    op_slot* s = find_slot(id.slot());
    if (s == nullptr) return -ENOENT;
    std::unique_lock lk(s->mu);
    if (s->gen != id.gen() || s->state == slot_state::idle) return -ENOENT;
    if (s->cancel_requested) return 0;
    s->cancel_requested = true;
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

  // Ops are synchronous: the frame of an op in progress is blocked inside
  // submit() on its own thread and cannot be destroyed from another, so only
  // finished (stale) ids ever get here. Nothing to release.
  void drop(op_id id) noexcept override { (void)id; }

  void task_done(stream& st, std::exception_ptr error) noexcept {
    std::lock_guard lk(mu_);
    st.done = true;
    if (error && !error_) error_ = error;
    --live_;
    cv_.notify_all();
  }

 private:
  // ---- op slots ----
  op_slot* claim_slot() noexcept {
    auto& c = tls_slot;
    if (c.backend_serial == serial_ && !c.busy) {
      c.busy = true;
      return c.slot;
    }
    // Not a stream thread of ours, or a nested submit (from on_started).
    return take_free_slot();
  }
  void unclaim_slot(op_slot* s) noexcept {
    auto& c = tls_slot;
    if (c.backend_serial == serial_ && c.slot == s) {
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
      const int64_t r = call();
      if (r != -EINTR) return static_cast<int32_t>(r);
      std::lock_guard lk(s.mu);
      if (cancelled(s)) return -ECANCELED;
    }
  }

  int32_t perform(op& o, op_slot& s) noexcept {
    if (moves_payload(o.kind) && o.len > o.buf.capacity()) return -EINVAL;
    const int fd = o.fd;
    // ~0: "current position", for pipes and sockets that have no offset.
    const bool positional = o.offset != ~uint64_t{0};
    switch (o.kind) {
      case op_kind::nop:
        return 0;
      case op_kind::read: {
        auto b = o.buf.first(o.len);
        return blocking_call(s, [&] { return positional ? sys::pread(fd, b, o.offset) : sys::read(fd, b); });
      }
      case op_kind::write: {
        std::span<const std::byte> b = o.buf.first(o.len);
        return blocking_call(s, [&] { return positional ? sys::pwrite(fd, b, o.offset) : sys::write(fd, b); });
      }
      case op_kind::recv: {
        auto b = o.buf.first(o.len);
        return blocking_call(s, [&] { return sys::recv(fd, b, 0); });
      }
      case op_kind::send: {
        std::span<const std::byte> b = o.buf.first(o.len);
        return blocking_call(s, [&] { return sys::send(fd, b, 0); });
      }
      case op_kind::accept:
        // A blocking fd, as this backend wants (no SOCK_NONBLOCK): adopted.
        return blocking_call(s, [&] { return sys::accept(fd, SOCK_CLOEXEC); });
      case op_kind::connect: {
        bool issued = false;
        return blocking_call(s, [&]() -> int64_t {
          if (!issued) {
            issued = true;
            return sys::connect(fd, o.addr, o.addrlen);
          }
          // Interrupted without a cancel: the handshake goes on in the
          // kernel, and a second connect() would only say EALREADY. Wait for
          // it instead (poll may be interrupted too: the loop restarts it).
          return wait_connected(fd);
        });
      }
      case op_kind::close: {
        const int r = sys::close(fd);
        // Linux frees the descriptor even when close() says EINTR; retrying
        // could close a number another thread has just been given.
        return r == -EINTR ? 0 : r;
      }
      case op_kind::fsync:
        return blocking_call(s, [&] { return sys::fsync(fd); });
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
    }
    return -EINVAL;
  }

  static int64_t wait_connected(int fd) noexcept {
    pollfd p{fd, POLLOUT, 0};
    meters::count_syscall();
    if (::poll(&p, 1, -1) < 0) return -errno;
    int err = 0;
    socklen_t len = sizeof err;
    meters::count_syscall();
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return -errno;
    return -err;
  }

  // ---- threads ----
  void start_locked(stream& st) {
    st.started = true;
    try {
      st.thread = std::thread([this, &st] { stream_main(st); });
    } catch (...) {
      st.started = false;
      throw;
    }
  }

  void stream_main(stream& st) noexcept {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, interrupt_signal());
    meters::count_syscall();
    ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);  // inherited masks may block it
    op_slot* own = take_free_slot();
    if (own != nullptr) tls_slot = {serial_, own, false};
    st.frame.resume();  // runs the whole task: every op completes inline
    tls_slot = {};
    if (own != nullptr) put_free_slot(own);
    std::lock_guard lk(mu_);
    st.returned = true;
    cv_.notify_all();
  }

  // Makes every op fail with -ECANCELED and interrupts the blocked ones, until
  // every started thread is past its task or `until` passes. Re-sending covers
  // the lost-wakeup window, as in cancel().
  void stop_all(clock_type::time_point until) noexcept {
    stopping_.store(true, std::memory_order_release);
    std::unique_lock lk(mu_);
    for (;;) {
      bool all_returned = true;
      for (auto& st : streams_) {
        if (!st.started || st.returned) continue;
        all_returned = false;
        // Not joined yet (only run() and teardown() join, and not while a
        // thread is unreturned), so the handle is valid.
        meters::count_syscall();
        ::pthread_kill(st.thread.native_handle(), interrupt_signal());
      }
      if (all_returned || clock_type::now() >= until) return;
      cv_.wait_for(lk, teardown_interval);
    }
  }

  void teardown() noexcept {
    stop_all(clock_type::now() + teardown_bound);
    std::unique_lock lk(mu_);
    size_t stuck = 0;
    for (auto& st : streams_) {
      if (!st.started || st.returned) continue;
      ++stuck;
    }
    std::vector<std::thread*> joinable;
    for (auto& st : streams_)
      if (st.started && st.returned && st.thread.joinable()) joinable.push_back(&st.thread);
    lk.unlock();
    for (auto* t : joinable) t->join();
    lk.lock();
    if (stuck > 0) {
      // A task that spins without ops, or sleeps outside the backend, cannot
      // be stopped. Leaking is the only choice that does not hang or crash
      // here; the run has already been reported as a hang.
      std::fprintf(stderr, "ringside: blocking: %zu stream thread(s) did not stop; detached\n", stuck);
      for (auto& st : streams_)
        if (st.thread.joinable()) st.thread.detach();
      return;
    }
    // Frames of tasks that never ended: never started, or suspended on
    // something that will never resume them. No thread runs them any more.
    for (auto& st : streams_)
      if (!st.done && st.frame) st.frame.destroy();
    streams_.clear();
  }

  backend_caps caps_{.contract = buffer_contract::borrowed_in_syscall,
                     .thread_per_stream = true,
                     .file_io = true,
                     .async_file_io = false,
                     .cancel_in_flight = true,
                     .cancel_file_io = false};
  const uint64_t serial_ = next_backend_serial.fetch_add(1, std::memory_order_relaxed);
  std::atomic<bool> stopping_{false};

  // Streams and run state.
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<stream> streams_;  // deque: a stream's address is its thread's and observer's
  size_t live_ = 0;             // spawned tasks not ended
  bool running_ = false;
  std::exception_ptr error_;    // the first task's exception, rethrown by run()

  // Op slots: the deque never moves them, so ids map to stable addresses.
  std::mutex table_mu_;
  std::deque<op_slot> slots_;
  std::vector<uint32_t> free_;
};

void stream::on_task_done(std::exception_ptr error) noexcept { owner.task_done(*this, error); }

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
