// The scenario interface: I/O work written once against the backend interface,
// with typed parameters and defaults, and a registry by name.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <stdexcept>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "harness/backend.hpp"
#include "harness/histogram.hpp"
#include "harness/violation.hpp"

namespace ringside {

enum class verify_mode : uint8_t { sample, full };
std::string_view to_string(verify_mode m) noexcept;

// Every scenario parameter, typed. The CLI fills what the user gave; a
// scenario's defaults fill the rest (see resolve_params).
struct params {
  uint64_t bs = 4096;            // block / message size, bytes
  uint32_t qd = 1;               // ops in flight per file (streams for blocking)
  uint32_t conns = 1;            // TCP connections
  uint64_t size = 64ull << 20;   // file size, bytes
  double duration_s = 1.0;       // time budget (used when ops == 0)
  uint64_t ops = 0;              // op budget; 0 = use duration
  double rate = 0;               // open loop: ops/s over the whole run; 0 = closed loop
  std::string file;              // file scenarios: use this file
  std::string dir;               // file scenarios: create files here
  uint64_t seed = 1;
  verify_mode verify = verify_mode::sample;
  // --backend-opt (harness/backend_opts.hpp): set by the CLI, not a scenario
  // default; the runner passes it on only to backends that honour it.
  uring_features uring;
};

// Which params a scenario uses and which appear in the result's name, e.g.
// {"bs", "msg"} names tcp.echo rows ".../msg:1024".
struct param_use {
  std::string_view param;     // one of: bs qd conns size rate
  std::string_view name_key;  // empty: used, but not part of the name
};

// What the user set on the command line (unset fields take scenario defaults).
struct param_overrides {
  std::optional<uint64_t> bs, size, ops, seed;
  std::optional<uint32_t> qd, conns;
  std::optional<double> duration_s, rate;
  std::optional<std::string> file, dir;
  std::optional<verify_mode> verify;
};

// Per-stream measurements. Each task owns one, so recording needs no lock;
// the runner merges them after the run.
struct stream_stats {
  uint64_t ops = 0;
  uint64_t bytes = 0;
  latency_recorder latency;  // a no-op without RINGSIDE_INSTRUMENTATION
};

// Set from a SIGINT/SIGTERM handler: every running scenario winds down at its
// next keep_going() and the CLI writes what it measured so far.
std::atomic<bool>& interrupted() noexcept;

// Shared by every task of one scenario run.
class run_ctx {
 public:
  run_ctx(const params& p, clock_type::time_point start, clock_type::time_point end)
      : params_(p), start_(start), end_(end) {}

  [[nodiscard]] const params& prm() const noexcept { return params_; }

  // True while the run's time or op budget lasts. Claims one op from the
  // budget when ops > 0, so concurrent streams share it exactly.
  bool keep_going() noexcept { return keep_going_at(params_.ops > 0 ? clock_type::time_point{} : clock_type::now()); }
  // The same, with a clock reading the caller already has (one now() per op).
  bool keep_going_at(clock_type::time_point now) noexcept {
    if (stop_.load(std::memory_order_relaxed) || interrupted().load(std::memory_order_relaxed)) return false;
    if (params_.ops > 0) return claimed_.fetch_add(1, std::memory_order_relaxed) < params_.ops;
    return now < end_;
  }
  void stop() noexcept { stop_.store(true, std::memory_order_relaxed); }
  [[nodiscard]] bool stopped() const noexcept { return stop_.load(std::memory_order_relaxed); }
  [[nodiscard]] clock_type::time_point start_time() const noexcept { return start_; }
  [[nodiscard]] clock_type::time_point end_time() const noexcept { return end_; }

  // A stats block for one stream; address stable for the whole run.
  stream_stats& new_stream();
  // Thread-safe; records a violation and (for data errors) stops the run.
  void report(std::string kind, std::string detail);
  // The same, with the op and buffer range the scenario knows (repro files carry them).
  void report(violation v);

  [[nodiscard]] std::vector<violation> violations() const;
  [[nodiscard]] const std::deque<stream_stats>& streams() const noexcept { return streams_; }

 private:
  params params_;
  clock_type::time_point start_, end_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> claimed_{0};
  mutable std::mutex mu_;
  std::deque<stream_stats> streams_;
  std::vector<violation> violations_;
  uint64_t dropped_violations_ = 0;
};

// Thrown by scenario setup for bad user input (missing dir, file too small):
// the CLI prints it as one line and exits 2.
struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class scenario {
 public:
  virtual ~scenario() = default;

  // Why this backend cannot run this scenario, or empty.
  [[nodiscard]] virtual std::string unsupported_reason(const backend_caps& caps) const {
    (void)caps;
    return {};
  }
  // How many buffers of params.bs bytes the run needs from the pool.
  [[nodiscard]] virtual size_t buffers_needed() const = 0;
  // Untimed setup: files, listening sockets, established connections. Fds the
  // ops will use are adopted by be here. Throws on failure.
  virtual void prepare(backend& be) = 0;
  // Spawns the streams on be. Timing starts just before and ends when be.run()
  // returns.
  virtual void start(backend& be, buffer_pool& pool, run_ctx& ctx) = 0;
  // After the run: check what was moved (read-back of written files, byte
  // counts of both stream ends) and report violations to ctx.
  virtual void verify(run_ctx& ctx) { (void)ctx; }
};

struct scenario_info {
  std::string name;
  std::string checks;            // the rule it checks / what it measures, one line
  params defaults;
  std::vector<param_use> uses;   // params that matter, and which name the row
  std::function<std::unique_ptr<scenario>(const params&)> make;
};

void register_scenario(scenario_info info);
const std::vector<scenario_info>& registered_scenarios();
const scenario_info* find_scenario(std::string_view name);
void register_builtin_scenarios();

// Scenario defaults, overlaid with what the user set.
params resolve_params(const scenario_info& s, const param_overrides& o);
// "tcp.echo/msg:1024/conns:64" style suffix for the result name (without backend).
std::string name_params(const scenario_info& s, const params& p);

}  // namespace ringside
