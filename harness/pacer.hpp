// Open-loop pacing (--rate) without coordinated omission.
//
// Closed loop (rate 0): each op starts when the previous one ends, and its
// latency is measured from the moment its payload is ready to submit (after
// the sender prepared the chunk). Open loop: the run issues `rate` ops/s in
// total, so each of S streams owns the intended start times
//   t0 + (k * S + index) / rate     (k = 0, 1, 2... its own op count)
// (the index term staggers the streams evenly instead of firing S ops at
// once). Before an op the stream sleeps, with the backend's own timeout op,
// until its intended time; latency is measured from the INTENDED start, so a
// stall delays every op queued behind it and shows up in the percentiles
// instead of silently lowering the request rate (coordinated omission).
//
// Latency ends at the op's last completion, before the data is verified, and
// that one clock reading also serves the next budget check: two clock reads
// per op (closed loop: start and end; open loop: the pacer's and the end).
//
//   pacer pace(ctx, streams, index);
//   for (auto now = clock_type::now(); scen::keep_going(ctx, now);) {
//     const auto slot = co_await pace.next(x);  // x: ringside::io
//     if (!slot) break;                         // intended start after the run's end
//     ... prepare the payload ...
//     const auto t0 = pace.start(*slot);
//     ... the op's transfers ...
//     now = clock_type::now();                  // the last completion
//     ... verify ...
//     st.latency.record(ns_between(t0, now));
//   }
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

#include "harness/io.hpp"
#include "harness/scenario.hpp"

namespace ringside {

class pacer {
 public:
  // Stream `index` of `streams` streams sharing ctx's rate; intended times
  // count from ctx.start_time().
  pacer(const run_ctx& ctx, uint32_t streams, uint32_t index) noexcept
      : t0_(ctx.start_time()), end_(ctx.prm().ops > 0 ? clock_type::time_point::max() : ctx.end_time()),
        rate_(ctx.prm().rate), streams_(streams ? streams : 1), index_(index) {}

  // Closed loop: ready at once, without reading the clock. Open loop:
  // suspends only when the next intended start is still ahead, and yields
  // that start; or nothing when a time-budgeted run ends before it (the
  // stream stops instead of overrunning the end). Lives in the awaiting
  // frame: no heap.
  class awaiter {
   public:
    // Sleeps ns first when ns > 0.
    awaiter(backend& be, std::optional<clock_type::time_point> slot, uint64_t ns) noexcept : slot_(slot) {
      if (ns > 0) sleep_.emplace(be, op{.kind = op_kind::timeout, .timeout_ns = ns, .buf = {}});
    }
    awaiter(const awaiter&) = delete;
    awaiter& operator=(const awaiter&) = delete;

    [[nodiscard]] bool await_ready() const noexcept { return !sleep_; }
    bool await_suspend(std::coroutine_handle<> h) noexcept { return sleep_->await_suspend(h); }
    // A sleep that ends early (error, or a backend waking it) only makes this
    // op early; its latency still counts from its intended start.
    std::optional<clock_type::time_point> await_resume() noexcept {
      if (sleep_) (void)sleep_->await_resume();
      return slot_;
    }

   private:
    std::optional<clock_type::time_point> slot_;
    std::optional<op_awaiter> sleep_;
  };

  [[nodiscard]] awaiter next(io& x) noexcept {
    if (rate_ <= 0) return awaiter(x.get(), clock_type::time_point{}, 0);
    const double at_s = double(k_++ * streams_ + index_) / rate_;
    const auto start = t0_ + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(at_s));
    if (start >= end_) return awaiter(x.get(), std::nullopt, 0);
    const auto now = clock_type::now();
    const uint64_t ns =
        start > now ? uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(start - now).count()) : 0;
    return awaiter(x.get(), start, ns);
  }

  // Where the op's latency counts from, given the slot next() yielded. Call it
  // once the payload is prepared, right before the op's first submit. Closed
  // loop: now; open loop: the intended start (so preparing late counts).
  [[nodiscard]] clock_type::time_point start(clock_type::time_point slot) const noexcept {
    return rate_ > 0 ? slot : clock_type::now();
  }

  [[nodiscard]] bool open_loop() const noexcept { return rate_ > 0; }

 private:
  clock_type::time_point t0_;
  clock_type::time_point end_;  // duration budget's end; max() for an op budget
  double rate_;
  uint64_t streams_;
  uint64_t index_;
  uint64_t k_ = 0;
};

// Nanoseconds from `from` to `to` (0 if `to` is earlier): the latency of an
// op that started (or was meant to start) at `from` and ended at `to`.
inline uint64_t ns_between(clock_type::time_point from, clock_type::time_point to) noexcept {
  const auto d = to - from;
  return d.count() > 0 ? uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()) : 0;
}

}  // namespace ringside
