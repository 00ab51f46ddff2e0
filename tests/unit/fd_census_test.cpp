// Checks: resource accounting sees a descriptor a run leaves open (a
// deliberately leaking scenario gets an fd_leak verdict naming it), and a run
// that closes everything stays clean.
#include "harness/fd_census.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "harness/io.hpp"
#include "harness/runner.hpp"
#include "harness/unique_fd.hpp"

namespace ringside {
namespace {

TEST(fd_census, sees_a_new_descriptor_and_names_it) {
  const auto before = open_fds();
  ASSERT_FALSE(before.empty()) << "/proc/self/fd unreadable";
  unique_fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(s);
  const auto after = open_fds();
  ASSERT_EQ(after.count(s.get()), 1u);
  EXPECT_EQ(after.at(s.get()).rfind("socket:", 0), 0u);
  std::vector<violation> v;
  report_fd_leaks(before, after, v);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, "fd_leak");
  EXPECT_NE(v[0].detail.find(std::to_string(s.get()) + " -> socket:"), std::string::npos) << v[0].detail;
  v.clear();
  report_fd_leaks(after, after, v);
  EXPECT_TRUE(v.empty());
}

// A scenario whose setup opens a socket and forgets it (leak on purpose), or
// closes it (clean), on a real backend.
class fd_scenario final : public scenario {
 public:
  explicit fd_scenario(bool leak) : leak_(leak) {}
  size_t buffers_needed() const override { return 1; }
  void prepare(backend& be) override {
    fd_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    be.adopt(fd_.get());
    if (leak_) (void)fd_.release();
  }
  void start(backend& be, buffer_pool&, run_ctx& ctx) override {
    be.spawn([](backend& be, run_ctx& ctx) -> task<> {
      io x(be);
      stream_stats& st = ctx.new_stream();
      while (ctx.keep_going()) {
        (void)co_await x.nop();
        ++st.ops;
      }
    }(be, ctx));
  }

 private:
  bool leak_;
  unique_fd fd_;
};

run_result run_fd_scenario(bool leak) {
  register_builtin_backends();
  scenario_info s{.name = "test.fd", .checks = "test", .defaults = {}, .uses = {},
                  .make = [leak](const params&) -> std::unique_ptr<scenario> { return std::make_unique<fd_scenario>(leak); }};
  params p;
  p.ops = 10;
  return run_scenario(*find_backend("epoll"), s, p);
}

TEST(fd_census, a_leaking_run_gets_an_fd_leak_verdict) {
  const auto r = run_fd_scenario(true);
  EXPECT_EQ(r.verdict, "fd_leak");
  ASSERT_FALSE(r.violations.empty());
  EXPECT_NE(r.violations.back().detail.find("socket:"), std::string::npos) << r.violations.back().detail;
}

TEST(fd_census, a_run_that_closes_everything_is_clean) {
  const auto r = run_fd_scenario(false);
  EXPECT_EQ(r.verdict, "clean");
}

}  // namespace
}  // namespace ringside
