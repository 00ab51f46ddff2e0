// Meters: syscalls, payload copies (user and kernel), heap allocations, CPU.
//
// Counters are per thread (a relaxed atomic the owning thread bumps without a
// locked instruction) and summed on read, so the blocking backend's hundreds of
// threads do not contend on one cache line. Threads that exit fold their counts
// into a global total, so nothing is lost when a stream thread ends.
//
// RINGSIDE_INSTRUMENTATION (CMake option, default 1): 0 compiles the per-op
// instrumentation out. The count_* calls below become empty inline functions
// (their call sites vanish), read() returns zeros, the per-op latency record
// (latency_recorder, harness/histogram.hpp) does nothing, and results mark the
// figures as not measured (context.instrumentation: false, figures absent).
// It exists to measure what the instrumentation costs
// (scripts/bench-instrumentation); tests only build with it on.
#pragma once

#ifndef RINGSIDE_INSTRUMENTATION
#define RINGSIDE_INSTRUMENTATION 1
#endif

#include <cstddef>
#include <cstdint>
#include <span>

namespace ringside {

// True when the per-op instrumentation is compiled in.
inline constexpr bool k_instrumentation = RINGSIDE_INSTRUMENTATION != 0;

namespace meters {

struct snapshot {
  uint64_t syscalls = 0;
  uint64_t user_copy_bytes = 0;    // bytes copied by ringside code (copy_payload)
  uint64_t kernel_copy_bytes = 0;  // bytes the kernel copied to/from user memory
  uint64_t allocs = 0;             // operator new calls

  snapshot operator-(const snapshot& o) const noexcept {
    return {syscalls - o.syscalls, user_copy_bytes - o.user_copy_bytes,
            kernel_copy_bytes - o.kernel_copy_bytes, allocs - o.allocs};
  }
};

#if RINGSIDE_INSTRUMENTATION
void count_syscall(uint64_t n = 1) noexcept;
void count_kernel_copy(uint64_t bytes) noexcept;
// Called by the counting operator new (harness/alloc_counter.cpp).
void count_alloc() noexcept;
void count_user_copy(uint64_t bytes) noexcept;  // only copy_payload calls this
#else
inline void count_syscall(uint64_t = 1) noexcept {}
inline void count_kernel_copy(uint64_t) noexcept {}
inline void count_alloc() noexcept {}
inline void count_user_copy(uint64_t) noexcept {}
#endif

// Sum over every thread, live or exited.
snapshot read() noexcept;

// True when the counting operator new is linked in (tests check it is).
// Always false without instrumentation.
bool alloc_counting_active() noexcept;

}  // namespace meters

// The one function through which ringside copies payload. Anything else that
// copies payload makes the copy-count report lie. Returns bytes copied
// (min of both sizes).
// Borrowed: dst and src only for the duration of the call.
size_t copy_payload(std::span<std::byte> dst, std::span<const std::byte> src) noexcept;

// CPU time and context switches of the whole process (getrusage RUSAGE_SELF).
struct cpu_usage {
  double user_s = 0;
  double sys_s = 0;
  uint64_t ctx_switches = 0;  // voluntary + involuntary

  cpu_usage operator-(const cpu_usage& o) const noexcept {
    return {user_s - o.user_s, sys_s - o.sys_s, ctx_switches - o.ctx_switches};
  }
};
cpu_usage read_cpu_usage() noexcept;

}  // namespace ringside
