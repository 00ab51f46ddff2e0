// Helpers shared by the throughput scenarios (scenarios/file.cpp, tcp.cpp):
// parameter checks, where files live, loopback TCP setup, and the one-line
// reports every scenario makes. Setup helpers may throw; the ones tasks call
// on the hot path return -errno.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "harness/backend.hpp"
#include "harness/fd_census.hpp"
#include "harness/buffer.hpp"
#include "harness/meters.hpp"
#include "harness/op.hpp"
#include "harness/pattern.hpp"
#include "harness/scenario.hpp"
#include "harness/sys.hpp"
#include "harness/tempdir.hpp"
#include "harness/unique_fd.hpp"

namespace ringside::scen {

// An op's len is 32 bits; 1 GiB keeps every chunk far inside it and the pool
// mappable.
inline constexpr uint64_t k_max_bs = 1ull << 30;

inline void check_bs(const params& p) {
  if (p.bs == 0 || p.bs > k_max_bs)
    throw usage_error(fmt::format("--bs {}: must be between 1 and {}", p.bs, k_max_bs));
}

inline std::string errno_text(int err) { return std::system_category().message(err); }

// The run's budget check, given a clock reading the stream already has (its
// last op's end), so a timed loop reads the clock twice per op, not three
// times. The one place a stream asks; ops budgets never read the clock.
inline bool keep_going(run_ctx& ctx, clock_type::time_point now) noexcept { return ctx.keep_going_at(now); }

// A payload op on b's bytes [from, from + len) (file_off: where a read or
// write goes in the file; recv/send ignore it). A short transfer continues
// with the next op in place (op::buf_offset) instead of moving the rest to
// the buffer's start: no scenario copies payload.
inline op payload_op(op_kind kind, int fd, buffer b, uint64_t from, uint64_t len, uint64_t file_off = 0) noexcept {
  return op{.kind = kind, .fd = fd, .offset = file_off, .len = uint32_t(len), .buf_offset = uint32_t(from),
            .buf = std::move(b)};
}

// ---- reports (ctx.report also stops the run) ----
inline void report_io(run_ctx& ctx, std::string_view where, std::string_view what, int64_t res) {
  const std::string result = res < 0 ? errno_text(int(-res)) : fmt::format("{}", res);
  ctx.report("io_error", what.empty() ? fmt::format("{}: {}", where, result) : fmt::format("{}: {}: {}", where, what, result));
}
// A payload completion a stream cannot use: an error, nothing moved, more
// than was asked (a backend bug; reading it would overrun the buffer), or the
// buffer not handed back.
inline bool bad_transfer(int32_t res, uint64_t asked, const buffer& b) noexcept {
  return res <= 0 || uint64_t(res) > asked || !b;
}
// Reports what bad_transfer() found (callers handle a normal EOF first).
inline void report_transfer(run_ctx& ctx, std::string_view where, int32_t res, uint64_t asked, const buffer& b) {
  if (res < 0) return report_io(ctx, where, "", res);
  if (res == 0) return ctx.report("short_transfer", fmt::format("{}: moved 0 of {} bytes", where, asked));
  if (uint64_t(res) > asked)
    return ctx.report("io_error", fmt::format("{}: completed with {} bytes, more than the {} asked", where, res, asked));
  if (!b) ctx.report("io_error", fmt::format("{}: completion without its buffer", where));
}
// Borrowed: data only for the duration of the call; data[0] is offset off.
inline void report_mismatch(run_ctx& ctx, std::string_view where, const pattern& pat,
                            std::span<const std::byte> data, uint64_t off, uint64_t bad) {
  ctx.report("data_mismatch",
             fmt::format("{}: byte at offset {} is 0x{:02x}, expected 0x{:02x} (seed {:#x}, bs {}, {} verify)",
                         where, bad, unsigned(data[bad - off]), unsigned(pat.at(bad)), pat.seed(), pat.bs(),
                         to_string(pat.mode())));
}

// ---- syscalls sys.hpp has no wrapper for; counted at the call site ----
inline int shutdown_fd(int fd, int how) noexcept {
  meters::count_syscall();
  return ::shutdown(fd, how) < 0 ? -errno : 0;
}

// adopt() may throw (it is setup); tasks that make fds mid-run call this.
inline int try_adopt(backend& be, int fd) noexcept {
  try {
    be.adopt(fd);
    return 0;
  } catch (const std::system_error& e) {
    return e.code().value() > 0 ? -e.code().value() : -EINVAL;
  } catch (...) {
    return -EINVAL;
  }
}

// ---- files ----
// Where a file scenario's files live. --file PATH: that file (and PATH.copy
// for file.copy) is (re)created, overwritten and kept, like fio's filename=.
// --dir DIR: a temp subdirectory of DIR, removed afterwards. Neither: a temp
// directory under $TMPDIR (or /tmp), removed afterwards.
class file_place {
 public:
  explicit file_place(const params& p) : user_file_(p.file) {
    if (!p.file.empty() && !p.dir.empty()) throw usage_error("--file and --dir: give one, not both");
    if (!user_file_.empty()) return;
    try {
      dir_.emplace(p.dir);
    } catch (const std::system_error& e) {
      // e.what() is "<parent>: <strerror>"; the CLI prints it as one line.
      if (p.dir.empty()) throw usage_error(fmt::format("temp dir ($TMPDIR or /tmp) {}", e.what()));
      throw usage_error(fmt::format("--dir {}: {}", p.dir, e.code().message()));
    }
  }

  // name: "data" (the scenario's main file) or another suffix ("copy").
  [[nodiscard]] std::string path(std::string_view name) const {
    if (!user_file_.empty()) return name == "data" ? user_file_ : user_file_ + "." + std::string(name);
    return dir_->file(name);
  }

  // Creates (truncating) the file at path(name), open for read and write.
  [[nodiscard]] unique_fd create(std::string_view name) const {
    const std::string p = path(name);
    meters::count_syscall();
    const int fd = ::open(p.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      const int err = errno;
      if (!user_file_.empty()) throw usage_error(fmt::format("--file {}: {}", p, errno_text(err)));
      throw std::system_error(err, std::generic_category(), "open " + p);
    }
    return unique_fd(fd);
  }

 private:
  std::string user_file_;
  std::optional<temp_dir> dir_;
};

// ---- loopback TCP setup (prepare(): plain blocking calls, may throw) ----
inline void set_int_opt(int fd, int level, int name, int value, const char* what) {
  meters::count_syscall();
  if (::setsockopt(fd, level, name, &value, sizeof value) < 0)
    throw std::system_error(errno, std::generic_category(), what);
}

struct tcp_listener {
  unique_fd fd;
  sockaddr_in addr{};  // 127.0.0.1 and the port the kernel picked
};

inline tcp_listener listen_loopback() {
  tcp_listener l;
  const int fd = sys::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::system_error(-fd, std::generic_category(), "socket");
  l.fd.reset(fd);
  l.addr.sin_family = AF_INET;
  l.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  l.addr.sin_port = 0;  // any free port: parallel runs never collide
  meters::count_syscall();
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&l.addr), sizeof l.addr) < 0)
    throw std::system_error(errno, std::generic_category(), "bind 127.0.0.1:0");
  // SOMAXCONN: accept_storm's connectors may all be queued at once.
  meters::count_syscall();
  if (::listen(fd, SOMAXCONN) < 0) throw std::system_error(errno, std::generic_category(), "listen");
  socklen_t len = sizeof l.addr;
  meters::count_syscall();
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&l.addr), &len) < 0)
    throw std::system_error(errno, std::generic_category(), "getsockname");
  return l;
}

struct tcp_pair {
  unique_fd client;
  unique_fd server;
};

// One established loopback connection. nodelay: message scenarios must not
// wait for Nagle + delayed ACK (40 ms per round trip).
inline tcp_pair connect_loopback(const tcp_listener& l, bool nodelay) {
  tcp_pair p;
  const int c = sys::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c < 0) throw std::system_error(-c, std::generic_category(), "socket");
  p.client.reset(c);
  if (int r = sys::connect(c, reinterpret_cast<const sockaddr*>(&l.addr), sizeof l.addr); r < 0)
    throw std::system_error(-r, std::generic_category(), "connect 127.0.0.1");
  const int s = sys::accept(l.fd.get(), SOCK_CLOEXEC);
  if (s < 0) throw std::system_error(-s, std::generic_category(), "accept");
  p.server.reset(s);
  if (nodelay) {
    set_int_opt(c, IPPROTO_TCP, TCP_NODELAY, 1, "setsockopt TCP_NODELAY");
    set_int_opt(s, IPPROTO_TCP, TCP_NODELAY, 1, "setsockopt TCP_NODELAY");
  }
  return p;
}

// Sockets open in this process (/proc/self/fd), for leak accounting around a
// run. Backends hold epoll / io_uring / eventfd descriptors, never sockets, so
// only sockets are counted. -1 when /proc is unavailable. Untimed (verify).
inline int count_open_sockets() { return count_open_fds("socket:"); }

}  // namespace ringside::scen
