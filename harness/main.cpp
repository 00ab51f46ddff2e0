// ringside: the command line. stdout carries the results table and the JSON
// path; everything else (progress, errors) goes to stderr.
#include <fnmatch.h>
#include <sys/resource.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <atomic>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "harness/backend.hpp"
#include "harness/parse.hpp"
#include "harness/results.hpp"
#include "harness/runner.hpp"
#include "harness/scenario.hpp"

namespace {

using namespace ringside;

constexpr int k_exit_ok = 0;
constexpr int k_exit_violations = 1;
constexpr int k_exit_usage = 2;
constexpr int k_exit_unsupported = 77;

std::atomic<int> g_signal{0};

extern "C" void on_interrupt(int sig) {
  g_signal.store(sig, std::memory_order_relaxed);
  interrupted().store(true, std::memory_order_relaxed);
}

void install_interrupt_handlers() {
  struct sigaction sa{};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

int list_backends() {
  fmt::print("{:<14} {:<20} {}\n", "backend", "buffer contract", "status");
  for (const auto& b : registered_backends()) {
    const std::string why = b.unavailable_reason ? b.unavailable_reason() : std::string{};
    std::string contract = "?";
    if (why.empty()) {
      try {
        contract = std::string(to_string(b.make({})->caps().contract));
      } catch (const std::exception& e) {
        contract = "?";
      }
    }
    fmt::print("{:<14} {:<20} {}\n", b.name, contract, why.empty() ? "available" : "unavailable: " + why);
    fmt::print("    {}\n", b.description);
  }
  return k_exit_ok;
}

int list_scenarios() {
  for (const auto& s : registered_scenarios()) {
    std::string uses;
    for (const auto& u : s.uses) {
      const auto& d = s.defaults;
      std::string v;
      if (u.param == "bs") v = fmt::format("{}", d.bs);
      else if (u.param == "qd") v = fmt::format("{}", d.qd);
      else if (u.param == "conns") v = fmt::format("{}", d.conns);
      else if (u.param == "size") v = fmt::format("{}", d.size);
      else if (u.param == "rate") v = fmt::format("{}", d.rate);
      else continue;
      uses += fmt::format(" --{} {}", u.param, v);
    }
    fmt::print("{:<18} {}\n    defaults:{}\n", s.name, s.checks, uses.empty() ? " (none)" : uses);
  }
  return k_exit_ok;
}

// One line per parameter the user set that some selected scenario ignores
// (e.g. --qd on tcp.*), so nobody compares rows believing it applied.
void note_ignored_params(const std::vector<const scenario_info*>& scenarios, const param_overrides& o) {
  const std::pair<const char*, bool> given[] = {
      {"bs", o.bs.has_value()}, {"qd", o.qd.has_value()}, {"conns", o.conns.has_value()},
      {"size", o.size.has_value()}, {"rate", o.rate.has_value()}};
  for (const auto& [param, set] : given) {
    if (!set) continue;
    std::string ignoring;
    for (const auto* s : scenarios) {
      bool uses = false;
      for (const auto& u : s->uses) uses = uses || u.param == param;
      if (!uses) ignoring += (ignoring.empty() ? "" : ", ") + s->name;
    }
    if (!ignoring.empty()) fmt::print(stderr, "ringside: note: --{} does not apply to {}\n", param, ignoring);
  }
}

// Connections cost two fds each; Debian's default soft limit (1024) would
// stop --conns at about 500. Raise the soft limit to the hard one.
void raise_fd_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

struct run_args {
  std::string backends, scenario = "*", duration, ops, repetitions = "1", out = "ringside-results.json";
  std::string bs, qd, conns, size, rate, file, dir, seed, verify, timeout, detectors;
};

int run_command(const run_args& a, const std::vector<std::string>& argv) {
  // ---- validate everything before running anything ----
  std::vector<const backend_info*> backends;
  if (a.backends.empty()) {
    for (const auto& b : registered_backends()) backends.push_back(&b);
  } else {
    for (const auto& n : split_list("--backend", a.backends)) {
      const auto* b = find_backend(n);
      if (!b) {
        std::string known;
        for (const auto& x : registered_backends()) known += (known.empty() ? "" : ", ") + x.name;
        throw usage_error(fmt::format("--backend '{}': unknown backend (known: {})", n, known));
      }
      backends.push_back(b);
    }
  }
  std::vector<const scenario_info*> scenarios;
  for (const auto& pat : split_list("--scenario", a.scenario))
    for (const auto& s : registered_scenarios())
      if (::fnmatch(pat.c_str(), s.name.c_str(), 0) == 0 &&
          std::find(scenarios.begin(), scenarios.end(), &s) == scenarios.end())
        scenarios.push_back(&s);
  if (scenarios.empty())
    throw usage_error(fmt::format("--scenario '{}': matches no scenario (see 'ringside list scenarios')", a.scenario));

  param_overrides o;
  // Bounds: far beyond any sane run, short of overflow and absurd memory.
  if (!a.bs.empty()) o.bs = parse_size("--bs", a.bs, 1ull << 30);
  if (!a.size.empty()) o.size = parse_size("--size", a.size, 1ull << 40);
  if (!a.qd.empty()) o.qd = uint32_t(parse_count("--qd", a.qd, 1, 4096));
  if (!a.conns.empty()) o.conns = uint32_t(parse_count("--conns", a.conns, 1, 100000));
  if (!a.ops.empty()) o.ops = parse_count("--ops", a.ops, 1, 1ull << 40);
  if (!a.duration.empty()) o.duration_s = parse_seconds("--duration", a.duration, 86400);
  if (!a.rate.empty()) o.rate = parse_rate("--rate", a.rate);
  if (!a.seed.empty()) o.seed = parse_count("--seed", a.seed, 0, UINT64_MAX);
  if (!a.file.empty()) o.file = a.file;
  if (!a.dir.empty()) o.dir = a.dir;
  if (!a.verify.empty()) {
    if (a.verify == "sample") o.verify = verify_mode::sample;
    else if (a.verify == "full") o.verify = verify_mode::full;
    else throw usage_error(fmt::format("--verify '{}': expected sample or full", a.verify));
  }
  if (o.duration_s && o.ops) throw usage_error("--duration and --ops: give one, not both");
  const int reps = int(parse_count("--repetitions", a.repetitions, 1, 1000));
  run_options ropt;
  if (!a.timeout.empty()) {
    ropt.timeout_s = parse_seconds("--timeout", a.timeout, 7 * 86400);
    if (o.duration_s && ropt.timeout_s <= *o.duration_s)
      throw usage_error(fmt::format("--timeout {}: must be longer than --duration {}", a.timeout, a.duration));
  }
  // Every scenario's parameters are checked before anything runs, so a bad
  // combination fails in a second, not after minutes of other rows.
  std::vector<params> resolved;
  for (const auto* s : scenarios) {
    resolved.push_back(resolve_params(*s, o));
    (void)s->make(resolved.back());  // throws usage_error for values this scenario refuses
  }
  note_ignored_params(scenarios, o);
  if (!a.detectors.empty()) {
    for (const auto& d : split_list("--detectors", a.detectors)) {
      // 64: deep enough that a late write lands while the buffer still waits.
      if (d == "canary") ropt.quarantine_depth = 64;
      else if (d == "guard") ropt.quarantine_depth = 64, ropt.guard_pages = true;
      else if (d == "exactly-once") ropt.exactly_once = true;
      else if (d == "all") ropt.quarantine_depth = 64, ropt.guard_pages = true, ropt.exactly_once = true;
      else throw usage_error(fmt::format("--detectors '{}': expected canary, guard, exactly-once or all", d));
    }
  }
  if (a.out.empty()) throw usage_error("--out: empty path");
  {
    // Fail on an unwritable --out now, not after minutes of measuring.
    nlohmann::json probe = {{"context", nlohmann::json::object()}, {"benchmarks", nlohmann::json::array()}};
    try {
      write_json_atomic(a.out, probe);
    } catch (const std::system_error& e) {
      throw usage_error(fmt::format("--out '{}': {}", a.out, e.code().message()));
    }
  }

  run_context rc;
  rc.seed = o.seed.value_or(1);
  rc.executable = argv.empty() ? "ringside" : argv[0];
  rc.argv = argv;
  nlohmann::json doc = {{"context", make_context(rc)}, {"benchmarks", nlohmann::json::array()}};

  const bool tty = ::isatty(STDERR_FILENO);
  const size_t total = scenarios.size() * backends.size() * size_t(reps);
  size_t done = 0;
  std::vector<run_result> rows;
  bool any_violation = false, any_measured = false;
  // Repetitions are the outer loop: drift (page cache, writeback, a noisy
  // neighbour) then spreads over every backend instead of landing on one.
  std::vector<bool> unsupported(scenarios.size() * backends.size(), false);
  for (int rep = 0; rep < reps && !interrupted().load(); ++rep) {
    for (size_t si = 0; si < scenarios.size() && !interrupted().load(); ++si) {
      for (size_t bi = 0; bi < backends.size() && !interrupted().load(); ++bi) {
        const auto* s = scenarios[si];
        const auto* b = backends[bi];
        const size_t family = si * backends.size() + bi;
        if (unsupported[family]) continue;  // one row says it; repeating it says nothing new
        if (tty) fmt::print(stderr, "\r\033[K[{}/{}] {} {}", ++done, total, s->name, b->name);
        run_result r = run_scenario(*b, *s, resolved[si], ropt);
        if (r.measured) any_measured = true;
        if (r.measured && r.verdict != "clean") any_violation = true;
        if (!r.measured && r.verdict.rfind("error", 0) == 0) any_violation = true;
        for (const auto& v : r.violations)
          fmt::print(stderr, "{}{}: {}: {}\n", tty ? "\r\033[K" : "", r.name, v.kind, v.detail);
        doc["benchmarks"].push_back(result_row(r, int(family), reps, rep));
        // Rewritten after every row: an interrupted run keeps what it measured.
        write_json_atomic(a.out, doc);
        unsupported[family] = !r.measured;
        rows.push_back(std::move(r));
      }
    }
  }
  if (tty) fmt::print(stderr, "\r\033[K");
  append_aggregates(doc["benchmarks"]);
  write_json_atomic(a.out, doc);
  fmt::print("{}", format_table(rows));
  fmt::print("results: {}\n", a.out);
  std::fflush(stdout);
  if (const int sig = g_signal.load()) {
    fmt::print(stderr, "ringside: interrupted by signal {}; results so far in {}\n", sig, a.out);
    return 128 + sig;
  }
  if (any_violation) return k_exit_violations;
  if (!any_measured) return k_exit_unsupported;
  return k_exit_ok;
}

}  // namespace

int main(int argc, char** argv) {
  register_builtin_backends();
  register_builtin_scenarios();

  CLI::App app{"ringside: I/O benchmarking and cancellation-safety harness"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("ringside ") + "0.1.0");

  auto* list = app.add_subcommand("list", "List backends or scenarios");
  std::string what = "all";
  list->add_option("what", what, "backends | scenarios (default: both)")
      ->check(CLI::IsMember({"backends", "scenarios", "all"}));

  auto* run = app.add_subcommand("run", "Run scenarios on backends and write results JSON");
  run_args ra;
  run->add_option("--backend,-b", ra.backends, "Comma-separated backends (default: all)");
  run->add_option("--scenario,-s", ra.scenario, "Scenario glob(s), comma-separated (default: *)");
  run->add_option("--duration", ra.duration, "Seconds per run, decimals allowed (default: scenario's, 1)");
  run->add_option("--ops", ra.ops, "Op budget per run instead of a duration");
  run->add_option("--repetitions,-r", ra.repetitions, "Repetitions per combination (aggregates when > 1)");
  run->add_option("--out,-o", ra.out, "Results JSON (Google Benchmark schema), written atomically");
  run->add_option("--bs", ra.bs, "Block/message size in bytes (suffixes k, m, g)");
  run->add_option("--qd", ra.qd, "Ops in flight per file");
  run->add_option("--conns", ra.conns, "TCP connections");
  run->add_option("--size", ra.size, "File size (suffixes k, m, g)");
  run->add_option("--rate", ra.rate, "Open loop: total ops/s (latency from intended start)");
  run->add_option("--file", ra.file, "File scenarios: use (and overwrite) this file");
  run->add_option("--dir", ra.dir, "File scenarios: create temp files under this directory");
  run->add_option("--seed", ra.seed, "Seed for data patterns and random offsets (default 1)");
  run->add_option("--verify", ra.verify, "Data check: sample (default) or full");
  run->add_option("--timeout", ra.timeout, "Watchdog: seconds a run may take before it is a hang");
  run->add_option("--detectors", ra.detectors,
                  "Extra detectors, comma-separated: canary, guard (canary + PROT_NONE), exactly-once, all");

  std::vector<std::string> args(argv, argv + argc);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "ringside: {} (see --help)\n", e.what());
    return k_exit_usage;
  }

  try {
    if (*list) {
      if (what == "backends") return list_backends();
      if (what == "scenarios") return list_scenarios();
      list_backends();
      fmt::print("\n");
      return list_scenarios();
    }
    if (*run) {
      install_interrupt_handlers();
      raise_fd_limit();
      return run_command(ra, args);
    }
  } catch (const usage_error& e) {
    fmt::print(stderr, "ringside: {}\n", e.what());
    return k_exit_usage;
  } catch (const std::exception& e) {
    fmt::print(stderr, "ringside: {}\n", e.what());
    return k_exit_violations;
  }
  return k_exit_usage;
}
