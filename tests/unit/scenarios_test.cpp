// Description: every throughput scenario runs clean on every registered
// backend, spends exactly its op budget, moves the bytes it claims and copies
// no payload in user space (short transfers continue in place); and its data
// check can fail — a corrupted file, a corrupted read-back, a backend that
// flips one byte of one transfer, or one that leaves a stale page in a reused
// buffer is reported as data_mismatch.
//
// Real files in a temp dir, real loopback sockets, real backends (whatever is
// registered; unavailable ones are skipped with their reason).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "harness/backend.hpp"
#include "harness/buffer.hpp"
#include "harness/runner.hpp"
#include "harness/scenario.hpp"
#include "harness/tempdir.hpp"
#include "harness/unique_fd.hpp"

namespace ringside {
namespace {

// ---- what to run ----

struct matrix_case {
  std::string scenario;
  std::string backend;
  std::string label;  // parameter set
  params prm;
};

// gtest prints a failing case's parameter with this instead of a byte dump.
void PrintTo(const matrix_case& c, std::ostream* os) {
  *os << c.scenario << " on " << c.backend << " (" << c.label << ": bs " << c.prm.bs << ", qd " << c.prm.qd
      << ", conns " << c.prm.conns << ", size " << c.prm.size << ", ops " << c.prm.ops << ", "
      << to_string(c.prm.verify) << " verify)";
}

void register_all() {
  register_builtin_backends();
  register_builtin_scenarios();
}

// Small, fast parameter sets: every one ends in well under a second.
std::vector<std::pair<std::string, params>> param_sets(const scenario_info& s) {
  std::vector<std::pair<std::string, params>> out;
  for (auto mode : {verify_mode::sample, verify_mode::full}) {
    params p = s.defaults;
    p.verify = mode;
    p.ops = 200;
    p.seed = 1234;
    std::string label(to_string(mode));
    if (s.name.starts_with("file.")) {
      p.size = 256 << 10;
      p.bs = s.name == "file.rand_read" || s.name == "file.seq_read" ? 4096 : 16384;
      p.qd = 4;
    } else if (s.name == "tcp.stream") {
      p.bs = 16384;
      p.conns = 2;
    } else if (s.name == "tcp.echo") {
      p.conns = 4;
    } else if (s.name == "tcp.accept_storm") {
      p.conns = 4;
      p.ops = 100;
    }
    out.emplace_back(label, p);
  }
  if (s.name == "file.seq_read" || s.name == "file.seq_write" || s.name == "file.copy") {
    // A size bs does not divide: the last chunk is short, offsets wrap.
    params p = s.defaults;
    p.ops = 100;
    p.size = 100003;
    p.bs = 4096;
    p.qd = 3;
    p.verify = verify_mode::full;
    out.emplace_back("odd_size", p);
  }
  if (s.name == "tcp.echo") {
    // Messages larger than a socket buffer: partial sends and split replies.
    params p = s.defaults;
    p.ops = 20;
    p.bs = 4 << 20;
    p.conns = 2;
    out.emplace_back("big_msg", p);
  }
  return out;
}

std::vector<matrix_case> matrix() {
  register_all();
  std::vector<matrix_case> out;
  for (const auto& s : registered_scenarios()) {
    // cancel.* are the safety suite's (tests/safety, ringside check): their
    // budgets are rounds, not bs-sized ops, and uring-raw must fail them.
    if (s.name.rfind("cancel.", 0) == 0) continue;
    for (const auto& b : registered_backends())
      for (auto& [label, p] : param_sets(s)) out.push_back({s.name, b.name, label, p});
  }
  return out;
}

std::string test_name(const std::string& s) {
  std::string n;
  for (char c : s) n += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return n;
}

// A hang must fail the test well inside ctest's 60 s, not at the runner's
// default watchdog.
run_options quick_watchdog() {
  run_options o;
  o.watchdog_factor = 1;
  o.watchdog_slack_s = 5;
  o.ops_budget_s = 20;
  return o;
}

const backend_info& backend_or_skip(const std::string& name, std::string& why) {
  const auto* b = find_backend(name);
  why = b == nullptr ? "not registered" : b->unavailable_reason ? b->unavailable_reason() : "";
  return *b;
}

std::string describe(const run_result& r) {
  std::string s = r.name + " -> " + r.verdict;
  for (const auto& v : r.violations) s += "\n  " + v.kind + ": " + v.detail;
  return s;
}

// ---- the matrix: every scenario x every backend, clean and exact ----

class scenario_matrix : public testing::TestWithParam<matrix_case> {};

TEST_P(scenario_matrix, runs_clean_with_exact_budget) {
  const auto& c = GetParam();
  std::string why;
  const auto& b = backend_or_skip(c.backend, why);
  if (!why.empty()) GTEST_SKIP() << c.backend << ": " << why;
  const auto* s = find_scenario(c.scenario);
  ASSERT_NE(s, nullptr);

  const auto r = run_scenario(b, *s, c.prm, quick_watchdog());
  if (r.verdict.starts_with("unsupported")) GTEST_SKIP() << r.verdict;
  ASSERT_EQ(r.verdict, "clean") << describe(r);
  EXPECT_EQ(r.ops, c.prm.ops);
  EXPECT_EQ(r.latency.count(), r.ops);

  if (c.scenario == "tcp.accept_storm") {
    EXPECT_EQ(r.bytes, 0u);
  } else if (c.scenario.starts_with("file.") && c.prm.size % c.prm.bs != 0) {
    // Whole chunks, except the short tail chunk each time the offsets wrap.
    EXPECT_LE(r.bytes, r.ops * c.prm.bs);
    EXPECT_GT(r.bytes, r.ops * c.prm.bs - r.ops * c.prm.bs / 10);
  } else {
    EXPECT_EQ(r.bytes, r.ops * c.prm.bs);
  }
  if (c.scenario != "tcp.accept_storm") {
    // The payload crossed the user/kernel boundary: once per byte for
    // reads, writes and streams, twice for copy (read + write) and echo.
    const uint64_t times = c.scenario == "file.copy" || c.scenario == "tcp.echo" || c.scenario == "tcp.rr" ? 2 : 1;
    EXPECT_GE(r.meter.kernel_copy_bytes, r.bytes * times) << describe(r);
  }
  // Partial sends, short writes and split replies continue in place
  // (op::buf_offset): no scenario copies payload, on any backend — except
  // the copy a bounce backend (uring-bounce) makes by contract: one per byte
  // a read or recv received (sends and writes lend the caller's buffer), so
  // at most the kernel's count, and some whenever the scenario reads.
  if (b.make({})->caps().contract == buffer_contract::bounce) {
    EXPECT_LE(r.meter.user_copy_bytes, r.meter.kernel_copy_bytes) << describe(r);
    if (c.scenario != "file.seq_write" && c.scenario != "tcp.accept_storm")
      EXPECT_GT(r.meter.user_copy_bytes, 0u) << describe(r);
  } else {
    EXPECT_EQ(r.meter.user_copy_bytes, 0u) << describe(r);
  }
}

INSTANTIATE_TEST_SUITE_P(all, scenario_matrix, testing::ValuesIn(matrix()),
                         [](const testing::TestParamInfo<matrix_case>& i) {
                           return test_name(i.param.scenario + "__" + i.param.label + "__" + i.param.backend);
                         });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(scenario_matrix);

// ---- per backend: open loop, duration budget, and the checks failing ----

std::vector<std::string> backend_names() {
  register_all();
  std::vector<std::string> out;
  for (const auto& b : registered_backends()) out.push_back(b.name);
  return out;
}

class scenario_checks : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string why;
    be_ = &backend_or_skip(GetParam(), why);
    if (!why.empty()) GTEST_SKIP() << GetParam() << ": " << why;
  }
  static const scenario_info& scen(std::string_view name) {
    const auto* s = find_scenario(name);
    if (s == nullptr) throw std::runtime_error("scenario not registered: " + std::string(name));
    return *s;
  }
  const backend_info* be_ = nullptr;
};

TEST_P(scenario_checks, open_loop_paces_at_the_rate) {
  // 100 ops at 2000 ops/s: the run cannot end before the 100th intended
  // start, 49.5 ms after t0.
  for (const char* name : {"tcp.rr", "file.rand_read"}) {
    params p = scen(name).defaults;
    p.ops = 100;
    p.rate = 2000;
    p.size = 1 << 20;
    p.bs = 4096;
    const auto r = run_scenario(*be_, scen(name), p, quick_watchdog());
    if (r.verdict.starts_with("unsupported")) continue;
    ASSERT_EQ(r.verdict, "clean") << describe(r);
    EXPECT_EQ(r.ops, 100u);
    EXPECT_GE(r.wall_s, 0.045) << name;
    EXPECT_LT(r.wall_s, 5.0) << name;
    EXPECT_NE(r.name.find("/rate:2000"), std::string::npos) << r.name;
  }
}

TEST_P(scenario_checks, duration_budget_ends_the_run) {
  for (const char* name : {"tcp.echo", "tcp.stream", "tcp.accept_storm", "file.seq_write"}) {
    params p = scen(name).defaults;
    p.ops = 0;
    p.duration_s = 0.2;
    p.size = 1 << 20;
    p.bs = std::min<uint64_t>(p.bs, 16384);
    p.conns = std::min<uint32_t>(p.conns, 4);
    const auto r = run_scenario(*be_, scen(name), p, quick_watchdog());
    if (r.verdict.starts_with("unsupported")) continue;
    ASSERT_EQ(r.verdict, "clean") << describe(r);
    EXPECT_GT(r.ops, 0u) << name;
    EXPECT_GE(r.wall_s, 0.19) << name;
    EXPECT_LT(r.wall_s, 5.0) << name;
  }
}

// The runner's phases by hand, so a test can reach in between them.
class manual_run {
 public:
  manual_run(const backend_info& b, const scenario_info& s, const params& p) : p_(p) {
    be_ = b.make({});
    sc_ = s.make(p);
    pool_.emplace(std::max<size_t>(sc_->buffers_needed(), 1), p.bs);
    be_->attach_pool(*pool_);
    sc_->prepare(*be_);
  }
  ~manual_run() {
    be_.reset();  // the backend first: it may still hold buffers and fds
    sc_.reset();
  }
  bool supported() const { return sc_->unsupported_reason(be_->caps()).empty(); }
  int run() {
    const auto t0 = clock_type::now();
    ctx_.emplace(p_, t0, t0 + std::chrono::seconds(10));
    sc_->start(*be_, *pool_, *ctx_);
    return be_->run(t0 + std::chrono::seconds(20));
  }
  std::vector<violation> verify() {
    sc_->verify(*ctx_);
    return ctx_->violations();
  }
  run_ctx& ctx() { return *ctx_; }

 private:
  params p_;
  std::optional<buffer_pool> pool_;
  std::unique_ptr<scenario> sc_;
  std::unique_ptr<backend> be_;
  std::optional<run_ctx> ctx_;
};

bool has_kind(const std::vector<violation>& v, std::string_view kind) {
  for (const auto& x : v)
    if (x.kind == kind) return true;
  return false;
}
std::string kinds(const std::vector<violation>& v) {
  std::string s;
  for (const auto& x : v) s += x.kind + ": " + x.detail + "\n";
  return s.empty() ? "(none)" : s;
}

void flip_byte(const std::string& path, uint64_t off) {
  unique_fd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  ASSERT_TRUE(fd.valid()) << path;
  std::byte b{};
  ASSERT_EQ(::pread(fd.get(), &b, 1, off_t(off)), 1);
  b ^= std::byte{0x5a};
  ASSERT_EQ(::pwrite(fd.get(), &b, 1, off_t(off)), 1);
}

TEST_P(scenario_checks, corrupted_file_is_a_data_mismatch) {
  // 16 chunks, 200 reads: every chunk is read (the chance one is missed is
  // 16 * (15/16)^200, about 4e-5, and the seed is fixed).
  for (auto mode : {verify_mode::sample, verify_mode::full}) {
    temp_dir dir;
    params p = scen("file.rand_read").defaults;
    p.bs = 4096;
    p.size = 16 * 4096;
    p.ops = 200;
    p.qd = 2;
    p.verify = mode;
    p.file = dir.file("victim");
    manual_run m(*be_, scen("file.rand_read"), p);
    if (!m.supported()) GTEST_SKIP() << "no file I/O";
    // Sample mode checks chunk boundaries: flip the first byte of chunk 5;
    // full mode checks every byte: flip one mid-body.
    const uint64_t off = mode == verify_mode::sample ? 5 * 4096 : 9 * 4096 + 1234;
    flip_byte(p.file, off);
    ASSERT_EQ(m.run(), 0);
    const auto v = m.verify();
    ASSERT_TRUE(has_kind(v, "data_mismatch")) << kinds(v);
    EXPECT_NE(v.front().detail.find(std::to_string(off)), std::string::npos) << v.front().detail;
  }
}

TEST_P(scenario_checks, written_file_is_read_back) {
  for (const char* name : {"file.seq_write", "file.copy"}) {
    temp_dir dir;
    params p = scen(name).defaults;
    p.bs = 8192;
    p.size = 64 * 8192;
    p.ops = 40;  // the first 40 chunks
    p.file = dir.file("out");
    const std::string written = std::string(name) == "file.copy" ? p.file + ".copy" : p.file;
    {
      manual_run m(*be_, scen(name), p);
      if (!m.supported()) GTEST_SKIP() << "no file I/O";
      ASSERT_EQ(m.run(), 0);
      // Clean first; then the same file with one flipped byte; then cut short.
      ASSERT_TRUE(m.verify().empty()) << name;
      flip_byte(written, 17 * 8192);
      auto v = m.verify();
      ASSERT_TRUE(has_kind(v, "data_mismatch")) << name << "\n" << kinds(v);
      flip_byte(written, 17 * 8192);  // (flip_byte xors: this restores it)
      ASSERT_EQ(::truncate(written.c_str(), 30 * 8192), 0);
      v = m.verify();
      EXPECT_TRUE(has_kind(v, "short_transfer")) << name << "\n" << kinds(v);
    }
    // --file is the user's: kept after the run, with the data in it.
    struct stat st {};
    ASSERT_EQ(::stat(written.c_str(), &st), 0) << written;
    EXPECT_EQ(st.st_size, 30 * 8192);
  }
}

// A real backend behind a fault injector. flip_byte: the Nth payload transfer
// gets one byte flipped — on the way in for reads/recvs (after the
// completion), on the way out for writes/sends (before the submit). The first
// byte of every transferred range (at the op's buf_offset) is a checked byte
// in both verify modes, so every scenario must notice. overreport: the Nth
// read/recv completes claiming one byte more than it was asked for.
// stale_page: from the Nth read/recv on, the first one that moves at least
// two pages, and whose second page then differs from what the buffer held
// before, gets that page's old bytes back — a page the "kernel" never wrote,
// which a reused buffer still holds from an earlier chunk.
enum class fault { flip_byte, overreport, stale_page };

class corrupting_backend final : public backend {
 public:
  corrupting_backend(std::unique_ptr<backend> inner, fault f, uint64_t nth)
      : inner_(std::move(inner)), fault_(f), nth_(nth) {}
  ~corrupting_backend() override {
    inner_.reset();
    for (auto* r : relays_) delete r;
  }

  std::string_view name() const noexcept override { return inner_->name(); }
  const backend_caps& caps() const noexcept override { return inner_->caps(); }
  void attach_pool(buffer_pool& pool) override { inner_->attach_pool(pool); }
  void adopt(int fd) override { inner_->adopt(fd); }
  void spawn(task<> t) override { inner_->spawn(std::move(t)); }
  int run(clock_type::time_point deadline) override { return inner_->run(deadline); }
  int cancel(op_id id) noexcept override { return inner_->cancel(id); }
  void drop(op_id id) noexcept override { inner_->drop(id); }
  void shutdown() noexcept override { inner_->shutdown(); }
  void collect_violations(std::vector<violation>& out) override { inner_->collect_violations(out); }

  op_id submit(op&& o, op_waiter* w) noexcept override {
    const bool eligible = fault_ == fault::flip_byte ? moves_payload(o.kind) : kernel_writes_buffer(o.kind);
    if (!eligible || o.len == 0) return inner_->submit(std::move(o), w);
    const uint64_t n = ++count_;
    const bool hit = fault_ == fault::stale_page ? n >= nth_ && !applied_.load() : n == nth_;
    if (hit && !kernel_writes_buffer(o.kind)) o.buf.data()[o.buf_offset] ^= std::byte{0x01};
    if (!(hit && kernel_writes_buffer(o.kind))) return inner_->submit(std::move(o), w);
    // Test code: one relay per faulted op, freed with the backend.
    auto* r = new relay(w, *this, o.len, o.buf_offset);
    if (fault_ == fault::stale_page && o.buf_offset + 2 * k_page <= o.buf.capacity()) {
      const std::byte* page = o.buf.data() + o.buf_offset + k_page;
      r->before.assign(page, page + k_page);
    }
    {
      std::lock_guard lk(mu_);
      relays_.push_back(r);
    }
    return inner_->submit(std::move(o), r);
  }

 private:
  static constexpr uint32_t k_page = 4096;

  struct relay final : op_waiter {
    relay(op_waiter* t, corrupting_backend& b, uint32_t asked, uint32_t at)
        : target(t), owner(b), len(asked), buf_offset(at) {}
    void on_started(op_id id) noexcept override { target->on_started(id); }
    void on_complete(completion&& c) noexcept override {
      if (c.res > 0 && c.buf) {
        switch (owner.fault_) {
          case fault::flip_byte: c.buf.data()[buf_offset] ^= std::byte{0x01}; break;
          case fault::overreport: c.res = int32_t(len + 1); break;
          case fault::stale_page: {
            std::byte* page = c.buf.data() + buf_offset + k_page;
            if (!before.empty() && uint64_t(c.res) >= 2 * k_page && !std::equal(before.begin(), before.end(), page) &&
                !owner.applied_.exchange(true))
              std::copy(before.begin(), before.end(), page);
            break;
          }
        }
      }
      target->on_complete(std::move(c));
    }
    op_waiter* target;
    corrupting_backend& owner;
    uint32_t len;
    uint32_t buf_offset;
    std::vector<std::byte> before;  // stale_page: the page's bytes before the op
  };

  std::unique_ptr<backend> inner_;
  fault fault_;
  uint64_t nth_;
  std::atomic<uint64_t> count_{0};
  std::atomic<bool> applied_{false};  // stale_page: done once
  std::mutex mu_;
  std::vector<relay*> relays_;
};

TEST_P(scenario_checks, a_backend_flipping_one_byte_is_caught) {
  const backend_info& real = *be_;
  for (const char* name : {"file.seq_read", "file.rand_read", "file.seq_write", "file.copy", "tcp.stream",
                           "tcp.echo", "tcp.rr"}) {
    for (auto mode : {verify_mode::sample, verify_mode::full}) {
      backend_info faulty = real;
      faulty.make = [&real](const backend_options& o) -> std::unique_ptr<backend> {
        // 3: past the first transfers, so a check done only at the start would miss it.
        return std::make_unique<corrupting_backend>(real.make(o), fault::flip_byte, 3);
      };
      params p = scen(name).defaults;
      p.ops = 50;
      p.size = 1 << 20;  // 64 chunks > 50 ops: no later write repairs the bad chunk
      p.bs = std::min<uint64_t>(p.bs, 16384);
      p.conns = std::min<uint32_t>(p.conns, 2);
      p.verify = mode;
      const auto r = run_scenario(faulty, scen(name), p, quick_watchdog());
      if (r.verdict.starts_with("unsupported")) continue;
      EXPECT_TRUE(has_kind(r.violations, "data_mismatch")) << describe(r);
      EXPECT_FALSE(has_kind(r.violations, "hang")) << describe(r);
    }
  }
}

TEST_P(scenario_checks, a_backend_overreporting_bytes_is_caught) {
  // A completion claiming more bytes than asked is a backend bug: reported,
  // never read past (ASan would see the overrun at a page-sized bs).
  const backend_info& real = *be_;
  for (const char* name : {"file.seq_read", "file.copy", "tcp.stream", "tcp.echo"}) {
    backend_info faulty = real;
    faulty.make = [&real](const backend_options& o) -> std::unique_ptr<backend> {
      return std::make_unique<corrupting_backend>(real.make(o), fault::overreport, 2);
    };
    params p = scen(name).defaults;
    p.ops = 20;
    p.size = 1 << 20;
    p.bs = 4096;
    p.conns = std::min<uint32_t>(p.conns, 2);
    const auto r = run_scenario(faulty, scen(name), p, quick_watchdog());
    if (r.verdict.starts_with("unsupported")) continue;
    EXPECT_TRUE(has_kind(r.violations, "io_error")) << describe(r);
    EXPECT_FALSE(has_kind(r.violations, "hang")) << describe(r);
  }
}

TEST_P(scenario_checks, a_backend_leaving_a_stale_page_is_caught) {
  // The reader's buffer is reused, and its body words are the same in every
  // chunk: only the positional word in every 4 KiB tells the stale page from
  // the right one in sample mode.
  const backend_info& real = *be_;
  for (const char* name : {"file.seq_read", "file.rand_read", "file.copy", "tcp.stream", "tcp.echo"}) {
    for (auto mode : {verify_mode::sample, verify_mode::full}) {
      backend_info faulty = real;
      faulty.make = [&real](const backend_options& o) -> std::unique_ptr<backend> {
        // 3: the buffer already held other chunks.
        return std::make_unique<corrupting_backend>(real.make(o), fault::stale_page, 3);
      };
      params p = scen(name).defaults;
      p.ops = 50;
      p.size = 1 << 20;  // 64 chunks > 50 ops: no later write repairs the bad chunk
      p.bs = 16384;      // 4 pages per chunk
      p.conns = 1;
      p.verify = mode;
      const auto r = run_scenario(faulty, scen(name), p, quick_watchdog());
      if (r.verdict.starts_with("unsupported")) continue;
      EXPECT_TRUE(has_kind(r.violations, "data_mismatch")) << to_string(mode) << ": " << describe(r);
      EXPECT_FALSE(has_kind(r.violations, "hang")) << describe(r);
    }
  }
}

// A real backend behind a census of the ops it is given: how many payload ops
// continued a transfer in place (buf_offset > 0), by kind.
class census_backend final : public backend {
 public:
  // The counters are the test's, which outlives the backend.
  census_backend(std::unique_ptr<backend> inner, std::atomic<uint64_t>& sends, std::atomic<uint64_t>& recvs)
      : inner_(std::move(inner)), sends_in_place_(sends), recvs_in_place_(recvs) {}

  std::string_view name() const noexcept override { return inner_->name(); }
  const backend_caps& caps() const noexcept override { return inner_->caps(); }
  void attach_pool(buffer_pool& pool) override { inner_->attach_pool(pool); }
  void adopt(int fd) override { inner_->adopt(fd); }
  void spawn(task<> t) override { inner_->spawn(std::move(t)); }
  int run(clock_type::time_point deadline) override { return inner_->run(deadline); }
  int cancel(op_id id) noexcept override { return inner_->cancel(id); }
  void drop(op_id id) noexcept override { inner_->drop(id); }
  void shutdown() noexcept override { inner_->shutdown(); }
  void collect_violations(std::vector<violation>& out) override { inner_->collect_violations(out); }
  op_id submit(op&& o, op_waiter* w) noexcept override {
    if (o.buf_offset > 0 && o.kind == op_kind::send) sends_in_place_.fetch_add(1);
    if (o.buf_offset > 0 && o.kind == op_kind::recv) recvs_in_place_.fetch_add(1);
    return inner_->submit(std::move(o), w);
  }

 private:
  std::unique_ptr<backend> inner_;
  std::atomic<uint64_t>& sends_in_place_;
  std::atomic<uint64_t>& recvs_in_place_;
};

TEST_P(scenario_checks, echo_continues_partial_sends_in_place) {
  // 4 MiB messages are larger than a socket buffer: sends go out in pieces
  // and replies arrive in pieces, on both ends. The echo server cannot
  // regenerate what it received, so before op::buf_offset it copied the
  // unsent rest; now nothing is copied.
  const backend_info& real = *be_;
  std::atomic<uint64_t> sends{0}, recvs{0};
  backend_info counted = real;
  counted.make = [&](const backend_options& o) -> std::unique_ptr<backend> {
    return std::make_unique<census_backend>(real.make(o), sends, recvs);
  };
  params p = scen("tcp.echo").defaults;
  p.ops = 10;
  p.bs = 4 << 20;
  p.conns = 2;
  const auto r = run_scenario(counted, scen("tcp.echo"), p, quick_watchdog());
  ASSERT_EQ(r.verdict, "clean") << describe(r);
  EXPECT_EQ(r.ops, 10u);
  // The scenario copies nothing; a bounce backend copies by contract.
  if (real.make({})->caps().contract != buffer_contract::bounce) {
    EXPECT_EQ(r.meter.user_copy_bytes, 0u);
  }
  EXPECT_GT(recvs.load(), 0u) << "no reply arrived in pieces";
  // epoll sends only what fits the socket buffer; other backends may send a
  // whole message in one op (a blocking send waits for room).
  if (real.name == "epoll") {
    EXPECT_GT(sends.load(), 0u) << "no partial send";
  }
}

INSTANTIATE_TEST_SUITE_P(all, scenario_checks, testing::ValuesIn(backend_names()),
                         [](const testing::TestParamInfo<std::string>& i) { return test_name(i.param); });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(scenario_checks);

// ---- setup: where files go, and bad input ----

const backend_info* any_file_backend() {
  register_all();
  for (const auto& b : registered_backends())
    if (!b.unavailable_reason || b.unavailable_reason().empty()) return &b;
  return nullptr;
}

TEST(scenario_setup, bad_dir_is_a_usage_error) {
  register_all();
  const auto* s = find_scenario("file.seq_read");
  ASSERT_NE(s, nullptr);
  params p = s->defaults;
  p.dir = "/nonexistent/ringside-test";
  try {
    auto sc = s->make(p);
    FAIL() << "no usage_error";
  } catch (const usage_error& e) {
    EXPECT_STREQ(e.what(), "--dir /nonexistent/ringside-test: No such file or directory");
  }
}

TEST(scenario_setup, bad_file_and_sizes_are_usage_errors) {
  const auto* b = any_file_backend();
  if (b == nullptr) GTEST_SKIP() << "no backend registered";
  const auto* s = find_scenario("file.seq_write");
  ASSERT_NE(s, nullptr);
  params p = s->defaults;
  p.ops = 10;
  p.size = 1 << 20;
  p.file = "/nonexistent/dir/data";
  try {
    (void)run_scenario(*b, *s, p, quick_watchdog());
    FAIL() << "no usage_error";
  } catch (const usage_error& e) {
    EXPECT_STREQ(e.what(), "--file /nonexistent/dir/data: No such file or directory");
  }
  p.file.clear();
  p.size = 4096;
  p.bs = 8192;
  EXPECT_THROW(s->make(p), usage_error);
  p.bs = 0;
  EXPECT_THROW(s->make(p), usage_error);
  p.bs = 4096;
  p.dir = "/tmp";
  p.file = "/tmp/x";
  EXPECT_THROW(s->make(p), usage_error);
}

TEST(scenario_setup, run_dir_is_created_inside_dir_and_removed) {
  const auto* b = any_file_backend();
  if (b == nullptr) GTEST_SKIP() << "no backend registered";
  temp_dir parent;
  const auto* s = find_scenario("file.copy");
  params p = s->defaults;
  p.ops = 20;
  p.size = 1 << 20;
  p.dir = parent.path();
  {
    manual_run m(*b, *s, p);
    // While the run lives, its files sit in one fresh subdirectory.
    std::vector<std::filesystem::path> subdirs;
    for (const auto& e : std::filesystem::directory_iterator(parent.path())) subdirs.push_back(e.path());
    ASSERT_EQ(subdirs.size(), 1u);
    EXPECT_EQ(std::filesystem::file_size(subdirs[0] / "data"), p.size);
    ASSERT_EQ(m.run(), 0);
  }
  EXPECT_TRUE(std::filesystem::is_empty(parent.path()));
}

TEST(temp_dir, created_unique_and_removed_recursively) {
  std::string a_path;
  {
    temp_dir a, b;
    a_path = a.path();
    EXPECT_NE(a.path(), b.path());
    EXPECT_TRUE(std::filesystem::is_directory(a.path()));
    std::filesystem::create_directories(a.file("x/y"));
    unique_fd f(::open(a.file("x/y/z").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
    EXPECT_TRUE(f.valid());
  }
  EXPECT_FALSE(std::filesystem::exists(a_path));
  EXPECT_THROW(temp_dir("/nonexistent/ringside-test"), std::system_error);
}

TEST(scenario_registry, names_defaults_and_row_names) {
  register_all();
  const std::pair<const char*, const char*> rows[] = {
      {"file.seq_read", "/bs:131072/qd:1"},    {"file.rand_read", "/bs:4096/qd:1"},
      {"file.seq_write", "/bs:131072/qd:1"},   {"file.copy", "/bs:131072/qd:1"},
      {"tcp.stream", "/bs:131072/conns:1"},    {"tcp.echo", "/msg:1024/conns:16"},
      {"tcp.rr", "/msg:64"},                   {"tcp.accept_storm", "/conns:8"},
  };
  for (auto [name, suffix] : rows) {
    const auto* s = find_scenario(name);
    ASSERT_NE(s, nullptr) << name;
    EXPECT_EQ(name_params(*s, s->defaults), suffix) << name;
    EXPECT_FALSE(s->checks.empty());
    if (std::string_view(name).starts_with("file.")) {
      EXPECT_EQ(s->defaults.size, 64ull << 20);
    }
  }
}

}  // namespace
}  // namespace ringside
