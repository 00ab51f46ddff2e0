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
// copy `res` bytes once, whoever takes (or drops) the result. send_zc is not
// counted here: only its notification says whether the kernel copied after
// all (count_zerocopy_result).
void count_kernel_copy(op_kind kind, int32_t res) noexcept;

// ---- zero-copy send (MSG_ZEROCOPY) for the synchronous backends ----
// The kernel numbers every MSG_ZEROCOPY send that moved bytes (per socket,
// from 0, wrapping) and later queues a notification on the socket's error
// queue covering a range of those numbers: until then it may still read the
// sent pages, so the buffer is held until its number is covered.

// Sets SO_ZEROCOPY on fd: 0, or -errno (-EOPNOTSUPP: not a TCP/UDP socket,
// e.g. AF_UNIX; callers then send plainly).
int32_t enable_zerocopy(int fd) noexcept;
// o (a send_zc) as one send(MSG_ZEROCOPY): bytes sent or -errno, like
// perform_sync; no kernel copy is counted (see count_zerocopy_result).
int32_t send_zerocopy(op& o, sync_mode mode) noexcept;

struct zerocopy_notification {
  uint32_t lo = 0, hi = 0;  // send numbers covered, inclusive (wrapping)
  bool copied = false;      // SO_EE_CODE_ZEROCOPY_COPIED: the kernel copied anyway (e.g. loopback)
};
// Reads one notification from fd's error queue without blocking: 0, -EAGAIN
// when the queue is empty, or -errno. Other error-queue messages are skipped.
int32_t read_zerocopy_notification(int fd, zerocopy_notification& out) noexcept;
// True when send number `seq` is in [n.lo, n.hi] (modulo 2^32).
constexpr bool covers(const zerocopy_notification& n, uint32_t seq) noexcept {
  return seq - n.lo <= n.hi - n.lo;
}
// Counts a finished send_zc's kernel copy: `res` bytes if the notification
// (or the fallback to a plain send) says the kernel copied them, else none.
void count_zerocopy_result(int32_t res, bool copied) noexcept;

// A result nobody will take (its waiter was dropped, or its completion was
// handed out early): an accepted fd is closed (counted), so it cannot leak.
void discard_result(op_kind kind, int32_t res) noexcept;

}  // namespace ringside
