// Seeded, offset-addressed byte patterns: what every throughput scenario
// writes and every reader verifies, so a fast but wrong backend cannot win.
//
// A stream (or file) is a sequence of chunks of `bs` bytes; its bytes are a
// pure function of (seed, bs, mode, absolute offset), so any received range can
// be checked on its own, in any piece size, without keeping state.
//
// - verify_mode::full: the 8-byte word at every absolute offset o (o % 8 == 0)
//   holds mix(seed, o). Every byte is positional; check() reads every byte.
// - verify_mode::sample (default): the positional words of a chunk are its
//   first and last 8-byte word and one "page word" per 4 KiB: the body word
//   at chunk-relative offset 4096 * k (k >= 1, inside the body). Each holds
//   mix(seed, o), o = the word's absolute offset. The other body words hold
//   mix(seed ^ K, o % bs), the same in every chunk, so a sender fills a buffer
//   once and then rewrites bs / 4096 + 2 words per chunk (see chunk_writer).
//   check() reads every positional word in the range plus the word holding
//   the range's first byte: O(1 + len / 4096 + len / bs) words. Positional
//   words start at most 4096 bytes apart, so any 4 KiB of the range holds
//   one: a swapped, duplicated or missing chunk, or a page that came from
//   another chunk (a reused buffer's stale page, a page the kernel never
//   wrote), is always caught.
// - bs < 16 leaves no body: both modes are fully positional (every byte checked).
//
// Words are little-endian: byte i of a word is bits [8i, 8i+8). A word cut by
// the range (or, in sample mode, the last body word of a chunk whose size is
// not a multiple of 8) contributes only its bytes inside the range.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "harness/scenario.hpp"

namespace ringside {

// splitmix64's finalizer: a bijective 64-bit mixer with full avalanche.
constexpr uint64_t mix64(uint64_t z) noexcept {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// The seed of sub-stream i of seed (connection c, file, stream index...):
// unrelated to seed + i, so neighbouring sub-streams share no bytes.
constexpr uint64_t derive_seed(uint64_t seed, uint64_t i) noexcept {
  return mix64(mix64(seed) ^ (i * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull));
}

// A small seeded PRNG (splitmix64 sequence) for offsets and schedules; the same
// seed gives the same sequence on every machine.
class prng {
 public:
  explicit constexpr prng(uint64_t seed) noexcept : state_(seed) {}
  constexpr uint64_t next() noexcept { return mix64(state_ += 0x9e3779b97f4a7c15ull); }
  // Uniform enough in [0, n) for n far below 2^64 (the bias is < n / 2^64).
  constexpr uint64_t below(uint64_t n) noexcept { return n ? next() % n : 0; }

 private:
  uint64_t state_;
};

class pattern {
 public:
  // bs >= 1 (0 is treated as 1).
  pattern(uint64_t seed, uint64_t bs, verify_mode mode) noexcept;

  [[nodiscard]] uint64_t seed() const noexcept { return seed_; }
  [[nodiscard]] uint64_t bs() const noexcept { return bs_; }
  [[nodiscard]] verify_mode mode() const noexcept { return mode_; }
  // True when every byte is positional (full mode, or bs < 16).
  [[nodiscard]] bool all_positional() const noexcept { return all_positional_; }

  // The byte at absolute offset o. Slow (one mix per byte): for tests and reports.
  [[nodiscard]] std::byte at(uint64_t o) const noexcept;

  // Writes the bytes of [off, off + dst.size()) into dst. O(dst.size()).
  // Borrowed: dst only for the duration of the call.
  void fill(std::span<std::byte> dst, uint64_t off) const noexcept;

  // The first offset in [off, off + data.size()) whose byte differs from the
  // pattern, among the bytes this mode checks (see the file comment), or none.
  // Sample mode costs O(1 + len / 4096 + len / bs); full mode reads every byte.
  // Borrowed: data only for the duration of the call.
  [[nodiscard]] std::optional<uint64_t> check(std::span<const std::byte> data, uint64_t off) const noexcept;

 private:
  friend class chunk_writer;
  [[nodiscard]] uint64_t positional(uint64_t ws) const noexcept;
  [[nodiscard]] uint64_t body(uint64_t rel) const noexcept;
  // Sample mode: the body word at chunk-relative w (8 <= w < bs - 8) of the
  // chunk at cb; a page word when w is a multiple of 4096.
  [[nodiscard]] uint64_t body_value(uint64_t cb, uint64_t w) const noexcept;

  uint64_t seed_;
  uint64_t bs_;
  verify_mode mode_;
  bool all_positional_;
  uint64_t key_pos_;
  uint64_t key_body_;
};

// A sender's buffer holding one chunk of a pattern at a time. In sample mode
// only the positional words change from chunk to chunk, so after the first
// chunk write() costs bs / 4096 + 2 stores; it falls back to a full fill
// whenever the buffer may hold something else (another address, a longer
// chunk than the one it filled, or after invalidate()).
class chunk_writer {
 public:
  // Borrowed: p must outlive the writer.
  explicit chunk_writer(const pattern& p) noexcept : p_(p) {}

  // Makes dst hold the chunk at chunk_off (chunk_off % bs == 0,
  // dst.size() <= bs; a shorter dst is the chunk's head, e.g. a file's tail).
  // Borrowed: dst only for the duration of the call.
  void write(std::span<std::byte> dst, uint64_t chunk_off) noexcept;
  // The buffer's bytes were changed by someone else (a receive into it, say).
  void invalidate() noexcept { ready_data_ = nullptr; ready_len_ = 0; }

 private:
  const pattern& p_;
  const std::byte* ready_data_ = nullptr;
  size_t ready_len_ = 0;
};

}  // namespace ringside
