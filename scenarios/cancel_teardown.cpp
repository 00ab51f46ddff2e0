// cancel.teardown (#13): the loop is torn down with ops in flight.
//
// Checks: when streams end while their ops are still in flight, and the run
// ends that way, the backend cancels everything and drains every completion
// before a buffer goes back to the pool or the loop goes away: no buffer is
// released while the kernel holds it, every op completes exactly once (ops
// whose waiter outlives every stream included), and a connection an
// orphaned accept took is closed, not leaked.
//
// Each round (seeded) a child task starts 1..3 ops from a mix and returns
// at once, or after a nop barrier (so the ops have reached the kernel, and
// the ones that completed there are not reaped yet): its op_handles' ends
// drop whatever is not done. The mix: a recv on an idle socket pair that
// never carries data (it waits until cancelled), a recv whose bytes are
// already in its socket (done in the kernel at submit), an accept whose
// connection is already queued (likewise). Done ops are taken (an accepted
// fd is closed). Now and then an idle recv is also submitted with a waiter
// the scenario owns, outside every stream: it waits until teardown, which
// must complete it. The last round is the end of the run: the main stream
// returns right after it, so its dropped ops are what teardown finds in
// flight.
//
// Deterministic: data and connections exist before the ops that take them;
// the idle pair never gets any. On thread-per-stream backends (blocking) an
// op with nothing to do would block its stream, and an op has completed
// inside submit() before its handle can go: the mix there has only the ops
// that complete at once, and the scenario checks they are all served.
//
// uring-raw: its drop releases the buffer while the kernel holds it (the
// ledger, and the canary quarantine when the kernel writes there).
#include <fmt/format.h>

#include <array>
#include <cerrno>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "harness/io.hpp"
#include "harness/scenario.hpp"
#include "scenarios/cancel_common.hpp"

namespace ringside {

namespace {

using scen::op_at;
using scen::range_of;
using scen::report_op;

// 3 ops per round: one of each kind at most.
constexpr size_t k_mix = 3;
// 16 ops outside every stream at most: each holds a buffer until teardown.
constexpr size_t k_max_outside = 16;
// 256 bytes per busy recv, and at most 64 KiB of them unread (a dropped
// recv takes its bytes or leaves them, unseen): far below AF_UNIX's socket
// buffer, so a push never waits.
constexpr uint64_t k_busy_push = 256;
constexpr uint64_t k_max_busy_unread = 64 * 1024;

enum class mix_kind : uint8_t { idle_recv, busy_recv, accept };
constexpr std::string_view to_string(mix_kind k) noexcept {
  switch (k) {
    case mix_kind::idle_recv: return "recv on an idle socket";
    case mix_kind::busy_recv: return "recv with its data there";
    case mix_kind::accept: return "accept with its connection queued";
  }
  return "?";
}
constexpr op_kind kind_of(mix_kind k) noexcept { return k == mix_kind::accept ? op_kind::accept : op_kind::recv; }

// An op whose waiter is no stream's: the scenario owns it, so only the
// backend's teardown can end the op. Immovable (the backend holds its
// address); never drops (it outlives the backend).
struct outside_op final : op_waiter {
  outside_op() = default;
  outside_op(const outside_op&) = delete;
  outside_op& operator=(const outside_op&) = delete;
  completion result;
  bool done = false;
  void on_complete(completion&& c) noexcept override {
    result = std::move(c);  // its buffer goes back to the pool with the scenario
    done = true;
  }
};

class cancel_teardown final : public scenario {
 public:
  explicit cancel_teardown(const params& p) : p_((scen::check_bs(p), p)) {}

  // Outside ops' buffers, a round's frame ops', and two earlier rounds'
  // still in a correct backend's graveyard, plus the end's.
  [[nodiscard]] size_t buffers_needed() const override { return k_max_outside + 4 * k_mix; }

  void prepare(backend& be) override {
    idle_ = scen::unix_pair(be);
    busy_ = scen::unix_pair(be);
    listener_ = scen::listen_loopback();
    be.adopt(listener_.fd.get());
  }

  void start(backend& be, buffer_pool& pool, run_ctx& ctx) override {
    ops_can_wait_ = !be.caps().thread_per_stream;
    be.spawn(run(be, pool, ctx));
  }

 private:
  task<> run(backend& be, buffer_pool& pool, run_ctx& ctx) {
    stream_stats& st = ctx.new_stream();
    prng sched(derive_seed(p_.seed, 13));
    uint64_t round = 0;
    for (; ctx.keep_going(); ++round) {
      const auto t0 = clock_type::now();
      co_await leave_in_flight(be, pool, ctx, round, sched);
      if (sched.below(4) == 0 && outside_.size() < k_max_outside) start_outside(be, pool, ctx, round);
      st.latency.record(uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t0).count()));
      ++st.ops;
      if (ctx.stopped()) co_return;
    }
    // The end of the run: this stream returns right after, so what this
    // round leaves in flight is still there when the backend is torn down.
    co_await leave_in_flight(be, pool, ctx, round, sched);
  }

  // Starts 1..3 ops and returns with the ones not done still in flight: the
  // handles' destructors drop them.
  task<> leave_in_flight(backend& be, buffer_pool& pool, run_ctx& ctx, uint64_t round, prng& sched) {
    const size_t m = 1 + sched.below(k_mix);
    const bool barrier = sched.below(2) == 0;
    std::array<mix_kind, k_mix> kinds{};
    std::array<std::optional<op_handle>, k_mix> h;
    for (size_t i = 0; i < m; ++i) {
      kinds[i] = mix_kind(sched.below(ops_can_wait_ ? 3 : 2) + (ops_can_wait_ ? 0 : 1));
      if (!start_one(be, pool, ctx, round, kinds[i], h[i])) co_return;
    }
    if (barrier) {
      if (auto c = co_await io(be).nop(); c.res != 0)
        report_op(ctx, "io_error", op_at(op_kind::nop, round, "barrier"), {}, fmt::format("nop completed with {}", c.res));
    }
    for (size_t i = 0; i < m; ++i) {
      if (!h[i] || !h[i]->done()) continue;
      op_handle& hi = *h[i];  // named: g++ 12 would copy the awaitable `*h[i]`
      take(ctx, round, kinds[i], co_await hi);
    }
  }

  // False when the round cannot go on (reported).
  bool start_one(backend& be, buffer_pool& pool, run_ctx& ctx, uint64_t round, mix_kind k,
                 std::optional<op_handle>& h) {
    const uint32_t bs = uint32_t(p_.bs);
    switch (k) {
      case mix_kind::idle_recv: {
        buffer b = scen::take_buffer(pool, ctx, "cancel.teardown");
        if (!b) return false;
        h.emplace(be, scen::payload_op(op_kind::recv, idle_.a.get(), std::move(b), 0, bs));
        return true;
      }
      case mix_kind::busy_recv: {
        if (busy_pushed_ - busy_seen_ >= k_max_busy_unread) return true;  // enough is waiting already
        buffer b = scen::take_buffer(pool, ctx, "cancel.teardown");
        if (!b) return false;
        const uint64_t n = std::min<uint64_t>(k_busy_push, bs);
        if (int r = busy_tx_.push(busy_.b.get(), n); r < 0) {
          scen::report_io(ctx, "cancel.teardown: push", "", r);
          return false;
        }
        busy_pushed_ += n;
        h.emplace(be, scen::payload_op(op_kind::recv, busy_.a.get(), std::move(b), 0, bs));
        return true;
      }
      case mix_kind::accept: {
        // A connection completes its handshake in the listener's queue;
        // the client end is not needed (the accept still gets the server end).
        const int c = sys::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c < 0) {
          scen::report_io(ctx, "cancel.teardown: socket", "", c);
          return false;
        }
        const int r = sys::connect(c, reinterpret_cast<const sockaddr*>(&listener_.addr), sizeof listener_.addr);
        sys::close(c);
        if (r < 0) {
          scen::report_io(ctx, "cancel.teardown: connect", "", r);
          return false;
        }
        h.emplace(be, op{.kind = op_kind::accept, .fd = listener_.fd.get()});
        return true;
      }
    }
    return false;
  }

  // A frame op that completed before its stream ended: served here.
  void take(run_ctx& ctx, uint64_t round, mix_kind k, completion c) {
    const std::string where = op_at(kind_of(k), round, to_string(k));
    if (k == mix_kind::accept) {
      if (c.res >= 0) {
        sys::close(c.res);  // served: the connection was only ever needed to exist
        return;
      }
      scen::report_io(ctx, where, "", c.res);
      return;
    }
    if (!c.buf) {
      report_op(ctx, "io_error", where, {}, "completion without its buffer");
      return;
    }
    if (c.res <= 0 || uint64_t(c.res) > p_.bs) {
      report_op(ctx, "io_error", where, range_of(c.buf, 0, p_.bs), fmt::format("recv completed with {}", c.res));
      return;
    }
    if (k == mix_kind::busy_recv) busy_seen_ += uint64_t(c.res);
  }

  // An op only teardown ends: an idle recv where ops can wait; elsewhere a
  // recv with its data there (it completes inside submit()).
  void start_outside(backend& be, buffer_pool& pool, run_ctx& ctx, uint64_t round) {
    buffer b = scen::take_buffer(pool, ctx, "cancel.teardown");
    if (!b) return;
    const uint32_t bs = uint32_t(p_.bs);
    int fd = idle_.a.get();
    if (!ops_can_wait_) {
      const uint64_t n = std::min<uint64_t>(k_busy_push, bs);
      if (int r = busy_tx_.push(busy_.b.get(), n); r < 0) return scen::report_io(ctx, "cancel.teardown: push", "", r);
      busy_pushed_ += n;
      fd = busy_.a.get();
    }
    (void)round;
    outside_op& w = outside_.emplace_back();
    (void)be.submit(scen::payload_op(op_kind::recv, fd, std::move(b), 0, bs), &w);
  }

  params p_;
  scen::stream_pair idle_;  // never written to
  scen::stream_pair busy_;  // bytes pushed just before each recv on it
  scen::tcp_listener listener_;
  scen::stream_tx busy_tx_{p_.seed, p_.bs};  // what is pushed is not checked: dropped recvs take it unseen
  uint64_t busy_pushed_ = 0;
  uint64_t busy_seen_ = 0;
  // Destroyed with the scenario, after the backend (the runner's order),
  // handing their buffers back to the pool.
  std::deque<outside_op> outside_;
  bool ops_can_wait_ = true;
};

}  // namespace

void register_cancel_teardown_scenarios() {
  register_scenario({
      .name = "cancel.teardown",
      .checks = "#13 loop torn down with ops in flight (dropped by ending streams, or owned by no stream): all are "
                "cancelled and drained before their buffers go back; orphaned accepts are closed",
      .defaults = scen::cancel_defaults(64, 4096),
      .uses = scen::cancel_uses(),
      .make = [](const params& p) -> std::unique_ptr<scenario> { return std::make_unique<cancel_teardown>(p); },
  });
}

}  // namespace ringside
