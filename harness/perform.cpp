#include "harness/perform.hpp"

#include <linux/errqueue.h>
#include <netinet/in.h>
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
    case op_kind::send_zc:  // as a plain send: the caller chose not to (or cannot) use MSG_ZEROCOPY
      r = sys::send(fd, payload(o), msg_flags);
      if (o.kind == op_kind::send_zc) {
        count_zerocopy_result(static_cast<int32_t>(r), true);
        return static_cast<int32_t>(r);
      }
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
  if (res > 0 && moves_payload(kind) && kind != op_kind::send_zc) meters::count_kernel_copy(uint64_t(res));
}

int32_t enable_zerocopy(int fd) noexcept {
  const int one = 1;
  meters::count_syscall();
  return ::setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof one) == 0 ? 0 : -errno;
}

int32_t send_zerocopy(op& o, sync_mode mode) noexcept {
  if (const int32_t err = payload_error(o); err != 0) return err;
  const int flags = MSG_ZEROCOPY | (mode == sync_mode::nonblocking ? MSG_DONTWAIT : 0);
  return static_cast<int32_t>(sys::send(o.fd, payload(o), flags));
}

int32_t read_zerocopy_notification(int fd, zerocopy_notification& out) noexcept {
  for (;;) {
    // 128: room for one cmsghdr carrying a sock_extended_err (plus its
    // offender address), as every IP level error-queue message has.
    alignas(cmsghdr) char control[128];
    msghdr msg{};
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    meters::count_syscall();
    if (::recvmsg(fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
      const bool ip_err = (cm->cmsg_level == SOL_IP && cm->cmsg_type == IP_RECVERR) ||
                          (cm->cmsg_level == SOL_IPV6 && cm->cmsg_type == IPV6_RECVERR);
      if (!ip_err) continue;
      sock_extended_err ee;
      __builtin_memcpy(&ee, CMSG_DATA(cm), sizeof ee);  // not payload: a kernel struct, maybe unaligned
      if (ee.ee_errno != 0 || ee.ee_origin != SO_EE_ORIGIN_ZEROCOPY) continue;
      out.lo = ee.ee_info;
      out.hi = ee.ee_data;
      out.copied = (ee.ee_code & SO_EE_CODE_ZEROCOPY_COPIED) != 0;
      return 0;
    }
  }
}

void count_zerocopy_result(int32_t res, bool copied) noexcept {
  if (res > 0 && copied) meters::count_kernel_copy(uint64_t(res));
}

void discard_result(op_kind kind, int32_t res) noexcept {
  if (kind == op_kind::accept && res >= 0) sys::close(res);
}

}  // namespace ringside
