// Helpers shared by the ring, ledger and uring-loop unit tests: real files,
// real socket pairs, real backends from the registry. No mocks.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "harness/backend.hpp"
#include "harness/ring.hpp"
#include "harness/uring_loop.hpp"
#include "harness/unique_fd.hpp"

// Skips the test (with the reason) where io_uring cannot be used.
#define RINGSIDE_REQUIRE_URING()                                                  \
  do {                                                                            \
    if (auto why_ = ::ringside::uring_unavailable_reason(); !why_.empty())        \
      GTEST_SKIP() << why_;                                                       \
  } while (0)

namespace ringside::test {

using namespace std::chrono_literals;

inline std::unique_ptr<backend> make_backend(std::string_view name, const backend_options& o = {}) {
  register_builtin_backends();
  const backend_info* b = find_backend(name);
  if (b == nullptr) return nullptr;
  return b->make(o);
}

struct socket_pair {
  unique_fd a, b;
};

inline socket_pair make_socketpair() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    throw std::system_error(errno, std::generic_category(), "socketpair");
  return {unique_fd(sv[0]), unique_fd(sv[1])};
}

// A regular file under /tmp, removed at the end of the test.
struct temp_file {
  std::string path;
  unique_fd fd;
  temp_file() {
    char tmpl[] = "/tmp/ringside-uring-test-XXXXXX";
    fd = unique_fd(::mkstemp(tmpl));
    if (!fd) throw std::system_error(errno, std::generic_category(), "mkstemp");
    path = tmpl;
  }
  ~temp_file() { ::unlink(path.c_str()); }
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;
};

// Test data: byte i of a block with this seed. Written in place, never copied.
inline std::byte pattern_byte(uint8_t seed, size_t i) { return std::byte(uint8_t(seed + i * 7 + (i >> 8))); }
inline void fill_pattern(std::span<std::byte> s, uint8_t seed) {
  for (size_t i = 0; i < s.size(); ++i) s[i] = pattern_byte(seed, i);
}
inline bool has_pattern(std::span<const std::byte> s, uint8_t seed) {
  for (size_t i = 0; i < s.size(); ++i)
    if (s[i] != pattern_byte(seed, i)) return false;
  return true;
}

// Runs be until its tasks end; a few seconds at most.
inline int run_briefly(backend& be, std::chrono::milliseconds budget = 5000ms) {
  return be.run(clock_type::now() + budget);
}

// A loop with the owned contract and fixed buffers on, to test the base
// (registration and its fallback) without going through the registry: no
// registered backend asks for fixed buffers yet.
class fixed_loop final : public uring_loop {
 public:
  explicit fixed_loop(const uring_loop_options& o) : uring_loop(o) {}
  ~fixed_loop() override { teardown(); }
  [[nodiscard]] std::string_view name() const noexcept override { return "test-fixed"; }
  [[nodiscard]] const backend_caps& caps() const noexcept override {
    static const backend_caps c{.contract = buffer_contract::owned, .fixed_buffers = true};
    return c;
  }
  int cancel(op_id id) noexcept override {
    op_slot* s = pending(id);
    if (s == nullptr) return -ENOENT;
    request_cancel(*s);
    return 0;
  }
  void drop(op_id id) noexcept override {
    if (op_slot* s = attached(id)) {
      detach(*s);
      request_cancel(*s);
    }
  }
};

}  // namespace ringside::test
