// One I/O request, its completion, and the id that names it.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string_view>

#include "harness/buffer.hpp"

namespace ringside {

// send_zc: a zero-copy send (io_uring SEND_ZC; MSG_ZEROCOPY elsewhere). The
// kernel may read the buffer until its notification, after the send's result:
// the buffer comes back only with the notification (owned contracts).
// recv_multishot: receives again and again into buffers of op.group (a
// provided-buffer ring), one completion per receive through
// op_waiter::on_more, until the final completion (on_complete: an error,
// -ENOBUFS when the group ran dry, 0 at EOF, -ECANCELED).
enum class op_kind : uint8_t {
  nop, read, write, recv, send, accept, connect, close, fsync, timeout, send_zc, recv_multishot
};

class buffer_group;  // harness/buffer_group.hpp

std::string_view to_string(op_kind k) noexcept;

// Moves payload between the kernel and the op's buffer (so the buffer matters
// to the buffer contract, and the kernel copies `res` bytes — except send_zc,
// whose notification says whether it copied). recv_multishot moves payload
// too, but into its group's buffers, not op.buf.
constexpr bool moves_payload(op_kind k) noexcept {
  return k == op_kind::read || k == op_kind::write || k == op_kind::recv || k == op_kind::send ||
         k == op_kind::send_zc;
}
// Payload flows kernel -> user (the kernel writes into the buffer).
constexpr bool kernel_writes_buffer(op_kind k) noexcept {
  return k == op_kind::read || k == op_kind::recv;
}

// Slot index plus a generation, so a reused slot can never be mistaken for the
// op that used it before (ABA). 0 is "no op".
struct op_id {
  uint64_t value = 0;

  static constexpr op_id make(uint32_t slot, uint32_t gen) noexcept {
    return {(uint64_t(gen) << 32) | slot};
  }
  [[nodiscard]] constexpr uint32_t slot() const noexcept { return uint32_t(value); }
  [[nodiscard]] constexpr uint32_t gen() const noexcept { return uint32_t(value >> 32); }
  explicit constexpr operator bool() const noexcept { return value != 0; }
  friend constexpr bool operator==(op_id, op_id) = default;
};

struct op {
  op_kind kind = op_kind::nop;
  int fd = -1;
  // read/write: file offset. ~0 means "current position" (pipes, sockets).
  uint64_t offset = 0;
  // Bytes to move, at buf.data() + buf_offset; buf_offset + len must not
  // exceed buf.capacity() (else the op completes with -EINVAL). The offset
  // lets a stream continue a short transfer in place instead of copying the
  // rest to the buffer's start.
  uint32_t len = 0;
  uint32_t buf_offset = 0;
  // timeout: relative nanoseconds.
  uint64_t timeout_ns = 0;
  // Any op: relative nanoseconds after which the backend (the kernel, for
  // io_uring: a linked timeout) cancels it; 0 = none. The op then completes
  // -ECANCELED — or with its real result if it completed first: never both,
  // and a success is never turned into -ECANCELED. Ops a backend cannot
  // interrupt (regular-file I/O on blocking, see caps.cancel_file_io) run to
  // completion.
  uint64_t deadline_ns = 0;
  // io_uring: issue the op straight to the kernel's async workers (io-wq,
  // IOSQE_ASYNC) instead of trying it inline first, so it can be RUNNING in a
  // worker when a cancel arrives (the kernel's ASYNC_CANCEL then says
  // -EALREADY: cancel.ealready). A hint: backends without io-wq ignore it.
  bool force_async = false;
  // send: keep sending until all len bytes are sent (MSG_WAITALL; io_uring
  // retries in the kernel, and a cancel then completes with the count sent so
  // far: cancel.partial_write). A hint: a backend that returns a short count
  // instead (a non-blocking send) still reports exactly what was sent.
  bool wait_all = false;
  // Issue the op from a short-lived thread that exits while the op is pending
  // (io_uring: that thread's io_uring_enter submits it, then it exits; the
  // kernel then ends the op itself, with -ECANCELED that nobody asked for, at
  // its next wakeup: cancel.thread_exit). Only where caps.submitter_can_exit;
  // elsewhere the op completes -EOPNOTSUPP. Slow (a thread per op): a safety
  // hook, not a throughput path.
  bool submitter_exits = false;
  // recv_multishot: the buffers it may fill (moved out of the group at
  // submit; the unused ones are moved back before the final completion).
  // Borrowed: must stay valid until this op's final completion.
  buffer_group* group = nullptr;
  // connect: Borrowed: must stay valid until this op's completion is delivered.
  const sockaddr* addr = nullptr;
  socklen_t addrlen = 0;
  // read/write/recv/send: moved in, handed back with the completion (when the
  // backend's contract says; see backend_caps::buffer_contract).
  buffer buf;
};

struct completion {
  int32_t res = 0;     // bytes moved, new fd (accept), 0, or -errno
  uint32_t flags = 0;  // backend-specific (io_uring CQE flags)
  buffer buf;          // the op's buffer, handed back
};

// Receives exactly one completion per submitted op.
class op_waiter {
 public:
  // Called by every backend with the op's id before the op can block or
  // complete, so a waiter whose submit() blocks (blocking backend) already
  // knows the id another stream needs to cancel it.
  virtual void on_started(op_id id) noexcept { (void)id; }
  virtual void on_complete(completion&& c) noexcept = 0;
  // A multishot op's non-final completion (recv_multishot: c.res bytes at
  // c.buf.data(), c.buf one of its group's buffers, the waiter's now). Same
  // thread rules as on_complete; never after it. Default: the buffer goes
  // back to its pool.
  virtual void on_more(completion&& c) noexcept { (void)c; }

 protected:
  ~op_waiter() = default;
};

}  // namespace ringside
