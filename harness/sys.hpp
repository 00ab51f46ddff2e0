// Counted syscall wrappers. Every syscall ringside makes on a measured path goes
// through one of these (or calls meters::count_syscall itself, as the ring
// wrapper does around io_uring_enter), so syscalls_per_op is exact.
// All return -errno on failure, like the kernel and liburing.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <span>

namespace ringside::sys {

// Borrowed (all spans below): only for the duration of the call.
int64_t read(int fd, std::span<std::byte> buf) noexcept;
int64_t pread(int fd, std::span<std::byte> buf, uint64_t off) noexcept;
int64_t write(int fd, std::span<const std::byte> buf) noexcept;
int64_t pwrite(int fd, std::span<const std::byte> buf, uint64_t off) noexcept;
int64_t recv(int fd, std::span<std::byte> buf, int flags) noexcept;
int64_t send(int fd, std::span<const std::byte> buf, int flags) noexcept;
int accept(int fd, int flags) noexcept;  // accept4(fd, nullptr, nullptr, flags)
int connect(int fd, const sockaddr* addr, socklen_t len) noexcept;
int close(int fd) noexcept;
int fsync(int fd) noexcept;
int socket(int domain, int type, int proto) noexcept;
// Borrowed: val and len only for the duration of the call.
int getsockopt(int fd, int level, int name, void* val, socklen_t* len) noexcept;

}  // namespace ringside::sys
