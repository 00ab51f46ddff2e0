// Description: harness/pattern is the ground truth of every throughput
// scenario's data check. A range filled with the pattern checks clean at any
// offset and in any piece size; in full mode every flipped byte is found at
// its exact offset; in sample mode a swapped, duplicated or missing chunk, and
// any 4 KiB page that came from another chunk or is a reused buffer's stale
// content, is always found, and chunk_writer's refill of the positional words
// equals a full fill.
#include "harness/pattern.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace ringside {
namespace {

using bytes = std::vector<std::byte>;

bytes filled(const pattern& p, uint64_t off, size_t len) {
  bytes b(len);
  p.fill(b, off);
  return b;
}

// Found within the word at ws (a wrong word may still match in its first bytes).
bool in_word(std::optional<uint64_t> bad, uint64_t ws) { return bad && *bad >= ws && *bad < ws + 8; }
// Found within [a, b).
bool in_range(std::optional<uint64_t> bad, uint64_t a, uint64_t b) { return bad && *bad >= a && *bad < b; }

// Chunk sizes around every boundary the layout has: tiny (all positional),
// 16 (empty body), not multiples of 8 (truncated body words), page-sized,
// and around the first page word (chunk-relative 4096: it needs bs > 4104;
// at 4105 it is a 1-byte truncated word).
const uint64_t k_sizes[] = {1, 2, 7, 8, 9, 15, 16, 17, 23, 24, 31, 64, 100, 4096, 4104, 4105, 4111, 8200, 12291};

TEST(pattern, at_agrees_with_fill) {
  for (auto mode : {verify_mode::sample, verify_mode::full})
    for (uint64_t bs : k_sizes) {
      const pattern p(7, bs, mode);
      const uint64_t off = 3 * bs + 5;
      const auto b = filled(p, off, size_t(2 * bs + 40));
      for (size_t i = 0; i < b.size(); ++i) ASSERT_EQ(b[i], p.at(off + i)) << "bs " << bs << " byte " << i;
    }
}

TEST(pattern, round_trip_every_length_and_offset) {
  // Sizes 1..bs+17 at aligned, unaligned and far-away offsets, both modes.
  for (auto mode : {verify_mode::sample, verify_mode::full})
    for (uint64_t bs : k_sizes) {
      const pattern p(42, bs, mode);
      const uint64_t maxlen = std::min<uint64_t>(bs + 17, 600);
      for (uint64_t off : {uint64_t(0), uint64_t(1), bs - 1, bs, 5 * bs + 3, (uint64_t(1) << 40) + 7})
        for (uint64_t len = 1; len <= maxlen; ++len) {
          const auto b = filled(p, off, size_t(len));
          ASSERT_FALSE(p.check(b, off).has_value()) << "bs " << bs << " off " << off << " len " << len;
        }
    }
}

TEST(pattern, pieces_of_a_range_check_on_their_own) {
  // A receiver sees arbitrary pieces; each checks clean at its own offset.
  for (auto mode : {verify_mode::sample, verify_mode::full}) {
    const pattern p(3, 1000, mode);
    const auto b = filled(p, 0, 20000);
    const std::span<const std::byte> all(b);
    for (size_t cut = 1; cut < 3000; cut += 97)
      for (size_t pos = 0; pos < b.size(); pos += cut) {
        const size_t n = std::min(cut, b.size() - pos);
        ASSERT_FALSE(p.check(all.subspan(pos, n), pos).has_value()) << "cut " << cut << " pos " << pos;
      }
  }
}

TEST(pattern, full_mode_finds_every_flipped_byte_at_its_offset) {
  for (uint64_t bs : {uint64_t(7), uint64_t(64), uint64_t(4096)}) {
    const pattern p(11, bs, verify_mode::full);
    const uint64_t off = 1234567;  // unaligned: head and tail words are cut
    auto b = filled(p, off, 3 * 4096 + 13);
    for (size_t i = 0; i < b.size(); i += (i < 64 || i + 64 > b.size()) ? 1 : 37) {
      b[i] ^= std::byte{0x01};
      const auto bad = p.check(b, off);
      ASSERT_TRUE(bad.has_value()) << "bs " << bs << " byte " << i;
      EXPECT_EQ(*bad, off + i);
      b[i] ^= std::byte{0x01};
    }
    EXPECT_FALSE(p.check(b, off).has_value());
  }
}

TEST(pattern, small_chunks_are_fully_checked_in_sample_mode) {
  // bs < 16: no body, so sample mode checks every byte too.
  for (uint64_t bs : {uint64_t(1), uint64_t(8), uint64_t(15)}) {
    const pattern p(5, bs, verify_mode::sample);
    auto b = filled(p, 3, 200);
    for (size_t i = 0; i < b.size(); ++i) {
      b[i] ^= std::byte{0x80};
      ASSERT_EQ(p.check(b, 3), std::optional<uint64_t>(3 + i)) << "bs " << bs;
      b[i] ^= std::byte{0x80};
    }
  }
}

TEST(pattern, sample_mode_finds_flips_in_boundary_words_and_range_heads) {
  const uint64_t bs = 128 << 10;
  const pattern p(9, bs, verify_mode::sample);
  auto b = filled(p, 0, size_t(3 * bs));
  for (uint64_t c = 0; c < 3; ++c)
    for (uint64_t i : {uint64_t(0), uint64_t(7), uint64_t(4096), uint64_t(4103), uint64_t(31 * 4096 + 5), bs - 8,
                       bs - 1}) {
      const uint64_t at = c * bs + i;
      b[at] ^= std::byte{0x10};
      ASSERT_EQ(p.check(b, 0), std::optional<uint64_t>(at));
      b[at] ^= std::byte{0x10};
    }
  // The first byte of any range is checked: a receiver's piece starting
  // mid-body still has its head verified.
  const std::span<const std::byte> all(b);
  auto piece = bytes(all.begin() + 5000, all.begin() + 9000);
  piece[0] ^= std::byte{1};
  EXPECT_EQ(p.check(piece, 5000), std::optional<uint64_t>(5000));
}

TEST(pattern, sample_mode_catches_swapped_duplicated_and_missing_chunks) {
  for (uint64_t bs : {uint64_t(16), uint64_t(100), uint64_t(4096), uint64_t(128 << 10)}) {
    const pattern p(21, bs, verify_mode::sample);
    const auto good = filled(p, 0, size_t(4 * bs));
    auto chunk = [&](bytes& b, uint64_t c) { return std::span<std::byte>(b).subspan(size_t(c * bs), size_t(bs)); };

    auto swapped = good;
    std::swap_ranges(chunk(swapped, 1).begin(), chunk(swapped, 1).end(), chunk(swapped, 2).begin());
    EXPECT_TRUE(p.check(swapped, 0).has_value()) << "swap, bs " << bs;

    auto duplicated = good;  // chunk 1 arrives twice, chunk 2 never
    std::copy(chunk(duplicated, 1).begin(), chunk(duplicated, 1).end(), chunk(duplicated, 2).begin());
    EXPECT_TRUE(in_word(p.check(duplicated, 0), 2 * bs)) << "dup, bs " << bs;

    bytes missing(good.begin(), good.begin() + long(bs));  // chunk 1 lost: 2 and 3 move up
    missing.insert(missing.end(), good.begin() + long(2 * bs), good.end());
    EXPECT_TRUE(in_word(p.check(missing, 0), bs)) << "gap, bs " << bs;

    // A chunk from another stream (seed) is no substitute either.
    const pattern other(22, bs, verify_mode::sample);
    auto foreign = good;
    other.fill(chunk(foreign, 3), 3 * bs);
    EXPECT_TRUE(in_word(p.check(foreign, 0), 3 * bs)) << "foreign, bs " << bs;
  }
}

// Byte ranges [a, b) of v.
std::span<std::byte> range(bytes& v, uint64_t a, uint64_t b) { return std::span<std::byte>(v).subspan(size_t(a), size_t(b - a)); }

TEST(pattern, sample_mode_catches_a_page_from_another_chunk) {
  // Every page of chunk 1, in turn, replaced by the same page of chunk 0 or by
  // another page of chunk 2: boundary words intact, body words identical in
  // every chunk, so only the page's positional word can tell.
  for (uint64_t bs : {uint64_t(8192), uint64_t(3 * 4096 + 5), uint64_t((64 << 10) + 100), uint64_t(128 << 10)}) {
    const pattern p(31, bs, verify_mode::sample);
    const auto good = filled(p, 0, size_t(3 * bs));
    const uint64_t pages = (bs + 4095) / 4096;
    for (uint64_t j = 0; j < pages; ++j) {
      const uint64_t a = bs + 4096 * j, b = std::min(a + 4096, 2 * bs);
      auto same_page = good;
      std::copy_n(good.begin() + long(a - bs), b - a, same_page.begin() + long(a));
      EXPECT_TRUE(in_range(p.check(same_page, 0), a, b)) << "bs " << bs << " page " << j << " from chunk 0";
      // Page (j + 1) of chunk 2, or its head when that page is short.
      auto other_page = good;
      const uint64_t src = 2 * bs + 4096 * ((j + 1) % pages);
      const uint64_t n = std::min(b - a, 3 * bs - src);
      std::copy_n(good.begin() + long(src), n, other_page.begin() + long(a));
      EXPECT_TRUE(in_range(p.check(other_page, 0), a, a + n)) << "bs " << bs << " page " << j << " from chunk 2";
    }
  }
}

TEST(pattern, sample_mode_catches_stale_pages_of_a_reused_buffer) {
  // A reader reuses one page-aligned buffer; a read that leaves one of its
  // pages unwritten hands back the previous piece's bytes there. Pieces at
  // chunk offsets (file reads) and anywhere (stream receives).
  constexpr uint64_t k_buf = 64 << 10;
  for (uint64_t bs : {uint64_t(1000), uint64_t(16384), uint64_t(128 << 10), uint64_t((128 << 10) + 3)}) {
    const pattern p(47, bs, verify_mode::sample);
    for (uint64_t prev : {uint64_t(0), bs, uint64_t(5000), bs - 3000, uint64_t(12345)}) {
      const uint64_t off = prev + k_buf;  // the next piece of the stream
      const auto stale = filled(p, prev, k_buf);
      const auto fresh = filled(p, off, k_buf);
      for (uint64_t j = 0; j < k_buf / 4096; ++j) {
        auto buf = fresh;
        std::copy_n(stale.begin() + long(4096 * j), 4096, buf.begin() + long(4096 * j));
        EXPECT_TRUE(in_range(p.check(buf, off), off + 4096 * j, off + 4096 * (j + 1)))
            << "bs " << bs << " prev " << prev << " page " << j;
      }
    }
  }
  // A read that wrote only a chunk's boundary words over the previous chunk.
  const uint64_t bs = 128 << 10;
  const pattern p(47, bs, verify_mode::sample);
  auto buf = filled(p, 0, bs);
  p.fill(range(buf, 0, 8), bs);
  p.fill(range(buf, bs - 8, bs), 2 * bs - 8);
  EXPECT_TRUE(in_range(p.check(buf, bs), bs + 4096, bs + 4104));
}

TEST(pattern, seeds_and_modes_give_different_bytes) {
  const auto a = filled(pattern(1, 4096, verify_mode::sample), 0, 4096);
  EXPECT_TRUE(pattern(2, 4096, verify_mode::sample).check(a, 0).has_value());
  EXPECT_TRUE(pattern(1, 4096, verify_mode::full).check(a, 0).has_value());
  EXPECT_NE(derive_seed(1, 0), derive_seed(1, 1));
  EXPECT_NE(derive_seed(1, 0), derive_seed(2, 0));
}

TEST(chunk_writer, refill_equals_a_full_fill) {
  for (auto mode : {verify_mode::sample, verify_mode::full})
    for (uint64_t bs : k_sizes) {
      const pattern p(77, bs, mode);
      chunk_writer cw(p);
      bytes buf(static_cast<size_t>(bs)), other(static_cast<size_t>(bs));
      // Full chunks, then a short tail chunk, then full again (the tail must
      // not make the writer trust bytes it never wrote), then another buffer.
      const uint64_t lens[] = {bs, bs, bs, bs / 2 + 1, bs, bs};
      for (uint64_t c = 0; c < std::size(lens); ++c) {
        auto dst = std::span<std::byte>(c == 5 ? other : buf).first(size_t(lens[c]));
        cw.write(dst, c * bs);
        ASSERT_EQ(bytes(dst.begin(), dst.end()), filled(p, c * bs, dst.size())) << "bs " << bs << " chunk " << c;
      }
      // After invalidate() the bytes may be anything.
      std::fill(buf.begin(), buf.end(), std::byte{0xee});
      cw.invalidate();
      cw.write(buf, 9 * bs);
      EXPECT_EQ(buf, filled(p, 9 * bs, buf.size())) << "bs " << bs;
    }
}

TEST(prng, same_seed_same_sequence) {
  prng a(5), b(5), c(6);
  for (int i = 0; i < 100; ++i) {
    const uint64_t x = a.next();
    EXPECT_EQ(x, b.next());
    EXPECT_NE(x, c.next());
  }
  prng d(1);
  for (int i = 0; i < 1000; ++i) EXPECT_LT(d.below(17), 17u);
}

}  // namespace
}  // namespace ringside
