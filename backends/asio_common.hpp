// The Asio backends' one implementation, compiled twice: backends/asio.cpp
// (Boost.Asio's default epoll reactor) and backends/asio_uring.cpp (its
// io_uring service, BOOST_ASIO_HAS_IO_URING + BOOST_ASIO_DISABLE_EPOLL). Each
// includes this header once, after configuring Asio; asio_uring.cpp also
// renames Asio's namespace (see the top of that file), so every name below
// that says boost::asio means that TU's own Asio. Nothing here has external
// linkage: the backend lives in an anonymous namespace, and each .cpp defines
// its own registration function.
//
// Before including, the .cpp defines RINGSIDE_ASIO_NAME (the backend's name)
// and RINGSIDE_ASIO_IO_URING (1: the io_uring flavour, whose Asio has files).
//
// Model: one io_context per backend, run by the thread that calls run(); tasks
// (streams) run there too. Every op is one Asio async operation on an Asio I/O
// object that wraps the scenario's fd without owning it (one wrapper per fd,
// created at the fd's first op, release()d — never closed — when the fd is
// adopted anew or the backend goes; see fd_wrapper).
//
// op kind     -> Asio operation                         -> syscalls (reactor | io_uring)
// recv        -> socket.async_receive                   -> recv(2) (one speculative try, again after
//                                                          epoll says ready) | IORING_OP_RECVMSG
// send        -> socket.async_send(MSG_NOSIGNAL)        -> send(2) | IORING_OP_SENDMSG
// send+wait_all -> async_write(all bytes) over async_send -> send(2) until done | SENDMSG per chunk
// send_zc     -> as send: Asio has no zero-copy send (caps.zero_copy_send = false)
// read/write  -> socket: async_receive/async_send; pipe: posix::stream_descriptor read_some/write_some
//                (readv/writev | IORING_OP_READV/WRITEV); regular file at an offset:
//                random_access_file async_read_some_at/async_write_some_at (io_uring only:
//                IORING_OP_READV/WRITEV at the offset)
// fsync       -> random_access_file::sync_all (SYNCHRONOUS in Asio: fsync(2) inside submit,
//                completion posted; io_uring flavour only)
// accept      -> acceptor.async_accept (move-accept)    -> accept | IORING_OP_ACCEPT
// connect     -> socket.async_connect                   -> connect + SO_ERROR | IORING_OP_CONNECT
// close       -> cancel the fd's pending ops, wait until their handlers ran, release the
//                wrapper, close(2): so no op outlives the number (safety scenarios 10, 11)
// timeout     -> steady_timer::async_wait               (timer queue of the reactor | io_uring timeouts)
// nop         -> post                                   (no syscall)
// recv_multishot -> emulated as epoll does: one async_receive per group buffer, each
//                delivered through on_more, ending -ENOBUFS / 0 (EOF) / -ECANCELED
//
// op.force_async (IOSQE_ASYNC) is a hint Asio has no way to pass: ignored.
// op.submitter_exits: the loop thread issues every op (-EOPNOTSUPP).
//
// Files on the reactor flavour: unsupported (caps.file_io = false). Asio's
// only random-access file is built on io_uring (or Windows IOCP); a
// posix::stream_descriptor on a regular file would read at the file position
// synchronously inside the initiating call (epoll refuses regular files), not
// at an offset: not a faithful Asio file path.
//
// Cancellation (per-operation, through Asio's cancellation slots): each op
// slot owns a cancellation_signal whose slot is bound to the op's handler
// (bind_cancellation_slot).
//   - cancel(id) emits cancellation_type::partial: "the op may have had side
//     effects, and its completion reports them". That is exactly this
//     interface's rule (a recv that won the race delivers its bytes; a
//     cancelled async_write reports the count sent so far). The emit is
//     posted to the loop, not made inside cancel() (see request_emit).
//   - op.deadline_ns emits cancellation_type::terminal from a per-slot
//     steady_timer (like a linked timeout: the op is over; what it did is
//     still reported).
//   - drop(id) emits terminal too (nobody will look at the result).
//   - total is never emitted: async_write (wait_all) does not accept it, and
//     no op here can promise "no side effects".
// What each engine does with them (Boost 1.81, asio/detail/): every
// primitive op accepts terminal|partial|total — reactive_socket_service_base
// / reactive_descriptor_service (reactor_op_cancellation -> the epoll
// reactor's cancel_ops_by_key: the op is not in the kernel, it is taken off
// the descriptor's queue and completes operation_aborted at once, from the
// loop); io_uring_socket_service_base / io_uring_descriptor_service /
// io_uring_file_service (io_uring_op_cancellation -> io_uring_service::
// cancel_ops_by_key: an op that is NOT at the front of its queue is not in
// the kernel and is aborted at once; the front op, the one whose SQE is in
// the kernel, gets IORING_OP_ASYNC_CANCEL and stays queued until its own CQE,
// which carries -ECANCELED or its real result); steady_timer (timer queue
// cancel_timer_by_key); async_write: terminal|partial (it forwards them to
// each async_send). post (nop) and the synchronous sync_all/close have no
// cancellation: their result is already known, so cancel() says -ENOENT (a
// close still waiting for its fd's ops says 0, and closes anyway).
//
// Buffer contract: Asio's rule is "borrowed until the handler runs". The op
// slot keeps the op's buffer until its handler runs, which on io_uring is
// only after the op's own CQE (see above: a cancelled in-kernel op stays
// queued until its CQE), so the buffer comes back with the final completion:
// caps.contract = owned, holds_buffer_until_completion. A dropped op's slot
// (and buffer) lives until its handler runs; only then does the buffer go
// back to the pool.
//
// KNOWN UNSOUNDNESS of Boost 1.81's io_uring service (Asio 1.26), found by
// the safety suite (cancel.storm on asio-uring) and left visible on purpose:
// io_uring_service::cancel_ops_by_key and do_cancel_ops prepare their
// IORING_OP_ASYNC_CANCEL with io_uring_prep_cancel and never set the SQE's
// user_data, and liburing >= 2.2 (2.3 here) no longer clears it in prep. Once
// the SQ ring (16384 entries) wraps, a cancel SQE carries the stale user_data
// of an older SQE — the address of some io_queue — and the cancel's own CQE
// (0, -ENOENT, -EALREADY) completes that queue's front op: its handler runs
// and its buffer comes back while its real SQE is still in the kernel, whose
// CQE then completes the queue's next op with the wrong result. Fixed in
// Asio 1.27 (chriskohlhoff/asio#1215). Not worked around here: this backend
// measures Boost.Asio as shipped. (A second 1.26 bug, a stack address as a
// timeout SQE's user_data in io_uring_service::run(usec > 0),
// chriskohlhoff/asio#1284, crashed the loop: avoided in wait_one, because
// that one is about how the loop is driven, not about Asio's op semantics.)
//
// Handler memory: Asio allocates per-op state through the handler's
// associated allocator. Every handler here carries one (recycling_allocator
// over handler_memory: size-class free lists owned by the backend), so the
// steady state allocates nothing per op.
//
// Syscall counting: Asio makes its own syscalls, out of ringside's sight, so
// for these backends the counter is a MODEL, not a measurement:
//   - 1 per Asio op issued (reactor: its speculative try, or timerfd_settime
//     for a timer; io_uring: its SQE's submit), +1 on the reactor when a
//     blocking loop wait came between its issue and its completion (the try
//     said EAGAIN, the reactor performed it again after readiness);
//   - 1 per blocking loop wait (wait_one: epoll_wait | io_uring_enter);
//   - 1 per synchronous call made here (close, fsync, fcntl, fstat, getsockopt).
// Its blind spot: ctx_.poll_one() runs Asio's engine too (epoll_wait with a zero
// timeout; io_uring_enter to submit) whenever its task reaches the front of
// the handler queue, unseen from here. Calibrated with strace -f -c
// (20000 ops, this machine): tcp.rr per round trip — counted 4.0, real 8.0
// on the reactor (send; recv -> EAGAIN; epoll_wait; recv, on each side) and
// 2.0 on io_uring (io_uring_enter: submissions batched, completions mostly
// read from the CQ ring without entering); tcp.stream per op — counted 2.0,
// real 3.0 (reactor) and 1.0 (io_uring). So compare syscalls_per_op of the
// Asio backends with the others only with that in mind.
//
// Single-threaded: submit, cancel, drop, spawn and run from the loop thread.
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#if RINGSIDE_ASIO_IO_URING
#include <boost/asio/random_access_file.hpp>
#endif

#include "harness/backend.hpp"
#include "harness/buffer_group.hpp"
#include "harness/meters.hpp"
#include "harness/perform.hpp"
#include "harness/sys.hpp"
#include "harness/task_set.hpp"

namespace ringside {
namespace {

namespace net = boost::asio;
using error_code = boost::system::error_code;
using generic_proto = net::generic::stream_protocol;

constexpr uint32_t no_slot = UINT32_MAX;
// 2 s: how long teardown keeps running the context for the handlers of
// cancelled ops (reactor: at once; io_uring: after each op's CQE, which a
// cancel makes prompt). Past it, io_context's destructor still waits for
// every CQE (io_uring_service::shutdown), so nothing is freed under the kernel.
constexpr auto teardown_budget = std::chrono::seconds(2);
// 100 ms: the longest single wait of the loop, so run() rechecks its deadline.
constexpr auto max_wait = std::chrono::milliseconds(100);
// 64 handlers per loop pass: amortises the pass, short enough that spawned
// tasks start and the watchdog deadline is seen promptly.
constexpr size_t handler_batch = 64;

// ---- handler memory ----
// Size-class free lists (64 B .. 4 KiB, powers of two): Asio's per-op state
// (an op object holding the handler) is one block; a block freed goes back to
// its class's list and is reused by the next op of that size. Blocks are
// freed only when the backend goes. Single-threaded, like the loop.
class handler_memory {
 public:
  handler_memory() = default;
  handler_memory(const handler_memory&) = delete;
  handler_memory& operator=(const handler_memory&) = delete;
  ~handler_memory() {
    for (void*& head : free_) {
      while (head != nullptr) {
        void* next = *static_cast<void**>(head);
        ::operator delete(head);
        head = next;
      }
    }
  }

  void* allocate(size_t n) {
    const size_t c = class_of(n);
    if (c == classes) return ::operator new(n);
    if (void* p = free_[c]) {
      free_[c] = *static_cast<void**>(p);
      return p;
    }
    return ::operator new(size_t(min_block) << c);
  }
  void deallocate(void* p, size_t n) noexcept {
    const size_t c = class_of(n);
    if (c == classes) return ::operator delete(p);
    *static_cast<void**>(p) = free_[c];
    free_[c] = p;
  }

 private:
  // 64 B: the smallest Asio op (a posted handler) is about that; 4 KiB (7
  // classes): larger ones would be a surprise, and go to operator new.
  static constexpr size_t min_block = 64;
  static constexpr size_t classes = 7;
  static size_t class_of(size_t n) noexcept {
    size_t c = 0;
    while (c < classes && (min_block << c) < n) ++c;
    return c;
  }
  std::array<void*, classes> free_{};
};

template <typename T>
class recycling_allocator {
 public:
  using value_type = T;
  explicit recycling_allocator(handler_memory* m) noexcept : mem_(m) {}
  template <typename U>
  recycling_allocator(const recycling_allocator<U>& o) noexcept : mem_(o.memory()) {}  // NOLINT: rebind
  T* allocate(size_t n) { return static_cast<T*>(mem_->allocate(n * sizeof(T))); }
  void deallocate(T* p, size_t n) noexcept { mem_->deallocate(p, n * sizeof(T)); }
  [[nodiscard]] handler_memory* memory() const noexcept { return mem_; }
  template <typename U>
  bool operator==(const recycling_allocator<U>& o) const noexcept { return mem_ == o.memory(); }
  template <typename U>
  bool operator!=(const recycling_allocator<U>& o) const noexcept { return mem_ != o.memory(); }

 private:
  handler_memory* mem_;
};

enum class slot_state : uint8_t {
  free,
  starting,  // inside submit(), before the Asio op is issued (on_started may cancel)
  pending,   // an Asio op (or a deferred close) will run its handler
  ready,     // result known (nop, sync op, early error): completion posted, not cancellable
};

// async_write over async_send(MSG_NOSIGNAL): a send to a closed peer must say
// -EPIPE, not raise SIGPIPE (Asio's io_uring sendmsg passes only the flags
// it is given; its reactor adds MSG_NOSIGNAL itself).
struct nosignal_stream {
  generic_proto::socket& s;
  using executor_type = generic_proto::socket::executor_type;
  executor_type get_executor() noexcept { return s.get_executor(); }
  template <typename ConstBuffers, typename Handler>
  auto async_write_some(const ConstBuffers& b, Handler&& h) {
    return s.async_send(b, MSG_NOSIGNAL, std::forward<Handler>(h));
  }
};

// One fd's Asio I/O object. Wraps, never owns: release() gives the fd back
// without closing it (the scenario or a close op closes it).
struct fd_wrapper {
  enum class kind : uint8_t { none, socket, acceptor, descriptor, file };

  explicit fd_wrapper(net::io_context& ctx) : sock(ctx), acc(ctx), desc(ctx)
#if RINGSIDE_ASIO_IO_URING
                                              , file(ctx)
#endif
  {}
  fd_wrapper(const fd_wrapper&) = delete;
  fd_wrapper& operator=(const fd_wrapper&) = delete;
  ~fd_wrapper() { release(); }

  void release() noexcept {
    error_code ec;
    switch (k) {
      case kind::socket: (void)sock.release(ec); break;
      case kind::acceptor: (void)acc.release(ec); break;
      case kind::descriptor: (void)desc.release(); break;
      case kind::file:
#if RINGSIDE_ASIO_IO_URING
        (void)file.release(ec);
#endif
        break;
      case kind::none: break;
    }
    k = kind::none;
  }
  // Every pending op on the object ends (operation_aborted, or on io_uring
  // the in-kernel one at its CQE).
  void cancel() noexcept {
    error_code ec;
    switch (k) {
      case kind::socket: sock.cancel(ec); break;
      case kind::acceptor: acc.cancel(ec); break;
      case kind::descriptor: desc.cancel(ec); break;
      case kind::file:
#if RINGSIDE_ASIO_IO_URING
        file.cancel(ec);
#endif
        break;
      case kind::none: break;
    }
  }

  int fd = -1;
  kind k = kind::none;
  bool is_socket = false;   // fstat at adopt: S_ISSOCK
  bool is_regular = false;  // S_ISREG
  int stat_err = 0;         // fstat's -errno (-EBADF: not an open fd)
  int family = AF_UNSPEC;
  int protocol = 0;
  uint32_t pending = 0;           // ops issued on it whose handlers have not run
  bool closing = false;           // a close op waits for `pending` to reach 0
  uint32_t close_slot = no_slot;  // that close op
  generic_proto::socket sock;
  net::basic_socket_acceptor<generic_proto> acc;
  net::posix::stream_descriptor desc;
#if RINGSIDE_ASIO_IO_URING
  net::random_access_file file;
#endif
  nosignal_stream ns{sock};  // async_write keeps a reference to its stream
};

// One op. Slots never move (a deque): the cancellation signal's address is
// held by Asio while the op is pending.
struct op_slot {
  op o;
  op_waiter* waiter = nullptr;  // null once dropped
  net::cancellation_signal sig;
  fd_wrapper* wrap = nullptr;   // the object the op was issued on
  int32_t res = 0;
  uint32_t gen = 1;  // 0 is never used, so no id is ever 0
  uint32_t next_free = no_slot;
  slot_state state = slot_state::free;
  bool cancel_requested = false;
  bool deadline_armed = false;
  bool deadline_first = false;  // timeout op: its deadline comes before its timeout
  bool io_counted = false;      // reactor: its speculative try was counted at issue_wait
  uint64_t issued_wait = 0;     // the loop's wait count when the op was issued
  // recv_multishot: the group's buffers by id, the group, the next to use.
  std::vector<buffer> provided;
  buffer_group* group = nullptr;
  uint32_t next_bid = 0;
};

class asio_backend;

// The completion handler of every op: the slot and its generation, the
// recycling allocator, and (through bind_cancellation_slot at the call site)
// the slot's cancellation slot.
struct op_handler {
  asio_backend* be;
  uint32_t slot;
  uint32_t gen;
  using allocator_type = recycling_allocator<void>;
  [[nodiscard]] allocator_type get_allocator() const noexcept;
  void operator()(const error_code& ec, size_t n) const noexcept;
  void operator()(const error_code& ec) const noexcept { (*this)(ec, 0); }
  void operator()() const noexcept { (*this)(error_code(), 0); }
  void operator()(const error_code& ec, generic_proto::socket peer) const noexcept;
};

// The loop's wake-up timer (see asio_backend::wait_one).
struct wake_handler {
  asio_backend* be;
  using allocator_type = recycling_allocator<void>;
  [[nodiscard]] allocator_type get_allocator() const noexcept;
  void operator()(const error_code& ec) const noexcept;
};

// A deferred cancellation request (see asio_backend::request_emit).
struct emit_handler {
  asio_backend* be;
  uint32_t slot;
  uint32_t gen;
  net::cancellation_type type;
  using allocator_type = recycling_allocator<void>;
  [[nodiscard]] allocator_type get_allocator() const noexcept;
  void operator()() const noexcept;
};

// A deadline's timer: emits terminal on the op's signal if it is still pending.
struct deadline_handler {
  asio_backend* be;
  uint32_t slot;
  uint32_t gen;
  using allocator_type = recycling_allocator<void>;
  [[nodiscard]] allocator_type get_allocator() const noexcept;
  void operator()(const error_code& ec) const noexcept;
};

class asio_backend final : public backend {
 public:
  // Concurrency hint 1: one thread runs the context (Asio then skips
  // cross-thread wake-ups). The work guard keeps poll()/run_one() from
  // stopping the context whenever no op happens to be pending.
  asio_backend() : ctx_(1), work_(net::make_work_guard(ctx_)) {
    // Asio creates its services (and their descriptors: the reactor's epoll
    // fd, eventfd and timerfd; the io_uring ring) at the first I/O object.
    // Do it now, at setup: later, they would take descriptor numbers a
    // scenario has just closed, under the scenario's feet.
    spare_.push_back(std::make_unique<fd_wrapper>(ctx_));
    net::steady_timer warm(ctx_);
  }
  asio_backend(const asio_backend&) = delete;
  asio_backend& operator=(const asio_backend&) = delete;
  ~asio_backend() override { shutdown(); }

  [[nodiscard]] std::string_view name() const noexcept override { return RINGSIDE_ASIO_NAME; }
  [[nodiscard]] const backend_caps& caps() const noexcept override { return caps_; }

  void collect_violations(std::vector<violation>& out) override { tasks_.take_violations(out); }

  // The reactor flavour makes the fd non-blocking (as Asio's reactor would
  // at its first op); the io_uring flavour makes it blocking, so the kernel
  // runs each op to completion (a non-blocking socket would send Asio's
  // io_uring ops down its poll-then-syscall path instead).
  void adopt(int fd) override {
    if (fd < 0) throw std::system_error(EBADF, std::generic_category(), "asio: adopt");
    meters::count_syscall();
    const int fl = ::fcntl(fd, F_GETFL);
    if (fl < 0) throw std::system_error(errno, std::generic_category(), "asio: fcntl(F_GETFL)");
    const int want = RINGSIDE_ASIO_IO_URING ? (fl & ~O_NONBLOCK) : (fl | O_NONBLOCK);
    if (want != fl) {
      meters::count_syscall();
      if (::fcntl(fd, F_SETFL, want) < 0)
        throw std::system_error(errno, std::generic_category(), "asio: fcntl(F_SETFL)");
    }
    if (!fresh_wrapper(fd)) throw std::system_error(ENOMEM, std::generic_category(), "asio: adopt");
  }

  void spawn(task<> t) override { tasks_.spawn(std::move(t)); }

  int run(clock_type::time_point deadline) override {
    for (;;) {
      tasks_.start_queued();
      if (tasks_.live() == 0) return 0;
      const auto now = clock_type::now();
      if (now >= deadline) return -ETIME;
      // At most handler_batch handlers per pass: one poll() can run for as
      // long as completions keep coming (a whole benchmark), and tasks
      // spawned meanwhile must start and the deadline be checked.
      size_t n = 0;
      while (n < handler_batch && ctx_.poll_one() != 0) ++n;
      if (n != 0 || tasks_.has_queued()) continue;
      wait_one(std::min(deadline, now + max_wait));
    }
  }

  // Runs one handler, or returns when `until` passes. Never through
  // io_context::run_one_until/run_one_for: in Boost 1.81 (Asio 1.26) a wait
  // with a timeout makes io_uring_service::run() put a timeout SQE whose
  // user_data is a STACK variable into the ring; when its CQE outlives the
  // call (its IORING_OP_TIMEOUT_REMOVE is not always reaped in the same
  // call), a later run() takes the stale address for an io_queue and calls
  // through garbage (chriskohlhoff/asio#1284, fixed in Asio 1.27): the
  // cancel.storm safety scenario crashed asio-uring that way. A steady_timer
  // (the service's own timer queue) wakes the untimed run_one() instead.
  void wait_one(clock_type::time_point until) {
    if (!wake_armed_ || until < wake_at_) {
      wake_.expires_at(until);  // cancels an armed wait (its handler only clears the flag)
      wake_.async_wait(wake_handler{this});
      wake_armed_ = true;
      wake_at_ = until;
    }
    meters::count_syscall();  // epoll_wait | io_uring_enter(GETEVENTS), when nothing is ready yet
    ++waits_;
    ctx_.run_one();
  }

  // ---- the syscall estimate (see the top) ----
  // An Asio op was issued in slot i.
  void count_issue(uint32_t i) noexcept {
    // Reactor: its speculative try; io_uring: its share of a submit.
    meters::count_syscall();
    slots_[i].issued_wait = waits_;
    slots_[i].io_counted = !RINGSIDE_ASIO_IO_URING;
  }
  // Slot i's Asio op completed.
  void count_completion(uint32_t i) noexcept {
#if RINGSIDE_ASIO_IO_URING
    (void)i;
#else
    // A wait came between issue and completion: the speculative try said
    // EAGAIN and the reactor performed the op again after readiness.
    if (slots_[i].io_counted && slots_[i].issued_wait != waits_) meters::count_syscall();
    slots_[i].io_counted = false;
#endif
  }

  void on_wake(const error_code& ec) noexcept {
    if (!ec) wake_armed_ = false;
  }

  void shutdown() noexcept override {
    if (shut_down_) return;
    shut_down_ = true;  // from now on submit() completes -ECANCELED at once
    tasks_.destroy_live();  // their op awaiters drop() (and so cancel) their ops
    for (auto& s : slots_)
      if (s.state == slot_state::pending) s.sig.emit(net::cancellation_type::terminal);
    for (auto& w : fds_)
      if (w) w->cancel();
    const auto until = clock_type::now() + teardown_budget;
    while (pending_ > 0 && clock_type::now() < until) {
      try {
        if (ctx_.poll() == 0) wait_one(std::min(until, clock_type::now() + std::chrono::milliseconds(10)));
      } catch (...) {
      }
    }
    try {
      ctx_.poll();  // timer handlers of finished deadlines
    } catch (...) {
    }
    for (auto& w : fds_)
      if (w) w->release();
    for (auto& w : closing_) w->release();
  }

  op_id submit(op&& o, op_waiter* w) noexcept override {
    if (shut_down_) {
      return end_unstarted(w, -ECANCELED, std::move(o.buf));
    }
    const uint32_t i = claim();
    if (i == no_slot) {
      return end_unstarted(w, -ENOMEM, std::move(o.buf));
    }
    op_slot& s = slots_[i];
    s.o = std::move(o);
    s.waiter = w;
    s.state = slot_state::starting;
    const op_id id = op_id::make(i, s.gen);
    w->on_started(id);
    start_op(i);
    return id;
  }

  int cancel(op_id id) noexcept override {
    const uint32_t i = live_slot(id);
    if (i == no_slot) return -ENOENT;
    op_slot& s = slots_[i];
    switch (s.state) {
      case slot_state::starting:
        s.cancel_requested = true;
        return 0;
      case slot_state::pending:
        if (!s.cancel_requested) {
          s.cancel_requested = true;
          request_emit(i, net::cancellation_type::partial);
        }
        return 0;
      case slot_state::ready:
      case slot_state::free:
        return -ENOENT;
    }
    return -ENOENT;
  }

  // The slot (and buffer) stay until the op's handler runs: the kernel may
  // hold the buffer (io_uring). The op is cancelled, its result discarded.
  void drop(op_id id) noexcept override {
    const uint32_t i = live_slot(id);
    if (i == no_slot) return;
    op_slot& s = slots_[i];
    s.waiter = nullptr;
    if (s.state == slot_state::pending && !s.cancel_requested) {
      s.cancel_requested = true;
      request_emit(i, net::cancellation_type::terminal);
    } else if (s.state == slot_state::starting) {
      s.cancel_requested = true;
    }
  }

  // ---- called by the handlers ----
  handler_memory& memory() noexcept { return memory_; }

  void on_handler(uint32_t i, uint32_t gen, const error_code& ec, size_t n) noexcept {
    if (i >= slots_.size()) return;
    op_slot& s = slots_[i];
    if (s.gen != gen || s.state == slot_state::free) return;
    if (s.state == slot_state::ready) return finish(i);
    count_completion(i);
    if (s.o.kind == op_kind::recv_multishot) return on_multishot(i, ec, n);
    int32_t res = result_of(s, ec, n);
    if (s.o.kind == op_kind::timeout && !ec) res = s.deadline_first ? -ECANCELED : 0;
    count_kernel_copy(s.o.kind == op_kind::send_zc ? op_kind::send : s.o.kind, res);
    s.res = res;
    finish(i);
  }

  void on_accepted(uint32_t i, uint32_t gen, const error_code& ec, generic_proto::socket& peer) noexcept {
    if (i >= slots_.size()) return;
    op_slot& s = slots_[i];
    if (s.gen != gen || s.state != slot_state::pending) return;
    count_completion(i);
    int32_t res = result_of(s, ec, 0);
    if (!ec) {
      error_code rec;
      const int fd = peer.release(rec);
      res = rec ? -(rec.value() != 0 ? rec.value() : EIO) : fd;
      // Adopted by the backend: a fresh wrapper for the number. Its mode is
      // the one Asio gave it (the reactor sets non-blocking at its first op;
      // io_uring's accept leaves it blocking), so no fcntl per connection.
      if (res >= 0 && !fresh_wrapper(res)) {
        meters::count_syscall();
        ::close(res);
        res = -ENOMEM;
      }
    }
    s.res = res;
    finish(i);
  }

  void on_emit(uint32_t i, uint32_t gen, net::cancellation_type type) noexcept {
    if (i >= slots_.size()) return;
    op_slot& s = slots_[i];
    if (s.gen != gen || s.state != slot_state::pending) return;  // it ended first
    s.sig.emit(type);
  }

  void on_deadline(uint32_t i, uint32_t gen, const error_code& ec) noexcept {
    if (ec || i >= slots_.size()) return;  // aborted: the op ended first
    op_slot& s = slots_[i];
    if (s.gen != gen || s.state != slot_state::pending) return;
    s.deadline_armed = false;
    s.sig.emit(net::cancellation_type::terminal);
  }

 private:
  // ---- slots ----
  uint32_t claim() noexcept {
    if (free_head_ != no_slot) {
      const uint32_t i = free_head_;
      free_head_ = slots_[i].next_free;
      return i;
    }
    try {
      slots_.emplace_back();
      timers_.emplace_back(ctx_);
    } catch (...) {
      if (timers_.size() < slots_.size()) slots_.pop_back();
      return no_slot;
    }
    return static_cast<uint32_t>(slots_.size() - 1);
  }

  void release_slot(uint32_t i) noexcept {
    op_slot& s = slots_[i];
    s.o = op{};  // gives the buffer back to its pool
    s.waiter = nullptr;
    s.wrap = nullptr;
    s.state = slot_state::free;
    s.cancel_requested = false;
    s.deadline_first = false;
    s.io_counted = false;
    for (auto& b : s.provided) b.reset();
    s.provided.clear();
    s.group = nullptr;
    s.next_bid = 0;
    if (++s.gen == 0) s.gen = 1;
    s.next_free = free_head_;
    free_head_ = i;
  }

  [[nodiscard]] uint32_t live_slot(op_id id) const noexcept {
    const uint32_t i = id.slot();
    if (i >= slots_.size()) return no_slot;
    const op_slot& s = slots_[i];
    return (s.gen == id.gen() && s.state != slot_state::free) ? i : no_slot;
  }

  // cancel() and drop() emit from the loop, not inline: (1) completions the
  // loop already knows (the reactor queues a ready descriptor and performs
  // its ops only when that queue entry runs) go first, so a cancel that
  // loses the race never eats the result (dropped accept: the connection is
  // accepted and closed, not left in the backlog); (2) Asio's io_uring
  // cancel flushes the ring's queued SQEs with a synchronous io_uring_enter,
  // which runs a queued page-cache read inline: cancel() would wait for the
  // very read it cancels.
  void request_emit(uint32_t i, net::cancellation_type type) noexcept {
    try {
      net::post(ctx_, emit_handler{this, i, slots_[i].gen, type});
    } catch (...) {
      slots_[i].sig.emit(type);  // no memory for the request: emit now (still no waiter call)
    }
  }

  [[nodiscard]] op_handler handler(uint32_t i) noexcept { return op_handler{this, i, slots_[i].gen}; }
  [[nodiscard]] auto bound(uint32_t i) noexcept {
    return net::bind_cancellation_slot(slots_[i].sig.slot(), handler(i));
  }

  // ---- results ----
  static int32_t result_of(const op_slot& s, const error_code& ec, size_t n) noexcept {
    if (!ec) return static_cast<int32_t>(n);
    if (ec == net::error::eof) return static_cast<int32_t>(n);  // 0 at EOF
    // A partial transfer is reported exactly (a cancelled async_write).
    if (n > 0) return static_cast<int32_t>(n);
    if (ec == net::error::operation_aborted) return -ECANCELED;
    (void)s;
    if (ec.category() == boost::system::system_category() || ec.category() == boost::system::generic_category())
      return ec.value() > 0 ? -ec.value() : -EIO;
    return -EIO;
  }

  // The op ended: its handler ran (or its result was known and posted).
  void finish(uint32_t i) noexcept {
    op_slot& s = slots_[i];
    if (s.deadline_armed) {
      s.deadline_armed = false;
      timers_[i].cancel();
    }
    fd_wrapper* w = s.wrap;
    s.wrap = nullptr;
    if (s.state == slot_state::pending) --pending_;
    deliver(i);
    if (w != nullptr) op_left(w);
  }

  // Hands the result to the waiter; the slot is free (its id stale) first,
  // so the waiter may submit or cancel freely.
  void deliver(uint32_t i) noexcept {
    op_slot& s = slots_[i];
    op_waiter* w = s.waiter;
    const op_kind kind = s.o.kind;
    if (kind == op_kind::recv_multishot) return_unused(s.provided, w != nullptr ? s.group : nullptr);
    completion c{s.res, 0, std::move(s.o.buf)};
    release_slot(i);
    if (w != nullptr) w->on_complete(std::move(c));
    else discard_result(kind, c.res);
  }

  // A result known without an Asio op: delivered from the loop (posted), so
  // a stream of them cannot starve the others.
  void post_result(uint32_t i, int32_t res) noexcept {
    op_slot& s = slots_[i];
    s.res = res;
    s.state = slot_state::ready;
    try {
      net::post(ctx_, handler(i));
    } catch (...) {
      finish(i);  // inline: allowed (only submit() gets here)
    }
  }

  // ---- fd wrappers ----
  // A new (clean) wrapper for fd; one still in use by pending ops or a close
  // is kept until they end (it names a file that is gone or the number was
  // reused: its ops are cancelled, never moved to the new file).
  bool fresh_wrapper(int fd) noexcept {
    try {
      if (size_t(fd) >= fds_.size()) fds_.resize(size_t(fd) + 1);
      if (auto& old = fds_[size_t(fd)]) {
        if (old->pending == 0) {
          old->release();
        } else {
          // Its ops are cancelled; it is released when the last one's handler ran.
          old->closing = true;
          old->close_slot = no_slot;
          old->cancel();
          closing_.push_back(std::move(old));
          spare_.reserve(spare_.size() + closing_.size());
        }
      }
      auto& w = fds_[size_t(fd)];
      if (!w) {
        if (!spare_.empty()) {
          w = std::move(spare_.back());
          spare_.pop_back();
        } else {
          w = std::make_unique<fd_wrapper>(ctx_);
        }
      }
      w->fd = fd;
      w->k = fd_wrapper::kind::none;
      w->pending = 0;
      w->closing = false;
      w->close_slot = no_slot;
      struct stat st {};
      meters::count_syscall();
      w->stat_err = ::fstat(fd, &st) == 0 ? 0 : -errno;
      w->is_socket = w->stat_err == 0 && S_ISSOCK(st.st_mode);
      w->is_regular = w->stat_err == 0 && S_ISREG(st.st_mode);
      w->family = AF_UNSPEC;
      w->protocol = 0;
      if (w->is_socket) {
        socklen_t len = sizeof(int);
        (void)sys::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &w->family, &len);
        len = sizeof(int);
        (void)sys::getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &w->protocol, &len);
      }
      return true;
    } catch (...) {
      return false;
    }
  }

  // The wrapper of fd as an Asio object of kind k, or null (-errno in err).
  fd_wrapper* wrapper(int fd, fd_wrapper::kind k, int32_t& err) noexcept {
    if (fd < 0) {
      err = -EBADF;
      return nullptr;
    }
    if (size_t(fd) >= fds_.size() || !fds_[size_t(fd)]) {
      // Not adopted (an fd the backend never saw): adopt it as it is.
      if (!fresh_wrapper(fd)) {
        err = -ENOMEM;
        return nullptr;
      }
    }
    fd_wrapper* w = fds_[size_t(fd)].get();
    if (w->k == k) return w;
    if (w->stat_err != 0 && w->k == fd_wrapper::kind::none) {
      // Closed since (or never open): look again, it may be open now.
      if (!fresh_wrapper(fd)) {
        err = -ENOMEM;
        return nullptr;
      }
      w = fds_[size_t(fd)].get();
      if (w->stat_err != 0) {
        err = w->stat_err;
        return nullptr;
      }
    }
    if (w->k != fd_wrapper::kind::none) {
      if (w->pending != 0) {
        err = -EBUSY;  // one fd used as two kinds of object at once
        return nullptr;
      }
      w->release();
    }
    error_code ec;
    switch (k) {
      case fd_wrapper::kind::socket:
        w->sock.assign(generic_proto(w->family, w->protocol), fd, ec);
        break;
      case fd_wrapper::kind::acceptor:
        w->acc.assign(generic_proto(w->family, w->protocol), fd, ec);
        break;
      case fd_wrapper::kind::descriptor:
        w->desc.assign(fd, ec);
        break;
      case fd_wrapper::kind::file:
#if RINGSIDE_ASIO_IO_URING
        w->file.assign(fd, ec);
#else
        ec = net::error::operation_not_supported;
#endif
        break;
      case fd_wrapper::kind::none:
        break;
    }
    if (ec) {
      err = ec.value() > 0 ? -ec.value() : -EIO;
      return nullptr;
    }
    w->k = k;
    return w;
  }

  // An op issued on w ended. A close waiting for w's ops runs now.
  void op_left(fd_wrapper* w) noexcept {
    if (w->pending > 0) --w->pending;
    if (w->pending == 0 && w->closing) complete_close(w);
  }

  void complete_close(fd_wrapper* w) noexcept {
    const uint32_t ci = w->close_slot;
    const int fd = w->fd;
    w->release();
    w->closing = false;
    w->close_slot = no_slot;
    // Back to the spare pool (it is no longer anyone's fd).
    for (auto it = closing_.begin(); it != closing_.end(); ++it) {
      if (it->get() == w) {
        spare_.push_back(std::move(*it));  // reserved below: never throws past capacity
        closing_.erase(it);
        break;
      }
    }
    if (ci != no_slot) {
      op_slot& s = slots_[ci];
      s.res = sys::close(fd);
      if (s.res == -EINTR) s.res = 0;  // Linux frees the number anyway
      s.wrap = nullptr;
      finish(ci);
    }
  }

  // ---- ops ----
  void start_op(uint32_t i) noexcept {
    op_slot& s = slots_[i];
    op& o = s.o;
    if (s.cancel_requested) return post_result(i, -ECANCELED);
    if (const int32_t err = payload_error(o); err != 0) return post_result(i, err);
    if (o.submitter_exits) return post_result(i, -EOPNOTSUPP);  // the loop thread issues every op
    s.state = slot_state::pending;
    ++pending_;
    int32_t err = 0;
    try {
      err = issue(i);
    } catch (...) {
      err = -ENOMEM;
    }
    if (err != 0) {
      --pending_;
      s.wrap = nullptr;
      return post_result(i, err);
    }
    if (s.wrap != nullptr) ++s.wrap->pending;
    if (o.deadline_ns != 0 && o.kind != op_kind::timeout && s.state == slot_state::pending) arm_deadline(i);
  }

  void arm_deadline(uint32_t i) {
    op_slot& s = slots_[i];
    timers_[i].expires_after(std::chrono::nanoseconds(std::min<uint64_t>(s.o.deadline_ns, uint64_t(INT64_MAX) / 2)));
    timers_[i].async_wait(deadline_handler{this, i, s.gen});
    s.deadline_armed = true;
  }

  // Issues op i as one Asio operation: 0, or -errno (nothing issued).
  int32_t issue(uint32_t i) {
    op_slot& s = slots_[i];
    op& o = s.o;
    int32_t err = 0;
    switch (o.kind) {
      case op_kind::nop:  // posted: no cancellation, its result is known
        --pending_;
        post_result(i, 0);
        return 0;
      case op_kind::timeout: {
        uint64_t ns = o.timeout_ns;
        if (o.deadline_ns != 0 && o.deadline_ns < ns) {
          ns = o.deadline_ns;
          s.deadline_first = true;
        }
        count_issue(i);  // reactor: timerfd_settime; io_uring: the ring's timeout SQE
        timers_[i].expires_after(std::chrono::nanoseconds(std::min<uint64_t>(ns, uint64_t(INT64_MAX) / 2)));
        timers_[i].async_wait(bound(i));
        return 0;
      }
      case op_kind::close:
        return start_close(i);
      case op_kind::fsync: {
#if RINGSIDE_ASIO_IO_URING
        fd_wrapper* w = wrapper(o.fd, fd_wrapper::kind::file, err);
        if (w == nullptr) return err;
        error_code ec;
        meters::count_syscall();
        w->file.sync_all(ec);  // synchronous in Asio: fsync(2) here
        --pending_;
        post_result(i, ec ? -ec.value() : 0);
        return 0;
#else
        return -EOPNOTSUPP;  // no Asio file object on the reactor (see the top)
#endif
      }
      case op_kind::accept: {
        fd_wrapper* w = wrapper(o.fd, fd_wrapper::kind::acceptor, err);
        if (w == nullptr) return err;
        s.wrap = w;
        count_issue(i);
        w->acc.async_accept(bound(i));
        return 0;
      }
      case op_kind::connect: {
        if (o.addr == nullptr) return -EINVAL;
        fd_wrapper* w = wrapper(o.fd, fd_wrapper::kind::socket, err);
        if (w == nullptr) return err;
        s.wrap = w;
        count_issue(i);
        w->sock.async_connect(generic_proto::endpoint(o.addr, o.addrlen, w->protocol), bound(i));
        return 0;
      }
      case op_kind::recv_multishot: {
        if (o.group == nullptr) return -EINVAL;
        fd_wrapper* w = wrapper(o.fd, fd_wrapper::kind::socket, err);
        if (w == nullptr) return err;
        s.wrap = w;
        s.group = o.group;
        s.group->swap_buffers(s.provided);
        return receive_next(i);
      }
      case op_kind::read:
      case op_kind::write:
      case op_kind::recv:
      case op_kind::send:
      case op_kind::send_zc:
        return issue_payload(i);
    }
    return -EINVAL;
  }

  int32_t issue_payload(uint32_t i) {
    op_slot& s = slots_[i];
    op& o = s.o;
    int32_t err = 0;
    const auto p = payload(o);
    const bool out = o.kind == op_kind::write || o.kind == op_kind::send || o.kind == op_kind::send_zc;
    const bool positioned = (o.kind == op_kind::read || o.kind == op_kind::write) && o.offset != ~uint64_t{0};
    fd_wrapper* probe = wrapper_info(o.fd);
    if (probe == nullptr) return -EBADF;
    if (probe->stat_err != 0 && probe->k == fd_wrapper::kind::none) {
      if (!fresh_wrapper(o.fd)) return -ENOMEM;
      probe = fds_[size_t(o.fd)].get();
      if (probe->stat_err != 0) return probe->stat_err;
    }
    count_issue(i);
    if (probe->is_socket) {
      fd_wrapper* w = wrapper(o.fd, fd_wrapper::kind::socket, err);
      if (w == nullptr) return err;
      s.wrap = w;
      if (!out) {
        w->sock.async_receive(net::buffer(p.data(), p.size()), 0, bound(i));
      } else if (o.wait_all) {
        net::async_write(w->ns, net::buffer(p.data(), p.size()), bound(i));
      } else {
        w->sock.async_send(net::buffer(p.data(), p.size()), MSG_NOSIGNAL, bound(i));
      }
      return 0;
    }
    if (probe->is_regular && positioned) {
#if RINGSIDE_ASIO_IO_URING
      fd_wrapper* w = wrapper(o.fd, fd_wrapper::kind::file, err);
      if (w == nullptr) return err;
      s.wrap = w;
      if (out) w->file.async_write_some_at(o.offset, net::buffer(p.data(), p.size()), bound(i));
      else w->file.async_read_some_at(o.offset, net::buffer(p.data(), p.size()), bound(i));
      return 0;
#else
      return -EOPNOTSUPP;  // no faithful Asio file path on the reactor (see the top)
#endif
    }
    if (positioned) return -ESPIPE;  // an offset on a pipe
    fd_wrapper* w = wrapper(o.fd, fd_wrapper::kind::descriptor, err);
    if (w == nullptr) return err;
    s.wrap = w;
    if (out) {
      if (o.wait_all) net::async_write(w->desc, net::buffer(p.data(), p.size()), bound(i));
      else w->desc.async_write_some(net::buffer(p.data(), p.size()), bound(i));
    } else {
      w->desc.async_read_some(net::buffer(p.data(), p.size()), bound(i));
    }
    return 0;
  }

  fd_wrapper* wrapper_info(int fd) noexcept {
    if (fd < 0) return nullptr;
    if (size_t(fd) >= fds_.size() || !fds_[size_t(fd)]) {
      if (!fresh_wrapper(fd)) return nullptr;
    }
    return fds_[size_t(fd)].get();
  }

  // close: the fd's pending ops are cancelled and their handlers run before
  // the number is closed (so none can outlive it or land on a reused number).
  int32_t start_close(uint32_t i) {
    op_slot& s = slots_[i];
    const int fd = s.o.fd;
    if (fd < 0) return -EBADF;
    std::unique_ptr<fd_wrapper> w;
    if (size_t(fd) < fds_.size()) w = std::move(fds_[size_t(fd)]);
    if (!w || w->pending == 0) {
      if (w) {
        w->release();
        spare_.push_back(std::move(w));
      }
      int32_t r = sys::close(fd);
      if (r == -EINTR) r = 0;
      --pending_;
      post_result(i, r);
      return 0;
    }
    w->closing = true;
    w->close_slot = i;
    w->cancel();
    closing_.push_back(std::move(w));
    spare_.reserve(spare_.size() + closing_.size());  // complete_close moves it there without throwing
    return 0;  // pending: complete_close finishes it
  }

  // ---- recv_multishot, emulated ----
  int32_t receive_next(uint32_t i) {
    op_slot& s = slots_[i];
    if (s.next_bid >= s.provided.size()) {
      --pending_;
      post_result(i, -ENOBUFS);
      return 0;
    }
    buffer& b = s.provided[s.next_bid];
    const size_t len = std::min<size_t>(b.capacity(), s.o.len != 0 ? s.o.len : b.capacity());
    count_issue(i);
    s.wrap->sock.async_receive(net::buffer(b.data(), len), 0, bound(i));
    return 0;
  }

  void on_multishot(uint32_t i, const error_code& ec, size_t n) noexcept {
    op_slot& s = slots_[i];
    const int32_t res = result_of(s, ec, n);
    if (res <= 0) {
      s.res = res;
      return finish(i);
    }
    count_kernel_copy(op_kind::recv, res);
    buffer b = std::move(s.provided[s.next_bid]);
    ++s.next_bid;
    const uint32_t gen = s.gen;
    if (s.waiter != nullptr) s.waiter->on_more(completion{res, 0, std::move(b)});
    // on_more may have cancelled or dropped it (the slot is still this op's).
    op_slot& t = slots_[i];
    if (t.gen != gen) return;
    if (t.cancel_requested) {
      t.res = -ECANCELED;
      return finish(i);
    }
    int32_t err = 0;
    try {
      if (t.next_bid >= t.provided.size()) {
        t.res = -ENOBUFS;
        return finish(i);
      }
      err = receive_next(i);
    } catch (...) {
      err = -ENOMEM;
    }
    if (err != 0) {
      t.res = err;
      finish(i);
    }
  }

  backend_caps caps_{.contract = buffer_contract::owned,
                     .thread_per_stream = false,
                     .file_io = RINGSIDE_ASIO_IO_URING != 0,
                     .async_file_io = RINGSIDE_ASIO_IO_URING != 0,
                     .cancel_in_flight = true,
                     // A regular-file read on io_uring runs to completion once issued.
                     .cancel_file_io = false,
                     .holds_buffer_until_completion = true,
                     .fixed_buffers = false,
                     .zero_copy_send = false};

  // Declaration order is destruction order, reversed: handler memory
  // outlives the io_context (its destructor frees abandoned ops through
  // it), and so do the slots (their cancellation signals are referenced by
  // pending ops); timers and fd wrappers are Asio I/O objects and go first.
  handler_memory memory_;
  std::deque<op_slot> slots_;
  uint32_t free_head_ = no_slot;
  size_t pending_ = 0;  // slots in state pending
  net::io_context ctx_;
  net::executor_work_guard<net::io_context::executor_type> work_;
  net::steady_timer wake_{ctx_};  // ends an idle run_one() (see wait_one)
  clock_type::time_point wake_at_{};
  bool wake_armed_ = false;
  uint64_t waits_ = 0;         // blocking loop waits so far (syscall estimate)
  std::deque<net::steady_timer> timers_;  // one per slot: its timeout or deadline
  std::vector<std::unique_ptr<fd_wrapper>> fds_;      // by fd number
  std::vector<std::unique_ptr<fd_wrapper>> closing_;  // waiting for their ops before release
  std::vector<std::unique_ptr<fd_wrapper>> spare_;    // released, reusable
  bool shut_down_ = false;
  task_set tasks_;
};

inline op_handler::allocator_type op_handler::get_allocator() const noexcept {
  return allocator_type(&be->memory());
}
inline void op_handler::operator()(const error_code& ec, size_t n) const noexcept { be->on_handler(slot, gen, ec, n); }
inline void op_handler::operator()(const error_code& ec, generic_proto::socket peer) const noexcept {
  be->on_accepted(slot, gen, ec, peer);
}
inline deadline_handler::allocator_type deadline_handler::get_allocator() const noexcept {
  return allocator_type(&be->memory());
}
inline wake_handler::allocator_type wake_handler::get_allocator() const noexcept {
  return allocator_type(&be->memory());
}
inline void wake_handler::operator()(const error_code& ec) const noexcept { be->on_wake(ec); }
inline emit_handler::allocator_type emit_handler::get_allocator() const noexcept {
  return allocator_type(&be->memory());
}
inline void emit_handler::operator()() const noexcept { be->on_emit(slot, gen, type); }
inline void deadline_handler::operator()(const error_code& ec) const noexcept { be->on_deadline(slot, gen, ec); }

}  // namespace
}  // namespace ringside
