// The buffer ledger: a detector that knows which memory the kernel holds.
//
// The ring wrapper records every buffer-carrying SQE's ranges here, keyed by
// its user_data, until the op's FINAL CQE (one without IORING_CQE_F_MORE).
// The ledger watches the buffer pool: a pool buffer released, re-acquired or
// lent to another op while a range inside it is still in flight is a
// violation, even if the kernel never writes a byte into it (the bug is the
// lifetime, not the damage).
//
// Cost: O(1) per op, no heap allocation per op. In-flight entries live in a
// preallocated open-addressing table (linear probing, backward-shift delete),
// grown geometrically only when the in-flight count outgrows it; each pool
// buffer carries a count of in-flight ranges, so a release checks one integer.
// Only violations pay for a scan and for formatting.
//
// Single-threaded: use it from the thread that owns the ring (the io_uring
// backends run one loop thread, and release buffers on it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "harness/buffer.hpp"
#include "harness/op.hpp"
#include "harness/violation.hpp"

namespace ringside {

// One memory range an SQE lends the kernel.
struct byte_range {
  const void* data = nullptr;
  size_t len = 0;
};

class buffer_ledger final : public buffer_observer {
 public:
  // 2: a payload plus one side range (e.g. a header or msghdr); nothing ringside
  // issues lends more.
  static constexpr size_t max_ranges = 2;
  // 16 frames: deep enough to reach scenario code through the awaiter and the
  // loop, cheap enough to copy per op while capture is on.
  static constexpr size_t stack_depth = 16;
  // 256: enough to diagnose; a 10,000-op cancel storm against the negative
  // control would otherwise hold megabytes of strings. The rest are counted.
  static constexpr size_t max_stored_violations = 256;

  explicit buffer_ledger(size_t expected_in_flight = 256);
  ~buffer_ledger() override;
  buffer_ledger(const buffer_ledger&) = delete;
  buffer_ledger& operator=(const buffer_ledger&) = delete;
  buffer_ledger(buffer_ledger&&) = delete;
  buffer_ledger& operator=(buffer_ledger&&) = delete;

  // Observes pool's acquires and releases until unwatch() (or destruction):
  // watch() replaces what was watched, watch_also() adds a pool (a backend
  // that lends the kernel buffers of two pools: uring-bounce lends its
  // internal pool to reads and the run's pool to sends). Setup: may
  // allocate; not thread-safe against concurrent pool use.
  void watch(buffer_pool& pool);
  void watch_also(buffer_pool& pool);
  void unwatch() noexcept;
  // The first pool watched (null: none).
  [[nodiscard]] const buffer_pool* watched() const noexcept {
    return pools_.empty() ? nullptr : pools_.front().pool;
  }

  // Records the submission stack of every op and the release stack of every
  // violation (backtrace(); too slow for throughput runs, so off by default).
  void set_capture_stacks(bool on);
  [[nodiscard]] bool capture_stacks() const noexcept { return capture_; }

  // The op user_data lends `ranges` to the kernel until on_final(user_data).
  // user_data 0 is "no op" and is never recorded. Ranges of len 0 lend nothing.
  // Borrowed: ranges only for the duration of the call.
  void on_submit(uint64_t user_data, op_kind kind, std::span<const byte_range> ranges) noexcept;
  // user_data's final CQE was reaped: the kernel holds none of its memory now.
  // Unknown user_data (e.g. ops that lent nothing) is ignored.
  void on_final(uint64_t user_data) noexcept;

  [[nodiscard]] size_t in_flight() const noexcept { return size_; }
  // True if some in-flight range overlaps buffer `index` of `pool` (a
  // watched one; else false), or of the first pool watched.
  [[nodiscard]] bool in_flight_on(const buffer_pool& pool, uint32_t index) const noexcept {
    const watched_pool* w = find_pool(pool);
    return w != nullptr && index < w->count && per_buffer_[w->first + index] != 0;
  }
  [[nodiscard]] bool in_flight_on(uint32_t index) const noexcept {
    return !pools_.empty() && in_flight_on(*pools_.front().pool, index);
  }
  // True if some in-flight range contains the byte at p. A scan of the
  // table: for tests and diagnostics, not for the per-op path.
  [[nodiscard]] bool lends(const void* p) const noexcept;

  // buffer_observer
  void on_acquire(const buffer_pool& pool, uint32_t index) noexcept override;
  void on_release(const buffer_pool& pool, uint32_t index) noexcept override;

  // Moves out what was found since the last call (kind "ledger").
  void take_violations(std::vector<violation>& out);
  // Found so far and not yet taken, including ones beyond max_stored_violations.
  [[nodiscard]] size_t violation_count() const noexcept { return violations_.size() + dropped_; }

 private:
  struct range_rec {
    const std::byte* data = nullptr;
    size_t len = 0;
    // Buffers the range covers, as indices into per_buffer_ (a watched
    // pool's first + its own index); -1: not memory of a watched pool.
    int32_t first = -1;
    int32_t last = -1;
  };
  // A watched pool: its buffers are per_buffer_[first, first + count).
  struct watched_pool {
    buffer_pool* pool = nullptr;
    const std::byte* base = nullptr;
    size_t bytes = 0;
    size_t buf_size = 0;
    uint32_t first = 0;
    uint32_t count = 0;
  };
  [[nodiscard]] const watched_pool* find_pool(const buffer_pool& pool) const noexcept {
    for (const auto& w : pools_)
      if (w.pool == &pool) return &w;
    return nullptr;
  }
  // The watched pool whose per_buffer_ indices include i.
  [[nodiscard]] const watched_pool* pool_at(uint32_t i) const noexcept {
    for (const auto& w : pools_)
      if (i >= w.first && i - w.first < w.count) return &w;
    return nullptr;
  }
  // An event on buffer index of a watched pool: its per_buffer_ index.
  void on_event(const buffer_pool& pool, uint32_t index, const char* what) noexcept;
  struct entry {
    uint64_t key = 0;  // user_data; 0 = empty
    op_kind kind = op_kind::nop;
    uint8_t nranges = 0;
    bool reported = false;  // one violation per in-flight op is enough
    range_rec r[max_ranges];
  };
  struct stack_rec {
    void* frames[stack_depth];
    int depth = 0;
  };

  [[nodiscard]] size_t home(uint64_t key) const noexcept {
    // Fibonacci hashing: user_data is slot | gen << 32, so mix both halves.
    return size_t((key * 0x9E3779B97F4A7C15ull) >> shift_);
  }
  size_t find(uint64_t key) const noexcept;  // table index or npos
  void grow();
  void move_entry(size_t from, size_t to) noexcept;
  void add_counts(const entry& e, int delta) noexcept;
  // Slow path: an event hit a pool buffer with in-flight ranges.
  void report_conflicts(uint32_t index, const char* what, const entry* newcomer) noexcept;
  void record(violation v) noexcept;

  static constexpr size_t npos = ~size_t(0);

  std::vector<entry> table_;
  std::vector<stack_rec> stacks_;  // parallel to table_ while capture is on
  size_t mask_ = 0;
  unsigned shift_ = 64;
  size_t size_ = 0;

  std::vector<watched_pool> pools_;
  std::vector<uint32_t> per_buffer_;  // in-flight ranges per buffer of the watched pools

  bool capture_ = false;
  std::vector<violation> violations_;
  size_t dropped_ = 0;
};

}  // namespace ringside
