// cancel.send_zc (#8): a seeded byte stream sent with zero-copy sends
// (op_kind::send_zc) over loopback TCP, one buffer reused for every chunk,
// some sends cancelled right after they were submitted; a peer stream
// receives through the backend and checks every byte.
//
// Checks: a zero-copy send's buffer is the caller's again only when the
// kernel is done READING it — io_uring's notification CQE (IORING_CQE_F_NOTIF),
// MSG_ZEROCOPY's error-queue notification — not when the send's result is
// known (the first CQE, IORING_CQE_F_MORE). And a cancel that loses to the
// send never turns the bytes it sent into -ECANCELED.
//
// Determinism: the sender refills the one buffer with the next chunk the
// moment a send completes and lends it to the next send — what any caller
// may do with a buffer its completion handed back. With SEND_ZC the kernel
// posts the send's first CQE before its notification, always (the
// notification is released by the request's own completion); uring-raw
// completes the op at that first CQE, from inside the reap, so the refill and
// the next send happen while the kernel still holds the buffer: the ledger
// sees the range lent again while in flight ("ledger"), every run. What the
// peer receives then depends on when loopback TCP transmits the pages (the
// kernel may send the refilled bytes: "stream_integrity", sometimes).
// Cancelled rounds: start(send_zc) then cancel() before the loop enters the
// kernel; the SQEs go in one enter and the send runs first, so the cancel
// finds nothing (-ENOENT/-EALREADY) and the bytes are sent. A backend that
// reports -ECANCELED anyway (uring-raw's cancel completes at once) makes the
// sender send the chunk again: the peer sees it twice.
//
// AF_UNIX has no zero copy (every backend would send plainly), so this runs
// on loopback TCP, where SEND_ZC and MSG_ZEROCOPY are real (loopback still
// copies on delivery, and its notifications say so).
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <string>

#include "harness/io.hpp"
#include "harness/scenario.hpp"
#include "scenarios/cancel_common.hpp"

namespace ringside {

namespace {

using scen::op_at;
using scen::range_of;
using scen::report_op;

class send_zc_reuse final : public scenario {
 public:
  explicit send_zc_reuse(const params& p) : p_(p) { scen::check_bs(p); }

  [[nodiscard]] std::string unsupported_reason(const backend_caps& caps) const override {
    return caps.zero_copy_send ? std::string() : "no zero-copy send (caps.zero_copy_send = false)";
  }
  // The sender's one buffer and the peer's.
  [[nodiscard]] size_t buffers_needed() const override { return 2; }

  void prepare(backend& be) override {
    const scen::tcp_listener l = scen::listen_loopback();
    // nodelay: each chunk leaves at once, so notifications (which follow the
    // peer's ACK) come per round, not after a Nagle wait.
    pair_ = scen::connect_loopback(l, true);
    be.adopt(pair_.client.get());
    be.adopt(pair_.server.get());
  }

  void start(backend& be, buffer_pool& pool, run_ctx& ctx) override {
    be.spawn(sender(be, pool, ctx));
    be.spawn(peer(be, pool, ctx));
  }

  void verify(run_ctx& ctx) override {
    if (!peer_done_ || rx_ == nullptr || rx_->broken()) return;
    rx_->expect_total(ctx, op_at(op_kind::recv, ~0ull, "peer, end"), sent_);
  }

 private:
  task<> sender(backend& be, buffer_pool& pool, run_ctx& ctx) {
    stream_stats& st = ctx.new_stream();
    buffer buf = scen::take_buffer(pool, ctx, "cancel.send_zc");
    const int fd = pair_.client.get();
    const uint64_t bs = std::min<uint64_t>(p_.bs, buf ? buf.capacity() : 0);
    scen::stream_tx tx(p_.seed, p_.bs);
    prng sched(derive_seed(p_.seed, 8));
    for (uint64_t round = 0; buf && ctx.keep_going(); ++round) {
      const uint64_t n = 1 + sched.below(bs);
      // 1 in 4 rounds cancels its send right after submitting it.
      const bool cancel = sched.below(4) == 0;
      // Reused: the bytes of this chunk go into the buffer the last send
      // handed back.
      tx.fill(buf.first(n));
      uint64_t done = 0;
      for (bool first = true; done < n; first = false) {
        const auto t0 = clock_type::now();
        op o = scen::payload_op(op_kind::send_zc, fd, std::move(buf), done, n - done);
        completion c;
        int cr = 1;
        // Only a round's first send is cancelled: a resend is not raced.
        if (cancel && first) {
          auto h = ringside::start(be, std::move(o));
          cr = h.cancel();
          c = co_await h;
        } else {
          c = co_await io(be).submit(std::move(o));
        }
        buf = std::move(c.buf);
        st.latency.record(
            uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t0).count()));
        ++st.ops;
        const std::string where =
            op_at(op_kind::send_zc, round, cr != 1 ? fmt::format("cancel {}", scen::cancel_text(cr)) : "");
        if (!buf) {
          report_op(ctx, "io_error", where, {}, "completion without its buffer");
          co_return;
        }
        // Cancelled before a byte moved: send the rest again.
        if (c.res == -ECANCELED) continue;
        if (c.res <= 0 || uint64_t(c.res) > n - done) {
          report_op(ctx, "io_error", where, range_of(buf, done, n - done),
                    fmt::format("send_zc completed with {}", c.res));
          co_return;
        }
        done += uint64_t(c.res);
        tx.advance(uint64_t(c.res));
        st.bytes += uint64_t(c.res);
      }
    }
    sent_ = tx.sent();
    // EOF after the last byte: the peer stops there.
    if (int r = scen::shutdown_fd(fd, SHUT_WR); r < 0) scen::report_io(ctx, "cancel.send_zc: shutdown", "", r);
  }

  // The peer: receives through the backend until EOF, checking every byte.
  task<> peer(backend& be, buffer_pool& pool, run_ctx& ctx) {
    buffer buf = scen::take_buffer(pool, ctx, "cancel.send_zc");
    if (!buf) co_return;
    rx_ = std::make_unique<scen::stream_rx>(p_.seed, p_.bs);
    const int fd = pair_.server.get();
    const uint32_t len = uint32_t(std::min<uint64_t>(p_.bs, buf.capacity()));
    io x(be);
    for (uint64_t k = 0;; ++k) {
      completion c = co_await x.recv(fd, std::move(buf), len);
      buf = std::move(c.buf);
      if (c.res == 0) break;  // the sender's EOF
      if (c.res < 0 || !buf || uint32_t(c.res) > len) {
        rx_->mark_broken();
        report_op(ctx, "io_error", op_at(op_kind::recv, k, "peer"), range_of(buf, 0, len),
                  fmt::format("recv: {}", c.res < 0 ? scen::errno_text(-c.res) : fmt::format("{} bytes", c.res)));
        co_return;
      }
      // A stream error stops the run; keep reading to the EOF regardless, so
      // the sender is never left waiting for a window.
      rx_->take(ctx, op_at(op_kind::recv, k, "peer"), buf, 0, uint64_t(c.res));
    }
    peer_done_ = true;
  }

  params p_;
  scen::tcp_pair pair_;
  std::unique_ptr<scen::stream_rx> rx_;
  uint64_t sent_ = 0;
  bool peer_done_ = false;
};

}  // namespace

void register_cancel_zc_scenarios() {
  register_scenario({
      .name = "cancel.send_zc",
      .checks = "#8 zero-copy send, buffer reused for the next chunk: reuse only after the kernel's notification",
      .defaults = scen::cancel_defaults(64, 4096),
      .uses = scen::cancel_uses(),
      .make = [](const params& p) -> std::unique_ptr<scenario> { return std::make_unique<send_zc_reuse>(p); },
  });
}

}  // namespace ringside
