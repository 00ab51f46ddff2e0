// What every backend does with an op's payload range, its synchronous syscall
// and its result, written once:
//   - payload(): the bytes an op moves (buf.data() + buf_offset, len), after
//     payload_error() has said the range fits the buffer;
//   - perform_sync(): the op as one syscall (the blocking and epoll backends);
//   - count_kernel_copy(): kernel copy accounting, called where a result is
//     produced (syscall return, CQE reap), so results nobody takes count too;
//   - discard_result(): what happens to a result without a waiter (a dropped
//     op): an accepted connection is closed, never leaked.
#pragma once

#include <cerrno>
#include <cstdint>
#include <span>

#include "harness/op.hpp"

namespace ringside {

// 0, or -EINVAL when a payload op's range [buf_offset, buf_offset + len)
// does not fit its buffer (an invalid buffer has capacity 0).
[[nodiscard]] inline int32_t payload_error(const op& o) noexcept {
  if (!moves_payload(o.kind)) return 0;
  return uint64_t(o.buf_offset) + o.len > o.buf.capacity() ? -EINVAL : 0;
}

// Borrowed: the op's own buffer, valid while the op holds it. Only after
// payload_error(o) == 0.
[[nodiscard]] inline std::span<std::byte> payload(const op& o) noexcept {
  return {o.buf.data() + o.buf_offset, o.len};
}

enum class sync_mode : uint8_t {
  blocking,     // recv/send without flags; accepted fds blocking
  nonblocking,  // MSG_DONTWAIT; accepted fds SOCK_NONBLOCK (never blocks a loop)
};

// Performs o as one syscall and returns its result or -errno; -EINTR and
// -EAGAIN are the caller's to handle (retry, park, check for a cancel). read
// and write use pread/pwrite unless o.offset is ~0 ("current position", for
// pipes and sockets). close reports EINTR as success: Linux frees the
// descriptor anyway, and retrying could close a number just reused. connect
// only issues the connect (-EINPROGRESS on a non-blocking socket): finish
// with connect_result(). nop is 0; timeout has no syscall here (-EINVAL): it
// is each backend's own. Payload ops check payload_error() first. The bytes
// the kernel moved are counted (count_kernel_copy) before it returns.
int32_t perform_sync(op& o, sync_mode mode) noexcept;

// The outcome of a connect in progress on fd (its SO_ERROR): 0 or -errno.
int32_t connect_result(int fd) noexcept;

// Counts the bytes the kernel copied for a result: read, write, recv and send
// copy `res` bytes once, whoever takes (or drops) the result.
void count_kernel_copy(op_kind kind, int32_t res) noexcept;

// A result nobody will take (its waiter was dropped, or its completion was
// handed out early): an accepted fd is closed (counted), so it cannot leak.
void discard_result(op_kind kind, int32_t res) noexcept;

}  // namespace ringside
