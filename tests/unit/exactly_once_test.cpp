// Checks: the exactly-once detector catches a backend that completes an op
// twice or calls a dropped op's waiter, and stays silent on every real
// backend running real scenarios.
#include "harness/exactly_once.hpp"

#include <gtest/gtest.h>

#include <sys/socket.h>

#include "harness/io.hpp"
#include "harness/unique_fd.hpp"
#include "harness/runner.hpp"

namespace ringside {
namespace {

enum class bug { double_completion, complete_after_drop };

// A real backend with one deliberate bug on its 5th payload op.
class buggy_backend final : public backend {
 public:
  buggy_backend(std::unique_ptr<backend> inner, bug b) : inner_(std::move(inner)), bug_(b) {}
  std::string_view name() const noexcept override { return inner_->name(); }
  const backend_caps& caps() const noexcept override { return inner_->caps(); }
  void attach_pool(buffer_pool& p) override { inner_->attach_pool(p); }
  void adopt(int fd) override { inner_->adopt(fd); }
  void spawn(task<> t) override { inner_->spawn(std::move(t)); }
  int run(clock_type::time_point d) override { return inner_->run(d); }
  int cancel(op_id id) noexcept override { return inner_->cancel(id); }
  void drop(op_id id) noexcept override {
    inner_->drop(id);
    // The bug: tell the waiter anyway, though its frame is being destroyed.
    if (bug_ == bug::complete_after_drop && last_ != nullptr) std::exchange(last_, nullptr)->on_complete({.res = -ECANCELED});
  }
  void shutdown() noexcept override { inner_->shutdown(); }
  void collect_violations(std::vector<violation>& out) override { inner_->collect_violations(out); }

  op_id submit(op&& o, op_waiter* w) noexcept override {
    if (bug_ == bug::complete_after_drop) {
      last_ = w;
      return inner_->submit(std::move(o), w);
    }
    if (!moves_payload(o.kind) || ++n_ != 5) return inner_->submit(std::move(o), w);
    relay_.target = w;
    relay_.what = bug_;
    return inner_->submit(std::move(o), &relay_);
  }

 private:
  struct relay final : op_waiter {
    op_waiter* target = nullptr;
    bug what{};
    void on_started(op_id id) noexcept override { target->on_started(id); }
    void on_complete(completion&& c) noexcept override {
      const int32_t res = c.res;
      target->on_complete(std::move(c));
      target->on_complete(completion{.res = res});  // the bug: a second completion
    }
  };
  std::unique_ptr<backend> inner_;
  bug bug_;
  int n_ = 0;
  relay relay_;
  op_waiter* last_ = nullptr;
};

run_result run_with(const char* backend_name, const char* scenario_name, std::optional<bug> b) {
  register_builtin_backends();
  register_builtin_scenarios();
  backend_info info = *find_backend(backend_name);
  if (b) {
    auto real = info.make;
    info.make = [real, b](const backend_options& o) -> std::unique_ptr<backend> {
      return std::make_unique<buggy_backend>(real(o), *b);
    };
  }
  params p = find_scenario(scenario_name)->defaults;
  p.ops = 50;
  p.size = 1 << 20;
  p.bs = 4096;
  p.conns = 2;
  run_options opt;
  opt.exactly_once = true;
  opt.ops_budget_s = 20;
  return run_scenario(info, *find_scenario(scenario_name), p, opt);
}

TEST(exactly_once, catches_a_double_completion) {
  const auto r = run_with("epoll", "file.rand_read", bug::double_completion);
  bool found = false;
  for (const auto& v : r.violations) found = found || (v.kind == "exactly_once" && v.detail.find("2 times") != std::string::npos);
  EXPECT_TRUE(found) << r.verdict;
}

TEST(exactly_once, catches_a_completion_after_drop) {
  register_builtin_backends();
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  unique_fd a(sv[0]), b(sv[1]);
  buffer_pool pool(2, 4096);
  std::vector<violation> v;
  {
    exactly_once_backend be(std::make_unique<buggy_backend>(find_backend("epoll")->make({}), bug::complete_after_drop));
    be.attach_pool(pool);
    be.adopt(a.get());
    be.spawn([](backend& be, buffer_pool& pool, int fd) -> task<> {
      // Pending (nothing to read), then dropped with the handle.
      op_handle h = start(be, op{.kind = op_kind::recv, .fd = fd, .len = 64, .buf = pool.acquire()});
      co_return;
    }(be, pool, a.get()));
    ASSERT_EQ(be.run(clock_type::now() + std::chrono::seconds(5)), 0);
    be.shutdown();
    be.collect_violations(v);
  }
  bool found = false;
  for (const auto& x : v) found = found || (x.kind == "exactly_once" && x.detail.find("after it was dropped") != std::string::npos);
  EXPECT_TRUE(found) << (v.empty() ? "no violations" : v[0].detail);
}

TEST(exactly_once, silent_on_every_real_backend) {
  register_builtin_backends();
  for (const auto& b : registered_backends()) {
    if (b.unavailable_reason && !b.unavailable_reason().empty()) continue;
    for (const char* s : {"file.rand_read", "tcp.echo", "tcp.accept_storm"}) {
      const auto r = run_with(b.name.c_str(), s, std::nullopt);
      // A scenario the backend cannot run (asio: no file I/O) is not a verdict.
      if (r.verdict.rfind("unsupported: ", 0) == 0) continue;
      EXPECT_EQ(r.verdict, "clean") << b.name << " " << s << ": "
                                    << (r.violations.empty() ? "" : r.violations[0].detail);
    }
  }
}

}  // namespace
}  // namespace ringside
