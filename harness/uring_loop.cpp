#include "harness/uring_loop.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <utility>

#include "harness/perform.hpp"

namespace ringside {

namespace {

// Slot index reserved for the loop's own SQEs (cancels): never allocated, so
// their CQEs can never be confused with an op's. Generation 1 keeps the tag
// away from liburing's internal LIBURING_UDATA_TIMEOUT (all ones).
constexpr uint32_t reserved_slot = ~0u;
constexpr uint64_t cancel_tag = op_id::make(reserved_slot, 1).value;

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
  return u;
}

uring_loop::uring_loop(const uring_loop_options& o)
    : options_(o), ledger_(o.initial_slots), ring_(o.ring) {
  ring_.set_ledger(&ledger_);
  ledger_.set_capture_stacks(o.capture_stacks);
  chunks_.reserve(64);
  while (capacity_ < o.initial_slots)
    if (!grow_slots()) throw std::bad_alloc();
  // Rare paths, sized once so they do not allocate when used.
  backlog_.reserve(ring_.sq_entries());
  cancel_backlog_.reserve(ring_.sq_entries());
}

uring_loop::~uring_loop() {
  // Derived destructors call teardown(); this catches a loop that never had
  // anything to tear down and keeps the ring exit in one place.
  teardown();
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
  if (++s.gen == 0) s.gen = 1;
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
    w->on_started({});
    w->on_complete({-ECANCELED, 0, std::move(o.buf)});
    return {};
  }
  const uint32_t i = alloc_slot();
  if (i == npos) {
    w->on_started({});
    w->on_complete({-ENOMEM, 0, std::move(o.buf)});
    return {};
  }
  op_slot& s = slot(i);
  s.waiter = w;
  const op_id id = op_id::make(i, s.gen);
  w->on_started(id);
  if (const int32_t err = fill(s, std::move(o)); err != 0) {
    settle(s, err);
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
  return 0;
}

bool uring_loop::prep(op_slot& s) noexcept {
  const uint64_t ud = op_id::make(s.index, s.gen).value;
  // The subrange the op moves is what the kernel holds (and the ledger records).
  std::byte* data = s.buf.data() + s.buf_offset;
  const byte_range lent[1] = {{data, s.len}};
  const std::span<const byte_range> ranges = moves_payload(s.kind) ? std::span<const byte_range>(lent)
                                                                   : std::span<const byte_range>();
  const bool fixed = use_fixed_ && ring_.is_fixed(s.buf);
  // The caller's buffer pointer goes straight into the SQE: zero copies.
  const bool ok = ring_.prepare(ud, s.kind, ranges, [&](io_uring_sqe* sqe) {
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
      case op_kind::send: io_uring_prep_send(sqe, s.fd, data, s.len, MSG_NOSIGNAL); break;
      case op_kind::accept: io_uring_prep_accept(sqe, s.fd, nullptr, nullptr, SOCK_CLOEXEC); break;
      case op_kind::connect:
        io_uring_prep_connect(sqe, s.fd, reinterpret_cast<const sockaddr*>(&s.addr), s.addrlen);
        break;
      case op_kind::close: io_uring_prep_close(sqe, s.fd); break;
      case op_kind::fsync: io_uring_prep_fsync(sqe, s.fd, 0); break;
      case op_kind::timeout: io_uring_prep_timeout(sqe, &s.ts, 0, 0); break;
    }
  });
  if (ok) {
    s.in_kernel = true;
    ++in_kernel_;
  }
  return ok;
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
  const bool ok = ring_.prepare(cancel_tag, op_kind::nop, {},
                                [&](io_uring_sqe* sqe) { io_uring_prep_cancel64(sqe, target, 0); });
  if (ok) ++cancels_in_flight_;
  return ok;
}

void uring_loop::complete_early(op_slot& s, int32_t res) noexcept {
  if (!s.settled) settle(s, res);
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
    return;
  }
  op_slot* sp = lookup(id);
  if (sp == nullptr || !sp->in_kernel) {
    note("uring_internal", fmt::format("CQE for unknown op {:#x} (res {})", c.user_data, c.res));
    return;
  }
  op_slot& s = *sp;
  // Not final: the kernel still holds the buffer.
  if ((c.flags & IORING_CQE_F_MORE) != 0) return;
  s.in_kernel = false;
  --in_kernel_;
  // The kernel moved these bytes whoever takes the result: a dropped op in
  // the graveyard, or an op whose completion was handed out early.
  count_kernel_copy(s.kind, c.res);
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
    discard_result(s.kind, c.res);
    if (!s.queued) free_slot(s);
    return;
  }
  int32_t res = c.res;
  // A plain sleep that ran its course reports -ETIME: that is its success.
  if (s.kind == op_kind::timeout && res == -ETIME) res = 0;
  finish(s, res, c.flags);
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
    if (!s.in_kernel) free_slot(s);  // else it stays until its CQE, which is ignored
    if (w != nullptr) w->on_complete({res, 0, std::move(b)});
    else discard_result(kind, res);
    i = next;
  }
}

void uring_loop::reap_all() noexcept {
  // At most one CQ's worth per call: on_cqe's waiters may submit ops that
  // complete at once, and the loop must get back to its deadline check.
  ring_.reap([this](const io_uring_cqe& c) { on_cqe(c); }, ring_.cq_entries());
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
    ring_.submit_and_wait(std::min(left, max_wait));
    reap_all();
  }
}

void uring_loop::attach_pool(buffer_pool& pool) {
  pool_ = &pool;
  ledger_.watch(pool);
  if (options_.fixed_buffers) use_fixed_ = ring_.register_buffers(pool) == 0;
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
  while (in_kernel_ > 0 || cancels_in_flight_ > 0) {
    flush_backlog();
    deliver_ready();
    const auto now = clock_type::now();
    if (now >= until) break;
    const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(until - now);
    ring_.submit_and_wait(std::min(left, teardown_poll));
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
    }
  }

  // 4. Exit the ring, then stop watching the pool.
  ring_.close();
  ledger_.unwatch();
}

}  // namespace ringside
