// The conformance suite's driver: one backend by name, one buffer pool, tasks
// spawned on it and run under a watchdog deadline; plus the probes the clauses
// need (a waiter that counts its completions and publishes its id, a latch,
// seeded byte patterns, loopback sockets).
//
// Every clause is a TEST_P of the fixture `backend` below, instantiated once
// (backends_test.cpp) over every registered backend, so a new backend is
// picked up by registering it. Test names read like results:
// conformance/backend.recv_peer_close/epoll.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "harness/backend.hpp"
#include "harness/buffer.hpp"
#include "harness/io.hpp"
#include "harness/op.hpp"
#include "harness/sanitize.hpp"
#include "harness/task.hpp"
#include "harness/unique_fd.hpp"
#include "harness/violation.hpp"

namespace ringside::conformance {

using namespace std::chrono_literals;

// Inside a coroutine (where ASSERT_* cannot `return`): record the failure and
// end the task.
#define CO_ASSERT_TRUE(cond)                              \
  do {                                                    \
    if (!(cond)) {                                        \
      ADD_FAILURE() << "CO_ASSERT_TRUE(" #cond ") failed"; \
      co_return;                                          \
    }                                                     \
  } while (0)
// Evaluates each side once (they may be syscalls or co_awaits).
#define CO_ASSERT_EQ(a, b)                                                                      \
  do {                                                                                          \
    const auto co_assert_a_ = (a);                                                              \
    const auto co_assert_b_ = (b);                                                              \
    if (!(co_assert_a_ == co_assert_b_)) {                                                      \
      ADD_FAILURE() << "CO_ASSERT_EQ(" #a ", " #b "): " << co_assert_a_ << " != " << co_assert_b_; \
      co_return;                                                                                \
    }                                                                                           \
  } while (0)

// A few seconds: every clause is tiny, so a run that needs more is a hang.
constexpr auto run_budget = 5s;

// Every registered backend, built-ins registered first.
inline std::vector<std::string> backend_names() {
  register_builtin_backends();
  std::vector<std::string> names;
  for (const auto& b : registered_backends()) names.push_back(b.name);
  return names;
}

// gtest parameter names allow only [A-Za-z0-9_]: "uring-raw" -> "uring_raw".
inline std::string param_name(const testing::TestParamInfo<std::string>& info) {
  std::string s = info.param;
  std::replace_if(s.begin(), s.end(), [](char c) { return !std::isalnum(static_cast<unsigned char>(c)); }, '_');
  return s;
}

// The fixture: skips (with the backend's reason) where the backend is unusable.
class backend : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const backend_info* info = find_backend(GetParam());
    ASSERT_NE(info, nullptr) << GetParam();
    if (info->unavailable_reason) {
      const std::string why = info->unavailable_reason();
      if (!why.empty()) GTEST_SKIP() << GetParam() << " unavailable here: " << why;
    }
    if (sanitize::lends_checked && info->make({})->caps().contract == buffer_contract::borrowed_unsound)
      GTEST_SKIP() << sanitize::lends_checked_skip;
  }
};

// One backend and its pool. The pool is declared first so it outlives the
// backend, whose destructor may destroy task frames that hold buffers.
class driver {
 public:
  // 64 buffers of 16 KiB: enough for every clause but the bulk ones, which ask.
  explicit driver(const std::string& backend_name, size_t buffers = 64, size_t buffer_size = 16384)
      : pool_(buffers, buffer_size), be_(find_backend(backend_name)->make(backend_options{})), io_(*be_) {
    be_->attach_pool(pool_);
  }

  [[nodiscard]] ringside::backend& be() noexcept { return *be_; }
  [[nodiscard]] ringside::io& io() noexcept { return io_; }
  [[nodiscard]] buffer_pool& pool() noexcept { return pool_; }
  [[nodiscard]] const backend_caps& caps() const noexcept { return be_->caps(); }

  void spawn(task<> t) { be_->spawn(std::move(t)); }
  // 0, or -ETIME when the watchdog fired (the test should fail on it).
  int run(std::chrono::milliseconds budget = run_budget) { return be_->run(clock_type::now() + budget); }

  // Destroys the backend now (the pool stays), so a test can time the
  // teardown and then count the buffers that came back.
  void destroy_backend() noexcept { be_.reset(); }

  // What the backend's detectors found (and its task errors), as the runner
  // collects them: after shutdown().
  std::vector<violation> violations() {
    std::vector<violation> v;
    be_->collect_violations(v);
    return v;
  }

  // Sets the mode the backend needs on fd; returns fd for chaining.
  int adopt(const unique_fd& fd) {
    be_->adopt(fd.get());
    return fd.get();
  }

 private:
  buffer_pool pool_;
  std::unique_ptr<ringside::backend> be_;
  ringside::io io_;
};

// Fully initialised ops (designated initialisers that skip members trip
// -Wmissing-field-initializers).
inline op nop_op() { return op{.kind = op_kind::nop, .buf = {}}; }
inline op recv_op(int fd, buffer b, uint32_t len) {
  return op{.kind = op_kind::recv, .fd = fd, .offset = 0, .len = len, .timeout_ns = 0, .addr = nullptr, .addrlen = 0,
            .buf = std::move(b)};
}
inline op send_op(int fd, buffer b, uint32_t len) {
  op o = recv_op(fd, std::move(b), len);
  o.kind = op_kind::send;
  return o;
}
inline op accept_op(int fd) {
  op o = recv_op(fd, buffer{}, 0);
  o.kind = op_kind::accept;
  return o;
}
// An op moving `len` bytes at b.data() + buf_offset; `offset` is the file
// offset (~0 for sockets).
inline op payload_op(op_kind kind, int fd, buffer b, uint32_t buf_offset, uint32_t len,
                     uint64_t offset = ~uint64_t{0}) {
  return op{.kind = kind, .fd = fd, .offset = offset, .len = len, .buf_offset = buf_offset, .timeout_ns = 0,
            .addr = nullptr, .addrlen = 0, .buf = std::move(b)};
}

inline bool has_kind(const std::vector<violation>& v, std::string_view kind) {
  return std::any_of(v.begin(), v.end(), [&](const violation& x) { return x.kind == kind; });
}
inline std::string describe(const std::vector<violation>& v) {
  std::string s;
  for (const auto& x : v) s += x.kind + ": " + x.detail + "\n";
  return s.empty() ? "(none)" : s;
}

// ---- "never from inside cancel()" ----
// Set around backend::cancel() by the tests; a completion that arrives on the
// same thread while it is set was delivered from inside cancel().
inline thread_local bool tl_in_cancel = false;

inline int cancel_checked(ringside::backend& be, op_id id) {
  tl_in_cancel = true;
  const int r = be.cancel(id);
  tl_in_cancel = false;
  return r;
}

// An op awaited like op_awaiter that also counts its completions (a second
// one is a failure), publishes its id as soon as the backend names it
// (on_started: before a blocking submit() blocks), and checks that its
// completion does not come from inside cancel() and comes after on_started.
// Immovable: the backend holds its address.
class probe final : public op_waiter {
 public:
  probe(ringside::backend& be, op&& o, std::atomic<uint64_t>* publish_id = nullptr) noexcept
      : be_(be), op_(std::move(o)), publish_(publish_id) {}
  probe(const probe&) = delete;
  probe& operator=(const probe&) = delete;
  ~probe() {
    // Destroyed while pending: its frame is being dropped.
    if (phase_.load(std::memory_order_acquire) == phase_suspended) be_.drop(id_);
  }

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) noexcept {
    h_ = h;
    id_ = be_.submit(std::move(op_), this);
    int expected = phase_submitting;
    // Fails only if the completion came first (inline, or from another thread).
    return phase_.compare_exchange_strong(expected, phase_suspended, std::memory_order_acq_rel);
  }
  completion await_resume() noexcept { return std::move(result_); }

  [[nodiscard]] op_id id() const noexcept { return id_; }
  [[nodiscard]] int completions() const noexcept { return completions_.load(std::memory_order_acquire); }

 private:
  static constexpr int phase_submitting = 0, phase_suspended = 1, phase_done = 2;

  void on_started(op_id id) noexcept override {
    started_.store(true, std::memory_order_release);
    if (publish_ != nullptr) publish_->store(id.value, std::memory_order_release);
  }
  void on_complete(completion&& c) noexcept override {
    if (tl_in_cancel) ADD_FAILURE() << "completion delivered from inside cancel()";
    if (!started_.load(std::memory_order_acquire))
      ADD_FAILURE() << "completion before on_started (res " << c.res << ")";
    if (completions_.fetch_add(1, std::memory_order_acq_rel) > 0) {
      ADD_FAILURE() << "second completion for one op (res " << c.res << ")";
      return;
    }
    result_ = std::move(c);
    if (phase_.exchange(phase_done, std::memory_order_acq_rel) == phase_suspended) h_.resume();
  }

  ringside::backend& be_;
  op op_;
  std::atomic<uint64_t>* publish_;
  completion result_;
  op_id id_;
  std::coroutine_handle<> h_;
  std::atomic<int> phase_{phase_submitting};
  std::atomic<int> completions_{0};
  std::atomic<bool> started_{false};
};

// Awaitable that resumes its waiter once `count` arrivals happened.
class latch {
 public:
  explicit latch(size_t count) noexcept : remaining_(count) {}
  latch(const latch&) = delete;
  latch& operator=(const latch&) = delete;

  void arrive() noexcept {
    if (remaining_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    if (state_.exchange(state_released, std::memory_order_acq_rel) == state_waiting) h_.resume();
  }

  // `co_await l.wait();` (a small awaiter by pointer: g++ 12 copies an
  // awaitable named through a reference).
  struct awaiter {
    latch* l;
    bool await_ready() const noexcept { return l->remaining_.load(std::memory_order_acquire) == 0; }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      l->h_ = h;
      int expected = state_idle;
      return l->state_.compare_exchange_strong(expected, state_waiting, std::memory_order_acq_rel);
    }
    void await_resume() const noexcept {}
  };
  awaiter wait() noexcept { return {this}; }

 private:
  static constexpr int state_idle = 0, state_waiting = 1, state_released = 2;
  std::atomic<size_t> remaining_;
  std::atomic<int> state_{state_idle};
  std::coroutine_handle<> h_;
};

// A waiter that lives outside any coroutine frame (so a late second
// completion lands in live memory and is counted, not a use-after-free).
// Checks, as probe does, that on_started comes first.
class counting_waiter final : public op_waiter {
 public:
  counting_waiter() noexcept = default;
  counting_waiter(const counting_waiter&) = delete;
  counting_waiter& operator=(const counting_waiter&) = delete;

  void arm(latch* l) noexcept { latch_ = l; }
  [[nodiscard]] int completions() const noexcept { return completions_.load(std::memory_order_acquire); }
  [[nodiscard]] int32_t res() const noexcept { return res_.load(std::memory_order_acquire); }
  [[nodiscard]] bool started() const noexcept { return started_.load(std::memory_order_acquire); }

 private:
  void on_started(op_id) noexcept override { started_.store(true, std::memory_order_release); }
  void on_complete(completion&& c) noexcept override {
    if (tl_in_cancel) ADD_FAILURE() << "completion delivered from inside cancel()";
    if (!started_.load(std::memory_order_acquire))
      ADD_FAILURE() << "completion before on_started (res " << c.res << ")";
    if (completions_.fetch_add(1, std::memory_order_acq_rel) > 0) {
      ADD_FAILURE() << "second completion for one op (res " << c.res << ")";
      return;
    }
    res_.store(c.res, std::memory_order_release);  // c.buf goes back to its pool here
    if (latch_ != nullptr) latch_->arrive();
  }

  latch* latch_ = nullptr;
  std::atomic<int> completions_{0};
  std::atomic<int32_t> res_{0};
  std::atomic<bool> started_{false};
};

// `co_await await_handle(*h)`: awaits an op_handle reached through a pointer
// or reference (g++ 12 copies an awaitable named through a reference, and
// op_handle is immovable).
struct handle_awaiter {
  op_handle* h;
  bool await_ready() const noexcept { return h->await_ready(); }
  void await_suspend(std::coroutine_handle<> c) noexcept { h->await_suspend(c); }
  completion await_resume() noexcept { return h->await_resume(); }
};
inline handle_awaiter await_handle(op_handle& h) noexcept { return {&h}; }

// Polls until an op's id is published, yielding to the backend with short
// sleeps. 4000 x 500 us bounds it at 2 s plus timer slack. op_id{} if never.
inline task<op_id> wait_for_id(ringside::io& io, const std::atomic<uint64_t>& published) {
  for (int i = 0; i < 4000; ++i) {
    if (const uint64_t v = published.load(std::memory_order_acquire)) co_return op_id{v};
    co_await io.sleep_ns(500'000);
  }
  co_return op_id{};
}

// Polls until flag reaches at least `value`; false after about 2 s.
inline task<bool> wait_until_at_least(ringside::io& io, const std::atomic<int>& flag, int value) {
  for (int i = 0; i < 4000; ++i) {
    if (flag.load(std::memory_order_acquire) >= value) co_return true;
    co_await io.sleep_ns(500'000);
  }
  co_return false;
}

// ---- seeded byte patterns (offset-addressed, so pieces verify on their own) ----
// Borrowed (every span below): only for the duration of the call.
inline std::byte pattern_byte(uint32_t seed, uint64_t off) noexcept {
  return std::byte(uint8_t(seed + off * 7 + (off >> 8) * 13 + (off >> 16)));
}
inline void fill_pattern(std::span<std::byte> s, uint32_t seed, uint64_t off) noexcept {
  for (size_t i = 0; i < s.size(); ++i) s[i] = pattern_byte(seed, off + i);
}
inline bool matches_pattern(std::span<const std::byte> s, uint32_t seed, uint64_t off) noexcept {
  for (size_t i = 0; i < s.size(); ++i)
    if (s[i] != pattern_byte(seed, off + i)) return false;
  return true;
}

// -EBADMSG: the bytes arrived but are not the ones sent.
constexpr int32_t bad_bytes = -EBADMSG;

// Sends bytes [from, to) of pattern `seed` through the backend, whatever the
// short sends. Returns 0 or the failing op's -errno.
inline task<int32_t> send_pattern(ringside::io& io, int fd, buffer& b, uint32_t seed, uint64_t from, uint64_t to) {
  for (uint64_t off = from; off < to;) {
    const auto n = static_cast<uint32_t>(std::min<uint64_t>(b.capacity(), to - off));
    fill_pattern(b.first(n), seed, off);
    completion c = co_await io.send(fd, std::move(b), n);
    b = std::move(c.buf);
    if (c.res <= 0) co_return c.res < 0 ? c.res : -EIO;
    off += uint64_t(c.res);
  }
  co_return 0;
}

// Receives bytes [from, to) and checks each piece against pattern `seed`.
// Returns 0, the failing op's -errno, -ENODATA on early EOF, or bad_bytes.
inline task<int32_t> recv_pattern(ringside::io& io, int fd, buffer& b, uint32_t seed, uint64_t from, uint64_t to) {
  for (uint64_t off = from; off < to;) {
    const auto n = static_cast<uint32_t>(std::min<uint64_t>(b.capacity(), to - off));
    completion c = co_await io.recv(fd, std::move(b), n);
    b = std::move(c.buf);
    if (c.res < 0) co_return c.res;
    if (c.res == 0) co_return -ENODATA;
    if (!b.valid() || !matches_pattern(b.first(size_t(c.res)), seed, off)) co_return bad_bytes;
    off += uint64_t(c.res);
  }
  co_return 0;
}

// ---- loopback sockets (setup: throws) ----
inline unique_fd check_fd(int fd, const char* what) {
  if (fd < 0) throw std::system_error(errno, std::generic_category(), what);
  return unique_fd(fd);
}
inline void check(int r, const char* what) {
  if (r < 0) throw std::system_error(errno, std::generic_category(), what);
}

struct socket_pair {
  unique_fd a, b;
};
// AF_UNIX stream pair: `a` for the backend, `b` for the test's own raw I/O.
inline socket_pair make_socketpair() {
  int sv[2];
  check(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), "socketpair");
  return {unique_fd(sv[0]), unique_fd(sv[1])};
}

inline unique_fd tcp_socket() { return check_fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket"); }

inline sockaddr_in bound_address(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  check(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), "getsockname");
  return a;
}

// A socket bound to 127.0.0.1 on a kernel-chosen port; listening if asked
// (128: more than any clause's concurrent connects).
inline unique_fd bind_loopback(bool listening) {
  unique_fd s = tcp_socket();
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  check(::bind(s.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a), "bind");
  if (listening) check(::listen(s.get(), 128), "listen");
  return s;
}

struct tcp_pair {
  unique_fd client, server;
};
// An established loopback TCP connection, made with plain blocking calls.
inline tcp_pair make_tcp_pair() {
  unique_fd l = bind_loopback(true);
  const sockaddr_in addr = bound_address(l.get());
  tcp_pair p{tcp_socket(), {}};
  check(::connect(p.client.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr), "connect");
  p.server = check_fd(::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC), "accept4");
  return p;
}

// An unlinked temporary file of `size` bytes of pattern `seed`, in $TMPDIR
// (or /tmp): a real file, so reads past EOF come back short.
inline unique_fd temp_file(uint64_t size, uint32_t seed) {
  const char* dir = ::getenv("TMPDIR");
  std::string path = std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/ringside-conformance-XXXXXX";
  unique_fd f = check_fd(::mkostemp(path.data(), O_CLOEXEC), "mkostemp");
  ::unlink(path.c_str());
  std::vector<std::byte> chunk(65536);
  for (uint64_t off = 0; off < size;) {
    const size_t n = size_t(std::min<uint64_t>(chunk.size(), size - off));
    fill_pattern(std::span(chunk).first(n), seed, off);
    const ssize_t w = ::pwrite(f.get(), chunk.data(), n, off_t(off));
    check(int(w), "pwrite");
    off += uint64_t(w);
  }
  return f;
}

// Raw, non-blocking read on the test's side (never through the backend).
// Borrowed: s only for the duration of the call.
inline ssize_t raw_recv_now(int fd, std::span<std::byte> s) { return ::recv(fd, s.data(), s.size(), MSG_DONTWAIT); }

}  // namespace ringside::conformance
