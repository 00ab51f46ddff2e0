#include "harness/results.hpp"

#include "harness/backend_opts.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <boost/version.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <map>
#include <system_error>

#ifndef RINGSIDE_VERSION
#define RINGSIDE_VERSION "dev"
#endif
#ifndef RINGSIDE_GIT_REV
#define RINGSIDE_GIT_REV ""
#endif
#ifndef RINGSIDE_BUILD_TYPE
#define RINGSIDE_BUILD_TYPE ""
#endif
#ifndef RINGSIDE_SANITIZER_NAME
#define RINGSIDE_SANITIZER_NAME ""
#endif
#ifndef RINGSIDE_URING_VERSION
#define RINGSIDE_URING_VERSION ""
#endif

namespace ringside {

const std::vector<std::string> k_counter_names = {
    "ops_per_second", "bytes_per_second", "p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns",
    "cpu_user_s", "cpu_sys_s", "ctx_switches", "syscalls_per_op", "user_copy_bytes_per_op",
    "kernel_copy_bytes_per_op", "allocs_per_op", "violations",
    // Per payload byte: the copy-count report's axis.
    "user_copies_per_byte", "kernel_copies_per_byte"};

namespace {

std::string iso_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S%z", &tm);
  return buf;
}

std::vector<double> load_avg() {
  double l[3] = {0, 0, 0};
  const int n = ::getloadavg(l, 3);
  return std::vector<double>(l, l + std::max(n, 0));
}

double div0(double a, double b) { return b == 0 ? 0 : a / b; }

}  // namespace

nlohmann::json make_context(const run_context& rc) {
  utsname u{};
  ::uname(&u);
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const std::string build = RINGSIDE_BUILD_TYPE;
  const std::string san = RINGSIDE_SANITIZER_NAME;
  return {
      {"date", iso_now()},
      {"host_name", host},
      {"executable", rc.executable},
      {"num_cpus", ::sysconf(_SC_NPROCESSORS_ONLN)},
      {"mhz_per_cpu", 0},
      {"cpu_scaling_enabled", false},
      {"caches", nlohmann::json::array()},
      {"load_avg", load_avg()},
      {"library_build_type", build == "Debug" ? "debug" : "release"},
      {"kernel", fmt::format("{} {} {}", u.sysname, u.release, u.machine)},
      {"liburing_version", RINGSIDE_URING_VERSION},
      {"boost_version", BOOST_LIB_VERSION},
      {"build_type", build},
      {"sanitizer", san.empty() ? "none" : san},
      {"git_revision", RINGSIDE_GIT_REV},
      {"ringside_version", RINGSIDE_VERSION},
      {"seed", rc.seed},
      {"command_line", rc.argv},
      // false: built with RINGSIDE_INSTRUMENTATION=0, so rows carry no latency,
      // syscall, copy or allocation figures (absent, not zero).
      {"instrumentation", k_instrumentation},
      // The parsed --backend-opt set ({} when none); each row's
      // "backend_options" says which of them were in effect for it.
      {"backend_options", to_json(rc.backend_options)},
  };
}

nlohmann::json violation_json(const violation& v) {
  nlohmann::json j = {{"kind", v.kind}, {"detector", std::string(detector_of(v.kind))}};
  if (!v.op.empty()) j["op"] = v.op;
  if (!v.range.empty()) j["range"] = v.range;
  j["detail"] = v.detail;
  return j;
}

nlohmann::json result_row(const run_result& r, int family_index, int repetitions, int repetition_index) {
  const double ops = double(r.ops);
  const double ns_per_op = div0(r.wall_s * 1e9, ops);
  const double cpu_ns_per_op = div0((r.cpu.user_s + r.cpu.sys_s) * 1e9, ops);
  nlohmann::json j = {
      {"name", r.name},
      {"family_index", family_index},
      {"per_family_instance_index", 0},
      {"run_name", r.name},
      {"run_type", "iteration"},
      {"repetitions", repetitions},
      {"repetition_index", repetition_index},
      {"threads", 1},
      {"iterations", r.ops},
      {"real_time", ns_per_op},
      {"cpu_time", cpu_ns_per_op},
      {"time_unit", "ns"},
  };
  const auto& m = r.meter;
  j["ops_per_second"] = div0(ops, r.wall_s);
  j["bytes_per_second"] = div0(double(r.bytes), r.wall_s);
  // Without instrumentation these are left out: not measured, not zero.
  if constexpr (k_instrumentation) {
    j["p50_ns"] = r.latency.quantile(0.50);
    j["p90_ns"] = r.latency.quantile(0.90);
    j["p99_ns"] = r.latency.quantile(0.99);
    j["p999_ns"] = r.latency.quantile(0.999);
    j["max_ns"] = r.latency.max();
  }
  j["cpu_user_s"] = r.cpu.user_s;
  j["cpu_sys_s"] = r.cpu.sys_s;
  j["ctx_switches"] = r.cpu.ctx_switches;
  if constexpr (k_instrumentation) {
    j["syscalls_per_op"] = div0(double(m.syscalls), ops);
    j["user_copy_bytes_per_op"] = div0(double(m.user_copy_bytes), ops);
    j["kernel_copy_bytes_per_op"] = div0(double(m.kernel_copy_bytes), ops);
    j["allocs_per_op"] = div0(double(m.allocs), ops);
    j["user_copies_per_byte"] = div0(double(m.user_copy_bytes), double(r.bytes));
    j["kernel_copies_per_byte"] = div0(double(m.kernel_copy_bytes), double(r.bytes));
  }
  j["violations"] = r.violations.size();
  j["backend"] = r.backend;
  j["scenario"] = r.scenario;
  // The --backend-opt set in effect for this row (canonical text; "" for none,
  // e.g. a backend that does not honour them). Not part of "name".
  j["backend_options"] = to_string(r.prm.uring);
  j["verdict"] = r.verdict;
  j["bytes"] = r.bytes;
  j["wall_s"] = r.wall_s;
  nlohmann::json params = {{"bs", r.prm.bs},     {"qd", r.prm.qd},       {"conns", r.prm.conns},
                           {"size", r.prm.size}, {"rate", r.prm.rate},   {"duration_s", r.prm.duration_s},
                           {"ops", r.prm.ops},   {"seed", r.prm.seed},   {"verify", to_string(r.prm.verify)}};
  j["params"] = params;
  auto vs = nlohmann::json::array();
  for (const auto& v : r.violations) vs.push_back(violation_json(v));
  j["violation_details"] = vs;
  if constexpr (k_instrumentation) {
    auto buckets = nlohmann::json::array();
    for (auto [lo, n] : r.latency.buckets()) buckets.push_back({lo, n});
    j["latency_buckets"] = buckets;
  }
  if (r.interrupted) j["interrupted"] = true;  // partial: kept, but not aggregated
  if (!r.measured) {
    // Google Benchmark's way to say "this row has no measurement".
    j["error_occurred"] = true;
    j["error_message"] = r.verdict;
  }
  return j;
}

void append_aggregates(nlohmann::json& benchmarks) {
  std::map<std::string, std::vector<const nlohmann::json*>> groups;
  std::vector<std::string> order;
  for (const auto& b : benchmarks) {
    if (b.value("run_type", "") != "iteration" || b.value("error_occurred", false) || b.value("interrupted", false))
      continue;
    const auto name = b.value("run_name", "");
    if (!groups.count(name)) order.push_back(name);
    groups[name].push_back(&b);
  }
  nlohmann::json out = nlohmann::json::array();
  std::vector<std::string> fields = {"real_time", "cpu_time"};
  fields.insert(fields.end(), k_counter_names.begin(), k_counter_names.end());
  for (const auto& name : order) {
    const auto& rows = groups[name];
    if (rows.size() < 2) continue;
    const auto& first = *rows.front();
    for (const char* agg : {"mean", "median", "stddev", "cv"}) {
      nlohmann::json a = {{"name", name + "_" + agg},
                          {"family_index", first["family_index"]},
                          {"per_family_instance_index", 0},
                          {"run_name", name},
                          {"run_type", "aggregate"},
                          {"repetitions", rows.size()},
                          {"threads", 1},
                          {"aggregate_name", agg},
                          {"aggregate_unit", std::string(agg) == "cv" ? "percentage" : "time"},
                          {"iterations", rows.size()},
                          {"time_unit", "ns"},
                          {"backend", first["backend"]},
                          {"scenario", first["scenario"]}};
      for (const auto& f : fields) {
        std::vector<double> xs;
        // A figure a row does not carry (no instrumentation) is not aggregated.
        for (const auto* r : rows)
          if (r->contains(f) && (*r)[f].is_number()) xs.push_back((*r)[f].get<double>());
        if (xs.size() != rows.size()) continue;
        const double n = double(xs.size());
        double mean = 0;
        for (double x : xs) mean += x;
        mean /= n;
        double var = 0;
        for (double x : xs) var += (x - mean) * (x - mean);
        const double sd = xs.size() > 1 ? std::sqrt(var / (n - 1)) : 0;
        std::sort(xs.begin(), xs.end());
        const double med = xs.size() % 2 ? xs[xs.size() / 2] : (xs[xs.size() / 2 - 1] + xs[xs.size() / 2]) / 2;
        double v = 0;
        if (std::string(agg) == "mean") v = mean;
        else if (std::string(agg) == "median") v = med;
        else if (std::string(agg) == "stddev") v = sd;
        else v = mean == 0 ? 0 : sd / mean;
        a[f] = v;
      }
      // A row is clean only if every repetition was.
      std::string verdict = "clean";
      for (const auto* r : rows)
        if ((*r)["verdict"] != "clean") verdict = (*r)["verdict"];
      a["verdict"] = verdict;
      out.push_back(std::move(a));
    }
  }
  for (auto& a : out) benchmarks.push_back(std::move(a));
}

void write_json_atomic(const std::string& path, const nlohmann::json& doc) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::string tmpl = (dir / ("." + target.filename().string() + ".XXXXXX")).string();
  const int fd = ::mkstemp(tmpl.data());
  if (fd < 0) throw std::system_error(errno, std::generic_category(), fmt::format("{}: cannot create temp file", path));
  const std::string text = doc.dump(2) + "\n";
  size_t off = 0;
  while (off < text.size()) {
    const ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      ::close(fd);
      ::unlink(tmpl.c_str());
      throw std::system_error(e, std::generic_category(), fmt::format("{}: write", path));
    }
    off += size_t(n);
  }
  ::fchmod(fd, 0644);
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int e = errno;
    ::unlink(tmpl.c_str());
    throw std::system_error(e, std::generic_category(), fmt::format("{}: fsync/close", path));
  }
  if (::rename(tmpl.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmpl.c_str());
    throw std::system_error(e, std::generic_category(), fmt::format("{}: rename", path));
  }
}

std::string format_table(const std::vector<run_result>& rows) {
  size_t w = 9;
  for (const auto& r : rows) w = std::max(w, r.name.size());
  std::string out = fmt::format("{:<{}}  {:>12} {:>10} {:>9} {:>9} {:>8} {:>8} {:>8}  {}\n", "benchmark", w,
                                "ops/s", "MB/s", "p50 us", "p99 us", "sys/op", "alloc/op", "copy/B", "verdict");
  for (const auto& r : rows) {
  if (!r.measured) {
      out += fmt::format("{:<{}}  {:>12} {:>10} {:>9} {:>9} {:>8} {:>8} {:>8}  {}\n", r.name, w, "-", "-", "-", "-",
                         "-", "-", "-", r.verdict);
      continue;
    }
    const double ops = double(r.ops);
    if constexpr (!k_instrumentation) {  // only ops/s and MB/s were measured
      out += fmt::format("{:<{}}  {:>12.0f} {:>10.1f} {:>9} {:>9} {:>8} {:>8} {:>8}  {}\n", r.name, w,
                         div0(ops, r.wall_s), div0(double(r.bytes), r.wall_s) / 1e6, "-", "-", "-", "-", "-",
                         r.verdict);
      continue;
    }
    out += fmt::format("{:<{}}  {:>12.0f} {:>10.1f} {:>9.2f} {:>9.2f} {:>8.2f} {:>8.2f} {:>8.2f}  {}\n", r.name, w,
                       div0(ops, r.wall_s), div0(double(r.bytes), r.wall_s) / 1e6,
                       double(r.latency.quantile(0.5)) / 1e3, double(r.latency.quantile(0.99)) / 1e3,
                       div0(double(r.meter.syscalls), ops), div0(double(r.meter.allocs), ops),
                       div0(double(r.meter.user_copy_bytes), double(r.bytes)), r.verdict);
  }
  return out;
}

}  // namespace ringside
