#include "harness/parse.hpp"

#include <sys/resource.h>

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <limits>

#include "harness/scenario.hpp"

namespace ringside {

std::string printable(std::string_view text, size_t max_chars) {
  std::string out;
  for (const char c : text) {
    if (out.size() >= max_chars) {
      out += "...";
      break;
    }
    const auto u = static_cast<unsigned char>(c);
    if (u == '\\') out += "\\\\";
    else if (u >= 0x20 && u < 0x7f) out += c;
    else out += fmt::format("\\x{:02x}", u);
  }
  return out;
}

namespace {
// The value is echoed through printable(): a newline or escape sequence typed
// into an option (found by tests/fuzz/fuzz_parse.cpp) must not break the
// one-line error or the terminal.
[[noreturn]] void bad(std::string_view opt, std::string_view text, std::string_view why) {
  throw usage_error(fmt::format("{} '{}': {}", printable(opt), printable(text), why));
}
}  // namespace

uint64_t parse_size(std::string_view opt, std::string_view text, uint64_t max, bool allow_zero) {
  if (text.empty()) bad(opt, text, "expected a size like 4096, 4k, 64m");
  uint64_t v = 0;
  const char* b = text.data();
  const char* e = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(b, e, v);
  if (ec == std::errc::result_out_of_range) bad(opt, text, "too large");
  if (ec != std::errc() || ptr == b) bad(opt, text, "expected a size like 4096, 4k, 64m");
  unsigned shift = 0;
  if (ptr != e) {
    switch (*ptr) {
      case 'k': case 'K': shift = 10; break;
      case 'm': case 'M': shift = 20; break;
      case 'g': case 'G': shift = 30; break;
      default: bad(opt, text, "unknown suffix (use k, m or g)");
    }
    ++ptr;
    if (ptr != e && (*ptr == 'i' || *ptr == 'I')) ++ptr;  // accept "KiB"-style "ki"
    if (ptr != e && (*ptr == 'b' || *ptr == 'B')) ++ptr;
    if (ptr != e) bad(opt, text, "trailing characters");
  }
  if (shift && v > (std::numeric_limits<uint64_t>::max() >> shift)) bad(opt, text, "too large");
  v <<= shift;
  if (v == 0 && !allow_zero) bad(opt, text, "must be greater than 0");
  if (v > max) bad(opt, text, fmt::format("must be at most {}", max));
  return v;
}

uint64_t parse_count(std::string_view opt, std::string_view text, uint64_t min, uint64_t max) {
  uint64_t v = 0;
  const char* b = text.data();
  const char* e = b + text.size();
  auto [ptr, ec] = std::from_chars(b, e, v);
  if (text.empty() || ec != std::errc() || ptr != e) {
    if (ec == std::errc::result_out_of_range) bad(opt, text, "too large");
    bad(opt, text, "expected a whole number");
  }
  if (v < min) bad(opt, text, fmt::format("must be at least {}", min));
  if (v > max) bad(opt, text, fmt::format("must be at most {}", max));
  return v;
}

namespace {
double parse_double(std::string_view opt, std::string_view text) {
  double v = 0;
  const char* b = text.data();
  const char* e = b + text.size();
  auto [ptr, ec] = std::from_chars(b, e, v);
  if (text.empty() || ec != std::errc() || ptr != e || !std::isfinite(v)) bad(opt, text, "expected a number");
  return v;
}
}  // namespace

double parse_seconds(std::string_view opt, std::string_view text, double max) {
  const double v = parse_double(opt, text);
  if (v <= 0) bad(opt, text, "must be greater than 0");
  if (v > max) bad(opt, text, fmt::format("must be at most {}", max));
  return v;
}

double parse_rate(std::string_view opt, std::string_view text) {
  const double v = parse_double(opt, text);
  if (v < 0) bad(opt, text, "must not be negative");
  return v;
}

std::vector<std::string> split_list(std::string_view opt, std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    const auto item = text.substr(start, comma == std::string_view::npos ? text.npos : comma - start);
    if (item.empty()) bad(opt, text, "empty item in list");
    out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

void check_fd_limit(std::string_view opt, uint64_t conns) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return;
  const uint64_t need = 2 * conns + k_fd_reserve;
  if (need <= rl.rlim_cur) return;
  throw usage_error(fmt::format("{} {}: needs about {} open files, but RLIMIT_NOFILE is {} (hard limit {}); "
                                "raise it (ulimit -n, prlimit --nofile) or use --conns {} or fewer",
                                printable(opt), conns, need, rl.rlim_cur,
                                rl.rlim_max == RLIM_INFINITY ? std::string("unlimited") : fmt::format("{}", rl.rlim_max),
                                rl.rlim_cur > k_fd_reserve ? (rl.rlim_cur - k_fd_reserve) / 2 : 0));
}

}  // namespace ringside
