#include "harness/meters.hpp"

#include <sys/resource.h>

#include <atomic>
#include <cstring>
#include <mutex>

namespace ringside {
namespace meters {

#if RINGSIDE_INSTRUMENTATION
namespace {

struct thread_counters;

// Registry of live threads' counters plus the totals of exited threads.
struct registry {
  std::mutex mu;
  thread_counters* head = nullptr;
  uint64_t retired[3] = {0, 0, 0};
};

registry& reg() {
  // Leaked on purpose: thread_local destructors may run after static
  // destructors at process exit.
  static registry* r = new registry;
  return *r;
}

struct thread_counters {
  std::atomic<uint64_t> syscalls{0};
  std::atomic<uint64_t> user_copy{0};
  std::atomic<uint64_t> kernel_copy{0};
  thread_counters* next = nullptr;
  thread_counters* prev = nullptr;

  thread_counters() {
    auto& r = reg();
    std::lock_guard lk(r.mu);
    next = r.head;
    if (next) next->prev = this;
    r.head = this;
  }
  ~thread_counters() {
    auto& r = reg();
    std::lock_guard lk(r.mu);
    r.retired[0] += syscalls.load(std::memory_order_relaxed);
    r.retired[1] += user_copy.load(std::memory_order_relaxed);
    r.retired[2] += kernel_copy.load(std::memory_order_relaxed);
    if (prev) prev->next = next; else r.head = next;
    if (next) next->prev = prev;
  }
};

thread_counters& local() {
  thread_local thread_counters c;
  return c;
}

// Only the owning thread writes; readers take relaxed loads. No lock prefix.
inline void bump(std::atomic<uint64_t>& a, uint64_t n) noexcept {
  a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

// Allocations are counted with one shared atomic: operator new may run before
// or after this thread's thread_local exists, so no TLS here.
std::atomic<uint64_t> g_allocs{0};
std::atomic<bool> g_alloc_active{false};

}  // namespace

void count_syscall(uint64_t n) noexcept { bump(local().syscalls, n); }
void count_kernel_copy(uint64_t bytes) noexcept { bump(local().kernel_copy, bytes); }
void count_alloc() noexcept {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (!g_alloc_active.load(std::memory_order_relaxed))
    g_alloc_active.store(true, std::memory_order_relaxed);
}
bool alloc_counting_active() noexcept { return g_alloc_active.load(std::memory_order_relaxed); }

snapshot read() noexcept {
  snapshot s;
  auto& r = reg();
  std::lock_guard lk(r.mu);
  s.syscalls = r.retired[0];
  s.user_copy_bytes = r.retired[1];
  s.kernel_copy_bytes = r.retired[2];
  for (auto* c = r.head; c; c = c->next) {
    s.syscalls += c->syscalls.load(std::memory_order_relaxed);
    s.user_copy_bytes += c->user_copy.load(std::memory_order_relaxed);
    s.kernel_copy_bytes += c->kernel_copy.load(std::memory_order_relaxed);
  }
  s.allocs = g_allocs.load(std::memory_order_relaxed);
  return s;
}

void count_user_copy(uint64_t bytes) noexcept { bump(local().user_copy, bytes); }

#else  // !RINGSIDE_INSTRUMENTATION: nothing is counted

snapshot read() noexcept { return {}; }
bool alloc_counting_active() noexcept { return false; }

#endif

}  // namespace meters

size_t copy_payload(std::span<std::byte> dst, std::span<const std::byte> src) noexcept {
  const size_t n = dst.size() < src.size() ? dst.size() : src.size();
  if (n == 0) return 0;
  std::memcpy(dst.data(), src.data(), n);  // the one payload copy site
  meters::count_user_copy(n);
  return n;
}

cpu_usage read_cpu_usage() noexcept {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto secs = [](const timeval& tv) { return double(tv.tv_sec) + double(tv.tv_usec) / 1e6; };
  return {secs(ru.ru_utime), secs(ru.ru_stime),
          static_cast<uint64_t>(ru.ru_nvcsw) + static_cast<uint64_t>(ru.ru_nivcsw)};
}

}  // namespace ringside
