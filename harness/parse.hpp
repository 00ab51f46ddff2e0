// Parsers for user-supplied values. Every one either returns a value or
// throws usage_error with a one-line message naming the option.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ringside {

// "4096", "4k", "128K", "64m", "1g" (powers of 1024). Rejects 0 unless allow_zero,
// negatives, junk, overflow, and values above max.
uint64_t parse_size(std::string_view opt, std::string_view text, uint64_t max, bool allow_zero = false);
// Decimal integer in [min, max].
uint64_t parse_count(std::string_view opt, std::string_view text, uint64_t min, uint64_t max);
// Seconds with decimals ("0.5"), finite, in (0, max].
double parse_seconds(std::string_view opt, std::string_view text, double max);
// Non-negative finite rate (0 = closed loop).
double parse_rate(std::string_view opt, std::string_view text);
// "a,b,c" -> {"a","b","c"}; empty items rejected.
std::vector<std::string> split_list(std::string_view opt, std::string_view text);

// `--conns N` on this process's RLIMIT_NOFILE (soft limit, as it is now):
// each connection holds two descriptors (client and server end) and the
// harness and backend need up to k_fd_reserve more (stdio, listener, rings,
// eventfds, temp files). Throws usage_error, naming the option, the need and
// the limit, when they do not fit; a no-op when they do or the limit is
// unreadable.
inline constexpr uint64_t k_fd_reserve = 64;
void check_fd_limit(std::string_view opt, uint64_t conns);

// text for a one-line message: printable ASCII as is, a backslash doubled,
// every other byte (newline, escape, non-ASCII) as \xNN; cut after max_chars with
// "..." (200: an error line stays readable whatever was pasted).
std::string printable(std::string_view text, size_t max_chars = 200);

}  // namespace ringside
