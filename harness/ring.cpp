#include "harness/ring.hpp"

#include <sys/resource.h>

#include <fmt/format.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <system_error>
#include <vector>

namespace ringside {

namespace {

// io_uring_queue_init_params with its syscalls counted: io_uring_setup, then
// one mmap for SQ+CQ rings (IORING_FEAT_SINGLE_MMAP) or two, plus one for the
// SQE array.
int counted_queue_init(unsigned entries, io_uring& r, io_uring_params& p) noexcept {
  const int ret = io_uring_queue_init_params(entries, &r, &p);
  meters::count_syscall(1);
  if (ret == 0) meters::count_syscall((p.features & IORING_FEAT_SINGLE_MMAP) != 0 ? 2 : 3);
  return ret;
}

// io_uring_queue_exit with its syscalls counted: munmap of the SQE array and
// of the ring(s), then close of the ring fd.
void counted_queue_exit(io_uring& r) noexcept {
  const bool single_mmap = (r.features & IORING_FEAT_SINGLE_MMAP) != 0;
  io_uring_queue_exit(&r);
  meters::count_syscall(single_mmap ? 3 : 4);
}

// Opcodes the io_uring backends issue; a kernel without one cannot run them.
struct needed_op {
  int op;
  const char* name;
};
constexpr needed_op needed_ops[] = {
    {IORING_OP_NOP, "IORING_OP_NOP"},           {IORING_OP_READ, "IORING_OP_READ"},
    {IORING_OP_WRITE, "IORING_OP_WRITE"},       {IORING_OP_RECV, "IORING_OP_RECV"},
    {IORING_OP_SEND, "IORING_OP_SEND"},         {IORING_OP_ACCEPT, "IORING_OP_ACCEPT"},
    {IORING_OP_CONNECT, "IORING_OP_CONNECT"},   {IORING_OP_CLOSE, "IORING_OP_CLOSE"},
    {IORING_OP_FSYNC, "IORING_OP_FSYNC"},       {IORING_OP_TIMEOUT, "IORING_OP_TIMEOUT"},
    {IORING_OP_ASYNC_CANCEL, "IORING_OP_ASYNC_CANCEL"},
};

// "io_uring_setup: ENOSYS (Function not implemented)": the errno's name
// first, since ENOSYS (no io_uring in this kernel, or a seccomp filter) and
// EPERM (kernel.io_uring_disabled, a container profile) call for different
// fixes, and the name is what people search for. ENOMEM under a finite
// RLIMIT_MEMLOCK is almost always that limit (without CAP_IPC_LOCK the rings
// are charged to it), so the message says so and how to raise it.
std::string memlock_hint(int err) {
  rlimit rl{};
  if (err != ENOMEM || ::getrlimit(RLIMIT_MEMLOCK, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return {};
  return fmt::format("RLIMIT_MEMLOCK is {} bytes: raise it (ulimit -l, prlimit --memlock)", rl.rlim_cur);
}

std::string setup_failure(int err) {
  const char* name = ::strerrorname_np(err);
  std::string why = fmt::format("io_uring_setup: {} ({})", name != nullptr ? name : "?", std::strerror(err));
  if (const std::string hint = memlock_hint(err); !hint.empty()) why += "; " + hint;
  return why;
}

std::string probe() {
  io_uring r{};
  io_uring_params p{};
  // 8: the smallest ring worth probing with; nothing is submitted.
  if (int ret = counted_queue_init(8, r, p); ret < 0) return setup_failure(-ret);
  std::string why;
  if ((p.features & IORING_FEAT_EXT_ARG) == 0) why = "io_uring: kernel lacks IORING_FEAT_EXT_ARG (Linux 5.11+)";
  if (why.empty()) {
    io_uring_probe* pr = io_uring_get_probe_ring(&r);
    meters::count_syscall();  // IORING_REGISTER_PROBE
    if (pr == nullptr) {
      why = "io_uring: IORING_REGISTER_PROBE failed";
    } else {
      for (const auto& n : needed_ops)
        if (!io_uring_opcode_supported(pr, n.op)) {
          why = fmt::format("io_uring: kernel lacks {}", n.name);
          break;
        }
      io_uring_free_probe(pr);
    }
  }
  counted_queue_exit(r);
  return why;
}

}  // namespace

std::string uring_unavailable_reason() {
  static const std::string reason = probe();
  return reason;
}

ring::ring(const ring_options& o) {
  unsigned base = 0;
  if (o.cq_entries != 0) base |= IORING_SETUP_CQSIZE;
  if (o.sqpoll) base |= IORING_SETUP_SQPOLL;
  unsigned defer = o.single_issuer ? (IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN) : 0;
  // SQPOLL + DEFER_TASKRUN is -EINVAL: sqpoll wins, SINGLE_ISSUER stays.
  if (o.sqpoll) defer &= ~unsigned(IORING_SETUP_DEFER_TASKRUN);
  unsigned coop = o.coop_taskrun ? (IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG) : 0;
  // Older kernels reject flags they do not know with -EINVAL: drop the
  // optional ones, newest first, and keep the ring.
  const unsigned attempts[] = {base | defer | coop, base | defer, base | coop, base};
  int ret = -EINVAL;
  for (unsigned flags : attempts) {
    io_uring_params p{};
    p.flags = flags;
    p.cq_entries = o.cq_entries;
    p.sq_thread_idle = o.sqpoll_idle_ms;
    ret = counted_queue_init(o.entries, ring_, p);
    if (ret != -EINVAL) break;
  }
  if (ret < 0 && o.sqpoll) {
    const char* name = ::strerrorname_np(-ret);
    throw std::system_error(-ret, std::generic_category(),
                            fmt::format("io_uring_queue_init with IORING_SETUP_SQPOLL refused ({})",
                                        name != nullptr ? name : "?"));
  }
  if (ret < 0) {
    // A ring bigger than the probe's can still hit RLIMIT_MEMLOCK: say so.
    const std::string hint = memlock_hint(-ret);
    throw std::system_error(-ret, std::generic_category(),
                            hint.empty() ? "io_uring_queue_init" : "io_uring_queue_init (" + hint + ")");
  }
  open_ = true;
  if ((ring_.features & IORING_FEAT_EXT_ARG) == 0) {
    close();
    throw std::system_error(ENOSYS, std::generic_category(), "io_uring: IORING_FEAT_EXT_ARG (Linux 5.11+) needed");
  }
}

ring::~ring() { close(); }

void ring::close() noexcept {
  if (!open_) return;
  if (fixed_pool_ != nullptr) unregister_buffers();
  counted_queue_exit(ring_);
  open_ = false;
}

int ring::submit() noexcept {
  if (!open_ || io_uring_sq_ready(&ring_) == 0) return 0;
  if (inject_failure()) return -inject_err_;
  if ((ring_.flags & IORING_SETUP_SQPOLL) != 0) {
    // liburing 2.3 enters only to wake the SQ thread or to flush completions
    // (CQ overflow, TASKRUN flag): count what it will do.
    if ((IO_URING_READ_ONCE(*ring_.sq.kflags) & (IORING_SQ_NEED_WAKEUP | IORING_SQ_CQ_OVERFLOW | IORING_SQ_TASKRUN)) != 0)
      count_enter();
    return io_uring_submit(&ring_);
  }
  count_enter();
  return io_uring_submit(&ring_);
}

int ring::submit_and_wait(std::chrono::nanoseconds timeout) noexcept {
  if (!open_) return -EBADF;
  if (io_uring_cq_ready(&ring_) > 0) return submit();
  if (inject_failure()) return -inject_err_;
  if (timeout.count() < 0) timeout = {};
  __kernel_timespec ts{};
  ts.tv_sec = timeout.count() / 1'000'000'000;
  ts.tv_nsec = timeout.count() % 1'000'000'000;
  int ret;
  count_enter();
  if (io_uring_sq_ready(&ring_) > 0) {
    // Queued SQEs: liburing 2.3 enters exactly once here (it must submit, and
    // with a timeout it never loops back into the kernel).
    io_uring_cqe* cqe = nullptr;
    ret = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
  } else {
    // Nothing queued: enter ourselves. liburing would skip the enter if a CQE
    // were posted between our look at the CQ and its own, and the count would
    // be off by one.
    io_uring_getevents_arg arg{};
    arg.sigmask_sz = _NSIG / 8;
    arg.ts = reinterpret_cast<uint64_t>(&ts);
    ret = io_uring_enter2(unsigned(ring_.ring_fd), 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
                          reinterpret_cast<sigset_t*>(&arg), sizeof arg);
  }
  if (ret == -ETIME || ret == -EINTR) return 0;
  return ret;
}

int ring::submit_and_get_events() noexcept {
  if (!open_) return -EBADF;
  // liburing 2.3 enters exactly once here: getevents forces the enter even
  // with nothing queued, and without a wait it never loops.
  if (inject_failure()) return -inject_err_;
  count_enter();
  return io_uring_submit_and_get_events(&ring_);
}

int ring::register_buffers(const buffer_pool& pool) noexcept {
  if (!open_) return -EBADF;
  if (fixed_pool_ != nullptr) unregister_buffers();
  std::vector<iovec> iov;
  try {
    iov = pool.iovecs();
  } catch (...) {
    return -ENOMEM;
  }
  meters::count_syscall();
  const int ret = io_uring_register_buffers(&ring_, iov.data(), unsigned(iov.size()));
  if (ret == 0) fixed_pool_ = &pool;
  return ret;
}

void ring::unregister_buffers() noexcept {
  if (fixed_pool_ == nullptr || !open_) return;
  meters::count_syscall();
  io_uring_unregister_buffers(&ring_);
  fixed_pool_ = nullptr;
}

}  // namespace ringside
