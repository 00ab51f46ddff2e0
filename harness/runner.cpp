#include "harness/runner.hpp"

#include "harness/backend_opts.hpp"

#include "harness/exactly_once.hpp"
#include "harness/fd_census.hpp"
#include "harness/parse.hpp"

#include <fmt/format.h>
#include <fnmatch.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <system_error>

namespace ringside {

namespace {

std::string verdict_of(const std::vector<violation>& v) {
  if (v.empty()) return "clean";
  std::vector<std::string_view> kinds;
  for (const auto& x : v) {
    bool seen = false;
    for (auto k : kinds) seen = seen || k == x.kind;
    if (!seen) kinds.push_back(x.kind);
  }
  std::string out;
  for (auto k : kinds) {
    if (!out.empty()) out += ',';
    out += k;
  }
  return out;
}

clock_type::duration seconds(double s) {
  return std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(s));
}

// ---- the test-only fault switch (RINGSIDE_SCENARIO_FAULT) ----

enum class fault_kind { none, segv, abort, hang };

struct fault_spec {
  fault_kind kind = fault_kind::none;
  std::string glob;  // empty: every scenario
};

fault_spec parse_fault(const char* env) {
  fault_spec f;
  if (env == nullptr || *env == '\0') return f;
  std::string_view v(env);
  std::string_view what = v.substr(0, v.find('@'));
  if (const size_t at = v.find('@'); at != std::string_view::npos) f.glob = std::string(v.substr(at + 1));
  if (what == "segv") f.kind = fault_kind::segv;
  else if (what == "abort") f.kind = fault_kind::abort;
  else if (what == "hang") f.kind = fault_kind::hang;
  else
    throw usage_error(fmt::format("RINGSIDE_SCENARIO_FAULT '{}': expected segv, abort or hang, optionally @scenario-glob",
                                  printable(v)));
  if (v.find('@') != std::string_view::npos && f.glob.empty())
    throw usage_error(fmt::format("RINGSIDE_SCENARIO_FAULT '{}': empty scenario glob after '@'", printable(v)));
  return f;
}

fault_kind fault_for(std::string_view scenario) {
  const fault_spec f = parse_fault(std::getenv("RINGSIDE_SCENARIO_FAULT"));
  if (f.kind == fault_kind::none) return f.kind;
  if (!f.glob.empty() && ::fnmatch(f.glob.c_str(), std::string(scenario).c_str(), 0) != 0) return fault_kind::none;
  return f.kind;
}

// The hang: a handler that never returns, run on the runner's thread. pause()
// returns after every other caught signal (SIGINT, SIGTERM only set flags),
// and the loop goes back to sleep: only SIGKILL ends it.
extern "C" void hang_forever(int) {
  for (;;) ::pause();
}

[[noreturn]] void crash_now(fault_kind k) {
  // No core file from a deliberate crash; the default action, not a
  // sanitizer's handler, so every build reports the same "crashed".
  rlimit no_core{0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);
  if (k == fault_kind::abort) std::abort();
  // SIGSEGV with its default action: set through the raw syscall, because
  // the sanitizers intercept signal()/sigaction() and keep their own SEGV
  // handler (which would report "asan"/"ubsan", not a crash); and raised,
  // not provoked by a null store, which UBSan reports before it happens.
  struct {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)();
    unsigned long mask;
  } dfl{SIG_DFL, 0, nullptr, 0};
  ::syscall(SYS_rt_sigaction, SIGSEGV, &dfl, nullptr, sizeof dfl.mask);
  sigset_t segv;
  sigemptyset(&segv);
  sigaddset(&segv, SIGSEGV);
  ::pthread_sigmask(SIG_UNBLOCK, &segv, nullptr);
  ::syscall(SYS_tgkill, ::getpid(), ::gettid(), SIGSEGV);
  std::abort();  // not reached
}

// Fires the fault at `at` from its own thread (the backend's ops in flight),
// or at finish() on the runner's thread if the run ended first.
class fault_injector {
 public:
  fault_injector(fault_kind k, clock_type::time_point at) : kind_(k), runner_(::pthread_self()) {
    if (kind_ == fault_kind::none) return;
    if (kind_ == fault_kind::hang) {
      struct sigaction sa{};
      sa.sa_handler = hang_forever;
      sigemptyset(&sa.sa_mask);
      ::sigaction(SIGUSR2, &sa, nullptr);
    }
    thread_ = std::thread([this, at] {
      std::unique_lock<std::mutex> lock(mu_);
      if (cv_.wait_until(lock, at, [this] { return finished_; })) return;
      fire();
    });
  }
  fault_injector(const fault_injector&) = delete;
  fault_injector& operator=(const fault_injector&) = delete;
  ~fault_injector() { finish(); }

  void finish() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      finished_ = true;
    }
    cv_.notify_all();
    thread_.join();
    fire();  // the run ended before the fault's time: fire it now
  }

 private:
  void fire() {
    // A line on stdout and one on stderr first, as a misbehaving backend
    // might write: tests check the stdout line never reaches run's stdout
    // or its JSON, and the stderr one reaches run's stderr.
    static constexpr char out[] = "scenario fault switch: stdout line\n";
    static constexpr char err[] = "scenario fault switch: firing now (stderr line)\n";
    (void)!::write(STDOUT_FILENO, out, sizeof out - 1);
    (void)!::write(STDERR_FILENO, err, sizeof err - 1);
    if (kind_ == fault_kind::hang) {
      ::pthread_kill(runner_, SIGUSR2);
      if (::pthread_equal(runner_, ::pthread_self())) hang_forever(0);
      for (;;) ::pause();  // the fault thread stays too
    }
    crash_now(kind_);
  }

  fault_kind kind_;
  pthread_t runner_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool finished_ = false;
  std::thread thread_;
};

}  // namespace

std::string scenario_fault_setting() {
  const char* env = std::getenv("RINGSIDE_SCENARIO_FAULT");
  const fault_spec f = parse_fault(env);
  if (f.kind == fault_kind::none) return {};
  return fmt::format("RINGSIDE_SCENARIO_FAULT={} is set: test-only scenario faults are switched on", printable(env));
}

backend_options backend_options_for(const params& p) {
  backend_options o;
  o.queue_depth = std::max<uint32_t>(p.qd, 1);
  // 2 x conns: client and server end of each connection, +1 for an acceptor.
  const uint64_t streams = std::max<uint64_t>({uint64_t(p.qd), 2ull * p.conns + 1, 1});
  o.max_streams = uint32_t(std::min<uint64_t>(streams, UINT32_MAX));
  o.uring = p.uring;
  return o;
}

double watchdog_seconds(const params& p, const run_options& opt) {
  if (opt.timeout_s > 0) return opt.timeout_s;
  if (p.ops > 0) return opt.ops_budget_s;
  return p.duration_s * opt.watchdog_factor + opt.watchdog_slack_s;
}

run_result run_scenario(const backend_info& b, const scenario_info& s, const params& given,
                        const run_options& opt) {
  params p = given;
  p.uring = backend_opts_for(b.name, given.uring);  // --backend-opt: io_uring backends only
  run_result r;
  r.backend = b.name;
  r.scenario = s.name;
  r.prm = p;
  r.name = fmt::format("{}/backend:{}{}", s.name, b.name, name_params(s, p));

  if (auto why = b.unavailable_reason ? b.unavailable_reason() : std::string{}; !why.empty()) {
    r.verdict = "unsupported: " + why;
    return r;
  }

  // Resource accounting: everything the run opens must be closed by the end
  // of its teardown.
  const auto fds_before = open_fds();

  // Destroyed in reverse: backend (drains the kernel's hold on buffers and
  // fds) before the scenario (closes fds, removes files) before the pool.
  std::optional<buffer_pool> pool;
  std::unique_ptr<scenario> sc;
  std::unique_ptr<backend> be;
  try {
    be = b.make(backend_options_for(p));
    if (opt.exactly_once) be = std::make_unique<exactly_once_backend>(std::move(be));
    sc = s.make(p);
    if (auto why = sc->unsupported_reason(be->caps()); !why.empty()) {
      r.verdict = "unsupported: " + why;
      return r;
    }
    // + quarantine depth: held-back buffers must not starve the streams.
    pool.emplace(std::max<size_t>(sc->buffers_needed(), 1) + opt.quarantine_depth, p.bs);
    pool->enable_quarantine(opt.quarantine_depth);
    pool->enable_guard_pages(opt.guard_pages && opt.quarantine_depth > 0);
    be->attach_pool(*pool);
    sc->prepare(*be);
  } catch (const usage_error&) {
    throw;
  } catch (const std::exception& e) {
    r.verdict = fmt::format("error: setup: {}", e.what());
    r.violations.push_back({"error", r.verdict});
    return r;
  }

  const auto m0 = meters::read();
  const auto c0 = read_cpu_usage();
  const auto t0 = clock_type::now();
  run_ctx ctx(p, t0, t0 + seconds(p.duration_s));
  const auto deadline = t0 + seconds(watchdog_seconds(p, opt));

  int rc = 0;
  {
    // Test-only (RINGSIDE_SCENARIO_FAULT): halfway through the time budget,
    // or 20 ms into an op-budgeted run, or when the run ends if sooner.
    const fault_kind fk = fault_for(s.name);
    fault_injector fault(fk, t0 + seconds(p.ops > 0 ? 0.02 : p.duration_s / 2));
    try {
      sc->start(*be, *pool, ctx);
      rc = be->run(deadline);
    } catch (const std::exception& e) {
      ctx.report("error", fmt::format("run: {}", e.what()));
    }
    fault.finish();
  }
  const auto t1 = clock_type::now();
  r.cpu = read_cpu_usage() - c0;
  r.meter = meters::read() - m0;
  r.wall_s = std::chrono::duration<double>(t1 - t0).count();

  if (rc == -ETIME) {
    ctx.report("hang", fmt::format("watchdog: still running {:.1f}s after start", r.wall_s));
  } else {
    try {
      sc->verify(ctx);
    } catch (const std::exception& e) {
      ctx.report("error", fmt::format("verify: {}", e.what()));
    }
  }

  for (const auto& st : ctx.streams()) {
    r.ops += st.ops;
    r.bytes += st.bytes;
    r.latency.merge(st.latency);
  }
  r.interrupted = interrupted().load(std::memory_order_relaxed);
  r.violations = ctx.violations();
  // Teardown first: what it finds (buffers released under the kernel, ops
  // never given back, threads that would not stop) belongs to this verdict.
  be->shutdown();
  be->collect_violations(r.violations);
  be.reset();
  sc.reset();
  pool->check_quarantine();
  pool->collect_violations(r.violations);
  report_fd_leaks(fds_before, open_fds(), r.violations);
  r.verdict = verdict_of(r.violations);
  r.measured = true;
  return r;
}

}  // namespace ringside
