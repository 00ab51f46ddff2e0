// Description: each test-only fault switch of uring-owned (RINGSIDE_FAULT,
// harness/uring_loop.hpp) breaks its contract in one way, and the detector
// meant for that bug catches it — through run_scenario, and through the real
// `ringside check` (exit 1, the detector named) — while the same scenario is
// clean without the switch:
//   release-on-cancel-cqe -> ledger         drop-raced-success -> stream
//   leak-accepted-fd      -> resources      no-generation      -> exactly-once
//   teardown-in-flight    -> ledger
// Also: unknown switch names fail construction naming the valid ones, and
// the exactly-once decorator sees ids that repeat (ABA).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/safety/verdict_util.hpp"
#include "harness/backend.hpp"
#include "harness/exactly_once.hpp"
#include "harness/io.hpp"
#include "harness/runner.hpp"
#include "harness/scenario.hpp"
#include "harness/uring_loop.hpp"
#include "harness/violation.hpp"
#include "tests/safety/cli_util.hpp"
#include "tests/unit/uring_test_util.hpp"

namespace ringside {
namespace {

// RINGSIDE_FAULT for one scope (the backend reads it when constructed).
struct fault_env {
  explicit fault_env(const char* v) {
    if (v != nullptr) ::setenv("RINGSIDE_FAULT", v, 1);
    else ::unsetenv("RINGSIDE_FAULT");
  }
  ~fault_env() { ::unsetenv("RINGSIDE_FAULT"); }
  fault_env(const fault_env&) = delete;
  fault_env& operator=(const fault_env&) = delete;
};

bool names_detector(const run_result& r, std::string_view detector) {
  return std::any_of(r.violations.begin(), r.violations.end(),
                     [&](const violation& v) { return detector_of(v.kind) == detector; });
}

// One uring-owned run as `ringside check` makes it (canary quarantine depth
// 64, exactly-once on), with RINGSIDE_FAULT = fault (null: unset).
run_result run_owned(const char* scenario, const char* fault) {
  register_builtin_backends();
  register_builtin_scenarios();
  const backend_info* b = find_backend("uring-owned");
  const scenario_info* s = find_scenario(scenario);
  if (b == nullptr || s == nullptr) {
    run_result r;
    r.verdict = std::string("missing: ") + (b == nullptr ? "uring-owned" : scenario);
    return r;
  }
  fault_env env(fault);
  // 20 s: a hang (a fault may cause one) is a verdict, not a stuck test.
  return run_scenario(*b, *s, resolve_params(*s, {}),
                      run_options{.timeout_s = 20, .quarantine_depth = 64, .exactly_once = true});
}

// ---- the switches themselves ----

TEST(uring_faults, names_parse_into_the_mask) {
  EXPECT_EQ(parse_uring_faults(""), 0u);
  EXPECT_EQ(parse_uring_faults("no-generation"), uint32_t(uring_fault::no_generation));
  EXPECT_EQ(parse_uring_faults("leak-accepted-fd, teardown-in-flight,"),
            uint32_t(uring_fault::leak_accepted_fd) | uint32_t(uring_fault::teardown_in_flight));
  for (auto f : {uring_fault::release_on_cancel_cqe, uring_fault::drop_raced_success, uring_fault::leak_accepted_fd,
                 uring_fault::no_generation, uring_fault::teardown_in_flight})
    EXPECT_EQ(parse_uring_faults(to_string(f)), uint32_t(f)) << to_string(f);
}

TEST(uring_faults, an_unknown_name_fails_naming_the_valid_ones) {
  try {
    (void)parse_uring_faults("no-generation,release-early");
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("release-early"), std::string::npos) << what;
    for (const char* n : {"release-on-cancel-cqe", "drop-raced-success", "leak-accepted-fd", "no-generation",
                          "teardown-in-flight"})
      EXPECT_NE(what.find(n), std::string::npos) << n << " missing from: " << what;
  }
}

TEST(uring_faults, uring_owned_construction_rejects_an_unknown_switch) {
  RINGSIDE_REQUIRE_URING();
  register_builtin_backends();
  const backend_info* b = find_backend("uring-owned");
  ASSERT_NE(b, nullptr);
  fault_env env("no-such-fault");
  EXPECT_THROW((void)b->make({}), std::invalid_argument);
}

TEST(uring_faults, uring_raw_ignores_the_switches) {
  RINGSIDE_REQUIRE_URING();
  register_builtin_backends();
  register_builtin_scenarios();
  fault_env env("no-such-fault,no-generation");
  const backend_info* b = find_backend("uring-raw");
  ASSERT_NE(b, nullptr);
  EXPECT_NO_THROW((void)b->make({}));
}

// ---- each switch, caught by its detector ----

struct fault_case {
  const char* fault;
  const char* scenario;
  const char* detector;  // detector_of() of the kinds that must appear
};

const fault_case k_cases[] = {
    {"release-on-cancel-cqe", "cancel.teardown", "ledger"},
    {"release-on-cancel-cqe", "cancel.submit_fail", "ledger"},
    {"drop-raced-success", "cancel.recv_completed", "stream"},
    {"drop-raced-success", "cancel.submit_fail", "stream"},
    {"leak-accepted-fd", "cancel.teardown", "resources"},
    {"no-generation", "cancel.aba", "exactly-once"},
    {"teardown-in-flight", "cancel.teardown", "ledger"},
};

std::string case_name(const testing::TestParamInfo<fault_case>& info) {
  std::string s = std::string(info.param.fault) + "_" + info.param.scenario;
  std::replace_if(s.begin(), s.end(), [](char ch) { return !std::isalnum(static_cast<unsigned char>(ch)); }, '_');
  return s;
}

class fault_switch : public testing::TestWithParam<fault_case> {
 protected:
  void SetUp() override { RINGSIDE_REQUIRE_URING(); }
};

// Faults that hand a buffer back while the kernel holds it: in a sanitizer
// build the pool's poisoning reports that release itself (ASan aborts the
// process), before the ledger can.
constexpr bool releases_lent_buffers(const fault_case& c) noexcept { return std::string_view(c.detector) == "ledger"; }

TEST_P(fault_switch, caught_by_its_detector_and_clean_without_it) {
  const fault_case& c = GetParam();
#if RINGSIDE_ASAN || RINGSIDE_TSAN
  if (releases_lent_buffers(c))
    GTEST_SKIP() << "sanitizer build: the release would end this test binary; the ringside_check test runs it in a child";
#endif
  const run_result broken = run_owned(c.scenario, c.fault);
  EXPECT_TRUE(names_detector(broken, c.detector)) << c.fault << " on " << c.scenario << ": " << describe(broken);
  const run_result clean = run_owned(c.scenario, nullptr);
  EXPECT_EQ(clean.verdict, "clean") << c.scenario << " without a fault: " << describe(clean);
}

// The acceptance of issue 3, end to end: the real binary, in a child process.
TEST_P(fault_switch, ringside_check_exits_1_naming_the_detector) {
  const fault_case& c = GetParam();
  test::temp_dir_guard dir;
  ASSERT_FALSE(dir.path.empty());
  const std::string args = std::string(" check --backend uring-owned --scenario ") + c.scenario +
                           " --timeout 20 --jobs 1 --expected " RINGSIDE_SOURCE_DIR "/tests/safety/expected.tsv" +
                           " --repro-dir " + dir.path;
  const auto broken = test::run_cli(std::string("RINGSIDE_FAULT=") + c.fault + " " + test::bin() + args);
  EXPECT_EQ(broken.code, 1) << broken.out;
  bool named = broken.out.find("[" + std::string(c.detector) + "]") != std::string::npos;
#if RINGSIDE_ASAN
  // ASan's poisoning of lent buffers reports the release first.
  if (releases_lent_buffers(c)) named = named || broken.out.find("[asan]") != std::string::npos;
#elif RINGSIDE_TSAN
  if (releases_lent_buffers(c)) named = named || broken.out.find("[tsan]") != std::string::npos;
#endif
  EXPECT_TRUE(named) << "detector " << c.detector << " not named:\n" << broken.out;
  const auto clean = test::run_cli("env -u RINGSIDE_FAULT " + test::bin() + args);
  EXPECT_EQ(clean.code, 0) << clean.out;
}

INSTANTIATE_TEST_SUITE_P(uring_owned, fault_switch, testing::ValuesIn(k_cases), case_name);

// ---- the exactly-once decorator and repeated ids ----

// A completes; B takes its slot; a cancel of A's id lands while B waits.
// Returns cancel()'s result and what the decorator found.
struct aba_outcome {
  int cancel_res = 1;
  int32_t b_res = 1;
  std::vector<violation> found;
};

aba_outcome stale_cancel_through_decorator(const char* fault) {
  aba_outcome out;
  register_builtin_backends();
  fault_env env(fault);
  auto pair = test::make_socketpair();
  buffer_pool pool(4, 4096);
  {
    exactly_once_backend be(find_backend("uring-owned")->make({}));
    be.attach_pool(pool);
    be.adopt(pair.a.get());
    auto t = [](backend& be, buffer_pool& pool, int fd, int peer, aba_outcome& out) -> task<> {
      op_id a_id;
      {
        auto a = start(be, op{.kind = op_kind::nop});
        a_id = a.started_id();
        (void)co_await a;
      }
      // Nothing to read yet: B waits in the kernel.
      auto b = start(be, op{.kind = op_kind::recv, .fd = fd, .len = 16, .buf = pool.acquire()});
      out.cancel_res = be.cancel(a_id);
      // B's data, after the stale cancel: a B the cancel reached ends -ECANCELED.
      const char msg[16] = "for op B";
      (void)::send(peer, msg, sizeof msg, MSG_NOSIGNAL);
      out.b_res = (co_await b).res;
    };
    be.spawn(t(be, pool, pair.a.get(), pair.b.get(), out));
    if (be.run(clock_type::now() + std::chrono::seconds(5)) != 0) out.found.push_back({"run", "did not end"});
    be.shutdown();
    be.collect_violations(out.found);
  }
  return out;
}

TEST(exactly_once_ids, a_repeated_id_and_a_stale_cancel_accepted_are_violations) {
  RINGSIDE_REQUIRE_URING();
  const aba_outcome o = stale_cancel_through_decorator("no-generation");
  EXPECT_EQ(o.cancel_res, 0) << "the fault should make the stale cancel land on B";
  bool reused = false, accepted = false;
  for (const auto& v : o.found) {
    EXPECT_EQ(v.kind, "exactly_once") << v.detail;
    reused = reused || v.detail.find("reused") != std::string::npos;
    accepted = accepted || v.detail.find("accepted (0)") != std::string::npos;
  }
  EXPECT_TRUE(reused) << "no 'id reused' violation";
  EXPECT_TRUE(accepted) << "no 'stale cancel accepted' violation";
}

TEST(exactly_once_ids, silent_when_ids_carry_generations) {
  RINGSIDE_REQUIRE_URING();
  const aba_outcome o = stale_cancel_through_decorator(nullptr);
  EXPECT_EQ(o.cancel_res, -ENOENT);
  EXPECT_EQ(o.b_res, 16);
  for (const auto& v : o.found) ADD_FAILURE() << v.kind << ": " << v.detail;
}

}  // namespace
}  // namespace ringside
