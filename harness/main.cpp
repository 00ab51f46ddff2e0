// ringside: the command line. stdout carries the results table and the JSON
// path; everything else (progress, errors) goes to stderr.
#include <fnmatch.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "harness/backend.hpp"
#include "harness/backend_opts.hpp"
#include "harness/check.hpp"
#include "harness/parse.hpp"
#include "harness/plugin.hpp"
#include "harness/repro.hpp"
#include "harness/results.hpp"
#include "harness/runner.hpp"
#include "harness/scenario.hpp"
#include "harness/tempdir.hpp"

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
  std::string repro_dir = "ringside-repros";
  std::string backend_opt;  // --backend-opt, repeats joined with ','
  std::string isolate = "all";  // run only: none | plugins | all
  bool repro_dir_given = false;  // --repro-dir on the command line: checked before running
};

enum class isolation { none, plugins, all };

isolation parse_isolation(const std::string& v) {
  if (v == "none") return isolation::none;
  if (v == "plugins") return isolation::plugins;
  if (v == "all") return isolation::all;
  throw usage_error(fmt::format("--isolate '{}': expected none, plugins or all", printable(v)));
}

// Fails now, with one line, on an output path that cannot be written
// (missing or unwritable directory, a directory in its place), without
// creating or touching the file: a temp file is made and removed beside it.
void probe_output(std::string_view opt, const std::string& path) {
  if (path.empty()) throw usage_error(fmt::format("{}: empty path", opt));
  struct stat st{};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    throw usage_error(fmt::format("{} '{}': is a directory", opt, printable(path)));
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  std::string tmpl = dir + "/.ringside-probe-XXXXXX";
  const int fd = ::mkstemp(tmpl.data());
  if (fd < 0) throw usage_error(fmt::format("{} '{}': {}", opt, printable(path), std::strerror(errno)));
  ::close(fd);
  ::unlink(tmpl.c_str());
}

// Child processes (isolated rows, check's cells) each get a temp directory
// under $TMPDIR (or /tmp): a missing or unwritable one is bad usage, said
// before anything is printed or run.
void probe_tmpdir() {
  try {
    temp_dir t;
  } catch (const std::system_error& e) {
    throw usage_error(fmt::format("temp dir ($TMPDIR or /tmp) {}", e.what()));
  }
}

// --repro-dir: written only when a row has violations, maybe after minutes;
// checked now. It may not exist yet (it is created, one level), but then
// its parent must be writable.
void probe_repro_dir(const std::string& dir) {
  if (dir.empty()) throw usage_error("--repro-dir: empty path");
  struct stat st{};
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) throw usage_error(fmt::format("--repro-dir '{}': not a directory", printable(dir)));
    probe_output("--repro-dir", dir + "/x");
    return;
  }
  if (errno != ENOENT)
    throw usage_error(fmt::format("--repro-dir '{}': {}", printable(dir), std::strerror(errno)));
  std::string parent = dir;
  while (parent.size() > 1 && parent.back() == '/') parent.pop_back();
  const size_t slash = parent.rfind('/');
  parent = slash == std::string::npos ? "." : slash == 0 ? "/" : parent.substr(0, slash);
  if (::stat(parent.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw usage_error(fmt::format("--repro-dir '{}': parent directory {} does not exist", printable(dir), printable(parent)));
  probe_output("--repro-dir", parent + "/x");
}

// Sizes beyond what the machine has: one line now, not a row that fails in
// setup ("mmap: Cannot allocate memory", "pwrite: No space left on device").
void check_resources(const scenario_info& s, const params& p, const scenario& sc, const run_options& ropt) {
  const uint64_t buffers = std::max<uint64_t>(sc.buffers_needed(), 1) + ropt.quarantine_depth;
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) {
    const auto need = static_cast<unsigned __int128>(buffers) * p.bs;
    const uint64_t mem = uint64_t(pages) * uint64_t(page);
    if (need > mem)
      throw usage_error(fmt::format("--bs {}: {} needs {} buffers of that size, more than this machine's memory "
                                    "({} MiB); lower --bs, --qd or --conns",
                                    p.bs, s.name, buffers, mem >> 20));
  }
  const bool sized = std::any_of(s.uses.begin(), s.uses.end(), [](const param_use& u) { return u.param == "size"; });
  if (sized && p.file.empty()) {
    std::string where = p.dir;
    if (where.empty()) {
      const char* t = std::getenv("TMPDIR");
      where = t != nullptr && *t != '\0' ? t : "/tmp";
    }
    struct statvfs v{};
    if (::statvfs(where.c_str(), &v) == 0) {
      const uint64_t free_bytes = uint64_t(v.f_bavail) * uint64_t(v.f_frsize);
      if (p.size > free_bytes)
        throw usage_error(fmt::format("--size {}: {} has only {} MiB free", p.size, printable(where), free_bytes >> 20));
    }
  }
}

// The test-only fault switch, checked (one line, exit 2 when malformed) and
// announced once before anything runs.
void note_scenario_fault() {
  if (const std::string f = scenario_fault_setting(); !f.empty()) fmt::print(stderr, "ringside: note: {}\n", f);
}

// The scenario parameters a command line (or a repro file) sets, as given.
// The order is the order repro commands print them in.
std::vector<std::pair<std::string, std::string*>> param_fields(run_args& a) {
  return {{"ops", &a.ops},   {"duration", &a.duration}, {"bs", &a.bs},     {"qd", &a.qd},
          {"conns", &a.conns}, {"size", &a.size},       {"rate", &a.rate}, {"file", &a.file},
          {"dir", &a.dir},   {"verify", &a.verify}, {"backend-opt", &a.backend_opt}};
}

// Parses and bounds every scenario parameter the user set (usage_error on
// bad values): the same code for run, check and repro.
param_overrides parse_overrides(const run_args& a) {
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
    else throw usage_error(fmt::format("--verify '{}': expected sample or full", printable(a.verify)));
  }
  if (o.duration_s && o.ops) throw usage_error("--duration and --ops: give one, not both");
  return o;
}

double parse_timeout(const run_args& a, const param_overrides& o) {
  if (a.timeout.empty()) return 0;
  const double t = parse_seconds("--timeout", a.timeout, 7 * 86400);
  if (o.duration_s && t <= *o.duration_s)
    throw usage_error(fmt::format("--timeout {}: must be longer than --duration {}", a.timeout, a.duration));
  return t;
}

const backend_info& backend_named(const std::string& n) {
  const auto* b = find_backend(n);
  if (b) return *b;
  std::string known;
  for (const auto& x : registered_backends()) known += (known.empty() ? "" : ", ") + x.name;
  throw usage_error(fmt::format("--backend '{}': unknown backend (known: {})", printable(n), known));
}

std::vector<const backend_info*> select_backends(const std::string& list) {
  std::vector<const backend_info*> backends;
  if (list.empty() || list == "all") {
    for (const auto& b : registered_backends()) backends.push_back(&b);
    return backends;
  }
  for (const auto& n : split_list("--backend", list)) backends.push_back(&backend_named(n));
  return backends;
}

std::vector<const scenario_info*> select_scenarios(const std::string& globs) {
  std::vector<const scenario_info*> scenarios;
  for (const auto& pat : split_list("--scenario", globs))
    for (const auto& s : registered_scenarios())
      if (::fnmatch(pat.c_str(), s.name.c_str(), 0) == 0 &&
          std::find(scenarios.begin(), scenarios.end(), &s) == scenarios.end())
        scenarios.push_back(&s);
  if (scenarios.empty())
    throw usage_error(fmt::format("--scenario '{}': matches no scenario (see 'ringside list scenarios')", printable(globs)));
  return scenarios;
}

// The spec that reproduces one row of a run with these arguments.
repro_spec spec_for(const run_args& a, const run_result& r, uint64_t seed) {
  repro_spec s;
  s.backend = r.backend;
  s.scenario = r.scenario;
  s.seed = seed;
  run_args copy = a;
  for (auto& [k, v] : param_fields(copy))
    if (!v->empty() && (k != "backend-opt" || honours_backend_opts(r.backend))) s.args.emplace_back(k, *v);
  s.detectors = a.detectors.empty() ? "none" : a.detectors;
  s.timeout = a.timeout;
  if (const loaded_plugin* p = plugin_of(r.backend)) s.plugins.push_back(p->path);
  return s;
}

// This very binary, for child processes (check's cells, run's plugin rows).
std::string self_exe() {
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) throw std::runtime_error("readlink /proc/self/exe failed");
  return std::string(self, size_t(n));
}

// One row run in a child process (`repro --json-out`, as check runs its
// cells): a segfault, abort or hang of the backend or the scenario then
// becomes the row's verdict (crashed, hang) and the run goes on. The child
// measures exactly as run_scenario here would; its results row goes into the
// JSON as it is.
run_result run_isolated_row(const run_args& a, const backend_info& b, const scenario_info& s, const params& p,
                            const run_options& ropt, uint64_t seed, nlohmann::json& row) {
  run_result probe;
  probe.backend = b.name;
  probe.scenario = s.name;
  repro_spec spec = spec_for(a, probe, seed);
  // Past the child's own watchdog: its start, setup (file prefill: 1 s per
  // 64 MiB allowed) and bounded teardown; sanitizer builds are slower.
  const double setup_s = 10.0 + double(p.size) / double(64ull << 20);
  const double slack = build_flavour() == "release" ? setup_s : 3 * setup_s;
  const isolated_outcome iso = run_isolated(self_exe(), spec, watchdog_seconds(p, ropt) + slack);
  if (!iso.wrote_result && iso.exit_code == k_exit_usage && !iso.interrupted) {
    // The child refused an input only the run itself could check (e.g. a
    // --file it cannot create): the same one line and exit 2 as in-process.
    std::string line = iso.stderr_text.substr(0, iso.stderr_text.find('\n'));
    if (line.rfind("ringside: ", 0) == 0) line = line.substr(10);
    throw usage_error(line.empty() ? fmt::format("{} x {}: bad usage", s.name, b.name) : line);
  }
  fmt::print(stderr, "{}", iso.stderr_text);  // the child's own log lines
  row = iso.row;
  run_result r = result_of(iso, b, s, p);
  if (!iso.wrote_result) {
    // No figures (crashed, hang, interrupted): a row like every other, its
    // counters zero, marked as a row without a measurement.
    row = result_row(r, 0, 1, 0);
    row["error_occurred"] = true;
    row["error_message"] = r.verdict;
  }
  return r;
}

// Prints each violation (stderr) and, when there are any, the command that
// reproduces them (stdout) and the repro file. Returns the file's path.
std::string print_violations(const run_result& r, const repro_spec& spec, const std::string& exe,
                             const std::string& repro_dir, bool tty) {
  for (const auto& v : r.violations)
    fmt::print(stderr, "{}{}: [{}] {}{}{}: {}\n", tty ? "\r\033[K" : "", r.name, detector_of(v.kind), v.kind,
               v.op.empty() ? "" : " at " + v.op, v.range.empty() ? "" : " on " + v.range, v.detail);
  if (r.violations.empty() || !r.measured) return {};
  std::string path;
  try {
    path = write_repro(repro_dir, spec, repro_document(spec, exe, r.verdict, r.violations));
  } catch (const std::exception& e) {
    path = fmt::format("(not written: {})", e.what());
  }
  fmt::print(stderr, "{}repro: {}\n       file: {}\n", tty ? "\r\033[K" : "", repro_command(spec, exe), path);
  return path;
}

void add_param_options(CLI::App* c, run_args& ra) {
  c->add_option("--duration", ra.duration, "Seconds per run, decimals allowed (default: scenario's, 1)");
  c->add_option("--ops", ra.ops, "Op budget per run instead of a duration (cancel.*: rounds)");
  c->add_option("--bs", ra.bs, "Block/message size in bytes (suffixes k, m, g)");
  c->add_option("--qd", ra.qd, "Ops in flight per file");
  c->add_option("--conns", ra.conns, "TCP connections");
  c->add_option("--size", ra.size, "File size (suffixes k, m, g)");
  c->add_option("--rate", ra.rate, "Open loop: total ops/s (latency from intended start)");
  c->add_option("--file", ra.file, "File scenarios: use (and overwrite) this file");
  c->add_option("--dir", ra.dir, "File scenarios: create temp files under this directory");
  c->add_option("--seed", ra.seed, "Seed for data patterns, offsets and schedules (default 1)");
  c->add_option("--verify", ra.verify, "Data check: sample (default) or full");
  c->add_option("--timeout", ra.timeout, "Watchdog: seconds a run may take before it is a hang");
  c->add_option("--detectors", ra.detectors,
                "Extra detectors, comma-separated: canary, guard (canary + PROT_NONE), exactly-once, all, none");
  c->add_option("--backend-opt", ra.backend_opt, "io_uring features, KEY[=VALUE],... (repeatable; README: Backend options)")
      ->multi_option_policy(CLI::MultiOptionPolicy::Join)->delimiter(',');
}

int run_command(const run_args& a, const std::vector<std::string>& argv) {
  // ---- validate everything before running anything ----
  const auto backends = select_backends(a.backends);
  const auto scenarios = select_scenarios(a.scenario);
  const param_overrides o = parse_overrides(a);
  const uring_features feats = select_backend_opts("--backend-opt", a.backend_opt, backends);
  const int reps = int(parse_count("--repetitions", a.repetitions, 1, 1000));
  run_options ropt;
  ropt.timeout_s = parse_timeout(a, o);
  if (!a.detectors.empty()) apply_detectors("--detectors", a.detectors, ropt);
  // Every scenario's parameters are checked before anything runs, so a bad
  // combination fails in a second, not after minutes of other rows.
  std::vector<params> resolved;
  for (const auto* s : scenarios) {
    resolved.push_back(resolve_params(*s, o));
    resolved.back().uring = feats;
    // throws usage_error for values this scenario refuses
    check_resources(*s, resolved.back(), *s->make(resolved.back()), ropt);
    // Too few descriptors for --conns: one line now, not a row of "accept:
    // Too many open files" errors blamed on the backend.
    if (std::any_of(s->uses.begin(), s->uses.end(), [](const param_use& u) { return u.param == "conns"; }))
      check_fd_limit("--conns", resolved.back().conns);
  }
  note_ignored_params(scenarios, o);
  const isolation iso = parse_isolation(a.isolate);
  note_scenario_fault();
  // Fail on an unwritable --out or --repro-dir now, not after minutes of
  // measuring (and leave no file behind when the run then refuses).
  probe_output("--out", a.out);
  if (a.repro_dir_given) probe_repro_dir(a.repro_dir);
  if (iso != isolation::none) probe_tmpdir();

  run_context rc;
  rc.seed = o.seed.value_or(1);
  rc.executable = argv.empty() ? "ringside" : argv[0];
  rc.argv = argv;
  rc.backend_options = feats;
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
        nlohmann::json row;
        const bool isolated = iso == isolation::all || (iso == isolation::plugins && plugin_of(b->name) != nullptr);
        run_result r = isolated ? run_isolated_row(a, *b, *s, resolved[si], ropt, rc.seed, row)
                                : run_scenario(*b, *s, resolved[si], ropt);
        if (row.is_null()) row = result_row(r, int(family), reps, rep);
        row["family_index"] = int(family);
        row["repetitions"] = reps;
        row["repetition_index"] = rep;
        if (r.measured) any_measured = true;
        if (r.measured && r.verdict != "clean") any_violation = true;
        if (!r.measured && r.verdict.rfind("error", 0) == 0) any_violation = true;
        const repro_spec spec = spec_for(a, r, rc.seed);
        if (const std::string path = print_violations(r, spec, rc.executable, a.repro_dir, tty); !path.empty()) {
          row["repro_command"] = repro_command(spec, rc.executable);
          row["repro_file"] = path;
        }
        doc["benchmarks"].push_back(std::move(row));
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
  if (!any_measured) {
    // One line saying why (the table above has the rows): each distinct
    // backend and reason once, e.g. "uring-owned: io_uring_setup: EPERM (...)".
    std::string why;
    for (const auto& r : rows) {
      const std::string item = fmt::format("{}: {}", r.backend, r.verdict);
      if (why.find(item) == std::string::npos) why += (why.empty() ? "" : "; ") + item;
    }
    fmt::print(stderr, "ringside: nothing could run here: {}\n", why.empty() ? "no rows" : why);
    return k_exit_unsupported;
  }
  return k_exit_ok;
}


// ringside repro FILE | --backend B --scenario S --seed N [params]: runs one
// cell in this process, prints what it finds and how to run it again.
struct repro_args {
  run_args run;  // backend, scenario, seed, params, detectors, timeout, repro_dir
  std::string file;
  std::string json_out;  // check's children: the whole outcome goes here, no repro file
};

int repro_command_main(repro_args ra, const std::vector<std::string>& argv) {
  std::optional<loaded_repro> from;
  run_args& a = ra.run;
  if (!ra.file.empty()) {
    if (!a.backends.empty() || a.scenario != "*" || !a.seed.empty())
      throw usage_error("repro: give a repro FILE or --backend/--scenario/--seed, not both");
    from = load_repro(ra.file);
    a.backends = from->spec.backend;
    a.scenario = from->spec.scenario;
    a.seed = fmt::format("{}", from->spec.seed);
    auto fields = param_fields(a);
    for (const auto& [k, v] : from->spec.args) {
      auto it = std::find_if(fields.begin(), fields.end(), [&](const auto& f) { return f.first == k; });
      if (it == fields.end()) throw usage_error(fmt::format("repro file {}: unknown parameter \"{}\"", ra.file, k));
      *it->second = v;
    }
    a.detectors = from->spec.detectors;
    if (a.timeout.empty()) a.timeout = from->spec.timeout;
    for (const auto& p : from->spec.plugins) load_plugin(p);
  }
  if (a.backends.empty() || a.scenario == "*") throw usage_error("repro: needs a repro FILE, or --backend and --scenario");
  const backend_info& b = backend_named(a.backends);
  const scenario_info* s = find_scenario(a.scenario);
  if (s == nullptr) throw usage_error(fmt::format("--scenario '{}': unknown scenario (see 'ringside list scenarios')", printable(a.scenario)));
  const param_overrides o = parse_overrides(a);
  run_options ropt;
  ropt.timeout_s = parse_timeout(a, o);
  if (ra.json_out.empty()) note_scenario_fault();
  else (void)scenario_fault_setting();  // a malformed value: one line, exit 2 (run and check said so first)
  if (a.detectors.empty()) a.detectors = std::string(k_safety_detectors);
  apply_detectors("--detectors", a.detectors, ropt);
  params p = resolve_params(*s, o);
  p.uring = select_backend_opts("--backend-opt", a.backend_opt, {&b});
  check_resources(*s, p, *s->make(p), ropt);  // usage_error for values the scenario refuses
  if (std::any_of(s->uses.begin(), s->uses.end(), [](const param_use& u) { return u.param == "conns"; }))
    check_fd_limit("--conns", p.conns);
  if (!ra.json_out.empty()) probe_output("--json-out", ra.json_out);
  else if (a.repro_dir_given) probe_repro_dir(a.repro_dir);

  const uint64_t seed = o.seed.value_or(1);
  const std::string exe = argv.empty() ? "ringside" : argv[0];
  run_result r = run_scenario(b, *s, p, ropt);
  repro_spec spec = spec_for(a, r, seed);
  spec.detectors = a.detectors;

  if (!ra.json_out.empty()) {
    // check's child: everything goes to the file; check prints and decides.
    auto doc = repro_document(spec, exe, r.verdict, r.violations);
    doc["result"] = result_row(r, 0, 1, 0);
    write_json_atomic(ra.json_out, doc);
    return r.violations.empty() ? k_exit_ok : k_exit_violations;
  }
  print_violations(r, spec, exe, a.repro_dir, false);
  fmt::print("{}: {}\n", r.name, r.verdict);
  if (from) {
    std::vector<std::string> kinds;
    for (const auto& v : r.violations)
      if (std::find(kinds.begin(), kinds.end(), v.kind) == kinds.end()) kinds.push_back(v.kind);
    bool same = kinds.size() == from->kinds.size();
    for (const auto& k : from->kinds) same = same && std::find(kinds.begin(), kinds.end(), k) != kinds.end();
    if (r.violations.empty()) fmt::print("not reproduced: the run was clean (recorded: {})\n", from->verdict);
    else if (same) fmt::print("reproduced: {}\n", r.verdict);
    else fmt::print("reproduced with different kinds: recorded {}, now {}\n", from->verdict, r.verdict);
  }
  std::fflush(stdout);
  if (!r.measured && r.verdict.rfind("unsupported", 0) == 0) return k_exit_unsupported;
  if (!r.measured) return k_exit_violations;
  return r.violations.empty() ? k_exit_ok : k_exit_violations;
}

struct check_args {
  std::string backends, scenario = "cancel.*", iterations, seed = "1", timeout = "60", expected, repro_dir = "ringside-repros",
                        out, jobs, backend_opt;
  bool repro_dir_given = false;
};

int check_command(const check_args& a, const std::vector<std::string>& argv) {
  check_options o;
  o.backends = select_backends(a.backends);
  o.scenarios = select_scenarios(a.scenario);
  o.seed = parse_count("--seed", a.seed, 0, UINT64_MAX);
  if (!a.iterations.empty()) {
    (void)parse_count("--iterations", a.iterations, 1, 1ull << 40);
    o.iterations = a.iterations;
  }
  (void)select_backend_opts("--backend-opt", a.backend_opt, o.backends);
  o.backend_opt = a.backend_opt;
  (void)parse_seconds("--timeout", a.timeout, 86400);
  o.timeout = a.timeout;
  o.expected_path = a.expected.empty() ? std::string(RINGSIDE_SOURCE_DIR) + "/tests/safety/expected.tsv" : a.expected;
  o.repro_dir = a.repro_dir;
  o.out = a.out;
  const long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  o.jobs = a.jobs.empty() ? unsigned(std::max(1L, cpus)) : unsigned(parse_count("--jobs", a.jobs, 1, 256));
  // The children are this very binary: the same build, the same backends.
  o.exe = self_exe();
  o.exe_shown = argv.empty() ? "ringside" : argv[0];
  if (!o.out.empty()) probe_output("--out", o.out);
  if (a.repro_dir_given) probe_repro_dir(o.repro_dir);
  probe_tmpdir();
  note_scenario_fault();
  if (std::getenv("RINGSIDE_FAULT") != nullptr)
    fmt::print(stderr, "ringside: note: RINGSIDE_FAULT={} is set: test-only contract faults are switched on\n",
               std::getenv("RINGSIDE_FAULT"));
  const int rc = run_check(o);
  if (const int sig = g_signal.load()) return 128 + sig;
  return rc;
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
  // --plugin PATH (repeatable) on list, run, repro and check: backends from a
  // shared object (harness/plugin_api.hpp). Only one subcommand is parsed,
  // so they share one list.
  std::vector<std::string> plugin_paths;
  const char* plugin_help = "Load backends from this plugin (a shared object; repeatable; see README: Plugins)";
  list->add_option("--plugin", plugin_paths, plugin_help)->allow_extra_args(false);

  auto* run = app.add_subcommand("run", "Run scenarios on backends and write results JSON");
  run_args ra;
  run->add_option("--backend,-b", ra.backends, "Comma-separated backends, or all (the default)");
  run->add_option("--scenario,-s", ra.scenario, "Scenario glob(s), comma-separated (default: *)");
  run->add_option("--repetitions,-r", ra.repetitions, "Repetitions per combination (aggregates when > 1)");
  run->add_option("--out,-o", ra.out, "Results JSON (Google Benchmark schema), written atomically");
  add_param_options(run, ra);
  run->add_option("--plugin", plugin_paths, plugin_help)->allow_extra_args(false);
  run->add_option("--repro-dir", ra.repro_dir, "Where repro files of rows with violations go (default ringside-repros)");
  run->add_option("--isolate", ra.isolate,
                  "Run each row in a child process so a crash or hang costs only that row: all (default), "
                  "plugins (only plugin backends' rows), none (all in this process)");
  run->footer("Exit: 0 ok, 1 a row had violations, an error, crashed or hung, 2 bad usage (one line on stderr),\n"
              "77 nothing could run here, 130/143 interrupted by SIGINT/SIGTERM (the rows so far are written).\n"
              "stdout: the results table and 'results: PATH'; stderr: everything else (README: Output discipline).");

  auto* repro = app.add_subcommand("repro", "Run one backend x scenario x seed again (from a repro FILE or flags)");
  repro_args rpa;
  repro->add_option("file", rpa.file, "A repro JSON file written by run, check or repro");
  repro->add_option("--backend,-b", rpa.run.backends, "Backend");
  repro->add_option("--scenario,-s", rpa.run.scenario, "Scenario (exact name)");
  add_param_options(repro, rpa.run);
  repro->add_option("--plugin", plugin_paths, plugin_help)->allow_extra_args(false);
  repro->add_option("--repro-dir", rpa.run.repro_dir, "Where the repro file goes when violations are found");
  repro->add_option("--json-out", rpa.json_out, "Write the outcome as JSON here (used by check)")->group("");
  repro->footer("Detectors default to canary,exactly-once (the ledger and watchdog are always on).\n"
                "Exit: 0 clean, 1 violations (reproduced), 2 bad usage, 77 unsupported here.");

  auto* check = app.add_subcommand("check", "Run the safety suite and compare verdicts with the expected table");
  check_args ca;
  check->add_option("--backend,-b", ca.backends, "Comma-separated backends (default: all)");
  check->add_option("--scenario,-s", ca.scenario, "Scenario glob(s), comma-separated (default: cancel.*)");
  check->add_option("--iterations", ca.iterations, "Rounds per scenario (default: each scenario's own)");
  check->add_option("--backend-opt", ca.backend_opt, "io_uring features for the io_uring cells (README: Backend options)")
      ->multi_option_policy(CLI::MultiOptionPolicy::Join)->delimiter(',');
  check->add_option("--seed", ca.seed, "Seed of every cell's schedule (default 1)");
  check->add_option("--timeout", ca.timeout, "Seconds per cell before it is a hang (default 60)");
  check->add_option("--expected", ca.expected, "Expected-verdict table (default: tests/safety/expected.tsv)");
  check->add_option("--repro-dir", ca.repro_dir, "Where repro files go (default ringside-repros)");
  check->add_option("--out,-o", ca.out, "Also write every cell's result as results JSON");
  check->add_option("--jobs,-j", ca.jobs, "Cells run at once (default: number of CPUs)");
  check->add_option("--plugin", plugin_paths, plugin_help)->allow_extra_args(false);
  check->footer("Exit: 0 every cell as expected, 1 some cell differs, 2 bad usage, 77 no cell could run here.\n"
                "Cells of a backend unavailable here (e.g. io_uring refused) show 'unavailable' and do not fail.");

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

  // An explicit --repro-dir is checked before anything runs; the default
  // (./ringside-repros) only when a violation needs it.
  ra.repro_dir_given = run->count("--repro-dir") > 0;
  rpa.run.repro_dir_given = repro->count("--repro-dir") > 0;
  ca.repro_dir_given = check->count("--repro-dir") > 0;
  try {
    for (const auto& p : plugin_paths) load_plugin(p);
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
    if (*repro) {
      install_interrupt_handlers();
      raise_fd_limit();
      return repro_command_main(rpa, args);
    }
    if (*check) {
      install_interrupt_handlers();
      return check_command(ca, args);
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
