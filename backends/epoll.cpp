// The epoll backend: one readiness loop, non-blocking syscalls, try-then-wait.
//
// submit() tries the non-blocking syscall at once; if it succeeds the op
// completes inline, if it says EAGAIN the op is parked on its fd until epoll
// reports the fd ready, and the loop tries again. Nothing is ever in the
// kernel between syscalls, so buffers are borrowed only inside a syscall and
// cancel is just "unpark and complete with -ECANCELED". Regular files cannot
// be watched by epoll (EPERM) and never say EAGAIN: their pread/pwrite run
// inline (caps.async_file_io = false).
//
// A result nobody takes (a dropped op) goes through discard_result(): an
// accepted connection is closed, never leaked.
//
// Deadlines (op.deadline_ns): a parked op also sits in the timer heap, due at
// its deadline; if it is still parked then, it completes -ECANCELED. An op
// that completes first leaves the heap, so its result always wins.
//
// Zero-copy sends (send_zc): MSG_ZEROCOPY on a socket with SO_ZEROCOPY, the
// faithful equivalent of io_uring's SEND_ZC. The kernel may read the buffer
// until the socket's error queue says the send's number is done, so the op is
// held (zc_held) until then, and its completion carries the send's result and
// the buffer back. Sockets without SO_ZEROCOPY (AF_UNIX) send plainly.
//
// Multishot recv (recv_multishot) is emulated: parked like a recv, each
// readiness receives into the group's next buffer until EAGAIN; every
// receive is queued as an on_more completion (delivered from the loop, before
// any final completion), and the op ends -ENOBUFS when the group runs dry, 0
// at EOF, -ECANCELED when cancelled; the unused buffers go back to the group
// with the final completion.
//
// Single-threaded: submit, cancel, drop, spawn and run must all be called from
// the thread that runs the loop (tasks run there).
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <climits>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "harness/backend.hpp"
#include "harness/buffer_group.hpp"
#include "harness/meters.hpp"
#include "harness/perform.hpp"
#include "harness/sys.hpp"
#include "harness/task_set.hpp"
#include "harness/unique_fd.hpp"

namespace ringside {
namespace {

constexpr uint32_t no_slot = UINT32_MAX;
// 64 consecutive inline completions, then the next one goes through the loop:
// a stream whose ops are always ready (regular-file reads, a socket that is
// never empty) would otherwise never give the loop back and starve the rest.
constexpr uint32_t max_inline_streak = 64;
// 16: while completions are waiting in the ready queue the loop turns
// without waiting, and polls epoll (zero timeout) only every 16th such pass,
// or as soon as the queue drains: a poll per pass would cost a syscall for
// every 64 always-ready ops, and 16 passes are short enough that fds that
// became ready meanwhile are not kept waiting.
constexpr uint32_t poll_every_busy = 16;
// 64 events per epoll_wait: enough to batch a busy loop; more wait one turn.
constexpr size_t event_batch = 64;
// Teardown delivers completions of ops whose waiters outlive the task frames;
// those callbacks may submit again. 16 rounds bound that.
constexpr int teardown_rounds = 16;
// 1 s: how long teardown waits for zero-copy notifications (they follow the
// peer's ACK: microseconds on loopback) before letting held buffers go.
constexpr auto zc_teardown_budget = std::chrono::seconds(1);

enum class slot_state : uint8_t {
  free,
  trying,        // inside submit(), before the first attempt
  parked_fd,     // waiting for readiness on its fd
  parked_timer,  // timeout op in the timer heap
  zc_held,       // send_zc sent, waiting for its zero-copy notification
  ready,         // result known, queued for delivery from the loop
};

enum class direction : uint8_t { in, out };

// An intrusive FIFO of slot indices (through op_slot::prev/next).
struct slot_list {
  uint32_t head = no_slot;
  uint32_t tail = no_slot;
  [[nodiscard]] bool empty() const noexcept { return head == no_slot; }
};

// One op. Slots live in a vector and are addressed by index (never by a
// pointer kept across a call that may grow it); growth happens only when more
// ops are outstanding than ever before, so the steady state allocates nothing.
struct op_slot {
  op o;  // its buffer stays here while parked; the kernel never holds it
  op_waiter* waiter = nullptr;  // null once dropped
  clock_type::time_point due{};
  int32_t res = 0;
  uint32_t gen = 1;  // 0 is never used, so no id is ever 0 ("no op")
  uint32_t prev = no_slot;
  uint32_t next = no_slot;  // also the free-list link
  uint32_t heap_pos = no_slot;
  slot_state state = slot_state::free;
  direction dir = direction::in;
  bool connecting = false;  // connect() said EINPROGRESS: the next attempt reads SO_ERROR
  bool cancel_requested = false;
  bool deadline_first = false;  // timeout op: `due` is its deadline, which ends it -ECANCELED
  bool zc_sent = false;         // the last attempt sent with MSG_ZEROCOPY: hold until notified
  uint32_t zc_seq = 0;          // the kernel's number for that send
  clock_type::time_point deadline{};  // op.deadline_ns from submit
  // recv_multishot: the group's buffers by id (handed-out ones invalid), the
  // group, and the next id to receive into.
  std::vector<buffer> provided;
  buffer_group* group = nullptr;
  uint32_t next_bid = 0;
};

// A multishot op's receive, waiting for delivery through on_more.
struct more_item {
  uint32_t slot = 0;
  uint32_t gen = 0;
  int32_t res = 0;
  buffer buf;
};

// Per descriptor: one epoll registration (edge-triggered, both directions,
// made lazily at the first park) and the ops parked on it, in order.
enum class zc_mode : uint8_t { unknown, zerocopy, plain };

struct fd_entry {
  slot_list readers;  // read, recv, accept
  slot_list writers;  // write, send, connect
  slot_list zc_held;  // send_zc ops waiting for their notification, in send order
  uint32_t zc_next = 0;  // the number the kernel gives this socket's next zero-copy send
  zc_mode zc = zc_mode::unknown;
  bool registered = false;
};

constexpr direction direction_of(op_kind k) noexcept {
  return (k == op_kind::write || k == op_kind::send || k == op_kind::send_zc || k == op_kind::connect)
             ? direction::out
             : direction::in;
}

class epoll_backend final : public backend {
 public:
  epoll_backend() {
    meters::count_syscall();
    epfd_.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!epfd_) throw std::system_error(errno, std::generic_category(), "epoll: epoll_create1");
    mores_.reserve(event_batch);  // 64: a burst of multishot receives without allocating
  }
  epoll_backend(const epoll_backend&) = delete;
  epoll_backend& operator=(const epoll_backend&) = delete;

  ~epoll_backend() override { shutdown(); }

  void shutdown() noexcept override {
    if (shut_down_) return;
    shut_down_ = true;  // from now on submit() completes -ECANCELED at once
    mores_.clear();     // nobody waits for them now: buffers back to their pools
    // Frames first: their op_awaiters call drop(), which needs the tables.
    tasks_.destroy_live();
    await_zerocopy_notifications(clock_type::now() + zc_teardown_budget);
    // Ops whose waiters live outside any task frame still get their one
    // completion: parked ones are cancelled, known results delivered.
    for (int round = 0; round < teardown_rounds; ++round) {
      cancel_all_parked();
      if (ready_.empty()) break;
      while (!ready_.empty()) {
        const uint32_t i = ready_.head;
        unlink(ready_, i);
        deliver(i);
      }
    }
  }

  void collect_violations(std::vector<violation>& out) override { tasks_.take_violations(out); }

  [[nodiscard]] std::string_view name() const noexcept override { return "epoll"; }
  [[nodiscard]] const backend_caps& caps() const noexcept override { return caps_; }

  void adopt(int fd) override {
    meters::count_syscall();
    const int fl = ::fcntl(fd, F_GETFL);
    if (fl < 0) throw std::system_error(errno, std::generic_category(), "epoll: fcntl(F_GETFL)");
    if ((fl & O_NONBLOCK) == 0) {
      meters::count_syscall();
      if (::fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        throw std::system_error(errno, std::generic_category(), "epoll: fcntl(F_SETFL)");
    }
    // A number seen before may name a new file now: start from a clean entry
    // (registration happens lazily, at the first park).
    forget_fd(fd);
  }

  void spawn(task<> t) override { tasks_.spawn(std::move(t)); }  // refused after shutdown()

  int run(clock_type::time_point deadline) override {
    for (;;) {
      inline_streak_ = 0;
      tasks_.start_queued();
      deliver_ready();
      if (tasks_.live() == 0) return 0;
      const auto now = clock_type::now();
      if (now >= deadline) return -ETIME;
      const bool busy = !ready_.empty() || !mores_.empty() || tasks_.has_queued() || !injected_fds_.empty();
      if (busy && ++busy_passes_ < poll_every_busy) {
        expire_timers(now);
        retry_injected();
        continue;
      }
      busy_passes_ = 0;
      auto wake = deadline;
      if (busy) wake = now;
      else if (!heap_.empty()) wake = std::min(wake, slots_[heap_[0]].due);
      const int n = wait_events(wake - now);
      for (int k = 0; k < n; ++k) on_event(events_[size_t(k)]);
      retry_injected();
      expire_timers(clock_type::now());
    }
  }

  // The next `count` non-blocking tries of socket and pipe ops say EAGAIN
  // without their syscall: the op parks and completes from the loop (the
  // wait path) instead of inline. An injected EAGAIN re-arms no edge, so its
  // fd is retried on the next loop pass as if one had come. Regular-file
  // ops (pread/pwrite) are never injected: they cannot park (epoll refuses
  // regular files), and a real one never says EAGAIN.
  int inject_submit_failures(int err, uint32_t count) noexcept override {
    if (err != EAGAIN && err != EBUSY) return -EINVAL;
    inject_eagain_ = count;
    return 0;
  }

  op_id submit(op&& o, op_waiter* w) noexcept override {
    // Early ends still start first (with the null id: no slot names them),
    // so every waiter sees on_started before its completion.
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
    s.state = slot_state::trying;
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
      case slot_state::trying:
        s.cancel_requested = true;  // on_started cancelled it: start_op sees this
        return 0;
      case slot_state::parked_fd:
        unlink(parked_list(i), i);
        make_ready(i, -ECANCELED);
        return 0;
      case slot_state::parked_timer:
        heap_remove(i);
        make_ready(i, -ECANCELED);
        return 0;
      case slot_state::zc_held:  // sent: it completes with its result once the kernel lets go
        return 0;
      case slot_state::ready:  // its real result is known and will be delivered
      case slot_state::free:
        return -ENOENT;
    }
    return -ENOENT;
  }

  // The buffer goes back to the pool at once: the kernel holds nothing. A
  // result already known is discarded (an accepted fd closed).
  void drop(op_id id) noexcept override {
    const uint32_t i = live_slot(id);
    if (i == no_slot) return;
    op_slot& s = slots_[i];
    switch (s.state) {
      case slot_state::trying:
        s.waiter = nullptr;  // discarded when submit() finishes it
        return;
      case slot_state::parked_fd:
        unlink(parked_list(i), i);
        break;
      case slot_state::parked_timer:
        heap_remove(i);
        break;
      case slot_state::ready:
        unlink(ready_, i);
        discard_result(s.o.kind, s.res);
        break;
      case slot_state::zc_held:
        // The kernel may still read the buffer: it stays held, and goes back
        // to its pool when the notification comes.
        s.waiter = nullptr;
        return;
      case slot_state::free:
        return;
    }
    release(i);
  }

 private:
  // ---- slots ----
  uint32_t claim() noexcept {
    if (free_head_ != no_slot) {
      const uint32_t i = free_head_;
      free_head_ = slots_[i].next;
      return i;
    }
    try {
      slots_.emplace_back();
    } catch (...) {
      return no_slot;
    }
    return static_cast<uint32_t>(slots_.size() - 1);
  }

  void release(uint32_t i) noexcept {
    leave_heap(i);
    op_slot& s = slots_[i];
    s.o = op{};  // gives the buffer back to its pool
    s.waiter = nullptr;
    s.state = slot_state::free;
    s.connecting = false;
    s.cancel_requested = false;
    s.deadline_first = false;
    s.zc_sent = false;
    for (auto& b : s.provided) b.reset();  // a dropped multishot's buffers go back to their pool
    s.provided.clear();
    s.group = nullptr;
    s.next_bid = 0;
    if (++s.gen == 0) s.gen = 1;
    s.prev = no_slot;
    s.next = free_head_;
    free_head_ = i;
  }

  // The slot of a pending or ready op with this id, or no_slot.
  [[nodiscard]] uint32_t live_slot(op_id id) const noexcept {
    const uint32_t i = id.slot();
    if (i >= slots_.size()) return no_slot;
    const op_slot& s = slots_[i];
    return (s.gen == id.gen() && s.state != slot_state::free) ? i : no_slot;
  }

  // ---- intrusive lists ----
  void push_back(slot_list& l, uint32_t i) noexcept {
    op_slot& s = slots_[i];
    s.prev = l.tail;
    s.next = no_slot;
    if (l.tail != no_slot) slots_[l.tail].next = i;
    else l.head = i;
    l.tail = i;
  }
  void unlink(slot_list& l, uint32_t i) noexcept {
    op_slot& s = slots_[i];
    if (s.prev != no_slot) slots_[s.prev].next = s.next;
    else l.head = s.next;
    if (s.next != no_slot) slots_[s.next].prev = s.prev;
    else l.tail = s.prev;
    s.prev = s.next = no_slot;
    if (&l == &ready_) --ready_size_;
  }
  slot_list& parked_list(uint32_t i) noexcept {
    const op_slot& s = slots_[i];
    fd_entry& e = fds_[size_t(s.o.fd)];
    if (s.state == slot_state::zc_held) return e.zc_held;
    return s.dir == direction::in ? e.readers : e.writers;
  }

  // An op whose deadline (or timer) is pending leaves the heap when it ends.
  void leave_heap(uint32_t i) noexcept {
    if (slots_[i].heap_pos != no_slot) heap_remove(i);
  }

  void make_ready(uint32_t i, int32_t res) noexcept {
    leave_heap(i);
    op_slot& s = slots_[i];
    s.res = res;
    s.state = slot_state::ready;
    push_back(ready_, i);
    ++ready_size_;
  }

  // Hands the result to the waiter; the slot is free (and its id stale)
  // before the waiter runs, so the waiter may submit or cancel freely.
  void deliver(uint32_t i) noexcept {
    op_slot& s = slots_[i];
    op_waiter* w = s.waiter;
    const op_kind kind = s.o.kind;
    if (kind == op_kind::recv_multishot) return_unused(s.provided, w != nullptr ? s.group : nullptr);
    completion c{s.res, 0, std::move(s.o.buf)};
    release(i);
    if (w != nullptr) w->on_complete(std::move(c));
    else discard_result(kind, c.res);
  }

  // A result known inside submit(): delivered inline, unless
  // max_inline_streak results in a row were, since the loop last turned. The
  // streak is the backend's, not a stream's: whichever streams used it up,
  // the next result waits for the loop, so every stream gets its turn.
  void finish_in_submit(uint32_t i, int32_t res) noexcept {
    if (inline_streak_ < max_inline_streak) {
      ++inline_streak_;
      slots_[i].res = res;
      deliver(i);
    } else {
      make_ready(i, res);
    }
  }

  // ---- ops ----
  void start_op(uint32_t i) noexcept {
    op_slot& s = slots_[i];
    if (s.cancel_requested) return finish_in_submit(i, -ECANCELED);
    op& o = s.o;
    if (o.deadline_ns != 0)
      s.deadline = clock_type::now() + std::chrono::nanoseconds(std::min<uint64_t>(o.deadline_ns, uint64_t(INT64_MAX) / 2));
    if (const int32_t err = payload_error(o); err != 0) return finish_in_submit(i, err);
    // The loop thread issues every syscall (caps.submitter_can_exit is false).
    if (o.submitter_exits) return finish_in_submit(i, -EOPNOTSUPP);
    switch (o.kind) {
      case op_kind::nop:
      case op_kind::fsync:
        return finish_in_submit(i, perform_sync(o, sync_mode::nonblocking));
      case op_kind::close:
        return finish_in_submit(i, close_fd(o));
      case op_kind::timeout:
        if (o.timeout_ns == 0) return finish_in_submit(i, 0);
        s.due = clock_type::now() + std::chrono::nanoseconds(
                                        std::min<uint64_t>(o.timeout_ns, uint64_t(INT64_MAX) / 2));
        if (o.deadline_ns != 0 && s.deadline < s.due) {
          s.due = s.deadline;
          s.deadline_first = true;
        }
        s.state = slot_state::parked_timer;
        heap_push(i);
        return;
      case op_kind::connect: {
        if (has_parked(o.fd, direction::out)) return park(i, direction::out);
        const int32_t r = perform_sync(o, sync_mode::nonblocking);
        // EINTR: the handshake goes on in the kernel, as with EINPROGRESS.
        if (r != -EINPROGRESS && r != -EINTR) return finish_in_submit(i, r);
        s.connecting = true;
        return park(i, direction::out);
      }
      case op_kind::recv_multishot: {
        if (o.group == nullptr) return finish_in_submit(i, -EINVAL);
        s.group = o.group;
        s.group->swap_buffers(s.provided);
        if (has_parked(o.fd, direction::in)) return park(i, direction::in);
        const int32_t r = pump_multishot(i);
        if (r == -EAGAIN) return park(i, direction::in);
        // Behind its receives, which wait in the more queue.
        return make_ready(i, r);
      }
      case op_kind::read:
      case op_kind::write:
      case op_kind::recv:
      case op_kind::send:
      case op_kind::send_zc:
      case op_kind::accept: {
        const direction d = direction_of(o.kind);
        // FIFO: behind ops already parked on this fd, or a later send could
        // overtake an earlier one and reorder the stream.
        if (has_parked(o.fd, d)) return park(i, d);
        const int32_t r = attempt(s);
        if (r == -EAGAIN) return park(i, d);
        if (s.zc_sent) return hold_zerocopy(i, r);
        return finish_in_submit(i, r);
      }
    }
    finish_in_submit(i, -EINVAL);
  }

  // Receives into the group's next buffers until EAGAIN (-EAGAIN: park), the
  // group runs dry (-ENOBUFS), EOF (0) or an error: the final result. Each
  // receive is queued for on_more.
  int32_t pump_multishot(uint32_t i) noexcept {
    op_slot& s = slots_[i];
    for (;;) {
      if (s.next_bid >= s.provided.size()) return -ENOBUFS;
      buffer& b = s.provided[s.next_bid];
      const size_t len = std::min<size_t>(b.capacity(), s.o.len != 0 ? s.o.len : b.capacity());
      const auto r = static_cast<int32_t>(sys::recv(s.o.fd, b.first(len), MSG_DONTWAIT));
      if (r == -EINTR) continue;
      if (r <= 0) return r;
      count_kernel_copy(op_kind::recv, r);
      try {
        mores_.push_back({i, s.gen, r, std::move(b)});  // reserved; grows only past the busiest moment yet
      } catch (...) {
        return -ENOMEM;  // b stays with the op and goes back with the final completion
      }
      ++s.next_bid;
    }
  }

  // One non-blocking try; -EAGAIN means "not ready, park".
  int32_t attempt(op_slot& s) noexcept {
    op& o = s.o;
    if (inject_eagain_ > 0 && !s.connecting && o.kind != op_kind::connect &&
        !((o.kind == op_kind::read || o.kind == op_kind::write) && o.offset != ~uint64_t{0})) {
      --inject_eagain_;
      try {
        injected_fds_.push_back(o.fd);
      } catch (...) {
        ++inject_eagain_;  // cannot promise the retry: do not inject
        return attempt_now(s);
      }
      return -EAGAIN;
    }
    return attempt_now(s);
  }

  int32_t attempt_now(op_slot& s) noexcept {
    op& o = s.o;
    for (;;) {
      // Only parked connects are `connecting` (after EINPROGRESS).
      const int32_t r = s.connecting                    ? connect_result(o.fd)
                        : o.kind == op_kind::send_zc ? attempt_zerocopy(s)
                                                        : perform_sync(o, sync_mode::nonblocking);
      if (r == -EINTR) continue;
      if (o.kind == op_kind::accept && r >= 0) forget_fd(r);  // adopted: non-blocking already, fresh entry
      return r;
    }
  }

  // One send_zc attempt: MSG_ZEROCOPY where the socket takes SO_ZEROCOPY
  // (asked once per socket), else a plain send (AF_UNIX has no zero copy).
  int32_t attempt_zerocopy(op_slot& s) noexcept {
    op& o = s.o;
    fd_entry* e = entry(o.fd);
    if (e == nullptr) return perform_sync(o, sync_mode::nonblocking);
    if (e->zc == zc_mode::unknown) e->zc = enable_zerocopy(o.fd) == 0 ? zc_mode::zerocopy : zc_mode::plain;
    if (e->zc == zc_mode::plain) return perform_sync(o, sync_mode::nonblocking);
    const int32_t r = send_zerocopy(o, sync_mode::nonblocking);
    if (r > 0) {
      // Only sends that moved bytes are numbered (a failed one gives its number back).
      s.zc_sent = true;
      s.zc_seq = e->zc_next++;
    }
    return r;
  }

  // A send_zc that moved bytes: held, buffer and result, until its
  // notification; the error queue may hold it already (loopback notifies
  // at once).
  void hold_zerocopy(uint32_t i, int32_t res) noexcept {
    leave_heap(i);
    op_slot& s = slots_[i];
    const int fd = s.o.fd;
    if (register_fd(fd) != 0) {
      // Cannot be told when the kernel lets go: wait here (the notification
      // follows the ACK, microseconds on the paths ringside drives).
      s.res = res;
      s.state = slot_state::zc_held;
      push_back(fds_[size_t(fd)].zc_held, i);
      ++zc_held_count_;
      await_zerocopy_notifications(clock_type::now() + zc_teardown_budget);
      return;
    }
    s.res = res;
    s.state = slot_state::zc_held;
    push_back(fds_[size_t(fd)].zc_held, i);
    ++zc_held_count_;
    drain_zerocopy(fd);
  }

  // Reads every notification on fd's error queue; ops whose numbers they
  // cover complete with their send's result.
  void drain_zerocopy(int fd) noexcept {
    fd_entry* e = entry(fd);
    if (e == nullptr) return;
    zerocopy_notification n;
    while (!e->zc_held.empty() && read_zerocopy_notification(fd, n) == 0) {
      for (uint32_t i = e->zc_held.head; i != no_slot;) {
        const uint32_t next = slots_[i].next;
        if (covers(n, slots_[i].zc_seq)) finish_zerocopy(*e, i, n.copied);
        i = next;
      }
    }
  }

  void finish_zerocopy(fd_entry& e, uint32_t i, bool copied) noexcept {
    op_slot& s = slots_[i];
    unlink(e.zc_held, i);
    --zc_held_count_;
    count_zerocopy_result(s.res, copied);
    s.zc_sent = false;
    make_ready(i, s.res);
  }

  // Teardown, or an fd epoll cannot watch: waits (bounded) for the
  // notifications of held sends, then lets the rest go with their results.
  void await_zerocopy_notifications(clock_type::time_point until) noexcept {
    while (zc_held_count_ > 0 && clock_type::now() < until) {
      for (size_t fd = 0; fd < fds_.size(); ++fd)
        if (!fds_[fd].zc_held.empty()) drain_zerocopy(int(fd));
      if (zc_held_count_ == 0) break;
      // 1 ms: notifications follow ACKs; polling this rarely costs nothing.
      meters::count_syscall();
      ::usleep(1000);
    }
    for (size_t fd = 0; fd < fds_.size(); ++fd) release_zerocopy(int(fd));
  }

  // fd is closed or forgotten: its error queue can no longer be read, so
  // held sends complete with their results (the kernel pinned the pages; the
  // data left with the send).
  void release_zerocopy(int fd) noexcept {
    fd_entry* e = entry(fd);
    if (e == nullptr) return;
    while (!e->zc_held.empty()) finish_zerocopy(*e, e->zc_held.head, true);
  }

  fd_entry* entry(int fd) noexcept {
    if (fd < 0) return nullptr;
    if (size_t(fd) >= fds_.size()) {
      try {
        fds_.resize(size_t(fd) + 1);
      } catch (...) {
        return nullptr;
      }
    }
    return &fds_[size_t(fd)];
  }

  // Ops still parked on the fd complete with -ECANCELED: the close op cancels
  // them, as an io_uring close does not (it leaves them to eat later data,
  // safety scenario 10). No EPOLL_CTL_DEL first: close() removes the
  // registration when this was the file's last descriptor. If it was not
  // (the file was dup'ed), the registration outlives the number, and its
  // events name the number: they make the loop retry what is parked on it
  // later, which says EAGAIN and stays parked (or was ready anyway), and an
  // ADD of the same file under the number gets EEXIST and falls back to MOD.
  // Harmless either way, so the common case saves a syscall per close.
  int32_t close_fd(op& o) noexcept {
    cancel_parked_on(o.fd);
    if (o.fd >= 0 && size_t(o.fd) < fds_.size()) {
      drain_zerocopy(o.fd);
      release_zerocopy(o.fd);
      fds_[size_t(o.fd)].registered = false;
      fds_[size_t(o.fd)].zc = zc_mode::unknown;
      fds_[size_t(o.fd)].zc_next = 0;
    }
    return perform_sync(o, sync_mode::nonblocking);
  }

  void cancel_parked_on(int fd) noexcept {
    if (fd < 0 || size_t(fd) >= fds_.size()) return;
    fd_entry& e = fds_[size_t(fd)];
    for (slot_list* l : {&e.readers, &e.writers}) {
      while (!l->empty()) {
        const uint32_t i = l->head;
        unlink(*l, i);
        make_ready(i, -ECANCELED);
      }
    }
  }

  // Cancels what is parked on fd and drops its registration.
  void forget_fd(int fd) noexcept {
    if (fd < 0 || size_t(fd) >= fds_.size()) return;
    cancel_parked_on(fd);
    release_zerocopy(fd);
    fd_entry& e = fds_[size_t(fd)];
    e.zc = zc_mode::unknown;
    e.zc_next = 0;
    if (e.registered) {
      e.registered = false;
      meters::count_syscall();
      ::epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, fd, nullptr);  // ENOENT: the file was closed already
    }
  }

  [[nodiscard]] bool has_parked(int fd, direction d) const noexcept {
    if (fd < 0 || size_t(fd) >= fds_.size()) return false;
    const fd_entry& e = fds_[size_t(fd)];
    return !(d == direction::in ? e.readers : e.writers).empty();
  }

  void park(uint32_t i, direction d) noexcept {
    const int fd = slots_[i].o.fd;
    if (fd < 0) return finish_in_submit(i, -EBADF);
    if (entry(fd) == nullptr) return finish_in_submit(i, -ENOMEM);
    if (const int32_t err = register_fd(fd); err != 0) return finish_in_submit(i, err);
    fd_entry& e = fds_[size_t(fd)];
    op_slot& s = slots_[i];
    s.state = slot_state::parked_fd;
    s.dir = d;
    push_back(d == direction::in ? e.readers : e.writers, i);
    if (s.o.deadline_ns != 0) {
      s.due = s.deadline;
      heap_push(i);
    }
  }

  // 0 or -errno. fd must have an entry.
  int32_t register_fd(int fd) noexcept {
    fd_entry& e = fds_[size_t(fd)];
    if (!e.registered) {
      // Edge-triggered with both directions, once per fd: no EPOLL_CTL_MOD
      // per op. Sound because an op is parked only after its attempt said
      // EAGAIN (or behind one that did), and any readiness change after an
      // EAGAIN produces a new edge. ADD also reports readiness that arrived
      // between the EAGAIN and the registration.
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
      ev.data.fd = fd;
      meters::count_syscall();
      int r = ::epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, fd, &ev);
      if (r < 0 && errno == EEXIST) {  // the same file, adopted twice
        meters::count_syscall();
        r = ::epoll_ctl(epfd_.get(), EPOLL_CTL_MOD, fd, &ev);
      }
      if (r < 0) return -errno;
      e.registered = true;
    }
    return 0;
  }

  // ---- loop ----
  void on_event(const epoll_event& ev) noexcept {
    const int fd = ev.data.fd;
    if (fd < 0 || size_t(fd) >= fds_.size()) return;
    // The error queue (zero-copy notifications) raises EPOLLERR.
    if ((ev.events & EPOLLERR) != 0 && !fds_[size_t(fd)].zc_held.empty()) drain_zerocopy(fd);
    // Errors and hang-ups wake both directions: the attempt reports them.
    if (ev.events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) retry(fds_[size_t(fd)].readers);
    if (ev.events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) retry(fds_[size_t(fd)].writers);
  }

  // Attempts parked ops in order until one says EAGAIN (edge-triggered: that
  // EAGAIN re-arms the edge for the rest). Results are queued, not
  // delivered, so no user code runs while the fd table is being walked.
  // The fds whose ops got an injected EAGAIN: retried as if an edge came.
  void retry_injected() noexcept {
    if (injected_fds_.empty()) return;
    std::vector<int> fds;
    fds.swap(injected_fds_);  // retries may inject again: those wait for the next pass
    for (const int fd : fds) {
      if (fd < 0 || size_t(fd) >= fds_.size()) continue;
      retry(fds_[size_t(fd)].readers);
      retry(fds_[size_t(fd)].writers);
    }
  }

  void retry(slot_list& l) noexcept {
    while (!l.empty()) {
      const uint32_t i = l.head;
      const int32_t r = slots_[i].o.kind == op_kind::recv_multishot ? pump_multishot(i) : attempt(slots_[i]);
      if (r == -EAGAIN) return;
      unlink(l, i);
      if (slots_[i].zc_sent) hold_zerocopy(i, r);
      else make_ready(i, r);
    }
  }

  void expire_timers(clock_type::time_point now) noexcept {
    while (!heap_.empty() && slots_[heap_[0]].due <= now) {
      const uint32_t i = heap_[0];
      heap_remove(i);
      op_slot& s = slots_[i];
      if (s.state == slot_state::parked_fd) {
        // Its deadline passed while it was parked: nothing reached it.
        unlink(parked_list(i), i);
        make_ready(i, -ECANCELED);
      } else {
        // A plain sleep that ran its course succeeded, unless its deadline came first.
        make_ready(i, s.deadline_first ? -ECANCELED : 0);
      }
    }
  }

  // Delivers what was ready when the call began; results made ready by those
  // waiters wait for the next turn, so the loop keeps turning (timers every
  // turn, epoll every few) however busy the streams are.
  void deliver_ready() noexcept {
    deliver_mores();
    for (size_t n = ready_size_; n > 0 && !ready_.empty(); --n) {
      const uint32_t i = ready_.head;
      unlink(ready_, i);
      inline_streak_ = 0;
      deliver(i);
    }
  }

  // Multishot receives queued so far, in order, before any final completion
  // (a multishot's final is queued after its receives). Receives queued by
  // these waiters wait for the next turn.
  void deliver_mores() noexcept {
    const size_t n = mores_.size();
    for (size_t k = 0; k < n; ++k) {
      more_item m = std::move(mores_[k]);
      op_slot& s = slots_[m.slot];
      // Dropped or ended: the buffer goes back to its pool.
      if (s.gen != m.gen || s.state == slot_state::free || s.waiter == nullptr) continue;
      inline_streak_ = 0;
      s.waiter->on_more(completion{m.res, 0, std::move(m.buf)});
    }
    mores_.erase(mores_.begin(), mores_.begin() + std::ptrdiff_t(n));
  }

  int wait_events(clock_type::duration d) noexcept {
    if (d < clock_type::duration::zero()) d = clock_type::duration::zero();
    const int cap = int(events_.size());
    if (use_pwait2_) {
      // epoll_pwait2: nanosecond timeouts, so short sleeps are not rounded to ms.
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
      timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
      meters::count_syscall();
      const int n = ::epoll_pwait2(epfd_.get(), events_.data(), cap, &ts, nullptr);
      if (n >= 0) return n;
      if (errno != ENOSYS) return 0;  // EINTR: a signal; the loop just turns again
      use_pwait2_ = false;
    }
    // Rounded up: waking early would only spin until the timer is due.
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(d).count();
    meters::count_syscall();
    const int n = ::epoll_wait(epfd_.get(), events_.data(), cap, int(std::min<int64_t>(ms, INT_MAX)));
    return n < 0 ? 0 : n;
  }

  void cancel_all_parked() noexcept {
    for (size_t fd = 0; fd < fds_.size(); ++fd) cancel_parked_on(int(fd));
    while (!heap_.empty()) {
      const uint32_t i = heap_[0];
      heap_remove(i);
      make_ready(i, -ECANCELED);
    }
  }

  // ---- timer min-heap of slot indices, by due time ----
  [[nodiscard]] bool earlier(uint32_t a, uint32_t b) const noexcept { return slots_[a].due < slots_[b].due; }
  void heap_set(size_t pos, uint32_t i) noexcept {
    heap_[pos] = i;
    slots_[i].heap_pos = uint32_t(pos);
  }
  void sift_up(size_t pos) noexcept {
    const uint32_t i = heap_[pos];
    while (pos > 0) {
      const size_t parent = (pos - 1) / 2;
      if (!earlier(i, heap_[parent])) break;
      heap_set(pos, heap_[parent]);
      pos = parent;
    }
    heap_set(pos, i);
  }
  void sift_down(size_t pos) noexcept {
    const uint32_t i = heap_[pos];
    const size_t n = heap_.size();
    for (;;) {
      size_t child = 2 * pos + 1;
      if (child >= n) break;
      if (child + 1 < n && earlier(heap_[child + 1], heap_[child])) ++child;
      if (!earlier(heap_[child], i)) break;
      heap_set(pos, heap_[child]);
      pos = child;
    }
    heap_set(pos, i);
  }
  void heap_push(uint32_t i) noexcept {
    try {
      heap_.push_back(i);
    } catch (...) {
      return make_ready(i, -ENOMEM);
    }
    sift_up(heap_.size() - 1);
  }
  void heap_remove(uint32_t i) noexcept {
    const size_t pos = slots_[i].heap_pos;
    slots_[i].heap_pos = no_slot;
    const uint32_t last = heap_.back();
    heap_.pop_back();
    if (pos == heap_.size()) return;  // it was the last one
    heap_set(pos, last);
    sift_down(pos);
    sift_up(slots_[last].heap_pos);
  }

  backend_caps caps_{.contract = buffer_contract::borrowed_in_syscall,
                     .thread_per_stream = false,
                     .file_io = true,
                     .async_file_io = false,
                     .cancel_in_flight = true,
                     .cancel_file_io = false,
                     .zero_copy_send = true};
  unique_fd epfd_;
  bool use_pwait2_ = true;
  std::array<epoll_event, event_batch> events_{};

  std::vector<op_slot> slots_;
  uint32_t free_head_ = no_slot;
  std::vector<fd_entry> fds_;  // indexed by fd number
  slot_list ready_;
  size_t ready_size_ = 0;
  std::vector<uint32_t> heap_;
  uint32_t inline_streak_ = 0;  // backend-wide: see finish_in_submit
  uint32_t busy_passes_ = 0;    // loop passes in a row that did not poll epoll
  uint32_t inject_eagain_ = 0;  // injected EAGAINs still to come (inject_submit_failures)
  std::vector<int> injected_fds_;  // fds to retry next pass: their EAGAIN was injected
  size_t zc_held_count_ = 0;    // send_zc ops waiting for their notification
  std::vector<more_item> mores_;  // multishot receives waiting for on_more
  bool shut_down_ = false;

  task_set tasks_;
};

}  // namespace

void register_epoll_backend() {
  register_backend(backend_info{
      .name = "epoll",
      .description = "one readiness loop, non-blocking syscalls, try-then-wait",
      .unavailable_reason = [] { return std::string(); },
      .make = [](const backend_options&) -> std::unique_ptr<backend> {
        return std::make_unique<epoll_backend>();
      },
  });
}

}  // namespace ringside
