#include "harness/runner.hpp"

#include "harness/exactly_once.hpp"
#include "harness/fd_census.hpp"

#include <fmt/format.h>

#include <cerrno>
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

}  // namespace

backend_options backend_options_for(const params& p) {
  backend_options o;
  o.queue_depth = std::max<uint32_t>(p.qd, 1);
  // 2 x conns: client and server end of each connection, +1 for an acceptor.
  const uint64_t streams = std::max<uint64_t>({uint64_t(p.qd), 2ull * p.conns + 1, 1});
  o.max_streams = uint32_t(std::min<uint64_t>(streams, UINT32_MAX));
  return o;
}

double watchdog_seconds(const params& p, const run_options& opt) {
  if (opt.timeout_s > 0) return opt.timeout_s;
  if (p.ops > 0) return opt.ops_budget_s;
  return p.duration_s * opt.watchdog_factor + opt.watchdog_slack_s;
}

run_result run_scenario(const backend_info& b, const scenario_info& s, const params& p,
                        const run_options& opt) {
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
  try {
    sc->start(*be, *pool, ctx);
    rc = be->run(deadline);
  } catch (const std::exception& e) {
    ctx.report("error", fmt::format("run: {}", e.what()));
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
