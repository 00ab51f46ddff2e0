// One I/O request, its completion, and the id that names it.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string_view>

#include "harness/buffer.hpp"

namespace ringside {

enum class op_kind : uint8_t { nop, read, write, recv, send, accept, connect, close, fsync, timeout };

std::string_view to_string(op_kind k) noexcept;

// Moves payload between the kernel and the op's buffer (so the buffer matters
// to the buffer contract, and the kernel copies `res` bytes).
constexpr bool moves_payload(op_kind k) noexcept {
  return k == op_kind::read || k == op_kind::write || k == op_kind::recv || k == op_kind::send;
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

 protected:
  ~op_waiter() = default;
};

}  // namespace ringside
