// The event loop and op-slot table both io_uring backends share. The backends
// differ only in their buffer contract, i.e. in cancel() and drop(), which they
// compose from the building blocks below; everything else lives here once.
//
// Ops live in immovable slots (chunks of a slab that never move, a LIFO free
// list, a generation per slot). The slot index and generation are the op_id
// and the SQE's user_data, so a CQE finds its slot in O(1) and a reused slot
// can never be mistaken for its previous op. The op's buffer, its connect
// address and its timeout's __kernel_timespec live in the slot until the
// op's final CQE (or, for uring-raw's cancel, until the completion is handed
// out early), so nothing the kernel points at can die with a caller's frame.
//
// The loop (run()): start spawned tasks; deliver settled completions (never
// from inside cancel()/drop()); submit queued SQEs and wait for >= 1 CQE in ONE
// io_uring_enter, with a timeout so the deadline is honoured; reap every ready
// CQE and call the waiters. While user work stays runnable the loop does not
// wait, but it still enters (submit + GETEVENTS) every few passes: with
// DEFER_TASKRUN the kernel posts completions only then. No heap allocation
// per op in steady state.
//
// Results are accounted where they are produced: kernel copies at the CQE
// reap (count_kernel_copy), whoever takes the result; a result nobody takes
// goes through discard_result() (an accepted fd is closed).
//
// Newer ops, each ending only with the op's OWN final CQE:
// - op.deadline_ns: the op's SQE carries IOSQE_IO_LINK and is followed by an
//   IORING_OP_LINK_TIMEOUT whose user_data is the op's id with
//   link_timeout_bit in the generation; its CQE (-ETIME, -ECANCELED...) is
//   never the op's result (on_early_cqe lets a backend misuse it).
// - send_zc: IORING_OP_SEND_ZC; the first CQE (F_MORE) carries the result,
//   the notification (F_NOTIF) ends the op and hands the buffer back; its
//   IORING_NOTIF_USAGE_ZC_COPIED bit decides the kernel-copy count. A socket
//   without zero copy (-EOPNOTSUPP: AF_UNIX) gets the op reissued as a send.
// - recv_multishot: the op's buffer_group goes into a registered provided-
//   buffer ring (one per op, unregistered at the final CQE); each CQE with
//   F_MORE hands its buffer to the waiter's on_more; the ledger holds every
//   provided buffer until a CQE hands it out or the ring goes.
// - op.submitter_exits (cancel.thread_exit): the op goes into a second ring,
//   the "exiting-submitter ring", made without SINGLE_ISSUER/DEFER_TASKRUN
//   (another task may enter it). The loop thread fills the SQE; a thread made
//   for it calls io_uring_enter and exits; submit() joins it, so the op is
//   pending, its submitter gone, when submit() returns. The kernel then ends
//   the op itself (-ECANCELED at its next wakeup: the completion's task work
//   cannot run in a task that has exited) and that CQE is its final one, like
//   any other: the buffer stays with the op until then. cancel()/drop() of
//   such an op send their ASYNC_CANCEL to that ring (a cancel only finds ops
//   of its own ring); the loop reaps it every pass while it holds ops, and
//   caps its wait at exiting_ring_poll then (no eventfd: a safety hook, not a
//   throughput path).
//
// Backend options (--backend-opt, uring_loop_options::features; README):
// - fixed_files: a sparse file table indexed by fd number, so an SQE's fd is
//   its own index; adopt() (re)registers, an op's first use registers, an
//   accept's new fd is registered afresh at its first op (its number may have
//   named another file), and a close op empties the slot before closing.
// - batch: prep() submits once `batch` SQEs are queued; reap_all() takes at
//   most `batch` CQEs a pass.
// - send_zc: fill() turns send into send_zc; link_timeout_ms: fill() gives
//   every op without a deadline (but timeouts, multishot recvs) that one.
// - single_issuer, sqpoll, fixed_buffers: ring / registration setup only.
// What they did is counted in counters() (tests).
//
// Single-threaded: every call comes from the thread that runs the loop (the
// exiting submitter only enters the kernel, while the loop thread waits).
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "harness/backend.hpp"
#include "harness/buffer_group.hpp"
#include "harness/ledger.hpp"
#include "harness/ring.hpp"
#include "harness/sanitize.hpp"
#include "harness/task_set.hpp"

namespace ringside {

// TEST-ONLY fault switches. Each breaks uring-owned's buffer contract in
// exactly one way, so the safety suite can show that the detector meant for
// that bug catches it (issue 3's acceptance; tests/safety/faults_test.cpp).
// uring-owned reads them from the environment variable RINGSIDE_FAULT (a
// comma list of the names below) when it is constructed; uring-raw never sets
// them. A real run never has RINGSIDE_FAULT set.
enum class uring_fault : uint32_t {
  // The target's buffer goes back to the pool at its ASYNC_CANCEL's own CQE,
  // not at the target's final CQE (caught by the ledger).
  release_on_cancel_cqe = 1u << 0,
  // A target whose cancel was requested and whose own CQE is a success
  // completes -ECANCELED: the success is dropped (an accepted fd is closed).
  drop_raced_success = 1u << 1,
  // An accept that completes after its op was cancelled or dropped is neither
  // delivered nor closed: the fd leaks.
  leak_accepted_fd = 1u << 2,
  // Slot reuse does not bump the generation: ids repeat (ABA).
  no_generation = 1u << 3,
  // Teardown neither cancels nor drains: the ring is closed and the buffers
  // go back to the pool with their ops in flight.
  teardown_in_flight = 1u << 4,
};
// "release-on-cancel-cqe", ... (the RINGSIDE_FAULT names).
std::string_view to_string(uring_fault f) noexcept;
// Parses a comma list of fault names into a mask of uring_fault bits ("" is
// 0). Throws std::invalid_argument, naming the valid switches, for an
// unknown name.
uint32_t parse_uring_faults(std::string_view list);
// RINGSIDE_FAULT parsed (0 when unset); throws like parse_uring_faults.
uint32_t uring_faults_from_env();

struct uring_loop_options {
  ring_options ring;
  // Mask of uring_fault bits: TEST-ONLY (see uring_fault). 0 in every real run.
  uint32_t faults = 0;
  // Registers the attached pool as fixed buffers; read/write of its buffers
  // then use IORING_OP_READ_FIXED / WRITE_FIXED. Falls back to plain ops if
  // registration fails (e.g. RLIMIT_MEMLOCK).
  bool fixed_buffers = false;
  // The ledger records submission and release stacks (slow; for repros).
  bool capture_stacks = false;
  // How long teardown may wait for the kernel to give back cancelled ops.
  // 2 s: a cancelled socket op completes in microseconds and a disk read in
  // milliseconds; anything slower is a hang worth reporting, not waiting for.
  std::chrono::milliseconds teardown_budget{2000};
  // Initial slot count (grown geometrically if exceeded).
  uint32_t initial_slots = 256;
  // --backend-opt (harness/backend_opts.hpp). uring_loop_defaults() maps the
  // ring-level ones (single-issuer, sqpoll) into `ring` and fixed-buffers into
  // fixed_buffers; the loop reads the rest (see "Backend options" above).
  uring_features features;
};

// What the --backend-opt features did, counted by the loop (tests, tools).
struct uring_loop_counters {
  uint64_t fixed_file_ops = 0;    // SQEs issued with IOSQE_FIXED_FILE
  uint64_t file_updates = 0;      // io_uring_register_files_update calls (slots filled or emptied)
  uint64_t batch_submits = 0;     // submits made because `batch` SQEs were queued
  uint64_t linked_timeouts = 0;   // IORING_OP_LINK_TIMEOUTs issued
  uint64_t zc_notifications = 0;  // send_zc F_NOTIF CQEs reaped
  uint64_t multishot_more = 0;    // recv_multishot CQEs with IORING_CQE_F_MORE
  uint64_t fixed_buffer_ops = 0;  // SQEs using a registered buffer (READ_FIXED, WRITE_FIXED, SEND_ZC fixed)
};

// Ring and slab sizing from the registry's hints.
uring_loop_options uring_loop_defaults(const backend_options& o);

class uring_loop : public backend {
 public:
  ~uring_loop() override;
  uring_loop(const uring_loop&) = delete;
  uring_loop& operator=(const uring_loop&) = delete;
  uring_loop(uring_loop&&) = delete;
  uring_loop& operator=(uring_loop&&) = delete;

  void attach_pool(buffer_pool& pool) override;
  // io_uring drives blocking and non-blocking descriptors alike: nothing to
  // set. With fixed-files the fd is (re)registered in the file table here,
  // at index fd, replacing whatever file a reused number left there.
  void adopt(int fd) override;
  void spawn(task<> t) override;
  int run(clock_type::time_point deadline) override;
  op_id submit(op&& o, op_waiter* w) noexcept override;
  // teardown(); what it finds (ledger violations of drops it caused, ops the
  // kernel never gave back) is reported by collect_violations() afterwards.
  void shutdown() noexcept override { teardown(); }
  // The next `count` kernel submits fail with -err (EAGAIN or EBUSY) without
  // entering; the SQEs stay queued and ops that got none wait in the backlog,
  // buffers and all, until a submit succeeds (ring::inject_submit_failures).
  int inject_submit_failures(int err, uint32_t count) noexcept override {
    if (err != EAGAIN && err != EBUSY) return -EINVAL;
    ring_.inject_submit_failures(err, count);
    return 0;
  }
  void collect_violations(std::vector<violation>& out) override;

  // For tests and tools.
  [[nodiscard]] ring& uring() noexcept { return ring_; }
  [[nodiscard]] buffer_ledger& ledger() noexcept { return ledger_; }
  // Ops whose final CQE has not been reaped yet (graveyard included).
  [[nodiscard]] size_t ops_in_kernel() const noexcept { return in_kernel_; }
  [[nodiscard]] bool fixed_buffers_active() const noexcept { return use_fixed_; }
  [[nodiscard]] bool fixed_files_active() const noexcept { return !file_registered_.empty(); }
  [[nodiscard]] const uring_loop_counters& counters() const noexcept { return counters_; }
  // Every loop's counters summed at its teardown, for this process (tests
  // that reach the loop only through the runner).
  static uring_loop_counters lifetime_totals() noexcept;
  [[nodiscard]] const uring_features& features() const noexcept { return options_.features; }

 protected:
  explicit uring_loop(const uring_loop_options& o);

  struct op_slot {
    buffer buf;                   // the op's buffer; see the backend's contract
    op_waiter* waiter = nullptr;  // null: dropped, or its completion already handed out
    uint64_t offset = 0;
    uint32_t len = 0;
    uint32_t buf_offset = 0;      // payload at buf.data() + buf_offset
    int fd = -1;
    uint32_t gen = 1;             // never 0, so no op_id is 0
    uint32_t index = 0;
    uint32_t next = ~0u;          // free list or ready queue
    int32_t res = 0;              // settled result, waiting in the ready queue
    op_kind kind = op_kind::nop;
    bool in_use = false;
    bool in_kernel = false;       // SQE prepared, final CQE not reaped yet
    bool settled = false;         // result decided before the kernel's CQE
    bool queued = false;          // in the ready queue
    bool cancel_sent = false;
    __kernel_timespec ts{};       // timeout: the kernel reads it after submit
    __kernel_timespec deadline_ts{};  // op.deadline_ns as the linked timeout's; read at submit
    uint64_t deadline_ns = 0;     // 0: no linked timeout
    bool force_async = false;     // op.force_async: IOSQE_ASYNC
    bool wait_all = false;        // op.wait_all: send with MSG_WAITALL
    bool exiting_ring = false;    // op.submitter_exits: in exiting_ring_, not ring_
    int32_t first_res = 0;        // send_zc: the send's result (first CQE), delivered at the notification
    bool zc_plain = false;        // send_zc refused (-EOPNOTSUPP, e.g. AF_UNIX): reissued as a plain send
    // recv_multishot: the group's buffers, by buffer id, while the op (or the
    // kernel's ring) holds them; the group to give the unused ones back to;
    // the provided-buffer ring the kernel picks them from.
    std::vector<buffer> provided;
    buffer_group* group = nullptr;
    io_uring_buf_ring* br = nullptr;
    size_t br_bytes = 0;
    uint32_t provided_count = 0;
    uint16_t bgid = 0;
    socklen_t addrlen = 0;
    sockaddr_storage addr{};      // connect: a copy; the caller's may die with its frame
  };

  // ---- building blocks for cancel() / drop() ----
  // The op id names, if it still owes its waiter a completion not yet decided.
  op_slot* pending(op_id id) noexcept;
  // The op id names, if it still has a waiter (its completion may be decided
  // and waiting in the ready queue).
  op_slot* attached(op_id id) noexcept;
  // Asks the kernel to cancel the op (IORING_OP_ASYNC_CANCEL, once; its own
  // CQE carries a reserved tag). The op still ends with ITS OWN CQE. An op the
  // kernel never saw (no SQE could be had yet) settles -ECANCELED instead.
  void request_cancel(op_slot& s) noexcept;
  // Decides the op's completion now: it is delivered from the loop with the
  // slot's buffer, and the kernel's CQE, when it comes, is ignored.
  void complete_early(op_slot& s, int32_t res) noexcept;
  // The waiter is gone: never call it again.
  static void detach(op_slot& s) noexcept { s.waiter = nullptr; }
  // Hands the op's completion (res, with its buffer) to its waiter NOW, from
  // inside the reap, while the kernel still holds the op: its final CQE,
  // when it comes, is ignored. Only for on_early_cqe (uring-raw): a waiter
  // that reuses the buffer at once does so before that CQE is processed.
  void complete_now(op_slot& s, int32_t res) noexcept;

  // CQEs that arrive before an op's final one, on an op that still owes its
  // waiter a completion. The op ends only with its own final CQE; a backend
  // may override this to end it earlier (uring-raw's unsound contract).
  enum class early_cqe : uint8_t {
    link_timeout,  // the op's linked timeout ended: res -ETIME (fired), -ECANCELED (op done first)...
    zc_sent,       // send_zc's first CQE (IORING_CQE_F_MORE): res = bytes sent; the notification follows
  };
  virtual void on_early_cqe(op_slot& s, early_cqe what, int32_t res) noexcept {
    (void)s;
    (void)what;
    (void)res;
  }

  // ---- hook for uring-bounce (backends/uring_bounce.cpp): additive block ----
  // Called by run() once per pass, right after the loop's own ready queue is
  // delivered: a derived backend delivers completions it decided in cancel()
  // (never from inside cancel() itself); it may enter the kernel through
  // uring() (submit, GETEVENTS) but never reaps. Default: nothing.
  virtual void deliver_deferred() noexcept {}
  // ---- end of the uring-bounce hook ----

  // Destroys remaining task frames (their awaiters call drop(), so this must
  // run while the derived backend still exists: every derived destructor calls
  // it first), cancels everything in flight, drains the CQEs (bounded by
  // teardown_budget), exits the ring, then detaches the ledger. Ops still in
  // the kernel after the budget become a "hang" violation (their buffers are
  // leaked, never handed back). Idempotent.
  void teardown() noexcept;

 private:
  // 256 slots per chunk: small enough to add mid-run, large enough that the
  // chunk table stays tiny.
  static constexpr uint32_t chunk_bits = 8;
  static constexpr uint32_t chunk_size = 1u << chunk_bits;
  static constexpr uint32_t npos = ~0u;

  op_slot& slot(uint32_t i) noexcept { return chunks_[i >> chunk_bits][i & (chunk_size - 1)]; }
  // A test-only fault switch (uring_fault) is on.
  [[nodiscard]] bool faulty(uring_fault f) const noexcept { return (options_.faults & uint32_t(f)) != 0; }
  // The result faults (drop_raced_success, leak_accepted_fd) applied to an
  // op's own final result; res unchanged when they are off.
  int32_t faulty_result(const op_slot& s, int32_t res) noexcept;
  op_slot* lookup(op_id id) noexcept;
  uint32_t alloc_slot() noexcept;
  void free_slot(op_slot& s) noexcept;
  bool grow_slots() noexcept;

  int32_t fill(op_slot& s, op&& o) noexcept;  // 0 or -errno for an op that cannot be issued
  bool prep(op_slot& s) noexcept;             // false: no SQE now (backlog)
  // The ring the op's SQEs (its own, its cancel's) go to.
  ring& ring_of(const op_slot& s) noexcept { return s.exiting_ring ? *exiting_ring_ : ring_; }
  // op.submitter_exits: issues the filled slot from a thread that then exits
  // (0), or -errno (the ring or the thread could not be had).
  int32_t submit_from_exiting_thread(op_slot& s) noexcept;
  void reap_exiting_ring() noexcept;
  void on_link_timeout_cqe(const io_uring_cqe& c) noexcept;
  void on_multishot_cqe(op_slot& s, const io_uring_cqe& c) noexcept;
  int32_t setup_buf_ring(op_slot& s) noexcept;  // 0 or -errno
  void release_buf_ring(op_slot& s) noexcept;
  bool send_cancel(op_slot& s) noexcept;      // false: no SQE now
  void settle(op_slot& s, int32_t res) noexcept;
  void finish(op_slot& s, int32_t res, uint32_t flags) noexcept;
  void on_cqe(const io_uring_cqe& c) noexcept;

  // fixed-files: the table index of fd (== fd), registering it first if its
  // slot is empty; -1 when fd cannot go in as a fixed file.
  int fixed_file(int fd) noexcept;
  // fixed-files: empties fd's slot (before a close, so the table holds no
  // reference that would keep the file open).
  void unregister_file(int fd) noexcept;

  void flush_backlog() noexcept;
  void deliver_ready() noexcept;
  void reap_all() noexcept;
  void note(std::string kind, std::string detail) noexcept;

  uring_loop_options options_;
  buffer_ledger ledger_;
  ring ring_;
  // op.submitter_exits: made at the first such op; see the header comment.
  std::unique_ptr<ring> exiting_ring_;
  size_t exiting_in_kernel_ = 0;  // ops (and their cancels) that ring still holds
  buffer_pool* pool_ = nullptr;
  bool use_fixed_ = false;
  // fixed-files: one flag per table slot (index == fd): holds a file we
  // registered. Empty when fixed files are off.
  std::vector<uint8_t> file_registered_;
  uring_loop_counters counters_;

  std::vector<std::unique_ptr<op_slot[]>> chunks_;
  uint32_t capacity_ = 0;
  uint32_t free_head_ = npos;
  uint32_t ready_head_ = npos;
  uint32_t ready_tail_ = npos;
  size_t in_kernel_ = 0;
  size_t cancels_in_flight_ = 0;
  std::vector<uint16_t> free_bgids_;  // provided-buffer group ids to reuse
  uint32_t next_bgid_ = 0;
  size_t link_timeouts_in_flight_ = 0;  // their CQEs name no memory, but teardown drains them too
  std::vector<op_id> backlog_;         // ops waiting for an SQE (SQ full and submit failed)
  std::vector<op_id> cancel_backlog_;  // cancels waiting for an SQE

  // Sanitizer builds: ASan poisoning and TSan kernel fibers of lent ranges
  // (harness/sanitize.hpp); empty otherwise.
  [[no_unique_address]] sanitize::kernel_lends lends_;

  task_set tasks_;
  uint32_t busy_passes_ = 0;  // loop passes in a row that found user work and did not wait

  std::vector<violation> violations_;
  bool hung_ = false;
  bool tearing_down_ = false;
  bool torn_down_ = false;
};

}  // namespace ringside
