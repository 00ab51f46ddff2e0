#include "harness/check.hpp"

#include "harness/backend_opts.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "harness/parse.hpp"
#include "harness/plugin.hpp"
#include "harness/repro.hpp"
#include "harness/results.hpp"
#include "harness/tempdir.hpp"

extern char** environ;

namespace ringside {

namespace {

// ------------------------------------------------------------ the table ----

std::vector<std::string> words(std::string_view line) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
    if (j > i) out.emplace_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

bool valid_kind(std::string_view k) {
  return !k.empty() && k.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") == std::string_view::npos;
}

expectation parse_cell(std::string_view cell, const std::string& where) {
  expectation e;
  e.text = std::string(cell);
  if (cell == "clean") {
    e.clean = true;
    return e;
  }
  if (cell == "unsupported") {
    e.unsupported = true;
    return e;
  }
  for (const auto& part : split_list(where, cell)) {
    const bool opt = part.front() == '?';
    const std::string k = opt ? part.substr(1) : part;
    if (!valid_kind(k) || k == "clean" || k == "unsupported")
      throw usage_error(fmt::format("{}: '{}': expected clean, unsupported, or violation kinds (a-z0-9_, "
                                    "comma-separated, ?kind for optional)",
                                    where, cell));
    (opt ? e.optional : e.required).push_back(k);
  }
  if (e.required.empty())
    throw usage_error(fmt::format("{}: '{}': at least one kind must be required (use clean otherwise)", where, cell));
  return e;
}

// ------------------------------------------------------------- children ----

struct child {
  size_t cell = 0;
  pid_t pid = -1;
  clock_type::time_point started;
  std::string json_path, err_path;
  bool killed = false;
  // The child's own directories, removed with everything in them once it is
  // reaped, however it ended (a crash, a hang killed with SIGKILL, an
  // interrupt): tmp is its TMPDIR and holds its JSON and stderr files; dir,
  // when the cell has --dir D, is a subdirectory of D passed as its --dir.
  std::unique_ptr<temp_dir> tmp, dir;
  clock_type::time_point term_sent{};  // when SIGTERM was forwarded (interrupt)
};

// Makes the child's directories and file names (before spawn_child).
void prepare_child(child& ch, const repro_spec& spec) {
  try {
    ch.tmp = std::make_unique<temp_dir>();
  } catch (const std::system_error& e) {
    // e.what() is "<parent>: <strerror>": a missing or unwritable $TMPDIR.
    throw usage_error(fmt::format("temp dir ($TMPDIR or /tmp) {}", e.what()));
  }
  ch.json_path = ch.tmp->file("result.json");
  ch.err_path = ch.tmp->file("stderr.txt");
  for (const auto& [k, v] : spec.args)
    if (k == "dir") {
      try {
        ch.dir = std::make_unique<temp_dir>(v);
      } catch (const std::system_error&) {
        // The child reports the bad --dir itself (one line, exit 2).
      }
    }
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void add_kind(std::vector<std::string>& kinds, std::string k) {
  if (std::find(kinds.begin(), kinds.end(), k) == kinds.end()) kinds.push_back(std::move(k));
}

// The first line of stderr that says what went wrong, for a crash's detail.
std::string first_error_line(const std::string& err) {
  std::istringstream in(err);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("ringside: note:", 0) == 0) continue;  // notes explain nothing
    else if (line.find("ERROR") != std::string::npos || line.find("WARNING") != std::string::npos ||
        line.find("runtime error") != std::string::npos || line.find("ringside:") != std::string::npos)
      return line;
  return {};
}

struct cell_state {
  const scenario_info* scenario = nullptr;
  const backend_info* backend = nullptr;
  repro_spec spec;
  cell_outcome outcome;
  std::vector<violation> violations;
  nlohmann::json row;  // the child's results row, when it wrote one
  bool done = false;
  std::string repro_path;
};

// Classifies what the child left: its JSON (verdict, violations), its stderr
// (sanitizer reports) and how it ended.
void settle(cell_state& c, const child& ch, int status) {
  const std::string err = read_file(ch.err_path);
  const std::string js = read_file(ch.json_path);
  nlohmann::json doc;
  bool have_doc = false;
  if (!js.empty()) {
    try {
      doc = nlohmann::json::parse(js);
      have_doc = doc.is_object() && doc.contains("verdict");
    } catch (...) {
    }
  }
  auto& o = c.outcome;
  if (have_doc) {
    o.verdict = doc["verdict"].get<std::string>();
    o.unsupported = o.verdict.rfind("unsupported", 0) == 0;
    for (const auto& v : doc.value("violations", nlohmann::json::array())) {
      violation x{v.value("kind", ""), v.value("detail", ""), v.value("op", ""), v.value("range", "")};
      add_kind(o.kinds, x.kind);
      c.violations.push_back(std::move(x));
    }
    if (doc.contains("result")) c.row = doc["result"];
  }
  // Sanitizer reports: ASan (and UBSan in the asan build) abort the child at
  // the first report; TSan reports and goes on (exit code 66 at the end).
  auto san = [&](std::string_view needle, const char* kind) {
    if (err.find(needle) == std::string::npos) return;
    add_kind(o.kinds, kind);
    const size_t at = err.find(needle);
    const size_t eol = err.find('\n', at);
    c.violations.push_back({kind, err.substr(at, eol == std::string::npos ? std::string::npos : eol - at)});
  };
  san("ERROR: AddressSanitizer", "asan");
  san("ERROR: LeakSanitizer", "asan");
  san("WARNING: ThreadSanitizer", "tsan");
  san("runtime error:", "ubsan");
  if (ch.killed) {
    add_kind(o.kinds, "hang");
    c.violations.push_back({"hang", "its process outlived the timeout (watchdog + slack) and was killed"});
  } else if (!have_doc) {
    // No result and no sanitizer to explain it: a crash (or a usage error).
    const bool sanitized = !o.kinds.empty();
    if (!sanitized) {
      std::string how = WIFSIGNALED(status) ? fmt::format("killed by signal {} ({})", WTERMSIG(status),
                                                          ::strsignal(WTERMSIG(status)))
                                            : fmt::format("exit code {}", WEXITSTATUS(status));
      const std::string line = first_error_line(err);
      add_kind(o.kinds, "crashed");
      c.violations.push_back({"crashed", line.empty() ? how : how + ": " + line});
    }
  }
  if (!have_doc || !o.kinds.empty()) {
    if (o.kinds.empty()) o.verdict = "clean";
    else if (!o.unsupported) {
      o.verdict.clear();
      for (const auto& k : o.kinds) o.verdict += (o.verdict.empty() ? "" : ",") + k;
    }
  }
  c.done = true;
}

pid_t spawn_child(const std::string& exe, const repro_spec& spec, child& ch) {
  std::vector<std::string> args = {exe, "repro", "--backend", spec.backend, "--scenario", spec.scenario,
                                   "--seed", fmt::format("{}", spec.seed)};
  // The plugin that provides the backend: the child is a fresh process.
  for (const auto& p : spec.plugins) args.insert(args.end(), {"--plugin", p});
  for (const auto& [k, v] : spec.args) {
    args.push_back("--" + k);
    args.push_back(k == "dir" && ch.dir ? ch.dir->path() : v);
  }
  if (spec.detectors != k_safety_detectors) args.insert(args.end(), {"--detectors", spec.detectors});
  if (!spec.timeout.empty()) args.insert(args.end(), {"--timeout", spec.timeout});
  args.insert(args.end(), {"--json-out", ch.json_path});
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, ch.err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  // The child's environment: ours, with the sanitizers told to stop at the
  // first report, whatever the caller's options say (ASan's no-recover
  // build does anyway; TSan would otherwise go on and add ringside's own
  // findings to the verdict only sometimes): one cell, one deterministic
  // verdict. Later flags override earlier ones in *SAN_OPTIONS.
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view kv(*e);
    if (kv.rfind("TSAN_OPTIONS=", 0) == 0 || kv.rfind("ASAN_OPTIONS=", 0) == 0 || kv.rfind("TMPDIR=", 0) == 0)
      continue;
    env.emplace_back(kv);
  }
  auto opts = [](const char* name, const char* add) {
    const char* cur = std::getenv(name);
    return fmt::format("{}={}{}{}", name, cur ? cur : "", cur && *cur ? ":" : "", add);
  };
  env.push_back(opts("TSAN_OPTIONS", "halt_on_error=1"));
  env.push_back(opts("ASAN_OPTIONS", "halt_on_error=1"));
  if (ch.tmp) env.push_back("TMPDIR=" + ch.tmp->path());
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::system_error(rc, std::generic_category(), "posix_spawn " + exe);
  return pid;
}

// A results row for a cell whose child wrote none (crash, sanitizer abort).
nlohmann::json error_row(const cell_state& c, size_t family) {
  const std::string name = fmt::format("{}/backend:{}", c.spec.scenario, c.spec.backend);
  auto vs = nlohmann::json::array();
  for (const auto& v : c.violations) vs.push_back(violation_json(v));
  return {{"name", name}, {"run_name", name}, {"run_type", "iteration"}, {"repetitions", 1},
          {"repetition_index", 0}, {"family_index", family}, {"per_family_instance_index", 0},
          {"threads", 1}, {"iterations", 0}, {"real_time", 0}, {"cpu_time", 0}, {"time_unit", "ns"},
          {"backend", c.spec.backend}, {"scenario", c.spec.scenario}, {"verdict", c.outcome.verdict},
          {"violations", c.violations.size()}, {"violation_details", vs}, {"error_occurred", true},
          {"error_message", c.outcome.verdict}};
}

std::string shorten(std::string s, size_t w) {
  if (s.size() <= w) return s;
  return s.substr(0, w - 1) + "~";
}

// Ends a running child: SIGTERM, up to k_term_grace for it to wind down,
// then SIGKILL; always reaps it. Returns its wait status.
constexpr auto k_term_grace = std::chrono::seconds(5);
int stop_child(child& ch) {
  int status = 0;
  if (ch.term_sent == clock_type::time_point{}) {
    ::kill(ch.pid, SIGTERM);
    ch.term_sent = clock_type::now();
  }
  for (;;) {
    const pid_t r = ::waitpid(ch.pid, &status, WNOHANG);
    if (r == ch.pid || (r < 0 && errno != EINTR)) return status;
    if (clock_type::now() - ch.term_sent > k_term_grace) {
      ::kill(ch.pid, SIGKILL);
      while (::waitpid(ch.pid, &status, 0) < 0 && errno == EINTR) {
      }
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace

// ------------------------------------------------------------ the table ----

expected_table expected_table::parse(std::string_view text, const std::string& origin) {
  expected_table t;
  size_t lineno = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t eol = std::min(text.find('\n', pos), text.size());
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++lineno;
    if (const size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    const auto w = words(line);
    if (w.empty()) continue;
    const std::string where = fmt::format("{}:{}", origin, lineno);
    if (w.size() < 3 || w.size() > 5)
      throw usage_error(fmt::format("{}: expected `scenario backend release [asan [tsan]]`, got {} fields", where,
                                    w.size()));
    row r{w[0], w[1], parse_cell(w[2], where), {}, {}};
    r.asan = (w.size() > 3 && w[3] != "=") ? parse_cell(w[3], where) : r.release;
    r.tsan = (w.size() > 4 && w[4] != "=") ? parse_cell(w[4], where) : r.release;
    for (const auto& x : t.rows_)
      if (x.scenario == r.scenario && x.backend == r.backend)
        throw usage_error(fmt::format("{}: a second line for {} x {}", where, r.scenario, r.backend));
    t.rows_.push_back(std::move(r));
  }
  return t;
}

expected_table expected_table::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw usage_error(fmt::format("expected-verdict table {}: cannot open: {}", path, std::strerror(errno)));
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), path);
}

const expectation* expected_table::find(std::string_view scenario, std::string_view backend,
                                        std::string_view build) const {
  for (const auto& r : rows_) {
    if (r.scenario != scenario || r.backend != backend) continue;
    if (build == "asan") return &r.asan;
    if (build == "tsan") return &r.tsan;
    return &r.release;
  }
  return nullptr;
}

bool matches(const expectation& e, const cell_outcome& o) {
  if (e.unsupported) return o.unsupported;
  if (o.unsupported) return false;
  if (e.clean) return o.kinds.empty();
  for (const auto& k : e.required)
    if (std::find(o.kinds.begin(), o.kinds.end(), k) == o.kinds.end()) return false;
  for (const auto& k : o.kinds) {
    const bool listed = std::find(e.required.begin(), e.required.end(), k) != e.required.end() ||
                        std::find(e.optional.begin(), e.optional.end(), k) != e.optional.end();
    if (!listed) return false;
  }
  return true;
}

// ------------------------------------------------------------- the run ----

int run_check(const check_options& o) {
  const expected_table table = expected_table::load(o.expected_path);
  const std::string build(build_flavour());

  std::vector<cell_state> cells;
  for (const auto* s : o.scenarios)
    for (const auto* b : o.backends) {
      cell_state c;
      c.scenario = s;
      c.backend = b;
      c.spec.backend = b->name;
      c.spec.scenario = s->name;
      c.spec.seed = o.seed;
      if (!o.iterations.empty()) c.spec.args.emplace_back("ops", o.iterations);
      if (!o.backend_opt.empty() && honours_backend_opts(b->name)) c.spec.args.emplace_back("backend-opt", o.backend_opt);
      c.spec.timeout = o.timeout;
      if (const loaded_plugin* p = plugin_of(b->name)) c.spec.plugins.push_back(p->path);
      cells.push_back(std::move(c));
    }

  const double timeout_s = parse_seconds("--timeout", o.timeout, 86400);
  // 30 s past the cell's own watchdog: its teardown is bounded (2 s per
  // loop) but sanitizer builds are slow to start and to exit.
  const auto kill_after = std::chrono::duration_cast<clock_type::duration>(
      std::chrono::duration<double>(timeout_s + 30.0));

  fmt::print("ringside check: {} scenario(s) x {} backend(s), build {}, seed {}, expected verdicts {}\n",
             o.scenarios.size(), o.backends.size(), build, o.seed, o.expected_path);
  std::fflush(stdout);

  run_context rc;
  rc.seed = o.seed;
  rc.executable = o.exe_shown;
  nlohmann::json results = {{"context", make_context(rc)}, {"benchmarks", nlohmann::json::array()}};

  std::vector<child> running;
  size_t next = 0;
  const unsigned jobs = std::max(1u, o.jobs);
  const bool tty = ::isatty(STDERR_FILENO);
  size_t finished = 0;
  while ((next < cells.size() || !running.empty()) && !interrupted().load()) {
    while (running.size() < jobs && next < cells.size()) {
      child ch;
      ch.cell = next++;
      prepare_child(ch, cells[ch.cell].spec);
      ch.pid = spawn_child(o.exe, cells[ch.cell].spec, ch);
      ch.started = clock_type::now();
      running.push_back(std::move(ch));
    }
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      auto it = std::find_if(running.begin(), running.end(), [&](const child& c) { return c.pid == pid; });
      if (it == running.end()) continue;  // not ours
      cell_state& c = cells[it->cell];
      settle(c, *it, status);
      running.erase(it);  // removes its directories
      ++finished;
      if (tty) fmt::print(stderr, "\r\033[K[{}/{}] {} {}: {}", finished, cells.size(), c.spec.scenario,
                          c.spec.backend, c.outcome.verdict);
      if (!o.out.empty()) {
        const size_t family = size_t(&c - cells.data());
        results["benchmarks"].push_back(c.row.is_object() ? c.row : error_row(c, family));
        write_json_atomic(o.out, results);  // after every cell: an interrupted check keeps what it ran
      }
      continue;
    }
    const auto now = clock_type::now();
    for (auto& ch : running)
      if (!ch.killed && now - ch.started > kill_after) {
        ::kill(ch.pid, SIGKILL);
        ch.killed = true;
      }
    // 5 ms: cells take tens of milliseconds to seconds; polling this often
    // costs nothing and keeps the suite's wall time tight.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (tty) fmt::print(stderr, "\r\033[K");
  if (interrupted().load()) {
    // Interrupted: the cells still running are told to stop (they wind down
    // as `repro` does on SIGTERM and remove what they made), killed if they
    // do not within the grace time, and reaped; their directories go with
    // them.
    for (auto& ch : running) {
      ::kill(ch.pid, SIGTERM);  // all at once: one grace period, not one per cell
      ch.term_sent = clock_type::now();
    }
    for (auto& ch : running) stop_child(ch);
    running.clear();
  }

  // ---- the table: scenarios down, backends across ----
  // Cell texts first, so each column is as wide as its longest verdict
  // (capped: longer verdicts are listed in full below the table).
  std::vector<const cell_state*> mismatched, violating;
  std::vector<std::string> texts(cells.size());
  // Cells of a backend this machine cannot run (io_uring refused by a
  // seccomp profile or kernel.io_uring_disabled, RLIMIT_MEMLOCK, an old
  // kernel) say nothing about the backend: shown "unavailable", not counted
  // as mismatches, counted in the summary with the reason. A check in which
  // every cell is unavailable exits 77, as run does.
  size_t unavailable = 0;
  std::string unavailable_why;
  for (size_t i = 0; i < cells.size(); ++i) {
    const cell_state& c = cells[i];
    if (!c.done) {
      texts[i] = "(not run)";
      continue;
    }
    if (c.outcome.unsupported && c.backend->unavailable_reason) {
      if (const std::string why = c.backend->unavailable_reason(); !why.empty()) {
        texts[i] = "unavailable";
        ++unavailable;
        const std::string item = fmt::format("{}: {}", c.spec.backend, why);
        if (unavailable_why.find(item) == std::string::npos)
          unavailable_why += (unavailable_why.empty() ? "" : "; ") + item;
        continue;
      }
    }
    const expectation* e = table.find(c.spec.scenario, c.spec.backend, build);
    static const expectation clean_expected{.clean = true, .text = "clean (no line in the table)"};
    // A plugin backend the table does not know may also be unsupported
    // where its caps say so (a scenario it cannot run has nothing to catch);
    // the table still shows the cell as unsupported.
    const bool ok = e ? matches(*e, c.outcome)
                      : matches(clean_expected, c.outcome) || (c.outcome.unsupported && plugin_of(c.spec.backend));
    texts[i] = c.outcome.unsupported ? "unsupported" : c.outcome.verdict;
    if (!ok) {
      texts[i] = "!! " + texts[i];
      mismatched.push_back(&c);
    }
    if (!c.violations.empty()) violating.push_back(&c);
  }
  // 40: two or three violation kinds side by side still fit a wide terminal.
  constexpr size_t max_cell_w = 40;
  size_t name_w = 8;
  for (const auto* s : o.scenarios) name_w = std::max(name_w, s->name.size());
  std::vector<size_t> col_w(o.backends.size());
  for (size_t bi = 0; bi < o.backends.size(); ++bi) {
    col_w[bi] = o.backends[bi]->name.size();
    for (size_t si = 0; si < o.scenarios.size(); ++si)
      col_w[bi] = std::max(col_w[bi], std::min(max_cell_w, texts[si * o.backends.size() + bi].size()));
  }
  std::string out = fmt::format("\n{:<{}}", "scenario", name_w);
  for (size_t bi = 0; bi < o.backends.size(); ++bi) out += fmt::format("  {:<{}}", o.backends[bi]->name, col_w[bi]);
  out += "\n";
  for (size_t si = 0; si < o.scenarios.size(); ++si) {
    out += fmt::format("{:<{}}", o.scenarios[si]->name, name_w);
    for (size_t bi = 0; bi < o.backends.size(); ++bi)
      out += fmt::format("  {:<{}}", shorten(texts[si * o.backends.size() + bi], max_cell_w), col_w[bi]);
    out += "\n";
  }
  fmt::print("{}", out);

  // ---- repros: every cell with violations, expected or not ----
  if (!violating.empty()) fmt::print("\nrepro commands ({} cell(s) with violations):\n", violating.size());
  for (const cell_state* c : violating) {
    const auto doc = repro_document(c->spec, o.exe_shown, c->outcome.verdict, c->violations);
    std::string path;
    try {
      path = write_repro(o.repro_dir, c->spec, doc);
    } catch (const std::exception& e) {
      path = fmt::format("(not written: {})", e.what());
    }
    fmt::print("  {}\n      file: {}\n", repro_command(c->spec, o.exe_shown), path);
  }

  if (!mismatched.empty()) {
    fmt::print("\nUNEXPECTED ({} cell(s) differ from {}):\n", mismatched.size(), o.expected_path);
    for (const cell_state* c : mismatched) {
      const expectation* e = table.find(c->spec.scenario, c->spec.backend, build);
      fmt::print("  {} x {}: expected {}, got {}\n", c->spec.scenario, c->spec.backend,
                 e ? e->text : "clean (no line in the table)", c->outcome.verdict);
      for (const auto& v : c->violations)
        fmt::print("      [{}] {}{}{}: {}\n", detector_of(v.kind), v.kind, v.op.empty() ? "" : " at " + v.op,
                   v.range.empty() ? "" : " on " + v.range, v.detail);
      fmt::print("      repro: {}\n", repro_command(c->spec, o.exe_shown));
    }
  }
  if (interrupted().load()) {
    fmt::print("\nringside check: interrupted; {} of {} cells ran\n", finished, cells.size());
    return 130;
  }
  fmt::print("\nringside check: {} of {} cells as expected{}{}\n", cells.size() - mismatched.size() - unavailable,
             cells.size(), unavailable == 0 ? "" : fmt::format(", {} unavailable here ({})", unavailable, unavailable_why),
             mismatched.empty() ? "" : " -- FAILED");
  if (!mismatched.empty()) return 1;
  return unavailable == cells.size() ? 77 : 0;
}

run_result result_of(const isolated_outcome& iso, const backend_info& b, const scenario_info& s, const params& p) {
  run_result r;
  r.backend = b.name;
  r.scenario = s.name;
  r.prm = p;
  r.name = iso.row.value("name", fmt::format("{}/backend:{}", s.name, b.name));
  r.verdict = iso.outcome.verdict;
  r.violations = iso.violations;
  r.interrupted = iso.interrupted;
  if (!iso.wrote_result) {
    // A verdict (crashed, hang...) with violations and a repro, no figures;
    // an interrupted child that wrote nothing has neither.
    r.measured = !iso.violations.empty();
    return r;
  }
  const auto& row = iso.row;
  r.measured = !row.value("error_occurred", false);
  r.ops = row.value("iterations", uint64_t{0});
  r.bytes = row.value("bytes", uint64_t{0});
  r.wall_s = row.value("wall_s", 0.0);
  const double ops = double(r.ops);
  r.meter.syscalls = uint64_t(row.value("syscalls_per_op", 0.0) * ops + 0.5);
  r.meter.allocs = uint64_t(row.value("allocs_per_op", 0.0) * ops + 0.5);
  r.meter.user_copy_bytes = uint64_t(row.value("user_copy_bytes_per_op", 0.0) * ops + 0.5);
  r.meter.kernel_copy_bytes = uint64_t(row.value("kernel_copy_bytes_per_op", 0.0) * ops + 0.5);
  r.cpu.user_s = row.value("cpu_user_s", 0.0);
  r.cpu.sys_s = row.value("cpu_sys_s", 0.0);
  r.cpu.ctx_switches = row.value("ctx_switches", uint64_t{0});
  // Each bucket's count at its lower bound: the quantiles come out the same.
  for (const auto& bk : row.value("latency_buckets", nlohmann::json::array()))
    for (uint64_t k = 0, n = bk.at(1).get<uint64_t>(); k < n; ++k) r.latency.record(bk.at(0).get<uint64_t>());
  return r;
}

isolated_outcome run_isolated(const std::string& exe, const repro_spec& spec, double kill_after_s) {
  child ch;
  prepare_child(ch, spec);
  ch.pid = spawn_child(exe, spec, ch);
  ch.started = clock_type::now();
  const auto kill_after =
      std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(kill_after_s));
  int status = 0;
  bool stopped_by_interrupt = false;
  for (;;) {
    const pid_t pid = ::waitpid(ch.pid, &status, WNOHANG);
    if (pid == ch.pid) break;
    if (pid < 0 && errno != EINTR) break;
    if (interrupted().load()) {
      // SIGINT/SIGTERM to us: the child is told too, winds down and writes
      // the row it measured so far (marked interrupted).
      status = stop_child(ch);
      stopped_by_interrupt = true;
      break;
    }
    if (!ch.killed && clock_type::now() - ch.started > kill_after) {
      ::kill(ch.pid, SIGKILL);  // reaped on the next pass
      ch.killed = true;
    }
    // 5 ms: as run_check's poll.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  cell_state c;
  c.spec = spec;
  settle(c, ch, status);
  isolated_outcome out;
  out.stderr_text = read_file(ch.err_path);
  out.wrote_result = c.row.is_object();
  out.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  out.interrupted = stopped_by_interrupt || (out.wrote_result && c.row.value("interrupted", false));
  if (stopped_by_interrupt && !out.wrote_result) {
    // Cut short before it wrote anything: not a crash of the backend.
    c.outcome = cell_outcome{.verdict = "interrupted", .kinds = {}, .unsupported = false};
    c.violations.clear();
  }
  out.row = out.wrote_result ? std::move(c.row) : error_row(c, 0);
  out.outcome = std::move(c.outcome);
  out.violations = std::move(c.violations);
  return out;  // ch's directories are removed here
}

}  // namespace ringside
