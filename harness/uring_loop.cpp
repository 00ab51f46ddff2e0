#include "harness/uring_loop.hpp"

#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include "harness/perform.hpp"
#include "harness/sanitize.hpp"

namespace ringside {

namespace {

// Slot index reserved for the loop's own SQEs (cancels): never allocated, so
// their CQEs can never be confused with an op's.
constexpr uint32_t reserved_slot = ~0u;
// A cancel's user_data: the reserved slot, with its target's slot index where
// an op has its generation, so the cancel's CQE names its target (only the
// release-on-cancel-cqe fault uses that). Slot indices stay below
// reserved_slot - chunk_size, so the tag is never liburing's internal
// LIBURING_UDATA_TIMEOUT (all ones).
constexpr uint64_t cancel_tag(uint32_t target_slot) noexcept { return op_id::make(reserved_slot, target_slot).value; }
// An op's linked timeout carries the op's slot and generation with this bit
// set in the generation, so its CQE names the op (stale ones name none) and
// can never be taken for an op's own CQE: op generations stay below it.
constexpr uint32_t link_timeout_bit = 1u << 31;
constexpr uint32_t gen_mask = (1u << 30) - 1;  // op generations: 1 .. 2^30-1
// The ledger key of buffer `bid` provided to a multishot op: the op's slot,
// this bit and the buffer id in the generation (unique while the op lives).
constexpr uint32_t provided_bit = 1u << 30;
constexpr uint64_t provided_key(uint32_t slot_index, uint32_t bid) noexcept {
  return op_id::make(slot_index, provided_bit | bid).value;
}

// Not in liburing 2.3's headers (kernel 6.2+ ABI): SEND_ZC reports in its
// notification whether the kernel copied the payload after all.
#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#endif

// 60 s: the longest single sleep in the kernel when the deadline is far away
// or infinite; costs one wake-up a minute on an idle loop.
constexpr std::chrono::nanoseconds max_wait = std::chrono::seconds(60);
// 100 ms: teardown re-checks its budget at least this often.
constexpr std::chrono::nanoseconds teardown_poll = std::chrono::milliseconds(100);
// 16: while user work stays runnable (early completions, settled errors, new
// tasks) the loop does not wait, but it enters the kernel at least every 16
// passes, to submit what is queued and (GETEVENTS) have DEFER_TASKRUN post
// completions; rare enough to cost nothing, often enough that no op waits
// behind a busy stream for long.
constexpr uint32_t busy_enter_every = 16;
// 1 ms: the loop's longest wait while the exiting-submitter ring holds ops
// (its completions wake nobody: see submitter_exits in the header). Such ops
// exist only in the cancel.thread_exit safety scenario.
constexpr std::chrono::nanoseconds exiting_ring_poll = std::chrono::milliseconds(1);
// 64 SQEs: an exiting-submitter op and its cancel; the ring is submitted at
// once after each, so it never fills.
constexpr uint32_t exiting_ring_entries = 64;

// A buffer the kernel may still write into after teardown: never handed back
// to its pool, kept reachable (so leak checkers do not flag a deliberate
// leak) until the process ends.
void keep_forever(buffer b) noexcept {
  static std::mutex mu;
  static auto* kept = new std::vector<buffer>;
  std::lock_guard lk(mu);
  try {
    kept->push_back(std::move(b));
  } catch (...) {
    (void)new (std::nothrow) buffer(std::move(b));  // out of memory: leaked plainly
  }
}

uint32_t pow2_at_least(uint32_t n, uint32_t lo, uint32_t hi) {
  uint32_t e = lo;
  while (e < n && e < hi) e *= 2;
  return e;
}

}  // namespace

// ------------------------------------------------- test-only fault switches ----

namespace {

constexpr uring_fault all_faults[] = {
    uring_fault::release_on_cancel_cqe, uring_fault::drop_raced_success, uring_fault::leak_accepted_fd,
    uring_fault::no_generation,         uring_fault::teardown_in_flight,
};

std::string valid_fault_names() {
  std::string out;
  for (uring_fault f : all_faults) {
    if (!out.empty()) out += ", ";
    out += to_string(f);
  }
  return out;
}

}  // namespace

std::string_view to_string(uring_fault f) noexcept {
  switch (f) {
    case uring_fault::release_on_cancel_cqe: return "release-on-cancel-cqe";
    case uring_fault::drop_raced_success: return "drop-raced-success";
    case uring_fault::leak_accepted_fd: return "leak-accepted-fd";
    case uring_fault::no_generation: return "no-generation";
    case uring_fault::teardown_in_flight: return "teardown-in-flight";
  }
  return "?";
}

uint32_t parse_uring_faults(std::string_view list) {
  uint32_t mask = 0;
  while (!list.empty()) {
    const size_t comma = list.find(',');
    std::string_view name = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    if (name.empty()) continue;
    bool known = false;
    for (uring_fault f : all_faults) {
      if (name != to_string(f)) continue;
      mask |= uint32_t(f);
      known = true;
    }
    if (!known)
      throw std::invalid_argument(fmt::format("RINGSIDE_FAULT: unknown fault switch '{}' (valid, test-only: {})",
                                              name, valid_fault_names()));
  }
  return mask;
}

uint32_t uring_faults_from_env() {
  const char* v = std::getenv("RINGSIDE_FAULT");
  return v == nullptr ? 0 : parse_uring_faults(v);
}

// ------------------------------------------------------------------ setup ----

uring_loop_options uring_loop_defaults(const backend_options& o) {
  uring_loop_options u;
  // Room for every stream's next op in one batch: one enter per loop pass.
  // 64..4096: below, batches are tiny; above, the rings cost more than they buy.
  u.ring.entries = pow2_at_least(std::max(o.queue_depth, o.max_streams) * 2, 64, 4096);
  // 4x SQ: sockets of many streams complete in bursts; keeps the kernel's
  // overflow backlog cold.
  u.ring.cq_entries = u.ring.entries * 4;
  u.initial_slots = std::max<uint32_t>(u.ring.entries, 256);
  // SINGLE_ISSUER + DEFER_TASKRUN (falling back to COOP_TASKRUN): completions
  // of work the kernel punts to io-wq (e.g. tmpfs reads, which lack a
  // non-blocking path) are run when this thread waits, instead of
  // interrupting it once per completion. Measured on tmpfs, 4k random reads
  // at QD32: 0.30M ops/s without, 0.88M with; fio turns on the same flags.
  // The loop runs on the thread that built the backend, as the runner does.
  u.ring.single_issuer = true;
  u.ring.coop_taskrun = true;
  // --backend-opt: the ring-level features here, the rest read by the loop.
  const uring_features& f = o.uring;
  u.features = f;
  if (f.single_issuer >= 0) u.ring.single_issuer = f.single_issuer != 0;
  u.ring.sqpoll = f.sqpoll;
  u.ring.sqpoll_idle_ms = f.sqpoll_idle_ms;
  if (f.fixed_buffers) u.fixed_buffers = true;
  return u;
}

uring_loop::uring_loop(const uring_loop_options& o)
    : options_(o), ledger_(o.initial_slots), ring_(o.ring) {
  ring_.set_ledger(&ledger_);
  ledger_.set_capture_stacks(o.capture_stacks);
  chunks_.reserve(64);
  while (capacity_ < o.initial_slots)
    if (!grow_slots()) throw std::bad_alloc();
  if (o.features.fixed_files) {
    // A sparse table indexed by fd number (index == fd, so an SQE's fd field
    // is its own index): RLIMIT_NOFILE slots, at most 65536.
    rlimit rl{};
    uint64_t n = 1024;
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) n = rl.rlim_cur;
    n = std::clamp<uint64_t>(n, 64, 65536);
    meters::count_syscall();
    if (const int r = io_uring_register_files_sparse(&ring_.native(), unsigned(n)); r < 0)
      throw std::system_error(-r, std::generic_category(), "fixed-files: io_uring_register_files_sparse");
    file_registered_.assign(size_t(n), 0);
  }
  // Rare paths, sized once so they do not allocate when used.
  backlog_.reserve(ring_.sq_entries());
  cancel_backlog_.reserve(ring_.sq_entries());
}

uring_loop::~uring_loop() {
  // Derived destructors call teardown(); this catches a loop that never had
  // anything to tear down and keeps the ring exit in one place.
  teardown();
}

// ---------------------------------------------------------- fixed files ----

namespace {
std::mutex totals_mu;
uring_loop_counters totals;

void add(uring_loop_counters& to, const uring_loop_counters& c) noexcept {
  to.fixed_file_ops += c.fixed_file_ops;
  to.file_updates += c.file_updates;
  to.batch_submits += c.batch_submits;
  to.linked_timeouts += c.linked_timeouts;
  to.zc_notifications += c.zc_notifications;
  to.multishot_more += c.multishot_more;
  to.fixed_buffer_ops += c.fixed_buffer_ops;
}

// fd has a slot in the fixed-file table (empty: the option is off).
bool in_table(const std::vector<uint8_t>& table, int fd) noexcept { return fd >= 0 && size_t(fd) < table.size(); }
}  // namespace

uring_loop_counters uring_loop::lifetime_totals() noexcept {
  std::lock_guard lk(totals_mu);
  return totals;
}

void uring_loop::adopt(int fd) {
  if (!in_table(file_registered_, fd)) return;
  // The number may have named another file before: register it afresh.
  file_registered_[size_t(fd)] = 0;
  (void)fixed_file(fd);
}

int uring_loop::fixed_file(int fd) noexcept {
  if (!in_table(file_registered_, fd)) return -1;
  if (file_registered_[size_t(fd)] != 0) return fd;
  meters::count_syscall();
  ++counters_.file_updates;
  if (io_uring_register_files_update(&ring_.native(), unsigned(fd), &fd, 1) != 1) return -1;
  file_registered_[size_t(fd)] = 1;
  return fd;
}

void uring_loop::unregister_file(int fd) noexcept {
  if (!in_table(file_registered_, fd)) return;
  if (file_registered_[size_t(fd)] == 0) return;
  int none = -1;
  meters::count_syscall();
  ++counters_.file_updates;
  (void)io_uring_register_files_update(&ring_.native(), unsigned(fd), &none, 1);
  file_registered_[size_t(fd)] = 0;
}

// ---------------------------------------------------------------- slots ----

bool uring_loop::grow_slots() noexcept {
  try {
    // Double the capacity (at least one chunk); never reach the reserved slot.
    const size_t add = std::max<size_t>(1, chunks_.size());
    for (size_t k = 0; k < add; ++k) {
      if (capacity_ >= reserved_slot - chunk_size) return k > 0;
      chunks_.push_back(std::make_unique<op_slot[]>(chunk_size));
      const uint32_t base = capacity_;
      capacity_ += chunk_size;
      // Link the new chunk into the free list, lowest index first.
      for (uint32_t i = chunk_size; i-- > 0;) {
        op_slot& s = slot(base + i);
        s.index = base + i;
        s.next = free_head_;
        free_head_ = base + i;
      }
    }
    return true;
  } catch (...) {
    return free_head_ != npos;
  }
}

uint32_t uring_loop::alloc_slot() noexcept {
  if (free_head_ == npos && !grow_slots()) return npos;
  const uint32_t i = free_head_;
  op_slot& s = slot(i);
  free_head_ = s.next;
  s.next = npos;
  s.in_use = true;
  return i;
}

void uring_loop::free_slot(op_slot& s) noexcept {
  s.in_use = s.in_kernel = s.settled = s.queued = s.cancel_sent = false;
  s.waiter = nullptr;
  // no_generation (test-only fault): the next op in this slot gets the same id.
  if (!faulty(uring_fault::no_generation)) s.gen = (s.gen + 1) & gen_mask;
  if (s.gen == 0) s.gen = 1;
  s.next = free_head_;
  free_head_ = s.index;
}

uring_loop::op_slot* uring_loop::lookup(op_id id) noexcept {
  if (!id || id.slot() >= capacity_) return nullptr;
  op_slot& s = slot(id.slot());
  return (s.in_use && s.gen == id.gen()) ? &s : nullptr;
}

uring_loop::op_slot* uring_loop::pending(op_id id) noexcept {
  op_slot* s = lookup(id);
  return (s != nullptr && s->waiter != nullptr && !s->settled) ? s : nullptr;
}

uring_loop::op_slot* uring_loop::attached(op_id id) noexcept {
  op_slot* s = lookup(id);
  return (s != nullptr && s->waiter != nullptr) ? s : nullptr;
}

// --------------------------------------------------------------- submit ----

op_id uring_loop::submit(op&& o, op_waiter* w) noexcept {
  // Early ends still start first (with the null id: no slot names them), so
  // every waiter sees on_started before its completion.
  if (tearing_down_) {
    // The loop is going away: nothing new reaches the kernel.
    return end_unstarted(w, -ECANCELED, std::move(o.buf));
  }
  const uint32_t i = alloc_slot();
  if (i == npos) {
    return end_unstarted(w, -ENOMEM, std::move(o.buf));
  }
  op_slot& s = slot(i);
  s.waiter = w;
  const op_id id = op_id::make(i, s.gen);
  w->on_started(id);
  if (const int32_t err = fill(s, std::move(o)); err != 0) {
    settle(s, err);
  } else if (s.exiting_ring) {
    if (const int32_t err = submit_from_exiting_thread(s); err != 0) settle(s, err);
  } else if (!prep(s)) {
    // No SQE (SQ full and the kernel refused a submit): keep the op, buffer
    // and all, and issue it after the next reap.
    try {
      backlog_.push_back(id);  // reserved to SQ size; beyond that it may allocate
    } catch (...) {
      settle(s, -EAGAIN);
    }
  }
  return id;
}

int32_t uring_loop::fill(op_slot& s, op&& o) noexcept {
  s.kind = o.kind;
  s.fd = o.fd;
  s.offset = o.offset;
  s.len = o.len;
  s.buf_offset = o.buf_offset;
  s.deadline_ns = o.deadline_ns;
  s.force_async = o.force_async;
  s.wait_all = o.wait_all;
  s.exiting_ring = o.submitter_exits;
  s.first_res = 0;
  s.zc_plain = false;
  // --backend-opt send-zc: every send goes out zero-copy (the loop's own
  // send_zc path: result at the first CQE, buffer back at F_NOTIF).
  if (options_.features.send_zc && s.kind == op_kind::send && !s.exiting_ring) s.kind = op_kind::send_zc;
  // --backend-opt link-timeout=MS: every op without its own deadline gets
  // one; not plain timeouts (a timeout on a timeout) nor multishot receives
  // (they live as long as their stream).
  if (options_.features.link_timeout_ms != 0 && s.deadline_ns == 0 && s.kind != op_kind::timeout &&
      s.kind != op_kind::recv_multishot)
    s.deadline_ns = uint64_t(options_.features.link_timeout_ms) * 1'000'000;
  if (s.kind == op_kind::recv_multishot) {
    s.buf = std::move(o.buf);
    // Its provided-buffer ring is registered with ring_ only.
    if (s.exiting_ring) return -EOPNOTSUPP;
    if (o.group == nullptr) return -EINVAL;
    s.group = o.group;
    s.group->swap_buffers(s.provided);  // every buffer of the group, ids 0..n-1
    if (s.provided.empty()) return -ENOBUFS;
    return setup_buf_ring(s);
  }
  const int32_t range_error = payload_error(o);
  s.buf = std::move(o.buf);  // handed back with the completion, even an -EINVAL one
  if (range_error != 0) return range_error;
  switch (s.kind) {
    case op_kind::connect:
      if (o.addr == nullptr || o.addrlen > sizeof(s.addr)) return -EINVAL;
      // Not payload: a socket address copied into the slot so the kernel
      // never reads the caller's (possibly dead) frame.
      std::memcpy(&s.addr, o.addr, o.addrlen);
      s.addrlen = o.addrlen;
      break;
    case op_kind::timeout:
      s.ts.tv_sec = int64_t(o.timeout_ns / 1'000'000'000);
      s.ts.tv_nsec = int64_t(o.timeout_ns % 1'000'000'000);
      break;
    default:
      break;
  }
  if (s.deadline_ns != 0) {
    s.deadline_ts.tv_sec = int64_t(s.deadline_ns / 1'000'000'000);
    s.deadline_ts.tv_nsec = int64_t(s.deadline_ns % 1'000'000'000);
  }
  return 0;
}

bool uring_loop::prep(op_slot& s) noexcept {
  ring& r = ring_of(s);
  const uint64_t ud = op_id::make(s.index, s.gen).value;
  // The subrange the op moves is what the kernel holds (and the ledger records).
  std::byte* data = s.buf.data() + s.buf_offset;
  const byte_range lent[1] = {{data, s.len}};
  const std::span<const byte_range> ranges = moves_payload(s.kind) ? std::span<const byte_range>(lent)
                                                                   : std::span<const byte_range>();
  const bool fixed = use_fixed_ && r.is_fixed(s.buf);
  // fixed-files: the op's fd as its table index (close: its slot emptied
  // first, so the close really closes). Not in the exiting-submitter ring.
  int fixed_fd = -1;
  if (!file_registered_.empty() && !s.exiting_ring) {
    switch (s.kind) {
      case op_kind::nop:
      case op_kind::timeout: break;
      case op_kind::close: unregister_file(s.fd); break;
      default: fixed_fd = fixed_file(s.fd); break;
    }
  }
  // A linked timeout must go into the SQ right behind its op, or IO_LINK
  // would chain the op to whatever SQE comes next: make room for both now
  // (the SQ is submitted when full, so both fit without a submit between;
  // with SQPOLL a submit may leave the SQ full: then wait in the backlog).
  const bool linked = s.deadline_ns != 0;
  if (linked && io_uring_sq_space_left(&r.native()) < 2 &&
      (r.submit() < 0 || io_uring_sq_space_left(&r.native()) < 2))
    return false;
  // The caller's buffer pointer goes straight into the SQE: zero copies.
  const int zc_flags = MSG_NOSIGNAL | (s.wait_all ? MSG_WAITALL : 0);
  const bool ok = r.prepare(ud, s.kind, ranges, [&](io_uring_sqe* sqe) {
    switch (s.kind) {
      case op_kind::nop: io_uring_prep_nop(sqe); break;
      case op_kind::read:
        if (fixed) io_uring_prep_read_fixed(sqe, s.fd, data, s.len, s.offset, int(s.buf.index()));
        else io_uring_prep_read(sqe, s.fd, data, s.len, s.offset);
        break;
      case op_kind::write:
        if (fixed) io_uring_prep_write_fixed(sqe, s.fd, data, s.len, s.offset, int(s.buf.index()));
        else io_uring_prep_write(sqe, s.fd, data, s.len, s.offset);
        break;
      case op_kind::recv: io_uring_prep_recv(sqe, s.fd, data, s.len, 0); break;
      // MSG_NOSIGNAL: a peer that closed gives -EPIPE instead of killing the run.
      case op_kind::send:
        io_uring_prep_send(sqe, s.fd, data, s.len, MSG_NOSIGNAL | (s.wait_all ? MSG_WAITALL : 0));
        break;
      case op_kind::accept: io_uring_prep_accept(sqe, s.fd, nullptr, nullptr, SOCK_CLOEXEC); break;
      case op_kind::connect:
        io_uring_prep_connect(sqe, s.fd, reinterpret_cast<const sockaddr*>(&s.addr), s.addrlen);
        break;
      case op_kind::close: io_uring_prep_close(sqe, s.fd); break;
      case op_kind::fsync: io_uring_prep_fsync(sqe, s.fd, 0); break;
      case op_kind::timeout: io_uring_prep_timeout(sqe, &s.ts, 0, 0); break;
      case op_kind::recv_multishot:
        io_uring_prep_recv_multishot(sqe, s.fd, nullptr, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = s.bgid;
        break;
      case op_kind::send_zc:
        if (s.zc_plain) {
          io_uring_prep_send(sqe, s.fd, data, s.len, zc_flags);
          break;
        }
        if (fixed) io_uring_prep_send_zc_fixed(sqe, s.fd, data, s.len, zc_flags, 0, s.buf.index());
        else io_uring_prep_send_zc(sqe, s.fd, data, s.len, zc_flags, 0);
        sqe->ioprio |= IORING_SEND_ZC_REPORT_USAGE;
        break;
    }
    if (linked) sqe->flags |= IOSQE_IO_LINK;
    if (s.force_async) sqe->flags |= IOSQE_ASYNC;
    if (fixed_fd >= 0) sqe->flags |= IOSQE_FIXED_FILE;  // sqe->fd == s.fd == the index
  });
  if (!ok) return false;
  if (fixed_fd >= 0) ++counters_.fixed_file_ops;
  if (fixed && (s.kind == op_kind::read || s.kind == op_kind::write || (s.kind == op_kind::send_zc && !s.zc_plain)))
    ++counters_.fixed_buffer_ops;
  s.in_kernel = true;
  ++in_kernel_;
  if (s.exiting_ring) ++exiting_in_kernel_;
  // Sanitizer builds: the range is the kernel's now (harness/sanitize.hpp).
  if (moves_payload(s.kind)) lends_.lend(s.index, &s, data, s.len);
  if (linked) {
    // Cannot fail: room for it was made above.
    const uint64_t tag = op_id::make(s.index, s.gen | link_timeout_bit).value;
    if (r.prepare(tag, op_kind::timeout, {},
                  [&](io_uring_sqe* sqe) { io_uring_prep_link_timeout(sqe, &s.deadline_ts, 0); })) {
      ++link_timeouts_in_flight_;
      ++counters_.linked_timeouts;
    }
  }
  // --backend-opt batch=N: submit as soon as N SQEs are queued (fio's
  // iodepth_batch_submit); otherwise the loop submits when it waits.
  if (options_.features.batch != 0 && !s.exiting_ring && r.sq_pending() >= options_.features.batch &&
      r.submit() > 0)
    ++counters_.batch_submits;
  return true;
}

int32_t uring_loop::submit_from_exiting_thread(op_slot& s) noexcept {
  if (!exiting_ring_) {
    try {
      ring_options o;
      o.entries = exiting_ring_entries;
      // Neither SINGLE_ISSUER nor DEFER_TASKRUN: a thread other than the
      // loop's submits, and completions must not wait for it to enter again.
      exiting_ring_ = std::make_unique<ring>(o);
      exiting_ring_->set_ledger(&ledger_);
    } catch (const std::system_error& e) {
      return -e.code().value();
    } catch (...) {
      return -ENOMEM;
    }
  }
  if (!prep(s)) return -EAGAIN;  // cannot happen: the ring is submitted after every SQE
  // The SQE is filled; a thread made for it enters the kernel and exits.
  // Joined at once: the op is pending and its submitter gone when this
  // returns. Thread start and join order the loop's SQE writes before the
  // enter and the enter before anything the loop does next.
  int rc = -EAGAIN;
  try {
    std::thread t([&rc, &r = exiting_ring_->native()] { rc = io_uring_submit(&r); });
    t.join();
  } catch (const std::system_error& e) {
    rc = -e.code().value();
  }
  meters::count_syscall();
  if (rc < 0) {
    // The SQE is queued and in the ledger already: submit it from the loop,
    // so the op still ends with its CQE, and say that this op did not lose
    // its submitter.
    const int again = exiting_ring_->submit();
    note("uring_internal", fmt::format("op {:#x}: the exiting submitter could not enter ({}); the loop submitted "
                                       "it instead ({})",
                                       op_id::make(s.index, s.gen).value, rc, again));
  }
  return 0;
}

// --------------------------------------------------------------- cancel ----

void uring_loop::request_cancel(op_slot& s) noexcept {
  if (!s.in_kernel) {
    // Still waiting for an SQE: the kernel never saw it, its buffer is free.
    if (!s.settled) settle(s, -ECANCELED);
    return;
  }
  if (s.cancel_sent) return;
  s.cancel_sent = true;
  if (send_cancel(s)) return;
  try {
    cancel_backlog_.push_back(op_id::make(s.index, s.gen));  // retried after the next reap
  } catch (...) {
    // Out of memory with the SQ jammed: the op ends on its own or at teardown.
  }
}

bool uring_loop::send_cancel(op_slot& s) noexcept {
  const uint64_t target = op_id::make(s.index, s.gen).value;
  const bool ok = ring_of(s).prepare(cancel_tag(s.index), op_kind::nop, {},
                                [&](io_uring_sqe* sqe) { io_uring_prep_cancel64(sqe, target, 0); });
  if (ok) ++cancels_in_flight_;
  return ok;
}

void uring_loop::complete_early(op_slot& s, int32_t res) noexcept {
  if (!s.settled) settle(s, res);
}

void uring_loop::complete_now(op_slot& s, int32_t res) noexcept {
  if (s.settled || s.waiter == nullptr) return;
  s.settled = true;  // not queued: the final CQE frees the slot
  op_waiter* w = std::exchange(s.waiter, nullptr);
  buffer b = std::move(s.buf);
  w->on_complete({res, 0, std::move(b)});
}

void uring_loop::settle(op_slot& s, int32_t res) noexcept {
  s.settled = true;
  s.res = res;
  s.queued = true;
  s.next = npos;
  if (ready_tail_ == npos) ready_head_ = s.index;
  else slot(ready_tail_).next = s.index;
  ready_tail_ = s.index;
}

// ----------------------------------------------------------- completion ----

void uring_loop::on_cqe(const io_uring_cqe& c) noexcept {
  const op_id id{c.user_data};
  if (id.slot() == reserved_slot) {
    // A cancel's own CQE (0, -ENOENT, -EALREADY). Never an op's result: the
    // target reports through its own CQE.
    if (cancels_in_flight_ > 0) --cancels_in_flight_;
    if (faulty(uring_fault::release_on_cancel_cqe) && id.gen() < capacity_) {
      // Test-only fault: the target's buffer goes back to the pool now, while
      // the kernel may still hold it (its own CQE is yet to come).
      op_slot& t = slot(id.gen());
      if (t.in_use && t.in_kernel && t.cancel_sent) t.buf.reset();
    }
    return;
  }
  if ((id.gen() & link_timeout_bit) != 0) return on_link_timeout_cqe(c);
  op_slot* sp = lookup(id);
  if (sp == nullptr || !sp->in_kernel) {
    note("uring_internal", fmt::format("CQE for unknown op {:#x} (res {})", c.user_data, c.res));
    return;
  }
  op_slot& s = *sp;
  if (s.kind == op_kind::recv_multishot) return on_multishot_cqe(s, c);
  // Not final: the kernel still holds the buffer.
  if ((c.flags & IORING_CQE_F_MORE) != 0) {
    if (s.kind == op_kind::send_zc && (c.flags & IORING_CQE_F_NOTIF) == 0) {
      // The send's result; the buffer is the kernel's until the notification.
      s.first_res = c.res;
      if (c.res != -EOPNOTSUPP && s.waiter != nullptr && !s.settled) on_early_cqe(s, early_cqe::zc_sent, c.res);
    }
    return;
  }
  s.in_kernel = false;
  --in_kernel_;
  if (s.exiting_ring) --exiting_in_kernel_;
  // Sanitizer builds: the kernel is done with the range; the loop consumes
  // this CQE for the buffer's holder only if the slot still holds it.
  lends_.give_back(s.index, &s,
                   kernel_writes_buffer(s.kind) ? sanitize::kernel_access::writes : sanitize::kernel_access::reads,
                   c.res, s.buf.valid());
  int32_t res = c.res;
  // fixed-files: a new connection's number may have named another file in
  // the table: its slot is registered afresh at its first op.
  if (s.kind == op_kind::accept && in_table(file_registered_, res))
    file_registered_[size_t(res)] = 0;
  if (s.kind == op_kind::send_zc) {
    if ((c.flags & IORING_CQE_F_NOTIF) != 0) {
      ++counters_.zc_notifications;
      // The notification: its res says only whether the kernel copied.
      res = s.first_res;
      if (res == -EOPNOTSUPP && !s.zc_plain && s.waiter != nullptr && !s.settled && !tearing_down_) {
        // No zero copy on this socket (AF_UNIX...): send plainly instead, as
        // the other backends do, so a scenario runs alike everywhere.
        s.zc_plain = true;
        if (!prep(s)) {
          try {
            backlog_.push_back(op_id::make(s.index, s.gen));
          } catch (...) {
            settle(s, -EAGAIN);
          }
        }
        return;
      }
      count_zerocopy_result(res, (uint32_t(c.res) & IORING_NOTIF_USAGE_ZC_COPIED) != 0);
    } else {
      // One CQE only: an error before anything was sent, or the plain fallback.
      count_zerocopy_result(res, true);
    }
  } else {
    // The kernel moved these bytes whoever takes the result: a dropped op in
    // the graveyard, or an op whose completion was handed out early.
    count_kernel_copy(s.kind, res);
  }
  // The buffer went back to the pool while this op was in the kernel (uring-
  // raw's cancel or drop), and the kernel's copy faulted: a guard page (see
  // buffer_pool::enable_guard_pages) stopped a write into released memory.
  if (c.res == -EFAULT && moves_payload(s.kind) && (s.settled || !s.buf))
    note("guard_page", fmt::format("op {:#x} ({}) faulted (-EFAULT) on a buffer released while the kernel held it",
                                   c.user_data, to_string(s.kind)));
  if (s.settled) {
    // Completed early (uring-raw's cancel): the caller never sees this
    // result. An accepted connection is still closed, not leaked: it is lost
    // to the caller (never served) either way.
    discard_result(s.kind, res);
    if (!s.queued) free_slot(s);
    return;
  }
  // A plain sleep that ran its course reports -ETIME: that is its success.
  if (s.kind == op_kind::timeout && res == -ETIME) res = 0;
  // An op its linked timeout cancelled in an io-wq worker says -EINTR: to the
  // caller it is cancelled, as everywhere else.
  if (s.deadline_ns != 0 && res == -EINTR) res = -ECANCELED;
  if (options_.faults != 0) res = faulty_result(s, res);
  finish(s, res, c.flags & ~uint32_t(IORING_CQE_F_NOTIF));
}

int32_t uring_loop::faulty_result(const op_slot& s, int32_t res) noexcept {
  // Only ops whose cancel was requested (dropped ones included) or whose
  // waiter is gone: the races the faults get wrong.
  if (res < 0 || (!s.cancel_sent && s.waiter != nullptr)) return res;
  if (faulty(uring_fault::leak_accepted_fd) && s.kind == op_kind::accept) {
    // The connection is forgotten: not delivered, not closed.
    return -ECANCELED;
  }
  if (faulty(uring_fault::drop_raced_success) && s.cancel_sent) {
    discard_result(s.kind, res);  // the success is thrown away (an accepted fd closed)
    return -ECANCELED;
  }
  return res;
}

void uring_loop::on_link_timeout_cqe(const io_uring_cqe& c) noexcept {
  if (link_timeouts_in_flight_ > 0) --link_timeouts_in_flight_;
  // Never the op's result: -ETIME (it fired and cancelled the op, which
  // reports through its own CQE), -ECANCELED (the op ended first)...
  const op_id id{c.user_data};
  op_slot* s = lookup(op_id::make(id.slot(), id.gen() & ~link_timeout_bit));
  if (s != nullptr && s->in_kernel && s->waiter != nullptr && !s->settled)
    on_early_cqe(*s, early_cqe::link_timeout, c.res);
}

// ---------------------------------------------------- multishot recv ----

int32_t uring_loop::setup_buf_ring(op_slot& s) noexcept {
  const auto n = uint32_t(std::min(s.provided.size(), buffer_group::max_size));
  uint32_t entries = 1;
  while (entries < n) entries *= 2;
  uint16_t bgid;
  if (!free_bgids_.empty()) {
    bgid = free_bgids_.back();
    free_bgids_.pop_back();
  } else if (next_bgid_ <= UINT16_MAX) {
    bgid = uint16_t(next_bgid_++);
  } else {
    return -ENOBUFS;
  }
  // The ring the kernel picks buffers from: shared memory, page-aligned.
  const size_t bytes = round_up(entries * sizeof(io_uring_buf), page_size());
  meters::count_syscall();
  void* mem = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    free_bgids_.push_back(bgid);  // reserved: never allocates beyond what was popped
    return -ENOMEM;
  }
  auto* br = static_cast<io_uring_buf_ring*>(mem);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(br);
  reg.ring_entries = entries;
  reg.bgid = bgid;
  meters::count_syscall();
  if (const int r = io_uring_register_buf_ring(&ring_.native(), &reg, 0); r < 0) {
    meters::count_syscall();
    ::munmap(mem, bytes);
    try {
      free_bgids_.push_back(bgid);
    } catch (...) {
    }
    return r;
  }
  s.br = br;
  s.br_bytes = bytes;
  s.bgid = bgid;
  s.provided_count = n;
  io_uring_buf_ring_init(br);
  const int mask = io_uring_buf_ring_mask(entries);
  for (uint32_t i = 0; i < n; ++i) {
    buffer& b = s.provided[i];
    const auto len = uint32_t(std::min<size_t>(b.capacity(), s.len != 0 ? s.len : b.capacity()));
    io_uring_buf_ring_add(br, b.data(), len, uint16_t(i), mask, int(i));
    // Lent to the kernel from now until a CQE hands it out, or the ring goes.
    const byte_range r[1] = {{b.data(), len}};
    ledger_.on_submit(provided_key(s.index, i), op_kind::recv, r);
    lends_.lend_provided(s.index, &s, i, b.data(), len);  // sanitizer builds (harness/sanitize.hpp)
  }
  io_uring_buf_ring_advance(br, int(n));
  return 0;
}

void uring_loop::release_buf_ring(op_slot& s) noexcept {
  if (s.br == nullptr) return;
  lends_.end_provided(s.index, s.provided);  // sanitizer builds: the ring's buffers are the slot's again
  // Unknown keys (ids handed out already) are ignored.
  for (uint32_t i = 0; i < s.provided_count; ++i) ledger_.on_final(provided_key(s.index, i));
  if (ring_.is_open()) {
    meters::count_syscall();
    io_uring_unregister_buf_ring(&ring_.native(), s.bgid);
  }
  meters::count_syscall();
  ::munmap(s.br, s.br_bytes);
  s.br = nullptr;
  s.provided_count = 0;
  try {
    free_bgids_.push_back(s.bgid);
  } catch (...) {
  }
}

void uring_loop::on_multishot_cqe(op_slot& s, const io_uring_cqe& c) noexcept {
  buffer b;
  if ((c.flags & IORING_CQE_F_BUFFER) != 0) {
    const uint32_t bid = c.flags >> IORING_CQE_BUFFER_SHIFT;
    ledger_.on_final(provided_key(s.index, bid));
    if (bid < s.provided.size()) b = std::move(s.provided[bid]);
    // Sanitizer builds: the kernel wrote c.res bytes into it and hands it out now.
    lends_.give_back_provided(s.index, &s, bid, c.res, b.valid());
    count_kernel_copy(op_kind::recv, c.res);
  }
  if ((c.flags & IORING_CQE_F_MORE) != 0) {
    ++counters_.multishot_more;
    // b is the waiter's now; without one (dropped, or completed early) it
    // goes back to its pool.
    if (s.waiter != nullptr && !s.settled) s.waiter->on_more({c.res, c.flags, std::move(b)});
    return;
  }
  s.in_kernel = false;
  --in_kernel_;
  release_buf_ring(s);
  if (s.settled) {
    // Completed early (uring-raw's cancel): the buffers went back then.
    return_unused(s.provided, nullptr);
    if (!s.queued) free_slot(s);
    return;
  }
  return_unused(s.provided, s.waiter != nullptr ? s.group : nullptr);
  s.buf = std::move(b);  // a final CQE may carry one last receive
  finish(s, c.res, c.flags);
}

void uring_loop::finish(op_slot& s, int32_t res, uint32_t flags) noexcept {
  op_waiter* w = s.waiter;
  const op_kind kind = s.kind;
  buffer b = std::move(s.buf);
  // Freed before the waiter runs: it may submit its next op into this slot.
  free_slot(s);
  if (w != nullptr) {
    w->on_complete({res, flags, std::move(b)});
    return;
  }
  // Dropped: the graveyard ends here; b returns to its pool now.
  discard_result(kind, res);
}

void uring_loop::deliver_ready() noexcept {
  // Only what is queued now: completions settled by these waiters wait for
  // the next pass, so a cancel storm cannot starve the CQ.
  uint32_t i = std::exchange(ready_head_, npos);
  ready_tail_ = npos;
  while (i != npos) {
    op_slot& s = slot(i);
    const uint32_t next = s.next;
    s.queued = false;
    op_waiter* w = std::exchange(s.waiter, nullptr);
    buffer b = std::move(s.buf);
    const int32_t res = s.res;
    const op_kind kind = s.kind;
    if (kind == op_kind::recv_multishot) {
      // The group's buffers go back with the completion — while the kernel
      // may still pick them if it holds the op (uring-raw's early cancel).
      if (!s.in_kernel) release_buf_ring(s);
      return_unused(s.provided, w != nullptr ? s.group : nullptr);
    }
    if (!s.in_kernel) free_slot(s);  // else it stays until its CQE, which is ignored
    if (w != nullptr) w->on_complete({res, 0, std::move(b)});
    else discard_result(kind, res);
    i = next;
  }
}

void uring_loop::reap_all() noexcept {
  // At most one CQ's worth per call: on_cqe's waiters may submit ops that
  // complete at once, and the loop must get back to its deadline check.
  // --backend-opt batch=N: at most N a pass (fio's iodepth_batch_complete_max).
  const unsigned max = options_.features.batch != 0 ? options_.features.batch : ring_.cq_entries();
  ring_.reap([this](const io_uring_cqe& c) { on_cqe(c); }, max);
  if (exiting_ring_) reap_exiting_ring();
}

void uring_loop::reap_exiting_ring() noexcept {
  // Cancels the loop queued there (cancel()/drop() of its ops) go in now: the
  // loop thread may enter this ring, it only may not be the op's submitter.
  if (exiting_ring_->sq_pending() > 0) exiting_ring_->submit();
  exiting_ring_->reap([this](const io_uring_cqe& c) { on_cqe(c); }, exiting_ring_->cq_entries());
}

void uring_loop::flush_backlog() noexcept {
  size_t done = 0;
  for (; done < cancel_backlog_.size(); ++done) {
    op_slot* s = lookup(cancel_backlog_[done]);
    if (s == nullptr || !s->in_kernel) continue;
    if (!send_cancel(*s)) break;  // still no SQE: keep it and the rest for later
  }
  cancel_backlog_.erase(cancel_backlog_.begin(), cancel_backlog_.begin() + std::ptrdiff_t(done));

  done = 0;
  for (; done < backlog_.size(); ++done) {
    op_slot* s = lookup(backlog_[done]);
    if (s == nullptr || s->in_kernel || s->settled) continue;
    if (!prep(*s)) break;
  }
  backlog_.erase(backlog_.begin(), backlog_.begin() + std::ptrdiff_t(done));
}

// ----------------------------------------------------------------- tasks ----

void uring_loop::spawn(task<> t) {
  tasks_.spawn(std::move(t));  // refused (t destroyed unstarted) once tearing down
}

void uring_loop::note(std::string kind, std::string detail) noexcept {
  try {
    fmt::print(stderr, "ringside: {}: {}\n", kind, detail);
    violations_.push_back({std::move(kind), std::move(detail)});
  } catch (...) {
  }
}

// ------------------------------------------------------------------ loop ----

int uring_loop::run(clock_type::time_point deadline) {
  if (hung_ || tearing_down_) return -ETIME;
  for (;;) {
    tasks_.start_queued();
    flush_backlog();
    deliver_ready();
    deliver_deferred();  // uring-bounce hook (uring_loop.hpp)
    if (tasks_.live() == 0) {
      // Cancels of dropped ops, issued by tasks that then ended.
      ring_.submit();
      return 0;
    }
    const auto now = clock_type::now();
    if (now >= deadline) {
      hung_ = true;
      return -ETIME;
    }
    if (ready_head_ != npos || tasks_.has_queued()) {
      // More user work is runnable now: take what the kernel has already
      // posted and go round again without waiting; but enter now and then,
      // or queued SQEs would never be submitted and, with DEFER_TASKRUN,
      // no completion would ever be posted while this lasts.
      if (++busy_passes_ >= busy_enter_every) {
        busy_passes_ = 0;
        ring_.submit_and_get_events();
      }
      reap_all();
      continue;
    }
    busy_passes_ = 0;
    const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - now);
    // Errors (-EBUSY/-EAGAIN with a full CQ backlog) leave the SQEs queued;
    // reaping makes room and the next pass retries.
    ring_.submit_and_wait(std::min(left, exiting_in_kernel_ > 0 ? exiting_ring_poll : max_wait));
    reap_all();
  }
}

void uring_loop::attach_pool(buffer_pool& pool) {
  pool_ = &pool;
  ledger_.watch(pool);
  const int reg = options_.fixed_buffers ? ring_.register_buffers(pool) : -EINVAL;
  use_fixed_ = reg == 0;
  // Asked for by name (--backend-opt fixed-buffers): no silent fallback.
  if (options_.features.fixed_buffers && !use_fixed_)
    throw std::system_error(-reg, std::generic_category(),
                            "fixed-buffers: io_uring_register_buffers (RLIMIT_MEMLOCK? ulimit -l)");
}

void uring_loop::collect_violations(std::vector<violation>& out) {
  tasks_.take_violations(out);
  ledger_.take_violations(out);
  for (auto& v : violations_) out.push_back(std::move(v));
  violations_.clear();
}

// -------------------------------------------------------------- teardown ----

void uring_loop::teardown() noexcept {
  if (torn_down_) return;
  torn_down_ = true;
  tearing_down_ = true;

  // 1. Task frames: destroying them runs their awaiters' destructors, which
  //    drop() their ops (uring-owned: graveyard; uring-raw: buffer freed now).
  tasks_.destroy_live();

  if (faulty(uring_fault::teardown_in_flight)) {
    // Test-only fault: neither cancel nor drain. The buffers of ops still in
    // the kernel go back to the pool while it holds them; the ring exits
    // with the ops in flight.
    for (uint32_t i = 0; i < capacity_; ++i) {
      op_slot& s = slot(i);
      if (s.in_use && s.in_kernel) s.buf.reset();
    }
    if (exiting_ring_) exiting_ring_->close();
    ring_.close();
    ledger_.unwatch();
    return;
  }

  // 2. Cancel everything the kernel still holds; ops still waiting for an SQE
  //    settle -ECANCELED.
  for (uint32_t i = 0; i < capacity_; ++i) {
    op_slot& s = slot(i);
    if (s.in_use && !s.cancel_sent && (s.in_kernel || !s.settled)) request_cancel(s);
  }
  backlog_.clear();

  // 3. Drain every CQE, bounded in time. Waiters still attached (ops issued
  //    outside any task) get their one completion.
  const auto until = clock_type::now() + options_.teardown_budget;
  while (in_kernel_ > 0 || cancels_in_flight_ > 0 || link_timeouts_in_flight_ > 0) {
    flush_backlog();
    deliver_ready();
    const auto now = clock_type::now();
    if (now >= until) break;
    const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(until - now);
    ring_.submit_and_wait(std::min(left, exiting_ring_ ? exiting_ring_poll : teardown_poll));
    reap_all();
  }
  deliver_ready();

  if (in_kernel_ > 0) {
    // The kernel may still write into these buffers after the ring exits
    // (it cancels asynchronously): never hand them back to the pool.
    // (No name() here: the derived backend may already be gone.)
    note("hang", fmt::format("io_uring teardown: {} ops still in the kernel after {} ms; their buffers are leaked",
                             in_kernel_, options_.teardown_budget.count()));
    for (uint32_t i = 0; i < capacity_; ++i) {
      op_slot& s = slot(i);
      if (s.in_use && s.in_kernel && s.buf) keep_forever(std::move(s.buf));
      if (s.in_use && s.in_kernel)
        for (auto& b : s.provided)
          if (b) keep_forever(std::move(b));
    }
  }

  {
    std::lock_guard lk(totals_mu);
    add(totals, counters_);
  }

  // 4. Exit the rings, then stop watching the pool.
  if (exiting_ring_) exiting_ring_->close();
  ring_.close();
  ledger_.unwatch();
}

}  // namespace ringside
