// A group of pool buffers lent to a multishot op (op_kind::recv_multishot):
// io_uring's provided-buffer ring, emulated elsewhere.
//
// Ownership, in order: the caller fills the group; submit() moves every
// buffer out of it into the op (the backend holds them while the kernel may
// pick them); each receive hands ONE buffer to the caller (on_more, or the
// final completion), which then owns it like any buffer (released to its pool
// when destroyed); the ones never used are moved back into the group before
// the final completion. So after the final completion
//   group.size() + buffers delivered == buffers provided,
// and anything less is a ring buffer the backend kept or lost
// ("ring_buffer_leak").
//
// Buffer i of the group is provided under id i (io_uring's bid), so
// size() <= max_size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "harness/buffer.hpp"

namespace ringside {

class buffer_group {
 public:
  // 2^15: io_uring buffer ids are 16-bit and ring sizes a power of two.
  static constexpr size_t max_size = size_t(1) << 15;

  buffer_group() = default;
  buffer_group(const buffer_group&) = delete;
  buffer_group& operator=(const buffer_group&) = delete;

  // Setup (may allocate): room for n buffers, so moving them in and out of
  // ops never allocates.
  void reserve(size_t n) { bufs_.reserve(n); }
  // Adds b (ignored if invalid or the group is full). Returns size().
  size_t add(buffer b) {
    if (b && bufs_.size() < max_size) bufs_.push_back(std::move(b));
    return bufs_.size();
  }
  // Acquires up to n buffers from pool; returns how many the group holds.
  size_t fill(buffer_pool& pool, size_t n) {
    reserve(bufs_.size() + n);
    for (size_t i = 0; i < n; ++i)
      if (add(pool.acquire()) != i + 1) break;
    return bufs_.size();
  }
  [[nodiscard]] size_t size() const noexcept { return bufs_.size(); }
  [[nodiscard]] bool empty() const noexcept { return bufs_.empty(); }
  // Gives every buffer back to its pool.
  void clear() noexcept { bufs_.clear(); }

  // ---- for backends ----
  // Exchanges the group's buffers with `held` (no allocation): at submit,
  // with an empty vector, to take them all; before the final completion,
  // after compacting the unused ones, to give them back.
  void swap_buffers(std::vector<buffer>& held) noexcept { bufs_.swap(held); }

 private:
  std::vector<buffer> bufs_;
};

// The buffers a multishot op holds, by provided id; ids already handed out
// hold an invalid buffer. Moves the unused ones back into `g` (or, for a
// dropped op, g == nullptr: back to their pool).
inline void return_unused(std::vector<buffer>& held, buffer_group* g) noexcept {
  size_t k = 0;
  for (auto& b : held)
    if (b) held[k++] = std::move(b);
  held.resize(k);  // only shrinks: no allocation
  if (g != nullptr) {
    g->swap_buffers(held);  // held now has the group's (empty) vector
  }
  held.clear();
}

}  // namespace ringside
