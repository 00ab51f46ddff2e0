#include "harness/perform.hpp"

#include <sys/socket.h>

#include <cerrno>

#include "harness/meters.hpp"
#include "harness/sys.hpp"

namespace ringside {

int32_t perform_sync(op& o, sync_mode mode) noexcept {
  if (const int32_t err = payload_error(o); err != 0) return err;
  const int fd = o.fd;
  // ~0: "current position", for pipes and sockets that have no offset.
  const bool positional = o.offset != ~uint64_t{0};
  const int msg_flags = mode == sync_mode::nonblocking ? MSG_DONTWAIT : 0;
  int64_t r;
  switch (o.kind) {
    case op_kind::nop:
      return 0;
    case op_kind::read:
      r = positional ? sys::pread(fd, payload(o), o.offset) : sys::read(fd, payload(o));
      break;
    case op_kind::write:
      r = positional ? sys::pwrite(fd, payload(o), o.offset) : sys::write(fd, payload(o));
      break;
    case op_kind::recv:
      r = sys::recv(fd, payload(o), msg_flags);
      break;
    case op_kind::send:
      r = sys::send(fd, payload(o), msg_flags);
      break;
    case op_kind::accept:
      // The new fd gets the mode its backend adopts fds with.
      return sys::accept(fd, SOCK_CLOEXEC | (mode == sync_mode::nonblocking ? SOCK_NONBLOCK : 0));
    case op_kind::connect:
      return sys::connect(fd, o.addr, o.addrlen);
    case op_kind::close: {
      const int c = sys::close(fd);
      return c == -EINTR ? 0 : c;
    }
    case op_kind::fsync:
      return sys::fsync(fd);
    case op_kind::timeout:
    default:
      return -EINVAL;
  }
  count_kernel_copy(o.kind, static_cast<int32_t>(r));
  return static_cast<int32_t>(r);
}

int32_t connect_result(int fd) noexcept {
  int err = 0;
  socklen_t len = sizeof err;
  if (const int r = sys::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len); r < 0) return r;
  return -err;
}

void count_kernel_copy(op_kind kind, int32_t res) noexcept {
  if (res > 0 && moves_payload(kind)) meters::count_kernel_copy(uint64_t(res));
}

void discard_result(op_kind kind, int32_t res) noexcept {
  if (kind == op_kind::accept && res >= 0) sys::close(res);
}

}  // namespace ringside
