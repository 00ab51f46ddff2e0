// uring-bounce: the borrowed-buffer API made safe over io_uring ("there needs
// to be at least one copy"). The kernel never writes into the caller's
// buffer: every read and recv runs on an internal buffer the backend owns,
// and the bytes that arrived move into the caller's span through exactly one
// counted copy (copy_payload). Sends and writes need no copy to be safe: the
// kernel only reads their buffer, and their result must wait for the kernel
// anyway (see cancel below), so they lend the caller's buffer the way
// uring-owned does — held by the op to its final CQE (send_zc: its
// notification), in the graveyard when dropped. One user copy per payload
// byte received, none per byte sent: on tcp.stream, one more than uring-owned.
//
// Buffer contract (bounce):
// - Caller's buffer (op.buf) of a read/recv: kept in the op's record, its
//   address never given to the kernel; internal -> caller copy (res bytes)
//   when the result is delivered. So that buffer is free of the kernel at
//   every moment: on cancel (-ECANCELED at once, below), on drop (released
//   to its pool at once), on teardown.
// - Caller's buffer of a write/send/send_zc: lent to the kernel and returned
//   only with the op's final CQE (or notification), like uring-owned; a
//   dropped one waits in uring_loop's graveyard. The ledger watches the
//   run's pool for these.
// - Internal buffers come from the backend's own page-aligned buffer_pools
//   (the main one sized at attach_pool from the run's pool, more added when
//   it runs dry: one mmap per pool, none per op in steady state). The ledger
//   watches the main internal pool as well as the run's; the ASan poisoning
//   and the TSan kernel fibers apply to every lent buffer. An internal
//   buffer goes back to its pool only at its op's final CQE: the op slot
//   holds it until then (uring_loop), also after the caller has had its
//   completion (the graveyard). Overflow pools (never needed by the suite)
//   are not watched by the ledger.
//
// cancel(id) and what each op kind's result then means:
// - recv, and read at the current position (~0: pipes, sockets) or at an
//   offset (files): cancel() returns at once (0) and asks the kernel
//   (ASYNC_CANCEL); the caller's completion is -ECANCELED with its buffer,
//   delivered from the loop — never inside cancel() — WITHOUT waiting for the
//   op's CQE. At the loop's next pass the backend enters the kernel once
//   itself (submit + GETEVENTS, no wait: the cancel is in, and the kernel
//   has run its completion work), then looks at the CQ (memory reads): if
//   the op's own CQE is there, that is its result — a recv whose data was
//   already there (it ran inline in that enter, or its CQE sat unreaped)
//   delivers its bytes: a cancel that loses the race never turns a success
//   into -ECANCELED (cancel.recv_completed, stop_vs_complete, storm); a recv
//   parked on poll ends there and then (-ECANCELED, its file reference
//   dropped, so a socket closed meanwhile really closes: close_pending; no
//   byte taken from the socket: free_after_cancel's FIONREAD). Only an op
//   the kernel is still RUNNING (an io-wq worker: ASYNC_CANCEL says
//   -EALREADY) completes -ECANCELED before its CQE — the bounce's point —
//   with its internal buffer left in the graveyard until that CQE. The
//   bytes such an op still reads land in the internal buffer, never the
//   caller's: a stream read's (recv, read at ~0) are stashed per fd (with
//   the fd's inode, so a closed and reused fd number never gets them) and
//   handed, in order, to the next recv/read on that fd before it issues an
//   SQE (an inline completion); a positional (file) read's are dropped:
//   nothing was consumed. No byte a stream carried is lost or duplicated.
//   (Seen on 6.18: a 64 MiB file read at ~0 forced to io-wq, cancelled a
//   loop pass after submit, completes -ECANCELED at once and the kernel
//   then reads it all: the next read gets it from the stash. At 16 MiB the
//   read is done by the time the cancel's enter returns: no early result.)
//   Still possible and not handled: a recv RUNNING in io-wq (IOSQE_ASYNC on
//   a blocking socket) whose stash lands after a LATER recv on the same fd
//   was issued would reorder the stream; io_uring arms poll for sockets even
//   with IOSQE_ASYNC, and no scenario issues one.
// - send, write, send_zc: a send cannot be un-sent: its result must be the
//   bytes really sent, or a stream's sender would resend (duplicates) or
//   skip (gaps) data (cancel.partial_write, cancel.enoent). So cancel() asks
//   the kernel and the op completes at its own final CQE, exactly as on
//   uring-owned: the partial count, the full count, or -ECANCELED when
//   nothing was sent; send_zc at its notification (uring_loop). A bounce
//   copy would buy the caller nothing here (its completion waits for the
//   kernel either way), so there is none: the caller's buffer is lent.
// - accept, connect, close, fsync, timeout, nop carry no buffer: exactly
//   uring-owned (the result at the op's own CQE; an accepted fd is never
//   lost).
// - recv_multishot: its group's buffers are handed to the kernel through a
//   provided-buffer ring and given to the caller WITH each CQE (on_more):
//   an owned-buffer API by construction, with no caller span to protect. It
//   passes through unbounced, like uring-owned (zero user copies; the
//   ledger watches only the internal pool, so it does not see those).
// drop(id): the waiter is never called again; the op is cancelled. A read's
// or recv's caller buffer goes back to its pool at once (the kernel never
// had it), its internal buffer waits in the graveyard for the final CQE, and
// a dropped stream read's late bytes are stashed like a cancelled one's (a
// stream's next reader gets them). A send's or write's caller buffer (the
// kernel has it) waits in the graveyard, as on uring-owned.
//
// Everything else is uring_loop's: deadline_ns (linked timeout: the op ends
// with its own CQE), force_async, wait_all, submit-failure injection,
// submitter_exits (the exiting-submitter ring; such ops are never completed
// early: the kernel ends them itself).
//
// TEST-ONLY: RINGSIDE_BOUNCE_FAULT=release-internal-on-cancel makes cancel()
// of a recv/read give its internal buffer back to the pool at once, while the
// kernel still holds it (the ledger must catch it:
// tests/unit/uring_bounce_test.cpp). A real run never sets it.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <vector>

#include "harness/backend.hpp"
#include "harness/meters.hpp"
#include "harness/perform.hpp"
#include "harness/ring.hpp"
#include "harness/uring_loop.hpp"

namespace ringside {

namespace {

// The payload ops whose buffer is bounced through an internal one: those the
// kernel writes into (read, recv). Writes and sends lend the caller's.
constexpr bool bounced(op_kind k) noexcept { return moves_payload(k) && kernel_writes_buffer(k); }

// A receive whose late bytes belong to a stream (so they are stashed, not
// dropped): a recv, or a read at the current position.
constexpr bool stream_read(op_kind k, uint64_t offset) noexcept {
  return k == op_kind::recv || (k == op_kind::read && offset == ~uint64_t{0});
}

// The socket (or pipe, file) behind an fd now, so a stash never outlives the
// descriptor it was taken from: fd numbers are reused, inodes of live files
// are not. False when the fd is closed.
struct fd_identity {
  dev_t dev = 0;
  ino_t ino = 0;
  friend bool operator==(const fd_identity&, const fd_identity&) = default;
};
bool identify(int fd, fd_identity& out) noexcept {
  struct stat st {};
  meters::count_syscall();
  if (::fstat(fd, &st) != 0) return false;
  out = {st.st_dev, st.st_ino};
  return true;
}

class uring_bounce;

// One caller-facing op. The internal op (uring_loop's slot) is its waiter's
// record: uring_loop completes the record at the internal op's final CQE, and
// the record completes the caller — then, or earlier (cancel of a read).
// Immovable: uring_loop holds its address as the waiter.
struct bounce_op final : op_waiter {
  bounce_op() = default;
  bounce_op(const bounce_op&) = delete;
  bounce_op& operator=(const bounce_op&) = delete;

  void on_started(op_id id) noexcept override;
  void on_complete(completion&& c) noexcept override;
  void on_more(completion&& c) noexcept override;

  uring_bounce* owner = nullptr;
  // Null once the caller has its completion (early, on cancel) or dropped it.
  op_waiter* caller = nullptr;
  // The caller's buffer: held here, never lent to the kernel.
  buffer user;
  op_id inner{};  // the internal op (uring_loop's id)
  uint64_t offset = 0;
  uint32_t len = 0;
  uint32_t user_offset = 0;
  uint32_t index = 0;
  uint32_t gen = 1;  // never 0, so no id is 0
  uint32_t next = ~0u;
  int fd = -1;
  op_kind kind = op_kind::nop;
  bool in_use = false;
  bool bounce = false;    // runs on an internal buffer (user holds the caller's)
  bool early = false;     // cancel asked; -ECANCELED waits for deliver_deferred
  bool entered = false;   // deliver_deferred has entered the kernel since
  bool no_early = false;  // op.submitter_exits: the kernel ends it; never early
};

class uring_bounce final : public uring_loop {
 public:
  explicit uring_bounce(const backend_options& o) : uring_loop(uring_loop_defaults(o)), faults_(faults_from_env()) {
    while (capacity_ < initial_records) grow();
    // Rare paths, sized once so they do not allocate when used.
    deferred_.reserve(initial_records);
    stash_.reserve(16);  // 16: stashes are rare (a running recv that lost to a cancel)
  }
  ~uring_bounce() override { teardown(); }

  [[nodiscard]] std::string_view name() const noexcept override { return "uring-bounce"; }
  [[nodiscard]] const backend_caps& caps() const noexcept override {
    static const backend_caps c{
        .contract = buffer_contract::bounce,
        .file_io = true,
        .async_file_io = true,
        .cancel_in_flight = true,
        // A regular-file read, once issued, runs to completion in the kernel
        // (into the internal buffer); its caller may be told -ECANCELED first.
        .cancel_file_io = false,
        // A read's buffer comes back at its completion, which may precede
        // the internal op's final CQE (a send's waits for its own).
        .holds_buffer_until_completion = false,
        .zero_copy_send = true,
        // uring_loop's exiting-submitter ring (op.submitter_exits).
        .submitter_can_exit = true,
    };
    return c;
  }

  // Reads lend the kernel internal buffers, sends the run's: the ledger
  // watches both pools. The main internal pool is sized from the run's (one
  // per caller buffer in flight, plus as many for the graveyard and stashes).
  void attach_pool(buffer_pool& pool) override {
    if (!pools_.empty()) return;
    add_pool(main_count(pool.count(), pool.buffer_size()), pool.buffer_size());
    uring_loop::attach_pool(*pools_.front());
    ledger().watch_also(pool);
  }

  op_id submit(op&& o, op_waiter* w) noexcept override;
  int cancel(op_id id) noexcept override;
  void drop(op_id id) noexcept override;

  // ---- bounce_op's callbacks from uring_loop ----
  void started(bounce_op& r, op_id inner) noexcept {
    r.inner = inner;
    if (r.caller != nullptr) r.caller->on_started(inner ? own_id(r) : op_id{});
  }
  void done(bounce_op& r, completion&& c) noexcept;
  void more(bounce_op& r, completion&& c) noexcept {
    if (r.caller != nullptr) r.caller->on_more(std::move(c));
    // else: dropped; c.buf goes back to its pool here.
  }

 protected:
  void deliver_deferred() noexcept override;

 private:
  // TEST-ONLY fault switch (RINGSIDE_BOUNCE_FAULT); see the header comment.
  static constexpr uint32_t fault_release_internal_on_cancel = 1u << 0;
  static uint32_t faults_from_env() {
    const char* v = std::getenv("RINGSIDE_BOUNCE_FAULT");
    if (v == nullptr || *v == '\0') return 0;
    if (std::string_view(v) == "release-internal-on-cancel") return fault_release_internal_on_cancel;
    throw std::invalid_argument(std::string("RINGSIDE_BOUNCE_FAULT: unknown fault switch '") + v +
                                "' (valid, test-only: release-internal-on-cancel)");
  }

  // 256 records per chunk, like uring_loop's slots: small enough to add
  // mid-run, large enough that the chunk table stays tiny.
  static constexpr uint32_t chunk_bits = 8;
  static constexpr uint32_t chunk_size = 1u << chunk_bits;
  static constexpr uint32_t initial_records = 256;
  static constexpr uint32_t npos = ~0u;
  // 256 MiB: the most the main internal pool maps up front (its pages are
  // touched only when used); bulk tests with 64 MiB buffers get a few.
  static constexpr size_t main_pool_bytes_cap = size_t(256) << 20;
  // 16: an overflow pool's buffers at most (fewer for big buffers, within
  // the same byte cap, at least 2); overflow means a graveyard or stash
  // outgrew the main pool's slack, rare enough that small steps do.
  static constexpr size_t overflow_count = 16;
  // 64 KiB: internal buffer size when no run pool was attached (tests that
  // build a backend bare); larger ops get a pool of their own size.
  static constexpr size_t default_buffer_size = size_t(64) << 10;

  static size_t main_count(size_t count, size_t size) noexcept {
    // Every caller buffer in flight once, plus as many again (at least 16)
    // for cancelled ops in the graveyard and stashes; within the byte cap,
    // but never fewer than count + 2.
    size_t n = count + std::max<size_t>(count, 16);
    if (size != 0 && n * size > main_pool_bytes_cap) n = std::max(count + 2, main_pool_bytes_cap / size);
    return n;
  }

  bounce_op& rec(uint32_t i) noexcept { return chunks_[i >> chunk_bits][i & (chunk_size - 1)]; }
  static op_id own_id(const bounce_op& r) noexcept { return op_id::make(r.index, r.gen); }
  bounce_op* lookup(op_id id) noexcept {
    if (!id || id.slot() >= capacity_) return nullptr;
    bounce_op& r = rec(id.slot());
    return (r.in_use && r.gen == id.gen()) ? &r : nullptr;
  }
  bool grow() noexcept {
    try {
      chunks_.push_back(std::make_unique<bounce_op[]>(chunk_size));
    } catch (...) {
      return false;
    }
    const uint32_t base = capacity_;
    capacity_ += chunk_size;
    for (uint32_t i = chunk_size; i-- > 0;) {
      bounce_op& r = rec(base + i);
      r.owner = this;
      r.index = base + i;
      r.next = free_head_;
      free_head_ = base + i;
    }
    return true;
  }
  bounce_op* alloc() noexcept {
    if (free_head_ == npos && !grow()) return nullptr;
    bounce_op& r = rec(free_head_);
    free_head_ = r.next;
    r.next = npos;
    r.in_use = true;
    return &r;
  }
  void release(bounce_op& r) noexcept {
    r.in_use = r.bounce = r.early = r.entered = r.no_early = false;
    r.caller = nullptr;
    r.user.reset();
    r.inner = {};
    r.gen = (r.gen + 1) & ((1u << 31) - 1);  // op_id's generation half; never 0
    if (r.gen == 0) r.gen = 1;
    r.next = free_head_;
    free_head_ = r.index;
  }

  // Setup, or the rare growth path (may allocate; false when it could not).
  bool add_pool(size_t count, size_t size) noexcept {
    try {
      pools_.push_back(std::make_unique<buffer_pool>(count, size));
      return true;
    } catch (...) {
      return false;
    }
  }
  // An internal buffer of at least len bytes: from the pools there are, else
  // from a new one (the main one, watched by the ledger, if none was
  // attached). Invalid when memory ran out.
  buffer internal(uint32_t len) noexcept;

  // Late bytes of a stream read that lost to its cancel (or drop), for the
  // next read on the same fd. Borrowed: b holds them at [off, off + len).
  struct stash_entry {
    int fd = -1;
    fd_identity id;
    buffer b;
    uint32_t off = 0;
    uint32_t len = 0;
  };
  void stash(int fd, buffer b, uint32_t len) noexcept;
  void forget_stash(int fd) noexcept;
  // Completes o from the fd's stash (inline) and returns true; false when
  // the fd has none.
  bool take_stash(op& o, op_waiter* w) noexcept;
  // The op's final CQE is posted and not yet reaped (plain memory reads).
  bool cqe_waiting(op_id inner) noexcept;

  uint32_t faults_ = 0;
  // Declared first: destroyed last, after every buffer taken from them.
  std::vector<std::unique_ptr<buffer_pool>> pools_;
  std::vector<std::unique_ptr<bounce_op[]>> chunks_;
  uint32_t capacity_ = 0;
  uint32_t free_head_ = npos;
  std::vector<op_id> deferred_;  // early cancels waiting for their enter
  std::vector<stash_entry> stash_;
};

void bounce_op::on_started(op_id id) noexcept { owner->started(*this, id); }
void bounce_op::on_complete(completion&& c) noexcept { owner->done(*this, std::move(c)); }
void bounce_op::on_more(completion&& c) noexcept { owner->more(*this, std::move(c)); }

buffer uring_bounce::internal(uint32_t len) noexcept {
  for (auto& p : pools_)
    if (p->buffer_size() >= len)
      if (buffer b = p->acquire()) return b;
  if (pools_.empty()) {
    // No run pool attached: a main pool of the default shape, watched.
    const size_t size = std::max<size_t>(default_buffer_size, len);
    if (!add_pool(main_count(64, size), size)) return {};
    try {
      uring_loop::attach_pool(*pools_.front());
    } catch (...) {
    }
    return pools_.front()->acquire();
  }
  // Dry (a graveyard or stash outgrew the slack), or an op larger than the
  // run's buffers: one more pool, never given back before the backend goes.
  const size_t size = std::max<size_t>(pools_.front()->buffer_size(), len);
  const size_t count = std::clamp<size_t>(main_pool_bytes_cap / size, 2, overflow_count);
  if (!add_pool(count, size)) return {};
  return pools_.back()->acquire();
}

// ------------------------------------------------------------------ submit ----

op_id uring_bounce::submit(op&& o, op_waiter* w) noexcept {
  // A payload op whose range does not fit its buffer is not bounced:
  // uring_loop completes it -EINVAL from the loop, with its buffer.
  const bool bounce = bounced(o.kind) && payload_error(o) == 0;
  if (bounce) {
    if (!stash_.empty() && stream_read(o.kind, o.offset) && take_stash(o, w)) return {};
  } else if (o.kind == op_kind::close && !stash_.empty()) {
    forget_stash(o.fd);  // nobody reads this fd again
  }
  bounce_op* r = alloc();
  buffer ib;
  if (r != nullptr && bounce) ib = internal(o.len);
  if (r == nullptr || (bounce && !ib)) {
    if (r != nullptr) release(*r);
    return end_unstarted(w, r == nullptr ? -ENOMEM : -ENOBUFS, std::move(o.buf));
  }
  r->caller = w;
  r->kind = o.kind;
  r->fd = o.fd;
  r->offset = o.offset;
  r->len = o.len;
  r->no_early = o.submitter_exits;
  r->bounce = bounce;
  if (bounce) {
    // The kernel gets the internal buffer; the caller's waits in the record.
    r->user = std::move(o.buf);
    r->user_offset = o.buf_offset;
    o.buf = std::move(ib);
    o.buf_offset = 0;
  }
  const op_id own = own_id(*r);
  // started() tells the caller its id; an op that ends inside this call
  // (teardown, no slot) is completed and its record released already.
  const op_id inner = uring_loop::submit(std::move(o), r);
  return inner ? own : op_id{};
}

// ------------------------------------------------------------- completion ----

void uring_bounce::done(bounce_op& r, completion&& c) noexcept {
  buffer ib = std::move(c.buf);
  op_waiter* w = std::exchange(r.caller, nullptr);
  if (w != nullptr) {
    const bool bounce = r.bounce;
    // The one copy of a read: only the bytes the kernel wrote.
    if (bounce && kernel_writes_buffer(r.kind) && c.res > 0)
      copy_payload({r.user.data() + r.user_offset, uint32_t(c.res)}, ib.first(uint32_t(c.res)));
    buffer out = bounce ? std::move(r.user) : std::move(ib);
    release(r);
    ib.reset();  // the internal buffer: back to its pool (the kernel is done)
    w->on_complete({c.res, c.flags, std::move(out)});
    return;
  }
  // The caller had -ECANCELED already (or dropped the op): the graveyard ends.
  if (r.bounce && c.res > 0 && stream_read(r.kind, r.offset)) stash(r.fd, std::move(ib), uint32_t(c.res));
  else discard_result(r.kind, c.res);  // an accepted fd nobody takes is closed
  release(r);
}

bool uring_bounce::cqe_waiting(op_id inner) noexcept {
  io_uring& ring = uring().native();
  unsigned head;
  io_uring_cqe* cqe;
  io_uring_for_each_cqe(&ring, head, cqe) {
    if (cqe->user_data == inner.value && (cqe->flags & IORING_CQE_F_MORE) == 0) return true;
  }
  return false;
}

void uring_bounce::deliver_deferred() noexcept {
  if (deferred_.empty()) return;
  // Cancels asked since the last pass enter the kernel now, in one enter
  // that submits and runs the kernel's completion work (GETEVENTS) without
  // waiting: the loop's own enter would wait for a CQE, and the op's may be
  // far off (a file read an io-wq worker is running: its ASYNC_CANCEL says
  // -EALREADY). Whatever that enter finishes — a recv that ran inline with
  // its data there, a recv parked on poll that the cancel ended (its file
  // reference dropped: a socket closed meanwhile really closes,
  // cancel.close_pending) — has its CQE posted when it returns, and
  // cqe_waiting() then sees it: that is the op's result, not -ECANCELED.
  bool fresh = false;
  for (const op_id id : deferred_) {
    const bounce_op* r = lookup(id);
    fresh = fresh || (r != nullptr && r->early && !r->entered);
  }
  if (fresh && uring().submit_and_get_events() >= 0) {
    for (const op_id id : deferred_)
      if (bounce_op* r = lookup(id); r != nullptr && r->early) r->entered = true;
  }
  // Only those queued now; waiters called here may queue more (appended).
  const size_t n = deferred_.size();
  size_t keep = 0;
  for (size_t i = 0; i < n; ++i) {
    const op_id id = deferred_[i];
    bounce_op* r = lookup(id);
    if (r == nullptr || !r->early || r->caller == nullptr) continue;  // its CQE came first, or dropped
    // Not before its ASYNC_CANCEL has entered the kernel (an injected
    // submit failure: next pass), nor while its own CQE waits in the CQ.
    if (!r->entered || cqe_waiting(r->inner)) {
      deferred_[keep++] = id;
      continue;
    }
    r->early = false;
    op_waiter* w = std::exchange(r->caller, nullptr);
    buffer b = std::move(r->user);
    w->on_complete({-ECANCELED, 0, std::move(b)});
  }
  deferred_.erase(deferred_.begin() + std::ptrdiff_t(keep), deferred_.begin() + std::ptrdiff_t(n));
}

// ------------------------------------------------------------ cancel, drop ----

int uring_bounce::cancel(op_id id) noexcept {
  bounce_op* r = lookup(id);
  if (r == nullptr || r->caller == nullptr) return -ENOENT;
  if (r->early) return 0;  // asked already; its -ECANCELED is on its way
  op_slot* s = pending(r->inner);
  if (s == nullptr) return -ENOENT;  // its result is decided, on its way
  request_cancel(*s);
  if (!r->no_early && r->bounce && kernel_writes_buffer(r->kind) && s->in_kernel && !s->settled) {
    r->early = true;
    r->entered = false;
    try {
      deferred_.push_back(id);  // reserved; beyond that it may allocate
    } catch (...) {
      r->early = false;  // out of memory: the op completes at its CQE instead
    }
    // Test-only fault: the internal buffer goes back while the kernel holds it.
    if ((faults_ & fault_release_internal_on_cancel) != 0) s->buf.reset();
  }
  return 0;
}

void uring_bounce::drop(op_id id) noexcept {
  bounce_op* r = lookup(id);
  if (r == nullptr || r->caller == nullptr) return;
  r->caller = nullptr;
  r->early = false;
  r->user.reset();  // the kernel never had it: back to its pool now
  op_slot* s = attached(r->inner);
  if (s == nullptr) return;
  request_cancel(*s);
  if (r->bounce && stream_read(r->kind, r->offset)) return;  // its late bytes go to the stash (done())
  // Nothing of its result is wanted: uring_loop's graveyard, as on
  // uring-owned (the internal buffer back to its pool and an accepted fd
  // closed at the final CQE; a multishot's unused buffers back to their
  // pool, not to a group that may have died with the frame).
  detach(*s);
  release(*r);
}

// ------------------------------------------------------------------ stash ----

void uring_bounce::stash(int fd, buffer b, uint32_t len) noexcept {
  fd_identity id;
  if (!identify(fd, id)) return;  // closed: nobody can read these bytes any more
  try {
    stash_.push_back({fd, id, std::move(b), 0, len});
  } catch (...) {
    // Out of memory: the bytes are lost (reported by the stream check).
  }
}

void uring_bounce::forget_stash(int fd) noexcept {
  std::erase_if(stash_, [fd](const stash_entry& e) { return e.fd == fd; });
}

bool uring_bounce::take_stash(op& o, op_waiter* w) noexcept {
  auto it = std::find_if(stash_.begin(), stash_.end(), [&](const stash_entry& e) { return e.fd == o.fd; });
  if (it == stash_.end()) return false;
  fd_identity now;
  if (!identify(o.fd, now) || !(now == it->id)) {
    // The fd was closed (and its number maybe reused): those bytes are gone
    // with their descriptor.
    std::erase_if(stash_, [&](const stash_entry& e) { return e.fd == o.fd && !(e.id == now); });
    it = std::find_if(stash_.begin(), stash_.end(), [&](const stash_entry& e) { return e.fd == o.fd; });
    if (it == stash_.end()) return false;
  }
  const uint32_t n = std::min(o.len, it->len);
  copy_payload(payload(o).first(n), {it->b.data() + it->off, n});
  it->off += n;
  it->len -= n;
  if (it->len == 0) stash_.erase(it);
  w->on_started({});
  w->on_complete({int32_t(n), 0, std::move(o.buf)});
  return true;
}

}  // namespace

void register_uring_bounce_backend() {
  register_backend({
      .name = "uring-bounce",
      .description = "io_uring, caller's buffer never lent: one counted copy through an internal buffer; "
                     "cancel completes at once, internal buffers wait for their CQE",
      .unavailable_reason = [] { return uring_unavailable_reason(); },
      .make = [](const backend_options& o) -> std::unique_ptr<backend> { return std::make_unique<uring_bounce>(o); },
  });
}

}  // namespace ringside
