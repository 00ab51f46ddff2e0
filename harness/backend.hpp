// The backend interface: every I/O model presents the same completion
// (proactor) shape, and owns its execution model (thread per stream, or one
// event loop). Scenarios are written once against it and never branch on a
// backend's name; what a backend cannot do is stated in its caps.
#pragma once

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "harness/buffer.hpp"
#include "harness/op.hpp"
#include "harness/task.hpp"
#include "harness/violation.hpp"

namespace ringside {

// Who may touch an op's buffer, and when.
enum class buffer_contract : uint8_t {
  borrowed_in_syscall,  // lent only for the duration of a syscall
  borrowed_unsound,     // lent to the kernel but returned on cancel/drop (uring-raw)
  owned,                // moved into the op, returned only with its final completion
  bounce,               // caller's span + internal owned buffer, one counted copy
};
std::string_view to_string(buffer_contract c) noexcept;

struct backend_caps {
  buffer_contract contract = buffer_contract::borrowed_in_syscall;
  bool thread_per_stream = false;       // each spawned task runs on its own thread
  bool file_io = true;                  // read/write/fsync on regular files
  bool async_file_io = false;           // file I/O overlaps (false: it runs inline)
  bool cancel_in_flight = true;         // a pending socket op can be cancelled
  bool cancel_file_io = false;          // an in-progress file read can be cancelled
  bool holds_buffer_until_completion = false;
  bool fixed_buffers = false;           // uses the pool as registered buffers
  bool zero_copy_send = false;
  // op.submitter_exits is honoured: the op is issued by a short-lived thread
  // that exits while it is pending (cancel.thread_exit). Elsewhere such an op
  // completes -EOPNOTSUPP.
  bool submitter_can_exit = false;
};

using clock_type = std::chrono::steady_clock;

// An op that ends inside submit() before it has an id (the backend is
// shutting down, no slot is free): its waiter still hears on_started first
// (with the null id: no slot names it), then its one completion, res with the
// buffer handed back. Returns the null id, submit()'s answer for such an op.
inline op_id end_unstarted(op_waiter* w, int32_t res, buffer b) noexcept {
  w->on_started({});
  w->on_complete(completion{res, 0, std::move(b)});
  return {};
}

class backend {
 public:
  virtual ~backend() = default;

  [[nodiscard]] virtual std::string_view name() const noexcept = 0;
  [[nodiscard]] virtual const backend_caps& caps() const noexcept = 0;

  // ---- setup (may throw std::system_error) ----
  // The pool whose buffers this run's ops carry. Called once, before spawn.
  virtual void attach_pool(buffer_pool& pool) { (void)pool; }
  // Every fd a scenario passes to ops goes through adopt() first, so the
  // backend can set the mode it needs (O_NONBLOCK for epoll, blocking for
  // threads). Fds returned by accept ops are adopted by the backend itself.
  virtual void adopt(int fd) = 0;

  // ---- execution ----
  // Starts a stream. May be called before run() or from a running task.
  virtual void spawn(task<> t) = 0;
  // Runs until every spawned task has finished. Returns 0, or -ETIME if the
  // deadline passed first (the watchdog's verdict: hang). After -ETIME the
  // backend has cancelled what it could; the caller must not run it again.
  virtual int run(clock_type::time_point deadline) = 0;

  // ---- ops (hot path: no exceptions, -errno results) ----
  // Takes the op; w->on_complete runs exactly once, either before submit()
  // returns (inline completion) or later from the backend's loop/thread —
  // never from inside cancel() or drop().
  virtual op_id submit(op&& o, op_waiter* w) noexcept = 0;
  // Asks for the op to end early. 0: requested (the op still completes once,
  // with -ECANCELED or its real result if it won the race); -ENOENT: no such
  // pending op (already completed, or a stale id).
  virtual int cancel(op_id id) noexcept = 0;
  // The waiter is gone (its coroutine frame was destroyed). The backend must
  // never call it again; what happens to the buffer is the contract.
  virtual void drop(op_id id) noexcept = 0;

  // Ends the backend's work: destroys task frames still alive (after a hang),
  // cancels what is in flight and drains every completion, bounded in time.
  // Idempotent; the destructor calls it too. The runner calls it before
  // collect_violations() so what teardown finds (a buffer released while the
  // kernel holds it, ops the kernel never gave back) reaches the verdict.
  virtual void shutdown() noexcept {}

  // ---- fault injection (safety scenarios: cancel.submit_fail) ----
  // The next `count` submissions fail transiently with err (EAGAIN or EBUSY,
  // as io_uring_enter reports them) the way this backend's own transient
  // failure shows, and must be retried until they succeed — the ops stay
  // alive, buffers and all, meanwhile: io_uring backends fail the next
  // `count` kernel submits without entering (the SQEs stay queued); epoll's
  // next `count` non-blocking tries say EAGAIN (the op waits for the loop);
  // blocking's next `count` syscalls say EINTR (and are restarted). Returns
  // 0 when armed, -EINVAL for another err, -ENOTSUP where the backend cannot
  // inject faithfully. Call from a task (the backend's loop or stream thread).
  virtual int inject_submit_failures(int err, uint32_t count) noexcept {
    (void)err;
    (void)count;
    return -ENOTSUP;
  }

  // ---- detectors built into the backend (the ring ledger) ----
  // Moves out what the backend's own detectors found since the last call.
  virtual void collect_violations(std::vector<violation>& out) { (void)out; }
};

// ---- registry by name ----
// io_uring features a run asks for (`--backend-opt`, harness/backend_opts.hpp
// parses and prints them). Only the io_uring backends (uring-raw, uring-owned,
// uring-bounce: everything built on uring_loop) honour them; others get the
// defaults. Trivially copyable on purpose (it crosses the plugin boundary
// inside backend_options).
struct uring_features {
  bool fixed_files = false;      // sparse registered file table, IOSQE_FIXED_FILE on every op's fd
  bool fixed_buffers = false;    // the pool as registered buffers: READ_FIXED / WRITE_FIXED / SEND_ZC fixed
  uint32_t batch = 0;            // 0: submit when the loop waits; N: also whenever N SQEs are queued, reap <= N CQEs a pass
  int8_t single_issuer = -1;     // -1: the default (on), 0: off, 1: on (SINGLE_ISSUER + DEFER_TASKRUN)
  bool sqpoll = false;           // IORING_SETUP_SQPOLL (wins over DEFER_TASKRUN, which the kernel refuses with it)
  uint32_t sqpoll_idle_ms = 0;   // sq_thread_idle; 0: the kernel's default (1 s)
  bool multishot = false;        // tcp receive paths: recv_multishot + provided buffer ring
  bool send_zc = false;          // send ops go out as IORING_OP_SEND_ZC (buffer back at the F_NOTIF CQE)
  uint32_t link_timeout_ms = 0;  // every op (but timeouts) carries a linked timeout of this many ms
  friend bool operator==(const uring_features&, const uring_features&) = default;
};

struct backend_options {
  uint32_t queue_depth = 64;   // ring/loop sizing hint
  uint32_t max_streams = 64;
  uring_features uring;        // --backend-opt (io_uring backends only)
};

struct backend_info {
  std::string name;
  std::string description;
  // Empty when usable here; otherwise why not (e.g. "io_uring_setup: ENOSYS").
  std::function<std::string()> unavailable_reason;
  std::function<std::unique_ptr<backend>(const backend_options&)> make;
};

void register_backend(backend_info info);
const std::vector<backend_info>& registered_backends();
const backend_info* find_backend(std::string_view name);

// Registers the built-in backends (called once by main and the tests).
void register_builtin_backends();

}  // namespace ringside
