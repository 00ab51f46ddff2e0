// Sanitizer hooks for memory lent to the kernel: ASan poisoning of lent
// ranges and the TSan "kernel as a fiber" model (DESIGN.md's detectors).
// Everything here compiles to nothing outside the asan / tsan builds
// (RINGSIDE_ASAN / RINGSIDE_TSAN, set per target by CMakeLists.txt).
//
// ASan: a payload op's range is poisoned when its SQE is prepared and
// unpoisoned at its final CQE, if the op still holds its buffer then. User
// code touching a lent buffer — uring-raw hands it back on cancel or drop
// while the kernel holds it — is an ASan report (use-after-poison). The
// kernel's own copies are not checked by ASan (no instrumentation), which is
// what the canary quarantine is for. A buffer going back to its pool with a
// range still poisoned is reported there too (buffer_pool::release), with or
// without a quarantine. Buffers provided to a multishot op (a buffer ring)
// are lent from the moment they are in the ring until a CQE hands them out
// or the ring goes away.
//
// TSan: the kernel, for one op, is a TSan fiber. Lending the buffer releases
// the op's sync object; at the final CQE the loop switches to that fiber
// WITHOUT synchronising, the fiber acquires the lend, accesses the bytes the
// kernel moved (write for read/recv, read for write/send), releases, and the
// loop switches back. Whoever legitimately consumes the completion (the loop,
// while the op still holds its buffer) acquires, so everything after the
// completion is ordered after the kernel's access. A user access between
// lend and final CQE with no such acquire — uring-raw's early hand-back —
// is unordered with the fiber's: a data race report.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "harness/buffer.hpp"

#if RINGSIDE_ASAN
#include <sanitizer/asan_interface.h>
#endif
#if RINGSIDE_TSAN
#include <sanitizer/tsan_interface.h>

#include <algorithm>
#include <cstdio>
// Exported by libtsan (gcc 12 included) but not declared by its header.
extern "C" void __tsan_read_range(void* addr, unsigned long size);
extern "C" void __tsan_write_range(void* addr, unsigned long size);
#endif

namespace ringside::sanitize {

// True in the builds that check buffers lent to the kernel (asan, tsan).
// There, running uring-raw's unsound hand-backs in-process ends the process
// (ASan) or fails it (TSan: exit code 66): tests of ringside's own detectors
// against uring-raw skip with lends_checked_skip, and
// tests/safety/sanitizers_test.cpp runs the negative control in a child.
#if RINGSIDE_ASAN || RINGSIDE_TSAN
inline constexpr bool lends_checked = true;
#else
inline constexpr bool lends_checked = false;
#endif
inline constexpr const char* lends_checked_skip =
    "sanitizer build: uring-raw's early hand-back of a lent buffer is the sanitizer's catch here and ends the "
    "process (tests/safety/sanitizers_test.cpp checks it in a child)";

// ---- ASan ----

// [p, p + n) must not be touched by user code until unpoisoned.
inline void poison(const void* p, size_t n) noexcept {
#if RINGSIDE_ASAN
  ASAN_POISON_MEMORY_REGION(p, n);
#else
  (void)p;
  (void)n;
#endif
}

inline void unpoison(const void* p, size_t n) noexcept {
#if RINGSIDE_ASAN
  ASAN_UNPOISON_MEMORY_REGION(p, n);
#else
  (void)p;
  (void)n;
#endif
}

// Reads the first poisoned byte of [p, p + n), if any: an ASan report that
// names the caller. For memory about to change hands (a buffer going back to
// its pool) that must not still be lent to the kernel.
inline void touch_poisoned(const void* p, size_t n) noexcept {
#if RINGSIDE_ASAN
  if (void* bad = __asan_region_is_poisoned(const_cast<void*>(p), n)) (void)*static_cast<volatile const char*>(bad);
#else
  (void)p;
  (void)n;
#endif
}

// ---- both: the lends of one io_uring loop ----

// What the kernel does with a lent buffer.
enum class kernel_access : uint8_t { reads, writes };

// The lends of one io_uring loop's op slots, indexed by slot. Single-threaded
// (the loop's thread); allocates only when a slot is first lent, never per op
// in steady state.
class kernel_lends {
 public:
  kernel_lends() = default;
  kernel_lends(const kernel_lends&) = delete;
  kernel_lends& operator=(const kernel_lends&) = delete;
#if RINGSIDE_TSAN
  ~kernel_lends() {
    // The loop's thread is never inside a kernel fiber here: give_back()
    // always switches back before it returns.
    for (void* f : fibers_)
      if (f != nullptr) __tsan_destroy_fiber(f);
  }
#endif

  // The SQE of the op in `slot` hands the kernel [data, data + len). `sync` is
  // the op slot's address: the TSan sync object of its lends. Borrowed: data
  // must stay valid until give_back().
  void lend(uint32_t slot, const void* sync, std::byte* data, uint32_t len) noexcept {
#if RINGSIDE_ASAN || RINGSIDE_TSAN
    if (len == 0 || data == nullptr) return;
    range* r = at(slot);
    if (r == nullptr) return;  // out of memory: this op goes unmodelled
    r->data = data;
    r->len = len;
#endif
#if RINGSIDE_ASAN
    poison(data, len);
#endif
#if RINGSIDE_TSAN
    // The fiber exists before the user can touch the buffer again: a TSan
    // fiber starts with its creator's clock, so one made later (at the CQE)
    // would be ordered after the very writes it must race with.
    (void)fiber_for(slot);
    __tsan_release(const_cast<void*>(sync));
#else
    (void)sync;
#endif
#if !RINGSIDE_ASAN && !RINGSIDE_TSAN
    (void)slot;
    (void)data;
    (void)len;
#endif
  }

  // The op in `slot` has its final CQE (`res`, read from the CQE before this
  // call): the kernel is done with what was lent. `owner_takes`: the slot
  // still holds the op's buffer, so the loop is the consumer that sees this
  // CQE before anyone touches the bytes (the buffer goes to the waiter or,
  // for a dropped op, back to its pool after this). False when the buffer
  // was handed out before the kernel was done (uring-raw): it stays
  // poisoned, and whatever the user did with it since the lend is unordered
  // with the kernel's access.
  void give_back(uint32_t slot, const void* sync, kernel_access access, int32_t res, bool owner_takes) noexcept {
#if RINGSIDE_ASAN || RINGSIDE_TSAN
    if (slot >= lent_.size() || lent_[slot].data == nullptr) return;  // nothing was lent
    std::byte* const data = lent_[slot].data;
    const uint32_t len = lent_[slot].len;
    lent_[slot] = {};
#endif
#if RINGSIDE_ASAN
    // Only the holder's: a buffer handed out early may by now be lent again
    // by another op, whose poisoning this must not undo.
    if (owner_takes) unpoison(data, len);
#endif
#if RINGSIDE_TSAN
    kernel_access_now(slot, sync, access, data, len, res);
    if (owner_takes) __tsan_acquire(const_cast<void*>(sync));
#endif
#if !RINGSIDE_ASAN && !RINGSIDE_TSAN
    (void)slot;
    (void)sync;
    (void)access;
    (void)res;
    (void)owner_takes;
#endif
  }

  // ---- buffers provided to a multishot op (an io_uring buffer ring) ----
  // Each is lent from the moment it is in the ring; the kernel picks one per
  // receive and hands it out with that CQE (IORING_CQE_F_BUFFER, id `bid`).

  // Buffer `bid` of the op in `slot` is in the ring. Borrowed: data must stay
  // valid until give_back_provided() or end_provided().
  void lend_provided(uint32_t slot, const void* sync, uint32_t bid, std::byte* data, uint32_t len) noexcept {
#if RINGSIDE_ASAN || RINGSIDE_TSAN
    if (len == 0 || data == nullptr) return;
    range* r = at_provided(slot, bid);
    if (r == nullptr) return;
    r->data = data;
    r->len = len;
#endif
#if RINGSIDE_ASAN
    poison(data, len);
#endif
#if RINGSIDE_TSAN
    (void)fiber_for(slot);
    __tsan_release(const_cast<void*>(sync));
#else
    (void)sync;
#endif
#if !RINGSIDE_ASAN && !RINGSIDE_TSAN
    (void)slot;
    (void)bid;
    (void)data;
    (void)len;
#endif
  }

  // A CQE hands out buffer `bid` with `res` bytes the kernel wrote into it.
  // `owner_takes`: the slot still held it (else it went back early, with the
  // ring still live: uring-raw).
  void give_back_provided(uint32_t slot, const void* sync, uint32_t bid, int32_t res, bool owner_takes) noexcept {
#if RINGSIDE_ASAN || RINGSIDE_TSAN
    if (slot >= provided_.size() || bid >= provided_[slot].size() || provided_[slot][bid].data == nullptr) return;
    std::byte* const data = provided_[slot][bid].data;
    const uint32_t len = provided_[slot][bid].len;
    provided_[slot][bid] = {};
#endif
#if RINGSIDE_ASAN
    if (owner_takes) unpoison(data, len);
#endif
#if RINGSIDE_TSAN
    kernel_access_now(slot, sync, kernel_access::writes, data, len, res);
    if (owner_takes) __tsan_acquire(const_cast<void*>(sync));
#endif
#if !RINGSIDE_ASAN && !RINGSIDE_TSAN
    (void)slot;
    (void)sync;
    (void)bid;
    (void)res;
    (void)owner_takes;
#endif
  }

  // The ring is gone (after the op's final CQE): the kernel can pick none of
  // the buffers still in it. Those the slot still holds (`held`, by id) are
  // its own again; any others went back early and stay poisoned.
  void end_provided(uint32_t slot, const std::vector<buffer>& held) noexcept {
#if RINGSIDE_ASAN || RINGSIDE_TSAN
    if (slot >= provided_.size()) return;
    auto& group = provided_[slot];
    for (size_t bid = 0; bid < group.size(); ++bid) {
#if RINGSIDE_ASAN
      if (group[bid].data != nullptr && bid < held.size() && held[bid].data() == group[bid].data)
        unpoison(group[bid].data, group[bid].len);
#endif
      group[bid] = {};
    }
#else
    (void)slot;
    (void)held;
#endif
  }

 private:
#if RINGSIDE_ASAN || RINGSIDE_TSAN
  struct range {
    std::byte* data = nullptr;
    uint32_t len = 0;
  };
  range* at(uint32_t slot) noexcept {
    if (slot >= lent_.size()) {
      try {
        lent_.resize(size_t(slot) + 1);
      } catch (...) {
        return nullptr;
      }
    }
    return &lent_[slot];
  }
  range* at_provided(uint32_t slot, uint32_t bid) noexcept {
    try {
      if (slot >= provided_.size()) provided_.resize(size_t(slot) + 1);
      auto& group = provided_[slot];
      if (bid >= group.size()) group.resize(size_t(bid) + 1);  // kept: reused by the slot's next multishot op
      return &group[bid];
    } catch (...) {
      return nullptr;
    }
  }
  std::vector<range> lent_;
  std::vector<std::vector<range>> provided_;  // by slot, then buffer id
#endif

#if RINGSIDE_TSAN
  // 128 kernel fibers per loop at most: more ops than any cancel.* scenario
  // keeps in flight. Each fiber costs gcc 12's TSan runtime a thread slot
  // (8192 per process) and ~0.2-1 MB, and every acquire/release costs
  // O(threads + fibers): measured with tcp.echo --conns 512 (~1000 ops in
  // flight), 1024 fibers took 1 GB and ran 7x slower than no fibers. Slots
  // beyond share a fiber (slot % 128). A shared fiber has also acquired the
  // other slots' lends, which can order a user's write before its access and
  // hide a race; it can never invent one.
  static constexpr uint32_t max_fibers = 128;

  // A slot is never reused before its op's final CQE (uring_loop frees it
  // only then), so between lend and give_back its fiber acquires nothing but
  // this op's lend (and, from earlier ops of the slot, lends the loop made
  // before this one: already ordered before it): the fiber's access is
  // ordered after the lend and after nothing the user did since.
  void kernel_access_now(uint32_t slot, const void* sync, kernel_access access, std::byte* data, uint32_t len,
                         int32_t res) noexcept {
    void* const fiber = fiber_for(slot);
    if (fiber == nullptr) return;
    // Everything the fiber does is on locals and TSan calls: a memory access
    // here would be the kernel's, racing the loop's own bookkeeping.
    void* const self = __tsan_get_current_fiber();
    __tsan_switch_to_fiber(fiber, __tsan_switch_to_fiber_no_sync);
    __tsan_acquire(const_cast<void*>(sync));
    if (access == kernel_access::writes) {
      if (res > 0) __tsan_write_range(data, std::min<unsigned long>(uint32_t(res), len));
    } else {
      __tsan_read_range(data, len);
    }
    __tsan_release(const_cast<void*>(sync));
    __tsan_switch_to_fiber(self, __tsan_switch_to_fiber_no_sync);
  }

  void* fiber_for(uint32_t slot) noexcept {
    const uint32_t i = slot % max_fibers;
    if (i >= fibers_.size()) {
      try {
        fibers_.resize(size_t(i) + 1, nullptr);
      } catch (...) {
        return nullptr;
      }
    }
    if (fibers_[i] == nullptr) {
      fibers_[i] = __tsan_create_fiber(0);
      char name[48];
      std::snprintf(name, sizeof name, "kernel (io_uring op slot %u)", i);
      __tsan_set_fiber_name(fibers_[i], name);
    }
    return fibers_[i];
  }
  std::vector<void*> fibers_;
#endif
};

}  // namespace ringside::sanitize
