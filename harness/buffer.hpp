// Page-aligned buffer pool and its move-only buffers.
//
// One mmap'd region holds `count` buffers of `size` bytes each (size rounded up
// to whole pages), so the whole pool can be registered as io_uring fixed
// buffers (buffer::index() is the buf_index). A buffer returns itself to its
// pool when destroyed; release goes through the pool's observers so detectors
// (the ledger, canaries, guard pages) see every release.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <span>
#include <utility>
#include <vector>

#include "harness/violation.hpp"

namespace ringside {

class buffer_pool;

class buffer {
 public:
  buffer() noexcept = default;
  buffer(const buffer&) = delete;
  buffer& operator=(const buffer&) = delete;
  buffer(buffer&& o) noexcept
      : pool_(std::exchange(o.pool_, nullptr)), data_(std::exchange(o.data_, nullptr)),
        capacity_(std::exchange(o.capacity_, 0)), index_(std::exchange(o.index_, 0)) {}
  buffer& operator=(buffer&& o) noexcept {
    if (this != &o) {
      reset();
      pool_ = std::exchange(o.pool_, nullptr);
      data_ = std::exchange(o.data_, nullptr);
      capacity_ = std::exchange(o.capacity_, 0);
      index_ = std::exchange(o.index_, 0);
    }
    return *this;
  }
  ~buffer() { reset(); }

  [[nodiscard]] bool valid() const noexcept { return data_ != nullptr; }
  explicit operator bool() const noexcept { return valid(); }
  [[nodiscard]] std::byte* data() const noexcept { return data_; }
  [[nodiscard]] size_t capacity() const noexcept { return capacity_; }
  // Index within the pool: the io_uring fixed-buffer index.
  [[nodiscard]] uint32_t index() const noexcept { return index_; }
  [[nodiscard]] buffer_pool* pool() const noexcept { return pool_; }
  [[nodiscard]] std::span<std::byte> span() const noexcept { return {data_, capacity_}; }
  [[nodiscard]] std::span<std::byte> first(size_t n) const noexcept { return {data_, n}; }

  // Gives the buffer back to its pool now.
  void reset() noexcept;

 private:
  friend class buffer_pool;
  buffer(buffer_pool* p, std::byte* d, size_t cap, uint32_t idx) noexcept
      : pool_(p), data_(d), capacity_(cap), index_(idx) {}

  buffer_pool* pool_ = nullptr;
  std::byte* data_ = nullptr;
  size_t capacity_ = 0;
  uint32_t index_ = 0;
};

// Sees every acquire and release; detectors implement it.
class buffer_observer {
 public:
  virtual ~buffer_observer() = default;
  virtual void on_acquire(const buffer_pool&, uint32_t index) noexcept = 0;
  virtual void on_release(const buffer_pool&, uint32_t index) noexcept = 0;
};

class buffer_pool {
 public:
  // Throws std::system_error when the memory cannot be mapped.
  buffer_pool(size_t count, size_t size);
  buffer_pool(const buffer_pool&) = delete;
  buffer_pool& operator=(const buffer_pool&) = delete;
  ~buffer_pool();

  // An invalid buffer when the pool is exhausted. Thread-safe.
  buffer acquire() noexcept;

  [[nodiscard]] size_t count() const noexcept { return count_; }
  [[nodiscard]] size_t buffer_size() const noexcept { return size_; }
  [[nodiscard]] size_t available() const noexcept;
  [[nodiscard]] std::span<std::byte> region() const noexcept { return {base_, count_ * size_}; }
  [[nodiscard]] std::byte* slot_data(uint32_t index) const noexcept { return base_ + size_t(index) * size_; }
  // One iovec per buffer, for io_uring_register_buffers.
  [[nodiscard]] std::vector<iovec> iovecs() const;
  [[nodiscard]] bool contains(const void* p) const noexcept {
    auto* b = static_cast<const std::byte*>(p);
    return b >= base_ && b < base_ + count_ * size_;
  }

  // Not thread-safe against concurrent acquire/release: set up before use.
  void add_observer(buffer_observer* o) { observers_.push_back(o); }
  void remove_observer(buffer_observer* o);

  // ---- canary quarantine (a detector) ----
  // Released buffers are filled with a canary pattern and held back: only
  // after `depth` later releases (or when the free list runs dry) is one
  // checked and reused. A changed byte means someone — typically the kernel,
  // finishing an op whose buffer was handed back too early — wrote into it
  // after release. 0 turns it off. Set up before use.
  void enable_quarantine(size_t depth);
  // Guard pages (needs a quarantine): quarantined buffers are also made
  // PROT_NONE, so a late kernel copy-to-user fails with -EFAULT instead of
  // landing (the io_uring loop attributes it), and a late user-space touch
  // faults at once. Registered (pinned) buffers are not protected this way.
  void enable_guard_pages(bool on) { guard_pages_ = on; }
  // Checks every buffer still in quarantine (call after the run has drained).
  void check_quarantine();
  // Moves out what the canaries found.
  void collect_violations(std::vector<violation>& out);
  [[nodiscard]] size_t quarantined() const noexcept;

 private:
  friend class buffer;
  void release(uint32_t index) noexcept;

  std::byte* base_ = nullptr;
  size_t count_ = 0;
  size_t size_ = 0;
  size_t mapped_ = 0;
  mutable std::mutex mu_;
  // Fills, checks; mu_ held by the callers.
  void fill_canary(uint32_t index) noexcept;
  void verify_canary(uint32_t index) noexcept;
  void poison(uint32_t index, bool on) noexcept;
  void protect(uint32_t index, bool none) noexcept;

  std::vector<uint32_t> free_;
  std::vector<buffer_observer*> observers_;
  size_t quarantine_depth_ = 0;
  bool guard_pages_ = false;
  std::deque<uint32_t> quarantine_;
  std::vector<violation> violations_;
};

size_t page_size() noexcept;
constexpr size_t round_up(size_t n, size_t a) noexcept { return (n + a - 1) / a * a; }

}  // namespace ringside
