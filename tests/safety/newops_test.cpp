// Checks: the cancel.* scenarios of the newer ops — #6 cancel.linked_timeout
// (a recv's deadline as a linked timeout), #7 cancel.multishot_recv (a
// provided-buffer ring, cancelled) and #8 cancel.send_zc (zero-copy sends,
// buffer reused for the next chunk) — give the verdict they promise on
// every backend, every time: blocking, epoll and uring-owned clean, uring-raw
// (the negative control: it ends the op at the timeout's -ETIME CQE, and at
// the zero-copy send's first CQE, and hands a multishot's ring buffers back
// at its cancel) caught with the same kinds on every seed.
//
// Each cell runs like `ringside check` does: canary quarantine (depth 64)
// and the exactly-once decorator on, through run_scenario. 4 seeds x 5
// repetitions: a flaky verdict is a failure.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>
#include <vector>

#include "tests/safety/verdict_util.hpp"
#include "harness/backend.hpp"
#include "harness/runner.hpp"
#include "harness/scenario.hpp"

namespace ringside {
namespace {

struct cell {
  const char* scenario;
  const char* backend;
  // "clean", "unsupported" (any reason), or the exact verdict (the violation
  // kinds, in the order the runner lists them).
  const char* verdict;
};

constexpr uint64_t k_seeds[] = {1, 2, 3, 0x5eed};
constexpr int k_repetitions = 5;

const cell k_cells[] = {
    {"cancel.linked_timeout", "blocking", "clean"},
    {"cancel.linked_timeout", "epoll", "clean"},
    {"cancel.linked_timeout", "uring-owned", "clean"},
    // The buffer goes back to the pool at the timeout's CQE, before the
    // recv's own CQE is reaped.
    {"cancel.linked_timeout", "uring-raw", "ledger"},
    {"cancel.send_zc", "blocking", "clean"},
    {"cancel.send_zc", "epoll", "clean"},
    {"cancel.send_zc", "uring-owned", "clean"},
    // The buffer is refilled and lent again before the notification (ledger);
    // the cancelled rounds' -ECANCELED makes the sender send bytes the kernel
    // had sent already, so the peer sees them twice (stream_integrity).
    {"cancel.send_zc", "uring-raw", "stream_integrity,ledger"},
    {"cancel.multishot_recv", "blocking", "clean"},
    {"cancel.multishot_recv", "epoll", "clean"},
    {"cancel.multishot_recv", "uring-owned", "clean"},
    // The group's buffers come back while the kernel's ring holds them
    // (ledger); the still-armed op takes the next round's bytes into one of
    // them and nobody gets them (ring_buffer_leak, stream_integrity).
    {"cancel.multishot_recv", "uring-raw", "ring_buffer_leak,stream_integrity,ledger"},
};

class newops : public testing::TestWithParam<cell> {};

TEST_P(newops, verdict_is_deterministic) {
  const cell& c = GetParam();
  register_builtin_backends();
  register_builtin_scenarios();
  const backend_info* b = find_backend(c.backend);
  ASSERT_NE(b, nullptr) << c.backend;
  if (b->unavailable_reason) {
    if (auto why = b->unavailable_reason(); !why.empty()) GTEST_SKIP() << c.backend << " unavailable: " << why;
  }
#if RINGSIDE_ASAN || RINGSIDE_TSAN
  // In-process, the negative control's sanitizer report would end this test
  // binary; `ringside check` runs it in a child (tests/safety/check_test.cpp).
  if (std::string_view(c.backend) == "uring-raw") GTEST_SKIP() << "negative control: sanitizer build";
#endif
  const scenario_info* s = find_scenario(c.scenario);
  ASSERT_NE(s, nullptr) << c.scenario;
  const std::string want = c.verdict;
  for (const uint64_t seed : k_seeds) {
    param_overrides o;
    o.seed = seed;
    const params p = resolve_params(*s, o);
    for (int rep = 0; rep < k_repetitions; ++rep) {
      const run_result r = run_scenario(*b, *s, p, run_options{.quarantine_depth = 64, .exactly_once = true});
      if (want == "unsupported") {
        ASSERT_EQ(r.verdict.rfind("unsupported: ", 0), 0u) << "seed " << seed << ": " << describe(r);
        return;  // the reason does not depend on the seed
      }
      ASSERT_EQ(r.verdict, want) << "seed " << seed << " repetition " << rep << ": " << describe(r);
    }
  }
}

std::string cell_name(const testing::TestParamInfo<cell>& info) {
  std::string s = std::string(info.param.scenario) + "_" + info.param.backend;
  std::replace_if(s.begin(), s.end(), [](char ch) { return !std::isalnum(static_cast<unsigned char>(ch)); }, '_');
  return s;
}

INSTANTIATE_TEST_SUITE_P(cancel, newops, testing::ValuesIn(k_cells), cell_name);

}  // namespace
}  // namespace ringside
