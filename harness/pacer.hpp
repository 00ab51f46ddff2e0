// Open-loop pacing (--rate) without coordinated omission.
//
// Closed loop (rate 0): each op starts when the previous one ends, and its
// latency is measured from that start. Open loop: the run issues `rate` ops/s
// in total, so each of S streams owns the intended start times
//   t0 + (k * S + index) / rate     (k = 0, 1, 2... its own op count)
// (the index term staggers the streams evenly instead of firing S ops at
// once). Before an op the stream sleeps, with the backend's own timeout op,
// until its intended time; latency is measured from the INTENDED start, so a
// stall delays every op queued behind it and shows up in the percentiles
// instead of silently lowering the request rate (coordinated omission).
//
//   pacer pace(ctx, streams, index);
//   while (ctx.keep_going()) {
//     const auto t0 = co_await pace.next(x);   // x: ringside::io
//     if (!t0) break;                          // intended start after the run's end
//     ... the op ...
//     st.latency.record(ns_since(*t0));
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

  // Suspends only when the next intended start is still ahead; yields the
  // time the op's latency counts from, or nothing when a time-budgeted run
  // ends before that start (the stream stops instead of overrunning the
  // end). Lives in the awaiting frame: no heap.
  class awaiter {
   public:
    awaiter(backend& be, std::optional<clock_type::time_point> start, clock_type::time_point now) noexcept
        : start_(start) {
      if (start && *start > now) {
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(*start - now).count();
        sleep_.emplace(be, op{.kind = op_kind::timeout, .timeout_ns = uint64_t(ns), .buf = {}});
      }
    }
    awaiter(const awaiter&) = delete;
    awaiter& operator=(const awaiter&) = delete;

    [[nodiscard]] bool await_ready() const noexcept { return !sleep_; }
    bool await_suspend(std::coroutine_handle<> h) noexcept { return sleep_->await_suspend(h); }
    // A sleep that ends early (error, or a backend waking it) only makes this
    // op early; its latency still counts from its intended start.
    std::optional<clock_type::time_point> await_resume() noexcept {
      if (sleep_) (void)sleep_->await_resume();
      return start_;
    }

   private:
    std::optional<clock_type::time_point> start_;
    std::optional<op_awaiter> sleep_;
  };

  [[nodiscard]] awaiter next(io& x) noexcept {
    const auto now = clock_type::now();
    if (rate_ <= 0) return awaiter(x.get(), now, now);
    const double at_s = double(k_++ * streams_ + index_) / rate_;
    const auto start = t0_ + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(at_s));
    if (start >= end_) return awaiter(x.get(), std::nullopt, now);
    return awaiter(x.get(), start, now);
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

// Nanoseconds from t to now: the latency of an op that started (or was meant
// to start) at t.
inline uint64_t ns_since(clock_type::time_point t) noexcept {
  const auto d = clock_type::now() - t;
  return d.count() > 0 ? uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()) : 0;
}

}  // namespace ringside
