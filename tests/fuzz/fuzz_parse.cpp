// libFuzzer target over the command-line value parsers (harness/parse.hpp):
// the first input byte picks the parser and its bounds, the rest is the text
// the user typed. A parser must either return a value inside the bounds it
// was given or throw usage_error with ONE printable line; anything else (a
// crash, a sanitizer report, another exception, a value out of bounds, a
// message that would break the "one clear line on stderr" rule) is a bug.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "harness/parse.hpp"
#include "harness/scenario.hpp"

namespace {

using namespace ringside;

[[noreturn]] void fail(const char* what, std::string_view text) {
  std::fprintf(stderr, "fuzz_parse: %s for input '%.*s'\n", what, int(text.size()), text.data());
  std::abort();
}

// One line, printable: the CLI prints it as "ringside: <message>\n".
void check_message(const usage_error& e, std::string_view text) {
  const std::string_view m = e.what();
  if (m.empty()) fail("empty usage_error message", text);
  for (const char c : m)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) fail("control character in usage_error message", text);
}

// The bounds main.cpp passes (harness/main.cpp parse_overrides), plus the
// extremes.
constexpr uint64_t k_size_max[] = {1ull << 30, 1ull << 40, UINT64_MAX, 0, 1};
constexpr uint64_t k_count_bounds[][2] = {{1, 4096}, {1, 100000}, {1, 1ull << 40}, {0, UINT64_MAX}, {5, 5}};
constexpr double k_seconds_max[] = {86400, 7 * 86400, 1e-9, 1e308};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t sel = data[0];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    switch (sel % 5) {
      case 0: {
        const uint64_t max = k_size_max[(sel / 5) % 5];
        const bool allow_zero = (sel / 25) % 2 != 0;
        const uint64_t v = parse_size("--bs", text, max, allow_zero);
        if (v > max || (v == 0 && !allow_zero)) fail("parse_size out of bounds", text);
        break;
      }
      case 1: {
        const auto& b = k_count_bounds[(sel / 5) % 5];
        const uint64_t v = parse_count("--qd", text, b[0], b[1]);
        if (v < b[0] || v > b[1]) fail("parse_count out of bounds", text);
        break;
      }
      case 2: {
        const double max = k_seconds_max[(sel / 5) % 4];
        const double v = parse_seconds("--duration", text, max);
        if (!std::isfinite(v) || v <= 0 || v > max) fail("parse_seconds out of bounds", text);
        break;
      }
      case 3: {
        const double v = parse_rate("--rate", text);
        if (!std::isfinite(v) || v < 0) fail("parse_rate out of bounds", text);
        break;
      }
      case 4: {
        const auto items = split_list("--backend", text);
        std::string joined;
        for (const auto& i : items) {
          if (i.empty()) fail("split_list returned an empty item", text);
          if (!joined.empty()) joined += ',';
          joined += i;
        }
        if (joined != text) fail("split_list items do not rejoin to the input", text);
        break;
      }
    }
  } catch (const usage_error& e) {
    check_message(e, text);
  }
  // Any other exception escapes: libFuzzer reports it as a crash.
  return 0;
}
