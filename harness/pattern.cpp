#include "harness/pattern.hpp"

#include <algorithm>

namespace ringside {

namespace {

constexpr uint64_t k_golden = 0x9e3779b97f4a7c15ull;
// K: separates body words from positional ones (sqrt(2)'s fraction bits, so
// nothing up our sleeve).
constexpr uint64_t k_body = 0x6a09e667f3bcc909ull;
// One positional "page word" per 4 KiB of a chunk: one per page, so a page
// that went missing or came from another chunk is caught even in huge chunks.
constexpr uint64_t k_page = 4096;
// Below 16 bytes a chunk is all first and last word: no body to sample.
constexpr uint64_t k_min_body_bs = 16;

struct word {
  uint64_t ws;   // absolute offset of its first byte
  uint64_t len;  // 8, or less for a chunk's truncated last body word
  uint64_t value;
};

// Byte-wise so the layout is little-endian everywhere; compilers merge these
// into one load / store.
inline uint64_t load_le64(const std::byte* p) noexcept {
  uint64_t v = 0;
  for (unsigned i = 0; i < 8; ++i) v |= uint64_t(p[i]) << (8 * i);
  return v;
}
inline void store_le64(std::byte* p, uint64_t v) noexcept {
  for (unsigned i = 0; i < 8; ++i) p[i] = std::byte(v >> (8 * i));
}
inline std::byte byte_of(uint64_t v, uint64_t i) noexcept { return std::byte(v >> (8 * i)); }

// Writes the part of w inside [lo, hi) to dst (dst[0] is offset lo).
inline void put(std::byte* dst, uint64_t lo, uint64_t hi, const word& w) noexcept {
  const uint64_t a = std::max(w.ws, lo), b = std::min(w.ws + w.len, hi);
  if (a >= b) return;
  if (b - a == 8) {
    store_le64(dst + (a - lo), w.value);
    return;
  }
  for (uint64_t o = a; o < b; ++o) dst[o - lo] = byte_of(w.value, o - w.ws);
}

// The first offset of w inside [lo, hi) where data differs, or none.
inline std::optional<uint64_t> cmp(const std::byte* data, uint64_t lo, uint64_t hi, const word& w) noexcept {
  const uint64_t a = std::max(w.ws, lo), b = std::min(w.ws + w.len, hi);
  if (a >= b) return std::nullopt;
  if (b - a == 8) {
    const uint64_t diff = load_le64(data + (a - lo)) ^ w.value;
    if (diff == 0) return std::nullopt;
    return a + uint64_t(__builtin_ctzll(diff) / 8);
  }
  for (uint64_t o = a; o < b; ++o)
    if (data[o - lo] != byte_of(w.value, o - w.ws)) return o;
  return std::nullopt;
}

}  // namespace

pattern::pattern(uint64_t seed, uint64_t bs, verify_mode mode) noexcept
    : seed_(seed), bs_(std::max<uint64_t>(bs, 1)), mode_(mode),
      all_positional_(mode == verify_mode::full || bs_ < k_min_body_bs),
      key_pos_(mix64(seed)), key_body_(mix64(seed ^ k_body)) {}

uint64_t pattern::positional(uint64_t ws) const noexcept { return mix64(key_pos_ + ws * k_golden); }
uint64_t pattern::body(uint64_t rel) const noexcept { return mix64(key_body_ + rel * k_golden); }
uint64_t pattern::body_value(uint64_t cb, uint64_t w) const noexcept {
  return w % k_page == 0 ? positional(cb + w) : body(w);
}

std::byte pattern::at(uint64_t o) const noexcept {
  if (all_positional_) {
    const uint64_t ws = o & ~uint64_t(7);
    return byte_of(positional(ws), o - ws);
  }
  const uint64_t r = o % bs_, cb = o - r;
  if (r < 8) return byte_of(positional(cb), r);
  if (r >= bs_ - 8) return byte_of(positional(cb + bs_ - 8), r - (bs_ - 8));
  const uint64_t w = 8 + ((r - 8) & ~uint64_t(7));
  return byte_of(body_value(cb, w), r - w);
}

void pattern::fill(std::span<std::byte> dst, uint64_t off) const noexcept {
  const uint64_t lo = off, hi = off + dst.size();
  std::byte* d = dst.data();
  if (all_positional_) {
    for (uint64_t ws = lo & ~uint64_t(7); ws < hi; ws += 8) put(d, lo, hi, {ws, 8, positional(ws)});
    return;
  }
  for (uint64_t cb = lo - lo % bs_; cb < hi; cb += bs_) {
    put(d, lo, hi, {cb, 8, positional(cb)});
    const uint64_t body_end = std::min(hi - cb, bs_ - 8);  // chunk-relative, exclusive
    const uint64_t rel_lo = std::max<uint64_t>(lo > cb ? lo - cb : 0, 8);
    for (uint64_t w = 8 + ((rel_lo - 8) & ~uint64_t(7)); w < body_end; w += 8)
      put(d, lo, hi, {cb + w, std::min<uint64_t>(8, bs_ - 8 - w), body_value(cb, w)});
    put(d, lo, hi, {cb + bs_ - 8, 8, positional(cb + bs_ - 8)});
  }
}

std::optional<uint64_t> pattern::check(std::span<const std::byte> data, uint64_t off) const noexcept {
  const uint64_t lo = off, hi = off + data.size();
  const std::byte* d = data.data();
  if (all_positional_) {
    for (uint64_t ws = lo & ~uint64_t(7); ws < hi; ws += 8)
      if (auto bad = cmp(d, lo, hi, {ws, 8, positional(ws)})) return bad;
    return std::nullopt;
  }
  for (uint64_t cb = lo - lo % bs_; cb < hi; cb += bs_) {
    if (auto bad = cmp(d, lo, hi, {cb, 8, positional(cb)})) return bad;
    const uint64_t body_end = std::min(hi - cb, bs_ - 8);  // chunk-relative, exclusive
    // The word holding the range's first byte, when it is a body word: a
    // receiver's piece that starts mid-body still has its head checked.
    if (lo >= cb + 8 && lo < cb + bs_ - 8) {
      const uint64_t w = 8 + ((lo - cb - 8) & ~uint64_t(7));
      if (auto bad = cmp(d, lo, hi, {cb + w, std::min<uint64_t>(8, bs_ - 8 - w), body_value(cb, w)})) return bad;
    }
    // Page words at chunk-relative k * 4096 whose bytes reach into the range
    // (a word may start up to 7 bytes before lo).
    const uint64_t rel_lo = lo > cb + 7 ? lo - cb - 7 : 0;
    for (uint64_t w = std::max(k_page, (rel_lo + k_page - 1) / k_page * k_page); w < body_end; w += k_page)
      if (auto bad = cmp(d, lo, hi, {cb + w, std::min<uint64_t>(8, bs_ - 8 - w), positional(cb + w)})) return bad;
    if (auto bad = cmp(d, lo, hi, {cb + bs_ - 8, 8, positional(cb + bs_ - 8)})) return bad;
  }
  return std::nullopt;
}

void chunk_writer::write(std::span<std::byte> dst, uint64_t chunk_off) noexcept {
  const size_t n = dst.size();
  if (p_.all_positional_ || ready_data_ != dst.data() || n > ready_len_) {
    p_.fill(dst, chunk_off);
    ready_data_ = dst.data();
    ready_len_ = n;
    return;
  }
  // The body bytes [8, n) already hold this pattern's body words (the same in
  // every chunk); only the chunk's positional words change: its first and
  // last word and its page words.
  const uint64_t lo = chunk_off, hi = chunk_off + n, bs = p_.bs_;
  std::byte* d = dst.data();
  put(d, lo, hi, {chunk_off, 8, p_.positional(chunk_off)});
  const uint64_t body_end = std::min<uint64_t>(n, bs - 8);
  for (uint64_t w = k_page; w < body_end; w += k_page)
    put(d, lo, hi, {chunk_off + w, std::min<uint64_t>(8, bs - 8 - w), p_.positional(chunk_off + w)});
  put(d, lo, hi, {chunk_off + bs - 8, 8, p_.positional(chunk_off + bs - 8)});
}

}  // namespace ringside
