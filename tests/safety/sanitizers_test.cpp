// Checks: in the asan build ASan, and in the tsan build TSan, report a buffer
// the kernel still holds being touched — uring-raw (the negative control)
// handing a lent buffer back on drop, cancel or a zero-copy send's first CQE —
// and stay silent on uring-owned, which gives buffers back only with the op's
// final CQE (harness/sanitize.hpp: lent ranges poisoned, the kernel as a TSan
// fiber).
//
// A sanitizer report ends (ASan) or taints (TSan: exit code 66) the process,
// so every case runs in a CHILD process: fork() for the cases driven here,
// posix_spawn of the ringside binary for a whole scenario. The parent reads
// the child's stderr and exit status. In a build without the sanitizer the
// tests skip, saying why.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "harness/backend.hpp"
#include "harness/buffer.hpp"
#include "harness/io.hpp"
#include "harness/ring.hpp"
#include "harness/unique_fd.hpp"

extern char** environ;

namespace ringside {
namespace {

using namespace std::chrono_literals;

// What the sanitizer of this build prints at the head of a report.
#if RINGSIDE_ASAN
constexpr std::string_view report_marker = "ERROR: AddressSanitizer";
constexpr bool asan_build = true, tsan_build = false;
#elif RINGSIDE_TSAN
constexpr std::string_view report_marker = "WARNING: ThreadSanitizer";
constexpr bool asan_build = false, tsan_build = true;
#else
constexpr std::string_view report_marker = {};
constexpr bool asan_build = false, tsan_build = false;
#endif

#define REQUIRE_SANITIZER_BUILD()                                                                           \
  do {                                                                                                      \
    if (report_marker.empty())                                                                              \
      GTEST_SKIP() << "built without ASan/TSan (configure with -DRINGSIDE_SANITIZER=asan or tsan): the "    \
                      "hooks of harness/sanitize.hpp compile to nothing here";                              \
    if (auto why_ = uring_unavailable_reason(); !why_.empty()) GTEST_SKIP() << why_;                        \
  } while (0)

struct child_result {
  int status = 0;  // waitpid's
  bool timed_out = false;
  std::string err;  // the child's stderr

  [[nodiscard]] bool reported() const { return err.find(report_marker) != std::string::npos; }
  [[nodiscard]] bool exited_0() const { return !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0; }
  [[nodiscard]] int exit_code() const { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }
};

// Reads the child's stderr until EOF, then reaps it; a child still running
// after `limit` is killed (SIGKILL, this pid only).
child_result collect(pid_t pid, int err_fd, std::chrono::milliseconds limit) {
  child_result r;
  const auto until = std::chrono::steady_clock::now() + limit;
  char chunk[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      r.timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    pollfd p{.fd = err_fd, .events = POLLIN, .revents = 0};
    const int n = ::poll(&p, 1, int(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    const ssize_t got = ::read(err_fd, chunk, sizeof chunk);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    r.err.append(chunk, size_t(got));
  }
  ::close(err_fd);
  while (::waitpid(pid, &r.status, 0) < 0 && errno == EINTR) {
  }
  return r;
}

// Runs body(arg) in a forked child whose stderr the parent collects. The
// child ends with _exit(body's result): no atexit handlers, no leak check of
// the state it inherited.
child_result run_in_child(int (*body)(const char*), const char* arg, std::chrono::milliseconds limit = 30s) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return {.status = -1, .err = "pipe2 failed"};
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(p[0]);
    ::close(p[1]);
    return {.status = -1, .err = "fork failed"};
  }
  if (pid == 0) {
    ::dup2(p[1], STDERR_FILENO);
    ::_exit(body(arg));
  }
  ::close(p[1]);
  return collect(pid, p[0], limit);
}

std::string describe(const child_result& r) {
  std::string s;
  if (r.timed_out) s = "timed out";
  else if (WIFEXITED(r.status)) s = "exit " + std::to_string(WEXITSTATUS(r.status));
  else if (WIFSIGNALED(r.status)) s = "signal " + std::to_string(WTERMSIG(r.status));
  else s = "status " + std::to_string(r.status);
  // 6000: the report's head and stacks; the rest is noise here.
  return s + "; stderr:\n" + r.err.substr(0, 6000);
}

// ---------------------------------------------------------- the cases ----
// Each runs one task on a fresh backend, as a scenario would, and returns
// the child's exit code: 0 ran clean; 2 setup failed; 3 the run failed;
// 4 ringside's own detectors reported something (printed).

unique_fd tcp_listener(sockaddr_in& addr) {
  unique_fd l(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (!l || ::bind(l.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(l.get(), 1) != 0 ||
      ::getsockname(l.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    return {};
  return l;
}

// A connected pair: AF_UNIX, or loopback TCP (zero-copy send needs a real
// network socket: AF_UNIX refuses it).
bool make_pair(bool tcp, unique_fd& a, unique_fd& b) {
  if (!tcp) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return false;
    a = unique_fd(sv[0]);
    b = unique_fd(sv[1]);
    return true;
  }
  sockaddr_in addr;
  unique_fd l = tcp_listener(addr);
  if (!l) return false;
  b = unique_fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!b || ::connect(b.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return false;
  a = unique_fd(::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC));
  return bool(a);
}

void fill(const buffer& b, size_t n, char c) {
  for (size_t i = 0; i < n; ++i) b.span()[i] = std::byte(c);
}

// 20 ms: ample for the kernel to finish an orphaned recv or send on loopback.
constexpr uint64_t settle_ns = 20'000'000;
// 4096: one buffer, one recv; the data a case sends always fits.
constexpr uint32_t bs = 4096;

// rfd receives, wfd is its peer.
using case_task = task<> (*)(backend& be, buffer_pool& pool, int rfd, int wfd);

struct case_setup {
  size_t quarantine = 0;  // canary quarantine depth; 0: released buffers are reused at once (LIFO)
  bool tcp = false;
};

int run_case(const char* backend_name, case_task body, case_setup cs) {
  register_builtin_backends();
  const backend_info* info = find_backend(backend_name);
  if (info == nullptr) {
    std::fprintf(stderr, "child: no backend %s\n", backend_name);
    return 2;
  }
  unique_fd a, b;
  if (!make_pair(cs.tcp, a, b)) {
    std::fprintf(stderr, "child: socket pair: %s\n", std::strerror(errno));
    return 2;
  }
  std::vector<violation> v;
  int rc = 0;
  buffer_pool pool(8, bs);
  if (cs.quarantine != 0) pool.enable_quarantine(cs.quarantine);
  {
    auto be = info->make({});
    be->attach_pool(pool);
    be->adopt(a.get());
    be->adopt(b.get());
    be->spawn(body(*be, pool, a.get(), b.get()));
    // 5 s: each case takes milliseconds; this only bounds a broken one.
    rc = be->run(clock_type::now() + 5s);
    be->shutdown();
    be->collect_violations(v);
  }
  pool.check_quarantine();
  pool.collect_violations(v);
  for (const auto& x : v) std::fprintf(stderr, "child: violation %s: %s\n", x.kind.c_str(), x.detail.c_str());
  if (rc != 0) {
    std::fprintf(stderr, "child: run returned %d\n", rc);
    return 3;
  }
  return v.empty() ? 0 : 4;
}

// A recv waits in the kernel (no data yet) and is dropped; then the peer
// sends. uring-raw releases the buffer at the drop: the pool's canary fill
// (or, without a quarantine, the next owner, who gets the same buffer back
// at once) writes into it, and the kernel writes the data into it later.
task<> drop_recv_then_data(backend& be, buffer_pool& pool, int rfd, int wfd) {
  io x(be);
  {
    op_handle h = start(be, op{.kind = op_kind::recv, .fd = rfd, .len = bs, .buf = pool.acquire()});
    (void)co_await x.nop();  // one loop pass: the recv is in the kernel
  }                          // dropped here
  buffer w = pool.acquire();
  fill(w, 64, 'D');
  (void)co_await x.send(wfd, std::move(w), 64);
  (void)co_await x.sleep_ns(settle_ns);
}

// A recv waits in the kernel and is cancelled; the caller writes into the
// buffer its completion handed back (its own again, by the backend's word),
// then the peer sends. uring-raw hands the buffer back before the kernel has
// even seen the cancel.
task<> cancel_recv_then_touch(backend& be, buffer_pool& pool, int rfd, int wfd) {
  io x(be);
  op_handle h = start(be, op{.kind = op_kind::recv, .fd = rfd, .len = bs, .buf = pool.acquire()});
  (void)co_await x.nop();
  (void)h.cancel();
  completion c = co_await h;
  if (c.buf) fill(c.buf, 64, 'U');
  buffer w = pool.acquire();
  fill(w, 64, 'D');
  (void)co_await x.send(wfd, std::move(w), 64);
  (void)co_await x.sleep_ns(settle_ns);
}

// A zero-copy send; the caller refills the buffer the moment its completion
// hands it back. uring-raw does so at the send's first CQE, while the kernel
// may read the buffer until the notification; the peer then receives it all.
task<> send_zc_then_reuse(backend& be, buffer_pool& pool, int rfd, int wfd) {
  io x(be);
  buffer s = pool.acquire();
  fill(s, bs, 'Z');
  // A named op: g++ 12 copies an op{...} prvalue written inside a co_await
  // operand bitwise into the frame and destroys that copy, buffer and all,
  // at the resume (a second owner of the buffer). A function's return value
  // or a named local is safe.
  op o{.kind = op_kind::send_zc, .fd = wfd, .len = bs, .buf = std::move(s)};
  completion c = co_await x.submit(std::move(o));
  if (c.buf) fill(c.buf, bs, 'R');
  const uint64_t sent = c.res > 0 ? uint64_t(c.res) : 0;
  c.buf.reset();
  buffer r = pool.acquire();
  // 16: the bytes arrive in a few segments at most on loopback.
  for (uint64_t got = 0, i = 0; got < sent && i < 16 && r; ++i) {
    completion rc = co_await x.recv(rfd, std::move(r), bs);
    r = std::move(rc.buf);
    if (rc.res <= 0) break;
    got += uint64_t(rc.res);
  }
  (void)co_await x.sleep_ns(settle_ns);
}

int drop_quarantined(const char* b) { return run_case(b, drop_recv_then_data, {.quarantine = 4}); }
int drop_reused(const char* b) { return run_case(b, drop_recv_then_data, {.quarantine = 0}); }
int cancel_touch(const char* b) { return run_case(b, cancel_recv_then_touch, {.quarantine = 4}); }
int zc_reuse(const char* b) { return run_case(b, send_zc_then_reuse, {.quarantine = 4, .tcp = true}); }

// The negative control is caught, the correct backend is clean.
void expect_caught(int (*body)(const char*)) {
  const child_result r = run_in_child(body, "uring-raw");
  EXPECT_FALSE(r.timed_out) << describe(r);
  EXPECT_TRUE(r.reported()) << "uring-raw not caught: " << describe(r);
  if constexpr (asan_build) {
    EXPECT_FALSE(r.exited_0()) << "an ASan report must end the process: " << describe(r);
  }
}
void expect_clean(int (*body)(const char*)) {
  const child_result r = run_in_child(body, "uring-owned");
  EXPECT_FALSE(r.reported()) << "uring-owned flagged: " << describe(r);
  EXPECT_TRUE(r.exited_0()) << describe(r);
}

TEST(sanitizer_lends, uring_raw_drop_then_canary_fill_is_caught) {
  REQUIRE_SANITIZER_BUILD();
  expect_caught(drop_quarantined);
}

TEST(sanitizer_lends, uring_raw_drop_then_reuse_is_caught) {
  REQUIRE_SANITIZER_BUILD();
  expect_caught(drop_reused);
}

TEST(sanitizer_lends, uring_owned_drop_is_clean) {
  REQUIRE_SANITIZER_BUILD();
  expect_clean(drop_quarantined);
  expect_clean(drop_reused);
}

TEST(sanitizer_lends, uring_raw_cancel_then_touch_is_caught_by_asan) {
  REQUIRE_SANITIZER_BUILD();
  // TSan reports only what the kernel really did: its cancel wins (the
  // recv ends -ECANCELED having written nothing), so there is no race for
  // TSan to see; ASan sees the touch of a buffer still lent.
  if (!asan_build) GTEST_SKIP() << "TSan: the kernel's cancel wins, nothing is written, there is no race";
  expect_caught(cancel_touch);
}

TEST(sanitizer_lends, uring_owned_cancel_then_touch_is_clean) {
  REQUIRE_SANITIZER_BUILD();
  expect_clean(cancel_touch);
}

TEST(sanitizer_lends, uring_raw_send_zc_reuse_is_caught) {
  REQUIRE_SANITIZER_BUILD();
  expect_caught(zc_reuse);
}

TEST(sanitizer_lends, uring_owned_send_zc_reuse_is_clean) {
  REQUIRE_SANITIZER_BUILD();
  expect_clean(zc_reuse);
}

// ------------------------------------------- the ringside binary, end to end ----

// `ringside run` of one scenario in a child: what `ringside check` does.
child_result run_ringside(const std::vector<std::string>& args, std::chrono::milliseconds limit = 120s) {
  std::vector<char*> argv;
  std::string bin = RINGSIDE_BIN;
  argv.push_back(bin.data());
  std::vector<std::string> a = args;
  for (auto& s : a) argv.push_back(s.data());
  argv.push_back(nullptr);
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return {.status = -1, .err = "pipe2 failed"};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, p[1], STDERR_FILENO);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, bin.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(p[1]);
  if (rc != 0) {
    ::close(p[0]);
    return {.status = -1, .err = std::string("posix_spawn: ") + std::strerror(rc)};
  }
  return collect(pid, p[0], limit);
}

// What `ringside check` does: one scenario in a child, canary quarantine on.
// uring-owned keeps every buffer until the op's final CQE; uring-raw hands
// it back early and both sanitizers see it (ASan: the touch or release of a
// lent range; TSan: the kernel's access racing the canary fill or reuse):
// - cancel.frame_drop (#14): recvs waiting in the kernel are dropped, then
//   the peer sends;
// - cancel.free_after_cancel (#3): the buffer of a cancelled recv is freed
//   at once, while (data-first rounds) the kernel still fills it;
// - cancel.send_zc (#8): a zero-copy send's buffer is reused after its first
//   CQE, while the kernel may read it until the notification.
class sanitizer_scenario : public ::testing::TestWithParam<const char*> {};

TEST_P(sanitizer_scenario, catches_uring_raw_and_passes_uring_owned) {
  REQUIRE_SANITIZER_BUILD();
  // The results file goes to a temp dir, removed after (ringside writes it
  // even when a sanitizer ends the run early).
  char dir[] = "/tmp/ringside-sanitizers-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string out = std::string(dir) + "/results.json";
  auto args = [&](const char* b) {
    return std::vector<std::string>{"run", "--backend", b, "--scenario", GetParam(), "--ops", "32", "--seed", "1",
                                    "--detectors", "canary", "--out", out, "--isolate", "none"};
  };
  const child_result raw = run_ringside(args("uring-raw"));
  EXPECT_TRUE(raw.reported()) << describe(raw);
  // What `ringside check` reads: the report's head on stderr, and the exit
  // code (ASan: 1, the same as ringside's own "violations"; TSan: 66).
  if constexpr (asan_build) {
    EXPECT_EQ(raw.exit_code(), 1) << describe(raw);
  }
  if constexpr (tsan_build) {
    EXPECT_EQ(raw.exit_code(), 66) << describe(raw);
  }
  const child_result owned = run_ringside(args("uring-owned"));
  EXPECT_FALSE(owned.reported()) << describe(owned);
  EXPECT_TRUE(owned.exited_0()) << describe(owned);
  ::unlink(out.c_str());
  ::rmdir(dir);
}

INSTANTIATE_TEST_SUITE_P(cancel, sanitizer_scenario, ::testing::Values("cancel.frame_drop", "cancel.free_after_cancel", "cancel.send_zc"),
                         [](const auto& i) {
                           std::string s = i.param;
                           for (char& c : s)
                             if (c == '.') c = '_';
                           return s;
                         });

}  // namespace
}  // namespace ringside
