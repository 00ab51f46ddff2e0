// Per-op cost of every registered backend, submit -> complete, measured with
// Google Benchmark (issue 6, item 5): what a backend adds to an op that does
// almost nothing in the kernel, so the backend's own machinery is what is
// timed.
//
// Benchmarks, per backend:
//   nop/<backend>       one nop op after another (blocking: an inline call;
//                       epoll: no syscall at all; io_uring: IORING_OP_NOP)
//   pingpong/<backend>  1-byte send on one end of an AF_UNIX stream pair, then
//                       a 1-byte recv on the other: two real socket ops, the
//                       data always there (no waiting is measured)
// The measurement loop runs inside one task on the backend (batches of
// k_batch ops per KeepRunningBatch); counters:
//   s_per_op        wall time per op (iteration time / ops; 250n = 250 ns)
//   items_per_second ops per second
//   syscalls_per_op meters::count_syscall per op (every backend counts its
//                   own: io_uring_enter included)
//   allocs_per_op   operator new per op (the counting allocator is linked)
// The counts include the task's start and end (one frame, for blocking one
// thread), spread over every op measured.
//
// Exit status: 0 when every benchmark ran; 1 when one reported an error (a
// failed op, a backend that did not finish): the smoke run in ctest
// (label bench-smoke) fails then. Backends unavailable here are skipped
// with the reason, which is not an error.
#include <sys/socket.h>

#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "harness/backend.hpp"
#include "harness/buffer.hpp"
#include "harness/io.hpp"
#include "harness/meters.hpp"
#include "harness/task.hpp"
#include "harness/unique_fd.hpp"

namespace ringside {
namespace {

// 1024 ops per KeepRunningBatch: Google Benchmark's bookkeeping between
// batches stays far below one op's cost.
constexpr uint32_t k_batch = 1024;
// 120 s: a measurement lasts --benchmark_min_time (about 0.5 s by default,
// a few rounds while Google Benchmark sizes it); anything near this is a hang.
constexpr auto k_run_budget = std::chrono::seconds(120);

struct loop_result {
  int32_t error = 0;  // first failed op's result, or 0
  uint64_t ops = 0;
};

// The benchmark loop runs inside the backend's task (on blocking: the
// stream's thread), so a whole measurement is one spawn and one run(): the
// backend's own start/stop costs stay out of the figures. Google
// Benchmark's State is not tied to a thread (one benchmark thread here), and
// real time is what is reported.
task<> nop_loop(backend& be, benchmark::State& state, loop_result& out) {
  io x(be);
  while (state.KeepRunningBatch(k_batch)) {
    for (uint32_t i = 0; i < k_batch; ++i) {
      auto c = co_await x.nop();
      if (c.res < 0) {
        out.error = c.res;
        co_return;
      }
    }
    out.ops += k_batch;
  }
}

// k_batch / 2 round trips per batch: each is two ops.
task<> pingpong_loop(backend& be, benchmark::State& state, int a, int b, buffer& ba, buffer& bb, loop_result& out) {
  io x(be);
  while (state.KeepRunningBatch(k_batch)) {
    for (uint32_t i = 0; i < k_batch / 2; ++i) {
      auto s = co_await x.send(a, std::move(ba), 1);
      ba = std::move(s.buf);
      if (s.res != 1) {
        out.error = s.res < 0 ? s.res : -EIO;
        co_return;
      }
      auto r = co_await x.recv(b, std::move(bb), 1);
      bb = std::move(r.buf);
      if (r.res != 1) {
        out.error = r.res < 0 ? r.res : -EIO;
        co_return;
      }
    }
    out.ops += k_batch;
  }
}

enum class workload { nop, pingpong };

void run_backend(benchmark::State& state, const backend_info* info, workload w) {
  if (info->unavailable_reason) {
    if (auto why = info->unavailable_reason(); !why.empty()) {
      state.SkipWithError(fmt::format("unavailable: {}", why).c_str());
      return;
    }
  }
  // 4 buffers of 4 KiB: two for the ping-pong, room to spare.
  buffer_pool pool(4, 4096);
  std::unique_ptr<backend> be = info->make(backend_options{});
  be->attach_pool(pool);
  unique_fd a, b;
  if (w == workload::pingpong) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      state.SkipWithError("socketpair failed");
      return;
    }
    a = unique_fd(sv[0]);
    b = unique_fd(sv[1]);
    be->adopt(a.get());
    be->adopt(b.get());
  }
  buffer ba = pool.acquire(), bb = pool.acquire();
  loop_result res;
  const meters::snapshot before = meters::read();
  if (w == workload::nop) be->spawn(nop_loop(*be, state, res));
  else be->spawn(pingpong_loop(*be, state, a.get(), b.get(), ba, bb, res));
  const int run_rc = be->run(clock_type::now() + k_run_budget);
  const meters::snapshot d = meters::read() - before;
  be->shutdown();
  if (run_rc != 0) {
    state.SkipWithError("the backend did not finish (watchdog)");
    return;
  }
  if (res.error != 0) {
    state.SkipWithError(fmt::format("an op failed: {}", res.error).c_str());
    return;
  }
  if (res.ops == 0) return;
  const double ops = double(res.ops);
  state.SetItemsProcessed(int64_t(res.ops));
  // The inverse of the op rate: seconds per op, printed with an SI prefix
  // (250n = 250 ns); in JSON, plain seconds.
  state.counters["s_per_op"] = benchmark::Counter(ops, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["syscalls_per_op"] = double(d.syscalls) / ops;
  state.counters["allocs_per_op"] = double(d.allocs) / ops;
}

// Records whether any benchmark reported an error (SkipWithError) that is
// not "unavailable here".
class error_tracking_reporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs)
      if (r.error_occurred && r.error_message.rfind("unavailable: ", 0) != 0) failed_ = true;
    ConsoleReporter::ReportRuns(runs);
  }
  [[nodiscard]] bool failed() const noexcept { return failed_; }

 private:
  bool failed_ = false;
};

}  // namespace
}  // namespace ringside

int main(int argc, char** argv) {
  using namespace ringside;
  register_builtin_backends();
  for (const backend_info& info : registered_backends()) {
    benchmark::RegisterBenchmark(("nop/" + info.name).c_str(), run_backend, &info, workload::nop)->UseRealTime();
    benchmark::RegisterBenchmark(("pingpong/" + info.name).c_str(), run_backend, &info, workload::pingpong)
        ->UseRealTime();
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  error_tracking_reporter reporter;
  // A file reporter too when --benchmark_out is given (JSON for reports).
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  if (!meters::alloc_counting_active()) {
    std::fputs("ringside_bench: the counting allocator is not linked; allocs_per_op is meaningless\n", stderr);
    return 1;
  }
  return reporter.failed() ? 1 : 0;
}
