#include "harness/sys.hpp"

#include <unistd.h>

#include <cerrno>

#include "harness/meters.hpp"
#include "harness/unique_fd.hpp"

namespace ringside {

void unique_fd::reset(int fd) noexcept {
  if (fd_ >= 0) sys::close(fd_);
  fd_ = fd;
}

namespace sys {
namespace {
inline int64_t ret(int64_t r) noexcept { return r < 0 ? -errno : r; }
}  // namespace

int64_t read(int fd, std::span<std::byte> buf) noexcept {
  meters::count_syscall();
  return ret(::read(fd, buf.data(), buf.size()));
}
int64_t pread(int fd, std::span<std::byte> buf, uint64_t off) noexcept {
  meters::count_syscall();
  return ret(::pread(fd, buf.data(), buf.size(), static_cast<off_t>(off)));
}
int64_t write(int fd, std::span<const std::byte> buf) noexcept {
  meters::count_syscall();
  return ret(::write(fd, buf.data(), buf.size()));
}
int64_t pwrite(int fd, std::span<const std::byte> buf, uint64_t off) noexcept {
  meters::count_syscall();
  return ret(::pwrite(fd, buf.data(), buf.size(), static_cast<off_t>(off)));
}
int64_t recv(int fd, std::span<std::byte> buf, int flags) noexcept {
  meters::count_syscall();
  return ret(::recv(fd, buf.data(), buf.size(), flags));
}
int64_t send(int fd, std::span<const std::byte> buf, int flags) noexcept {
  meters::count_syscall();
  // MSG_NOSIGNAL: a peer that closed must give -EPIPE, not kill the run.
  return ret(::send(fd, buf.data(), buf.size(), flags | MSG_NOSIGNAL));
}
int accept(int fd, int flags) noexcept {
  meters::count_syscall();
  return static_cast<int>(ret(::accept4(fd, nullptr, nullptr, flags)));
}
int connect(int fd, const sockaddr* addr, socklen_t len) noexcept {
  meters::count_syscall();
  return static_cast<int>(ret(::connect(fd, addr, len)));
}
int close(int fd) noexcept {
  meters::count_syscall();
  return static_cast<int>(ret(::close(fd)));
}
int fsync(int fd) noexcept {
  meters::count_syscall();
  return static_cast<int>(ret(::fsync(fd)));
}
int socket(int domain, int type, int proto) noexcept {
  meters::count_syscall();
  return static_cast<int>(ret(::socket(domain, type, proto)));
}
int getsockopt(int fd, int level, int name, void* val, socklen_t* len) noexcept {
  meters::count_syscall();
  return static_cast<int>(ret(::getsockopt(fd, level, name, val, len)));
}

}  // namespace sys
}  // namespace ringside
