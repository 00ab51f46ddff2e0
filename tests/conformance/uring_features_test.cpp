// Checks: every io_uring feature `--backend-opt` can turn on (harness/
// backend_opts.hpp) is really in effect on the io_uring backends (ring flags,
// the loop's feature counters, io_uring_enter counts) and the data still
// arrives right (a tmpfs file written and read back, a loopback TCP stream,
// whole scenarios with their own pattern checks); plus the CLI: a bad option
// is one line on stderr and exit 2, and a good one is recorded in the results
// context, on each row, and in repro specs.
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "harness/backend_opts.hpp"
#include "harness/runner.hpp"
#include "harness/scenario.hpp"
#include "harness/uring_loop.hpp"
#include "tests/conformance/driver.hpp"

namespace ringside::conformance {
namespace {

// The backends that honour uring_features.
std::vector<std::string> uring_backends() {
  register_builtin_backends();
  std::vector<std::string> names;
  for (const auto& b : registered_backends())
    if (honours_backend_opts(b.name)) names.push_back(b.name);
  return names;
}

// The conformance fixture (skips where the backend is unusable here), under
// this suite's own name.
class features : public conformance::backend {
 protected:
  [[nodiscard]] bool unsound() const {
    return find_backend(GetParam())->make({})->caps().contract == buffer_contract::borrowed_unsound;
  }
};

// One io_uring backend built with `f`, its pool, and the loop underneath.
struct fdriver {
  fdriver(const std::string& name, const uring_features& f, size_t buffers = 64, size_t buffer_size = 16384)
      : pool(buffers, buffer_size), be(make(name, f)), x(*be) {
    be->attach_pool(pool);
  }
  static std::unique_ptr<ringside::backend> make(const std::string& name, const uring_features& f) {
    backend_options o;
    o.uring = f;
    return find_backend(name)->make(o);
  }
  uring_loop& loop() { return dynamic_cast<uring_loop&>(*be); }
  int run() { return be->run(clock_type::now() + run_budget); }
  std::vector<violation> violations() {
    be->shutdown();
    std::vector<violation> v;
    be->collect_violations(v);
    return v;
  }

  buffer_pool pool;
  std::unique_ptr<ringside::backend> be;
  ringside::io x;
};

// A file on tmpfs (/dev/shm; /tmp where there is none), removed at the end.
struct tmp_file {
  tmp_file() {
    struct stat st{};
    path = ::stat("/dev/shm", &st) == 0 ? "/dev/shm/ringside-feat-XXXXXX" : "/tmp/ringside-feat-XXXXXX";
    fd = check_fd(::mkstemp(path.data()), "mkstemp");
  }
  ~tmp_file() { ::unlink(path.c_str()); }
  std::string path;
  unique_fd fd;
};

constexpr uint32_t k_chunk = 16384;
constexpr uint64_t k_file = 512 * 1024;

// Writes k_file bytes of pattern `seed` with `qd` streams, then reads them
// back with `qd` streams and checks every chunk. Returns the ops issued
// (ADD_FAILURE on any error or mismatch).
uint64_t file_roundtrip(fdriver& d, int fd, uint32_t seed, uint32_t qd = 4) {
  d.be->adopt(fd);
  uint64_t ops = 0, bad = 0;
  auto writer = [&](uint32_t k) -> task<> {
    for (uint64_t off = uint64_t(k) * k_chunk; off < k_file; off += uint64_t(qd) * k_chunk) {
      buffer b = d.pool.acquire();
      CO_ASSERT_TRUE(b.valid());
      fill_pattern(b.first(k_chunk), seed, off);
      completion c = co_await d.x.write(fd, std::move(b), k_chunk, off);
      ++ops;
      if (c.res != int32_t(k_chunk)) ++bad;
    }
  };
  auto reader = [&](uint32_t k) -> task<> {
    for (uint64_t off = uint64_t(k) * k_chunk; off < k_file; off += uint64_t(qd) * k_chunk) {
      buffer b = d.pool.acquire();
      CO_ASSERT_TRUE(b.valid());
      completion c = co_await d.x.read(fd, std::move(b), k_chunk, off);
      ++ops;
      if (c.res != int32_t(k_chunk) || !c.buf.valid() || !matches_pattern(c.buf.first(k_chunk), seed, off)) ++bad;
    }
  };
  for (uint32_t k = 0; k < qd; ++k) d.be->spawn(writer(k));
  EXPECT_EQ(d.run(), 0) << "watchdog: file writes never finished";
  for (uint32_t k = 0; k < qd; ++k) d.be->spawn(reader(k));
  EXPECT_EQ(d.run(), 0) << "watchdog: file reads never finished";
  EXPECT_EQ(bad, 0u) << "file ops failed or read back wrong bytes";
  EXPECT_EQ(ops, 2 * k_file / k_chunk);
  return ops;
}

// Sends `total` bytes of pattern `seed` client -> server over loopback TCP
// through the backend and checks them on arrival; then closes the client end
// with a close op and expects EOF on the server end (a registered file table
// must not keep the socket open).
void tcp_roundtrip(fdriver& d, uint32_t seed, uint64_t total = 256 * 1024) {
  tcp_pair tp = make_tcp_pair();
  d.be->adopt(tp.client.get());
  d.be->adopt(tp.server.get());
  buffer tb = d.pool.acquire(), rb = d.pool.acquire();
  ASSERT_TRUE(tb.valid() && rb.valid());
  int32_t sent = 1, got = 1, closed = 1, eof = 1;
  const int cfd = tp.client.get(), sfd = tp.server.get();
  auto sender = [&]() -> task<> { sent = co_await send_pattern(d.x, cfd, tb, seed, 0, total); };
  auto receiver = [&]() -> task<> { got = co_await recv_pattern(d.x, sfd, rb, seed, 0, total); };
  d.be->spawn(sender());
  d.be->spawn(receiver());
  ASSERT_EQ(d.run(), 0) << "watchdog: the TCP transfer never finished";
  EXPECT_EQ(sent, 0);
  EXPECT_EQ(got, 0) << "the stream arrived wrong (" << got << ")";
  auto closer = [&]() -> task<> {
    completion c = co_await d.x.close(tp.client.release());
    closed = c.res;
  };
  auto eof_reader = [&]() -> task<> {
    completion c = co_await d.x.recv(sfd, std::move(rb), 16);
    rb = std::move(c.buf);
    eof = c.res;
  };
  d.be->spawn(closer());
  d.be->spawn(eof_reader());
  ASSERT_EQ(d.run(), 0) << "watchdog: no EOF after the close op (is the file table keeping the socket open?)";
  EXPECT_EQ(closed, 0);
  EXPECT_EQ(eof, 0);
}

// ------------------------------------------------------------ fixed-files ----

// Description: with fixed-files the loop registers a sparse file table and
// every fd-carrying SQE goes in as IOSQE_FIXED_FILE (counted), a tmpfs file
// and a TCP stream still move the right bytes, and a close op really closes
// (the peer sees EOF).
TEST_P(features, fixed_files_in_effect_and_data_right) {
  uring_features f;
  f.fixed_files = true;
  fdriver d(GetParam(), f);
  ASSERT_TRUE(d.loop().fixed_files_active());
  tmp_file file;
  const uint64_t ops = file_roundtrip(d, file.fd.get(), 11);
  EXPECT_GE(d.loop().counters().fixed_file_ops, ops) << "file ops did not use the fixed file table";
  const uint64_t before = d.loop().counters().fixed_file_ops;
  tcp_roundtrip(d, 12);
  EXPECT_GT(d.loop().counters().fixed_file_ops, before) << "socket ops did not use the fixed file table";
  const auto v = d.violations();
  EXPECT_TRUE(v.empty()) << describe(v);
}

// Description: without the option no op is a fixed-file op.
TEST_P(features, no_fixed_files_by_default) {
  fdriver d(GetParam(), {});
  EXPECT_FALSE(d.loop().fixed_files_active());
  tmp_file file;
  file_roundtrip(d, file.fd.get(), 13);
  EXPECT_EQ(d.loop().counters().fixed_file_ops, 0u);
}

// ---------------------------------------------------------- fixed-buffers ----

// Description: with fixed-buffers the pool is registered and reads/writes
// of its buffers are READ_FIXED/WRITE_FIXED (counted); the bytes are right.
TEST_P(features, fixed_buffers_in_effect_and_data_right) {
  uring_features f;
  f.fixed_buffers = true;
  fdriver d(GetParam(), f);
  ASSERT_TRUE(d.loop().fixed_buffers_active());
  tmp_file file;
  const uint64_t ops = file_roundtrip(d, file.fd.get(), 21);
  // uring-bounce moves the payload through its own buffers, not the pool's.
  if (GetParam() != "uring-bounce") {
    EXPECT_GE(d.loop().counters().fixed_buffer_ops, ops) << "file ops did not use registered buffers";
  }
  const auto v = d.violations();
  EXPECT_TRUE(v.empty()) << describe(v);
}

// ------------------------------------------------------------------ batch ----

// Description: with batch=4 and 16 streams in flight the loop submits as
// soon as 4 SQEs are queued (counted), and the bytes are right.
TEST_P(features, batch_in_effect_and_data_right) {
  uring_features f;
  f.batch = 4;
  fdriver d(GetParam(), f);
  tmp_file file;
  file_roundtrip(d, file.fd.get(), 31, 16);
  EXPECT_GT(d.loop().counters().batch_submits, 0u) << "no submit was triggered by a full batch";
  tcp_roundtrip(d, 32);
  const auto v = d.violations();
  EXPECT_TRUE(v.empty()) << describe(v);
}

// ---------------------------------------------------------- single-issuer ----

// Description: SINGLE_ISSUER + DEFER_TASKRUN are on by default (where the
// kernel has them) and off with single-issuer=0; the bytes are right either way.
TEST_P(features, single_issuer_switch) {
  constexpr unsigned si = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  {
    fdriver d(GetParam(), {});
    if ((d.loop().uring().setup_flags() & si) != si) GTEST_SKIP() << "this kernel refused SINGLE_ISSUER/DEFER_TASKRUN";
  }
  uring_features on;
  on.single_issuer = 1;
  EXPECT_EQ(fdriver(GetParam(), on).loop().uring().setup_flags() & si, si);
  uring_features off;
  off.single_issuer = 0;
  fdriver d(GetParam(), off);
  EXPECT_EQ(d.loop().uring().setup_flags() & si, 0u);
  tmp_file file;
  file_roundtrip(d, file.fd.get(), 41);
  tcp_roundtrip(d, 42);
  const auto v = d.violations();
  EXPECT_TRUE(v.empty()) << describe(v);
}

// ----------------------------------------------------------------- sqpoll ----

// Description: with sqpoll the ring has IORING_SETUP_SQPOLL (and not
// DEFER_TASKRUN: sqpoll wins) and the bytes are right. Where the kernel
// refuses SQPOLL the test says why and skips.
TEST_P(features, sqpoll_in_effect_and_data_right) {
  uring_features f;
  f.sqpoll = true;
  f.sqpoll_idle_ms = 1000;
  std::optional<fdriver> d;
  try {
    d.emplace(GetParam(), f);
  } catch (const std::system_error& e) {
    GTEST_SKIP() << "SQPOLL refused here: " << e.what();
  }
  const unsigned flags = d->loop().uring().setup_flags();
  EXPECT_NE(flags & IORING_SETUP_SQPOLL, 0u);
  EXPECT_EQ(flags & IORING_SETUP_DEFER_TASKRUN, 0u);
  tmp_file file;
  file_roundtrip(*d, file.fd.get(), 51, 8);
  tcp_roundtrip(*d, 52);
  const auto v = d->violations();
  EXPECT_TRUE(v.empty()) << describe(v);
}

// Description: the point of SQPOLL: queued SQEs reach the kernel and complete
// with no io_uring_enter at all (the kernel thread picks them up), where a
// plain ring needs one; the ring's enter count says so.
TEST(uring_features_ring, sqpoll_submits_without_entering) {
  if (const std::string why = uring_unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
  auto nops_enters = [](ring& r, uint64_t& reaped) {
    for (uint64_t i = 0; i < 8; ++i)
      EXPECT_TRUE(r.prepare(i + 1, op_kind::nop, {}, [](io_uring_sqe* sqe) { io_uring_prep_nop(sqe); }));
    EXPECT_GE(r.submit(), 0);
    // Bounded: 2 s of 1 ms polls of the CQ (plain memory reads).
    for (int i = 0; i < 2000 && r.cq_ready() < 8; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    reaped = r.reap([](const io_uring_cqe&) {});
    return r.enters();
  };
  ring_options po;
  po.entries = 16;
  ring plain(po);
  uint64_t reaped = 0;
  EXPECT_EQ(nops_enters(plain, reaped), 1u);
  EXPECT_EQ(reaped, 8u);
  ring_options so = po;
  so.sqpoll = true;
  so.sqpoll_idle_ms = 2000;
  std::unique_ptr<ring> sq;
  try {
    sq = std::make_unique<ring>(so);
  } catch (const std::system_error& e) {
    GTEST_SKIP() << "SQPOLL refused here: " << e.what();
  }
  // The first batch may have to wake the SQ thread (one enter, seen under
  // load in CI); the second, while it polls (idle 2 s), needs none.
  const uint64_t warm = nops_enters(*sq, reaped);
  ASSERT_EQ(reaped, 8u) << "the SQ thread did not complete the nops";
  EXPECT_EQ(nops_enters(*sq, reaped) - warm, 0u) << "SQPOLL should need no io_uring_enter for a submit";
  EXPECT_EQ(reaped, 8u) << "the SQ thread did not complete the nops";
}

// -------------------------------------------------------------- multishot ----

run_options quick() {
  run_options o;
  o.timeout_s = 20;
  return o;
}

run_result run_with(const std::string& backend, const std::string& scenario, const uring_features& f,
                    uint64_t ops) {
  register_builtin_scenarios();
  const scenario_info* s = find_scenario(scenario);
  EXPECT_NE(s, nullptr) << scenario;
  param_overrides o;
  o.ops = ops;
  params p = resolve_params(*s, o);
  p.uring = f;
  return run_scenario(*find_backend(backend), *s, p, quick());
}

// Description: with multishot, tcp.stream's receiver and tcp.echo's server
// read through recv_multishot + a provided buffer ring (CQEs with F_MORE
// seen) and every byte still passes the scenarios' pattern checks; the row
// records the option.
TEST_P(features, multishot_in_effect_and_data_right) {
  uring_features f;
  f.multishot = true;
  for (const char* scenario : {"tcp.stream", "tcp.echo"}) {
    const uint64_t before = uring_loop::lifetime_totals().multishot_more;
    const run_result r = run_with(GetParam(), scenario, f, 256);
    EXPECT_EQ(r.verdict, "clean") << scenario << ": " << describe(r.violations);
    EXPECT_GT(r.ops, 0u) << scenario;
    EXPECT_GT(uring_loop::lifetime_totals().multishot_more, before) << scenario << ": no multishot CQE with F_MORE";
    EXPECT_EQ(to_string(r.prm.uring), "multishot");
  }
}

// ---------------------------------------------------------------- send-zc ----

// Description: with send-zc every send goes out as SEND_ZC (notifications
// seen) and the stream arrives right; tcp.stream stays clean. (uring-raw
// hands the buffer back at the first CQE, before the notification: its
// misuse is the safety suite's business, so only the notifications are
// checked there.)
TEST_P(features, send_zc_in_effect_and_data_right) {
  uring_features f;
  f.send_zc = true;
  fdriver d(GetParam(), f);
  if (unsound()) {
    tcp_pair tp = make_tcp_pair();
    d.be->adopt(tp.client.get());
    buffer b = d.pool.acquire();
    int32_t res = 0;
    auto one = [&]() -> task<> {
      completion c = co_await d.x.send(tp.client.get(), std::move(b), 4096);
      res = c.res;
    };
    d.be->spawn(one());
    ASSERT_EQ(d.run(), 0);
    EXPECT_EQ(res, 4096);
    d.be->shutdown();
    EXPECT_GT(d.loop().counters().zc_notifications, 0u);
    return;
  }
  tcp_roundtrip(d, 61);
  EXPECT_GT(d.loop().counters().zc_notifications, 0u) << "no SEND_ZC notification: sends were not zero-copy ops";
  const auto v = d.violations();
  EXPECT_TRUE(v.empty()) << describe(v);
  const uint64_t before = uring_loop::lifetime_totals().zc_notifications;
  const run_result r = run_with(GetParam(), "tcp.stream", f, 64);
  EXPECT_EQ(r.verdict, "clean") << describe(r.violations);
  EXPECT_GT(uring_loop::lifetime_totals().zc_notifications, before);
}

// ----------------------------------------------------------- link-timeout ----

// Description: with link-timeout=MS every op carries a linked timeout
// (counted): a recv with no data ends -ECANCELED after it, while file and
// socket transfers well inside it move the right bytes.
TEST_P(features, link_timeout_in_effect_and_data_right) {
  uring_features f;
  f.link_timeout_ms = 50;
  fdriver d(GetParam(), f);
  tmp_file file;
  const uint64_t ops = file_roundtrip(d, file.fd.get(), 71);
  EXPECT_GE(d.loop().counters().linked_timeouts, ops);
  socket_pair sp = make_socketpair();
  d.be->adopt(sp.a.get());
  int32_t res = 0;
  auto idle = [&]() -> task<> {
    buffer b = d.pool.acquire();
    completion c = co_await d.x.recv(sp.a.get(), std::move(b), 64);
    res = c.res;
  };
  const auto t0 = clock_type::now();
  d.be->spawn(idle());
  ASSERT_EQ(d.run(), 0) << "watchdog: the linked timeout never ended the idle recv";
  EXPECT_EQ(res, -ECANCELED);
  EXPECT_GE(clock_type::now() - t0, std::chrono::milliseconds(40)) << "ended before its timeout";
  if (!unsound()) {
    const auto v = d.violations();
    EXPECT_TRUE(v.empty()) << describe(v);
  }
}

INSTANTIATE_TEST_SUITE_P(conformance, features, testing::ValuesIn(uring_backends()), param_name);

// -------------------------------------------------------------- parsing ----

TEST(backend_opts, parse_and_print_round_trip) {
  const uring_features f =
      parse_backend_opts("--backend-opt", "fixed-files,fixed-buffers,batch=32,single-issuer=0,sqpoll=500,multishot,"
                                          "send-zc,link-timeout=250");
  EXPECT_TRUE(f.fixed_files && f.fixed_buffers && f.multishot && f.send_zc && f.sqpoll);
  EXPECT_EQ(f.batch, 32u);
  EXPECT_EQ(f.single_issuer, 0);
  EXPECT_EQ(f.sqpoll_idle_ms, 500u);
  EXPECT_EQ(f.link_timeout_ms, 250u);
  EXPECT_EQ(parse_backend_opts("x", to_string(f)), f);
  EXPECT_EQ(to_string(parse_backend_opts("x", "")), "");
  EXPECT_EQ(to_string(parse_backend_opts("x", "sqpoll\nbatch=2")), "batch=2,sqpoll");  // repeats joined
  for (const char* bad : {"nope", "batch", "batch=0", "batch=x", "single-issuer=2", "fixed-files=yes",
                          "link-timeout", "sqpoll=0", "multishot,multishot"})
    EXPECT_THROW(parse_backend_opts("--backend-opt", bad), usage_error) << bad;
}

TEST(backend_opts, only_io_uring_backends_honour_them) {
  register_builtin_backends();
  const uring_features f = parse_backend_opts("x", "fixed-files");
  EXPECT_THROW(select_backend_opts("--backend-opt", "fixed-files", {find_backend("epoll")}), usage_error);
  EXPECT_EQ(select_backend_opts("--backend-opt", "fixed-files", {find_backend("epoll"), find_backend("uring-owned")}),
            f);
  EXPECT_EQ(backend_opts_for("epoll", f), uring_features{});
  EXPECT_EQ(backend_opts_for("uring-raw", f), f);
}

// ------------------------------------------------------------------- CLI ----

#ifdef RINGSIDE_BIN
struct cli_result {
  int exit_code = -1;
  std::string err;
};

// Runs the real binary (shell words as given), stdout discarded.
cli_result ringside_cli(const std::string& args, const std::string& dir) {
  const std::string err_path = dir + "/stderr.txt";
  const std::string cmd = std::string(RINGSIDE_BIN) + " " + args + " >/dev/null 2>" + err_path;
  const int st = std::system(cmd.c_str());
  cli_result r;
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::ifstream in(err_path);
  std::stringstream ss;
  ss << in.rdbuf();
  r.err = ss.str();
  return r;
}

struct tmp_dir {
  tmp_dir() {
    char t[] = "/tmp/ringside-feat-cli-XXXXXX";
    path = ::mkdtemp(t) != nullptr ? t : "/tmp";
  }
  ~tmp_dir() { std::system(("rm -rf '" + path + "'").c_str()); }
  std::string path;
};

// Description: an unknown key, a bad value, or an option no selected backend
// honours is one line on stderr and exit 2, on run, check and repro.
TEST(backend_opts_cli, bad_options_exit_2) {
  tmp_dir t;
  const std::string out = " -o " + t.path + "/r.json --duration 0.1";
  const std::pair<const char*, const char*> cases[] = {
      {"run --backend uring-owned --scenario file.rand_read --backend-opt nope", "unknown backend option"},
      {"run --backend uring-owned --scenario file.rand_read --backend-opt batch=x", "batch"},
      {"run --backend epoll --scenario file.rand_read --backend-opt fixed-files", "only the io_uring backends"},
      {"run --backend uring-owned --scenario file.rand_read --backend-opt sqpoll --backend-opt sqpoll", "twice"},
      {"repro --backend uring-owned --scenario tcp.stream --backend-opt send-zc=2", "send-zc"},
      {"repro --backend epoll --scenario tcp.stream --backend-opt multishot", "only the io_uring backends"},
      {"check --backend uring-owned --backend-opt wat", "unknown backend option"},
  };
  for (const auto& [args, says] : cases) {
    const std::string full = std::string(args) + (std::string(args).rfind("run", 0) == 0 ? out : "");
    const cli_result r = ringside_cli(full, t.path);
    EXPECT_EQ(r.exit_code, 2) << full << "\n" << r.err;
    EXPECT_NE(r.err.find(says), std::string::npos) << full << "\n" << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
  }
}

// Description: the parsed set goes into context.backend_options; each row
// says which options were in effect (none on epoll) without changing its
// name; a repro spec carries the option and re-runs with it.
TEST(backend_opts_cli, recorded_in_context_rows_and_repro) {
  tmp_dir t;
  const std::string json = t.path + "/r.json";
  const cli_result r = ringside_cli("run --backend uring-owned,epoll --scenario tcp.stream --ops 32 "
                                    "--backend-opt multishot --backend-opt batch=8 -o " + json,
                                    t.path);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream in(json);
  const auto doc = nlohmann::json::parse(in);
  EXPECT_EQ(doc["context"]["backend_options"], (nlohmann::json{{"multishot", true}, {"batch", 8}}));
  int rows = 0;
  for (const auto& row : doc["benchmarks"]) {
    if (row.value("run_type", "") != "iteration") continue;
    ++rows;
    const std::string be = row["backend"];
    EXPECT_EQ(row["name"], "tcp.stream/backend:" + be + "/bs:131072/conns:1");
    EXPECT_EQ(row["backend_options"], be == "uring-owned" ? "batch=8,multishot" : "");
  }
  EXPECT_EQ(rows, 2);

  const std::string out = t.path + "/repro.json";
  const cli_result rp = ringside_cli("repro --backend uring-owned --scenario tcp.stream --ops 16 --backend-opt send-zc "
                                     "--json-out " + out,
                                     t.path);
  ASSERT_EQ(rp.exit_code, 0) << rp.err;
  std::ifstream rin(out);
  const auto rdoc = nlohmann::json::parse(rin);
  EXPECT_EQ(rdoc["args"]["backend-opt"], "send-zc") << rdoc.dump();
  EXPECT_EQ(rdoc["result"]["backend_options"], "send-zc");
}
#endif

}  // namespace
}  // namespace ringside::conformance
