// Checks: a multishot recv (op_kind::recv_multishot with a buffer_group)
// delivers each receive once, in order, through on_more, each in one of its
// group's buffers; then exactly one final completion (-ECANCELED after a
// cancel, -ENOBUFS when the group ran dry, 0 at EOF), never followed by more;
// and every buffer of the group comes back: handed out, or returned to the
// group by the final completion.
#include "harness/buffer_group.hpp"
#include "tests/conformance/driver.hpp"

namespace ringside::conformance {
namespace {

// A multishot op awaited for its final completion; on_more runs `step` on
// each receive (the test's peer acts there). Immovable: the backend holds it.
class multishot final : public op_waiter {
 public:
  using step_fn = void (*)(multishot&, completion&);

  multishot(ringside::backend& be, int fd, buffer_group& g, step_fn step, void* ctx) noexcept
      : be_(be), fd_(fd), group_(g), step_(step), ctx_(ctx) {}
  multishot(const multishot&) = delete;
  multishot& operator=(const multishot&) = delete;
  ~multishot() {
    if (pending_) be_.drop(id_);
  }

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) noexcept {
    h_ = h;
    pending_ = true;
    op o{.kind = op_kind::recv_multishot, .fd = fd_, .group = &group_};
    submitting_ = true;
    be_.submit(std::move(o), this);
    submitting_ = false;
    return !done_;  // completed inline (blocking): resume at once
  }
  int32_t await_resume() noexcept { return final_res_; }

  [[nodiscard]] ringside::backend& be() noexcept { return be_; }
  [[nodiscard]] op_id id() const noexcept { return id_; }
  [[nodiscard]] void* ctx() const noexcept { return ctx_; }
  int delivered = 0;
  uint64_t bytes = 0;
  bool bytes_ok = true;
  int more_after_final = 0;
  int finals = 0;

 private:
  void on_started(op_id id) noexcept override { id_ = id; }
  void on_more(completion&& c) noexcept override {
    if (done_) ++more_after_final;
    if (!c.buf || c.res <= 0) {
      bytes_ok = false;
      return;
    }
    ++delivered;
    if (!matches_pattern(c.buf.first(size_t(c.res)), 61, bytes)) bytes_ok = false;
    bytes += uint64_t(c.res);
    step_(*this, c);
  }
  void on_complete(completion&& c) noexcept override {
    ++finals;
    final_res_ = c.res;
    if (c.buf && c.res > 0) {  // a final completion may carry one last receive
      ++delivered;
      bytes += uint64_t(c.res);
    }
    done_ = true;
    pending_ = false;
    if (!submitting_ && h_) std::exchange(h_, {}).resume();
  }

  ringside::backend& be_;
  int fd_;
  buffer_group& group_;
  step_fn step_;
  void* ctx_;
  op_id id_;
  std::coroutine_handle<> h_;
  int32_t final_res_ = 1;
  bool pending_ = false;
  bool done_ = false;
  bool submitting_ = false;
};

void push(int fd, uint64_t off, size_t n) {
  std::vector<std::byte> out(n);
  fill_pattern(out, 61, off);
  ASSERT_EQ(::send(fd, out.data(), n, 0), ssize_t(n));
}

// Description: 100 bytes wait before the op; each receive pushes the next
// 100 (they arrive as separate receives); the second receive cancels the op
// (from inside on_more). Two receives, then -ECANCELED; the two unused
// buffers are back in the group.
TEST_P(backend, multishot_recv_delivers_then_cancel) {
  driver d(GetParam());
  socket_pair sp = make_socketpair();
  d.adopt(sp.a);
  buffer_group g;
  ASSERT_EQ(g.fill(d.pool(), 4), 4u);
  push(sp.b.get(), 0, 100);
  int32_t res = 1;
  int delivered = 0, finals = 0, late = 0, cancel_res = 1;
  bool bytes_ok = false;
  const int peer = sp.b.get();
  struct ctx_t {
    int peer;
    int* cancel_res;
  } ctx{peer, &cancel_res};
  auto body = [&]() -> task<> {
    multishot m(d.be(), sp.a.get(), g,
                [](multishot& self, completion&) {
                  auto* c = static_cast<ctx_t*>(self.ctx());
                  if (self.delivered == 1) push(c->peer, 100, 100);
                  if (self.delivered == 2) *c->cancel_res = self.be().cancel(self.id());
                },
                &ctx);
    res = co_await m;
    co_await d.io().sleep_ns(10'000'000);  // a late receive would land now
    delivered = m.delivered;
    finals = m.finals;
    late = m.more_after_final;
    bytes_ok = m.bytes_ok && m.bytes == 200;
  };
  d.spawn(body());
  ASSERT_EQ(d.run(), 0) << "watchdog: the cancelled multishot never ended";
  EXPECT_EQ(cancel_res, 0);
  EXPECT_EQ(res, -ECANCELED);
  EXPECT_EQ(delivered, 2);
  EXPECT_EQ(finals, 1);
  EXPECT_EQ(late, 0) << "a receive was delivered after the final completion";
  EXPECT_TRUE(bytes_ok) << "the receives are not the bytes sent, in order";
  EXPECT_EQ(g.size(), 2u) << "unused ring buffers did not come back to the group";
}

// Description: a group of two buffers: two receives use them up; bytes that
// arrive after that find no buffer: the op ends -ENOBUFS, and those bytes
// stay in the socket.
TEST_P(backend, multishot_recv_runs_dry) {
  driver d(GetParam());
  socket_pair sp = make_socketpair();
  d.adopt(sp.a);
  buffer_group g;
  ASSERT_EQ(g.fill(d.pool(), 2), 2u);
  push(sp.b.get(), 0, 10);
  int32_t res = 1;
  int delivered = 0, finals = 0;
  bool bytes_ok = false;
  int peer = sp.b.get();
  auto body = [&]() -> task<> {
    multishot m(d.be(), sp.a.get(), g,
                [](multishot& self, completion&) { push(*static_cast<int*>(self.ctx()), self.bytes, 10); },
                &peer);
    res = co_await m;
    delivered = m.delivered;
    finals = m.finals;
    bytes_ok = m.bytes_ok && m.bytes == 20;
  };
  d.spawn(body());
  ASSERT_EQ(d.run(), 0) << "watchdog: the multishot never ran dry";
  EXPECT_EQ(res, -ENOBUFS);
  EXPECT_EQ(delivered, 2);
  EXPECT_EQ(finals, 1);
  EXPECT_TRUE(bytes_ok);
  EXPECT_EQ(g.size(), 0u);
  std::byte rest[16];
  EXPECT_EQ(raw_recv_now(sp.a.get(), rest), 10) << "the bytes that found no buffer were lost";
}

// Description: EOF ends the op with 0 after the last receive; the three
// unused buffers are back in the group; nothing is reported.
TEST_P(backend, multishot_recv_eof) {
  driver d(GetParam());
  socket_pair sp = make_socketpair();
  d.adopt(sp.a);
  buffer_group g;
  ASSERT_EQ(g.fill(d.pool(), 4), 4u);
  push(sp.b.get(), 0, 10);
  ASSERT_EQ(::shutdown(sp.b.get(), SHUT_WR), 0);
  int32_t res = 1;
  int delivered = 0;
  auto body = [&]() -> task<> {
    multishot m(d.be(), sp.a.get(), g, [](multishot&, completion&) {}, nullptr);
    res = co_await m;
    delivered = m.delivered;
  };
  d.spawn(body());
  ASSERT_EQ(d.run(), 0) << "watchdog: EOF did not end the multishot";
  EXPECT_EQ(res, 0);
  EXPECT_EQ(delivered, 1);
  EXPECT_EQ(g.size(), 3u);
  g.clear();
  d.be().shutdown();
  const auto v = d.violations();
  EXPECT_TRUE(v.empty()) << describe(v);
}

}  // namespace
}  // namespace ringside::conformance
