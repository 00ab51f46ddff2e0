// example-uring: an out-of-tree backend, loaded with `--plugin`.
//
// It runs ITS OWN io_uring ring with liburing directly (nothing of ringside's
// io_uring loop), under the owned-buffer contract: the op's buffer (handed out
// by ringside's pool) moves into an immovable op slot and comes back ONLY
// with the op's final CQE. cancel() sends IORING_OP_ASYNC_CANCEL and the op
// still ends with its own CQE (-ECANCELED, or its real result if it won the
// race). A dropped op stays in the slot — the graveyard — until its CQE; then
// its buffer goes back to the pool and an accepted fd is closed.
//
// Ops: nop, read, write, recv, send, accept, connect, close, fsync, timeout,
// op.deadline_ns (a linked timeout), op.force_async (IOSQE_ASYNC), and
// recv_multishot emulated with one recv per group buffer. send_zc and
// op.submitter_exits complete -EOPNOTSUPP, and caps say so.
//
// Because the buffers come from ringside's pool and the scenarios are
// ringside's, the black-box detectors (canary, guard pages, stream integrity,
// fd census, exactly-once, watchdog) watch this backend as they watch the
// built-in ones. To prove it, RINGSIDE_EXAMPLE_FAULT=release-on-cancel
// breaks the contract (TEST-ONLY): cancel() hands the buffer back to the pool
// at once, while the kernel may still write into it.
//
// Single-threaded: every call comes from the thread that runs the loop.
#include <liburing.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "harness/buffer_group.hpp"
#include "harness/meters.hpp"
#include "harness/perform.hpp"
#include "harness/plugin_api.hpp"
#include "harness/task_set.hpp"

namespace {

using namespace ringside;

// Generations stay below the tag bits, so a cancel's or a linked timeout's CQE
// can never be taken for an op's own.
constexpr uint32_t cancel_bit = 1u << 30;
constexpr uint32_t link_bit = 1u << 31;
constexpr uint32_t gen_mask = (1u << 29) - 1;
// 2 s: a cancelled socket op ends in microseconds, a disk read in
// milliseconds; longer is a hang worth reporting, not waiting for.
constexpr auto teardown_budget = std::chrono::seconds(2);
// 100 ms: teardown re-checks its budget at least this often; 60 s: the longest
// sleep in the kernel when the deadline is far away.
constexpr auto teardown_poll = std::chrono::milliseconds(100);
constexpr auto max_wait = std::chrono::seconds(60);
// 16: while completions decided without the kernel keep user work runnable,
// the loop still enters the kernel every 16 passes, so queued SQEs go out and
// other streams' completions come in (no stream starves the others).
constexpr uint32_t busy_enter_every = 16;
constexpr uint32_t npos = ~0u;

class example_uring final : public backend {
 public:
  explicit example_uring(const backend_options& o) {
    // Room for every stream's next op in one batch; 64..4096 as the built-in
    // io_uring backends size theirs.
    uint32_t entries = 64;
    while (entries < std::max(o.queue_depth, o.max_streams) * 2 && entries < 4096) entries *= 2;
    io_uring_params p{};
    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = entries * 4;  // bursts of socket completions never overflow
    meters::count_syscall();
    if (const int r = io_uring_queue_init_params(entries, &ring_, &p); r < 0)
      throw std::system_error(-r, std::generic_category(), "io_uring_queue_init_params");
    const char* fault = std::getenv("RINGSIDE_EXAMPLE_FAULT");
    if (fault != nullptr && *fault != '\0') {
      if (std::string_view(fault) != "release-on-cancel") {
        io_uring_queue_exit(&ring_);
        throw std::invalid_argument("RINGSIDE_EXAMPLE_FAULT: unknown fault '" + std::string(fault) +
                                    "' (valid, test-only: release-on-cancel)");
      }
      release_on_cancel_ = true;
    }
    // 256 slots up front: the hot path then never allocates.
    free_.reserve(256);
    for (uint32_t i = 0; i < 256; ++i) add_slot();
  }
  ~example_uring() override { teardown(); }
  example_uring(const example_uring&) = delete;
  example_uring& operator=(const example_uring&) = delete;

  [[nodiscard]] std::string_view name() const noexcept override { return "example-uring"; }
  [[nodiscard]] const backend_caps& caps() const noexcept override {
    static const backend_caps c{
        .contract = buffer_contract::owned,
        .file_io = true,
        .async_file_io = true,
        .cancel_in_flight = true,
        .cancel_file_io = false,  // a regular-file read, once issued, runs to completion
        .holds_buffer_until_completion = true,
        .zero_copy_send = false,      // send_zc completes -EOPNOTSUPP
        .submitter_can_exit = false,  // op.submitter_exits completes -EOPNOTSUPP
    };
    return c;
  }

  // Buffers arrive with their ops; the detectors hook the pool itself, so
  // this backend needs nothing from it.
  void attach_pool(buffer_pool& pool) override { (void)pool; }
  void adopt(int fd) override { (void)fd; }  // io_uring drives any fd mode
  void spawn(task<> t) override { tasks_.spawn(std::move(t)); }

  int run(clock_type::time_point deadline) override {
    if (hung_ || tearing_down_) return -ETIME;
    for (;;) {
      tasks_.start_queued();
      deliver_ready();
      if (tasks_.live() == 0) {
        submit_queued();  // cancels of dropped ops, issued by tasks that then ended
        return 0;
      }
      const auto now = clock_type::now();
      if (now >= deadline) {
        hung_ = true;
        return -ETIME;
      }
      if (ready_head_ != npos || tasks_.has_queued()) {
        // More user work is runnable now: do not sleep, but enter now and then.
        if (++busy_passes_ >= busy_enter_every) {
          busy_passes_ = 0;
          wait(std::chrono::nanoseconds(0));
        }
        reap();
        continue;
      }
      busy_passes_ = 0;
      const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - now);
      wait(std::min<std::chrono::nanoseconds>(left, max_wait));
      reap();
    }
  }

  op_id submit(op&& o, op_waiter* w) noexcept override {
    if (tearing_down_) {
      return end_unstarted(w, -ECANCELED, std::move(o.buf));
    }
    op_slot* s = alloc_slot();
    if (s == nullptr) {
      return end_unstarted(w, -ENOMEM, std::move(o.buf));
    }
    s->waiter = w;
    const op_id id = op_id::make(s->index, s->gen);
    w->on_started(id);
    int32_t err = fill(*s, std::move(o));
    if (err == 0 && !issue(*s)) err = -EAGAIN;
    // The op never reached the kernel: its completion is delivered from the
    // loop (not inline), so a stream whose ops all fail at once still yields
    // to the others.
    if (err != 0) settle(*s, err);
    return id;
  }

  int cancel(op_id id) noexcept override {
    op_slot* s = lookup(id);
    if (s == nullptr || s->waiter == nullptr || s->settled) return -ENOENT;
    if (s->cancel_requested) return 0;
    s->cancel_requested = true;
    // TEST-ONLY fault: the buffer goes back to the pool NOW, while the
    // kernel may still write into it (the canary/guard detectors catch it).
    if (release_on_cancel_ && s->in_kernel) s->buf.reset();
    // Not in the kernel: a multishot between two receives (cancelled from
    // its own on_more); its CQE handler ends it when on_more returns.
    if (s->in_kernel) send_cancel(*s);
    return 0;
  }

  void drop(op_id id) noexcept override {
    op_slot* s = lookup(id);
    if (s == nullptr || s->waiter == nullptr) return;
    s->waiter = nullptr;  // the graveyard: the slot keeps the buffer until the CQE
    if (s->in_kernel && !s->cancel_sent) send_cancel(*s);
  }

  void shutdown() noexcept override { teardown(); }

  void collect_violations(std::vector<violation>& out) override {
    tasks_.take_violations(out);
    for (auto& v : violations_) out.push_back(std::move(v));
    violations_.clear();
  }

 private:
  // Immovable (the kernel holds pointers into it: addr, ts, the buffer).
  struct op_slot {
    op_slot() = default;
    op_slot(const op_slot&) = delete;
    op_slot& operator=(const op_slot&) = delete;

    buffer buf;                   // the op's buffer: handed back only with the final CQE
    op_waiter* waiter = nullptr;  // null: dropped (graveyard) or free
    std::vector<buffer> provided;  // recv_multishot: the group's buffers, used in order
    buffer_group* group = nullptr;
    uint32_t next_bid = 0;
    sockaddr_storage addr{};  // connect: a copy; the caller's may die with its frame
    socklen_t addrlen = 0;
    __kernel_timespec ts{};           // timeout
    __kernel_timespec deadline_ts{};  // the linked timeout's
    uint64_t offset = 0;
    uint64_t deadline_ns = 0;
    uint32_t len = 0;
    uint32_t buf_offset = 0;
    uint32_t gen = 1;
    uint32_t index = 0;
    int fd = -1;
    op_kind kind = op_kind::nop;
    bool in_use = false;
    bool in_kernel = false;  // an SQE is out and its CQE not reaped
    bool cancel_requested = false;
    bool cancel_sent = false;
    bool settled = false;  // completion decided without the kernel, waiting in the ready queue
    int32_t res = 0;       // ... with this result
    uint32_t next = npos;  // the ready queue
    bool force_async = false;
    bool wait_all = false;
  };

  void add_slot() {
    op_slot& s = slots_.emplace_back();
    s.index = uint32_t(slots_.size() - 1);
    free_.push_back(s.index);
  }

  op_slot* alloc_slot() noexcept {
    if (free_.empty()) {
      try {
        // Grows only past the working size (never in steady state).
        free_.reserve(slots_.size() * 2);
        for (size_t k = slots_.size(); k-- > 0 && slots_.size() < gen_mask;) add_slot();
      } catch (...) {
        if (free_.empty()) return nullptr;
      }
    }
    op_slot& s = slots_[free_.back()];
    free_.pop_back();
    s.in_use = true;
    return &s;
  }

  void free_slot(op_slot& s) noexcept {
    s.in_use = s.in_kernel = s.cancel_requested = s.cancel_sent = s.settled = false;
    s.waiter = nullptr;
    s.group = nullptr;
    s.gen = (s.gen + 1) & gen_mask;  // a reused slot never repeats an id
    if (s.gen == 0) s.gen = 1;
    free_.push_back(s.index);  // reserved to slots_.size(): never allocates
  }

  op_slot* lookup(op_id id) noexcept {
    if (!id || id.slot() >= slots_.size()) return nullptr;
    op_slot& s = slots_[id.slot()];
    return s.in_use && s.gen == id.gen() ? &s : nullptr;
  }

  int32_t fill(op_slot& s, op&& o) noexcept {
    s.kind = o.kind;
    s.fd = o.fd;
    s.offset = o.offset;
    s.len = o.len;
    s.buf_offset = o.buf_offset;
    s.deadline_ns = o.deadline_ns;
    s.force_async = o.force_async;
    s.wait_all = o.wait_all;
    s.next_bid = 0;
    const int32_t range_error = payload_error(o);
    s.buf = std::move(o.buf);  // handed back with the completion, even an error one
    if (o.submitter_exits || s.kind == op_kind::send_zc) return -EOPNOTSUPP;
    if (range_error != 0) return range_error;
    switch (s.kind) {
      case op_kind::recv_multishot:
        if (o.group == nullptr) return -EINVAL;
        s.group = o.group;
        s.group->swap_buffers(s.provided);
        if (s.provided.empty()) return -ENOBUFS;
        break;
      case op_kind::connect:
        if (o.addr == nullptr || o.addrlen > sizeof(s.addr)) return -EINVAL;
        std::memcpy(&s.addr, o.addr, o.addrlen);  // an address, not payload
        s.addrlen = o.addrlen;
        break;
      case op_kind::timeout:
        s.ts.tv_sec = int64_t(o.timeout_ns / 1'000'000'000);
        s.ts.tv_nsec = int64_t(o.timeout_ns % 1'000'000'000);
        break;
      default:
        break;
    }
    s.deadline_ts.tv_sec = int64_t(s.deadline_ns / 1'000'000'000);
    s.deadline_ts.tv_nsec = int64_t(s.deadline_ns % 1'000'000'000);
    return 0;
  }

  // An SQE, submitting what is queued if the SQ is full; null if the kernel
  // takes nothing now.
  io_uring_sqe* get_sqe() noexcept {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      submit_queued();
      sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
  }

  void submit_queued() noexcept {
    if (io_uring_sq_ready(&ring_) == 0) return;
    meters::count_syscall();
    io_uring_submit(&ring_);
  }

  // Prepares the op's SQE (and its linked timeout). False: no SQE to be had.
  bool issue(op_slot& s) noexcept {
    const bool linked = s.deadline_ns != 0;
    // A linked timeout must follow its op directly in the SQ.
    if (linked && io_uring_sq_space_left(&ring_) < 2) submit_queued();
    io_uring_sqe* sqe = get_sqe();
    if (sqe == nullptr) return false;
    // Borrowed by the kernel until this op's final CQE: the slot keeps it.
    std::byte* data = s.buf.data() + s.buf_offset;
    switch (s.kind) {
      case op_kind::nop: io_uring_prep_nop(sqe); break;
      case op_kind::read: io_uring_prep_read(sqe, s.fd, data, s.len, s.offset); break;
      case op_kind::write: io_uring_prep_write(sqe, s.fd, data, s.len, s.offset); break;
      case op_kind::recv: io_uring_prep_recv(sqe, s.fd, data, s.len, 0); break;
      // MSG_NOSIGNAL: a peer that closed gives -EPIPE, not SIGPIPE.
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
      case op_kind::recv_multishot: {
        // Emulated: one plain recv into the group's next buffer at a time.
        buffer& b = s.provided[s.next_bid];
        const auto n = uint32_t(std::min<size_t>(b.capacity(), s.len != 0 ? s.len : b.capacity()));
        io_uring_prep_recv(sqe, s.fd, b.data(), n, 0);
        break;
      }
      case op_kind::send_zc: io_uring_prep_nop(sqe); break;  // never: fill() refuses it
    }
    io_uring_sqe_set_data64(sqe, op_id::make(s.index, s.gen).value);
    if (s.force_async) sqe->flags |= IOSQE_ASYNC;
    if (linked) {
      sqe->flags |= IOSQE_IO_LINK;
      io_uring_sqe* t = get_sqe();  // room was made above
      if (t != nullptr) {
        io_uring_prep_link_timeout(t, &s.deadline_ts, 0);
        io_uring_sqe_set_data64(t, op_id::make(s.index, s.gen | link_bit).value);
        ++link_timeouts_in_flight_;
      }
    }
    s.in_kernel = true;
    ++in_kernel_;
    return true;
  }

  void send_cancel(op_slot& s) noexcept {
    io_uring_sqe* sqe = get_sqe();
    if (sqe == nullptr) return;  // SQ and kernel full: teardown retries
    io_uring_prep_cancel64(sqe, op_id::make(s.index, s.gen).value, 0);
    io_uring_sqe_set_data64(sqe, op_id::make(s.index, s.gen | cancel_bit).value);
    s.cancel_sent = true;
    ++cancels_in_flight_;
  }

  // Ends the op: its buffer goes to its waiter, or (dropped) back to its pool.
  void finish(op_slot& s, int32_t res) noexcept {
    op_waiter* w = s.waiter;
    buffer b = std::move(s.buf);
    const op_kind kind = s.kind;
    if (kind == op_kind::recv_multishot) return_unused(s.provided, w != nullptr ? s.group : nullptr);
    free_slot(s);  // before the waiter runs: it may submit into this slot
    if (w != nullptr) w->on_complete({res, 0, std::move(b)});
    else discard_result(kind, res);  // an accepted fd nobody takes is closed
  }

  void settle(op_slot& s, int32_t res) noexcept {
    s.settled = true;
    s.res = res;
    s.next = npos;
    if (ready_tail_ == npos) ready_head_ = s.index;
    else slots_[ready_tail_].next = s.index;
    ready_tail_ = s.index;
  }

  void deliver_ready() noexcept {
    // Only what is queued now: what these waiters settle waits for the next pass.
    uint32_t i = std::exchange(ready_head_, npos);
    ready_tail_ = npos;
    while (i != npos) {
      op_slot& s = slots_[i];
      i = s.next;
      finish(s, s.res);  // a dropped one (no waiter) just frees its buffer
    }
  }

  void on_cqe(uint64_t user_data, int32_t res) noexcept {
    const op_id u{user_data};
    if ((u.gen() & cancel_bit) != 0) {
      --cancels_in_flight_;  // -ENOENT / -EALREADY: the target's own CQE decides
      return;
    }
    if ((u.gen() & link_bit) != 0) {
      --link_timeouts_in_flight_;  // never the op's result
      return;
    }
    op_slot* s = lookup(u);
    if (s == nullptr || !s->in_kernel) return;
    s->in_kernel = false;
    --in_kernel_;
    if (s->kind == op_kind::recv_multishot) return on_multishot(*s, res);
    count_kernel_copy(s->kind, res);  // the kernel moved them, whoever takes the result
    if (s->kind == op_kind::timeout && res == -ETIME) res = 0;   // a sleep that ran its course
    if (s->deadline_ns != 0 && res == -EINTR) res = -ECANCELED;  // its linked timeout, in io-wq
    finish(*s, res);
  }

  void on_multishot(op_slot& s, int32_t res) noexcept {
    if (s.deadline_ns != 0 && res == -EINTR) res = -ECANCELED;
    if (res <= 0) return finish(s, res);  // EOF (0), -ECANCELED, errors: the final completion
    count_kernel_copy(op_kind::recv, res);
    buffer b = std::move(s.provided[s.next_bid++]);
    if (s.waiter != nullptr) s.waiter->on_more({res, 0, std::move(b)});
    // on_more may have cancelled or dropped the op.
    if (s.waiter == nullptr || s.cancel_requested || tearing_down_) return finish(s, -ECANCELED);
    if (s.next_bid >= s.provided.size()) return finish(s, -ENOBUFS);  // the group ran dry
    if (!issue(s)) finish(s, -EAGAIN);
  }

  // Submits what is queued and waits up to `d` for a completion: one enter.
  void wait(std::chrono::nanoseconds d) noexcept {
    __kernel_timespec ts{};
    ts.tv_sec = d.count() / 1'000'000'000;
    ts.tv_nsec = d.count() % 1'000'000'000;
    io_uring_cqe* cqe = nullptr;
    meters::count_syscall();
    if (d.count() == 0) io_uring_submit_and_get_events(&ring_);
    else io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
  }

  void reap() noexcept {
    // One CQ's worth per call: waiters submit more, and the loop must get
    // back to its deadline check.
    for (unsigned n = 0; n < ring_.cq.ring_entries; ++n) {
      io_uring_cqe* cqe = nullptr;
      if (io_uring_peek_cqe(&ring_, &cqe) != 0 || cqe == nullptr) break;
      const uint64_t ud = cqe->user_data;
      const int32_t res = cqe->res;
      io_uring_cqe_seen(&ring_, cqe);
      on_cqe(ud, res);
    }
  }

  void teardown() noexcept {
    if (torn_down_) return;
    torn_down_ = tearing_down_ = true;
    // 1. Task frames: their awaiters drop() their ops (graveyard + cancel).
    tasks_.destroy_live();
    // 2. Cancel what the kernel still holds, then 3. drain, bounded in time.
    const auto until = clock_type::now() + teardown_budget;
    while (in_kernel_ > 0 || cancels_in_flight_ > 0 || link_timeouts_in_flight_ > 0) {
      for (op_slot& s : slots_)
        if (s.in_use && s.in_kernel && !s.cancel_sent) send_cancel(s);
      deliver_ready();
      const auto now = clock_type::now();
      if (now >= until) break;
      wait(std::min<std::chrono::nanoseconds>(until - now, teardown_poll));
      reap();
    }
    deliver_ready();
    if (in_kernel_ > 0) {
      // The kernel may still write into these buffers after the ring exits:
      // never hand them back to the pool (leaked on purpose).
      violations_.push_back({"hang", "example-uring teardown: " + std::to_string(in_kernel_) +
                                         " ops still in the kernel after 2 s; their buffers are leaked"});
      for (op_slot& s : slots_)
        if (s.in_use && s.in_kernel && s.buf) (void)new (std::nothrow) buffer(std::move(s.buf));
    }
    io_uring_queue_exit(&ring_);
  }

  io_uring ring_{};
  std::deque<op_slot> slots_;  // deque: a slot never moves
  std::vector<uint32_t> free_;
  task_set tasks_;
  std::vector<violation> violations_;
  size_t in_kernel_ = 0;
  size_t cancels_in_flight_ = 0;
  size_t link_timeouts_in_flight_ = 0;
  uint32_t ready_head_ = npos;
  uint32_t ready_tail_ = npos;
  uint32_t busy_passes_ = 0;  // loop passes in a row that found user work and did not wait
  bool release_on_cancel_ = false;
  bool hung_ = false;
  bool tearing_down_ = false;
  bool torn_down_ = false;
};

std::string unavailable_reason() {
  io_uring r{};
  if (const int e = io_uring_queue_init(2, &r, 0); e < 0) return std::string("io_uring_setup: ") + std::strerror(-e);
  io_uring_queue_exit(&r);
  return {};
}

std::unique_ptr<backend> make(const backend_options& o) { return std::make_unique<example_uring>(o); }

const plugin_backend backends[] = {{
    .name = "example-uring",
    .description = "io_uring (its own ring, liburing), owned buffers from ringside's pool; dropped ops in a graveyard",
    .unavailable_reason = &unavailable_reason,
    .make = &make,
}};

const plugin_descriptor descriptor{.name = "ringside-example", .backends = backends, .backend_count = 1};

}  // namespace

RINGSIDE_PLUGIN(descriptor)
