// The TCP throughput scenarios on loopback: tcp.stream, tcp.echo, tcp.rr and
// tcp.accept_storm.
//
// Checks: every byte a receiver sees is the sender's seeded stream at its
// absolute offset (no gap, duplicate, reorder or corruption), each end of a
// connection counts the same bytes, and every connection made is accepted and
// closed — so a backend that drops, repeats or invents data, or leaks
// descriptors, does not get a number.
//
// Connections for stream/echo/rr are made in prepare() with plain blocking
// calls; the timed run only moves data. Each scenario ends by itself when the
// shared budget is spent: senders shut down their write side so receivers see
// EOF; the accept loop gets one last "poison" connection.
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <coroutine>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "harness/buffer.hpp"
#include "harness/buffer_group.hpp"
#include "harness/io.hpp"
#include "harness/pacer.hpp"
#include "harness/pattern.hpp"
#include "harness/scenario.hpp"
#include "harness/sys.hpp"
#include "harness/task.hpp"
#include "harness/unique_fd.hpp"
#include "scenarios/common.hpp"

namespace ringside {

void register_tcp_scenarios();

namespace {

// One established connection and what each end moved. Each counter is written
// by one stream only and read by verify() after the run.
struct tcp_conn {
  scen::tcp_pair fds;
  uint64_t client_tx = 0;  // bytes the client end sent
  uint64_t client_rx = 0;  // bytes the client end received (echo)
  uint64_t server_rx = 0;
  uint64_t server_tx = 0;  // (echo)
};

// --backend-opt multishot (io_uring backends; params.uring.multishot): a
// receive path as ONE recv_multishot op over a small provided-buffer group
// instead of a recv per chunk. next() hands out each receive in order (res,
// and the group buffer holding the bytes, the caller's from then on). When
// the group runs dry the kernel ends the op (-ENOBUFS): the group is refilled
// from the pool (consumed buffers went back there) and the op issued again.
// The end of the stream (0) or an error is handed out last, once.
// Immovable: the backend holds its address while the op is in flight.
class multishot_reader final : op_waiter {
 public:
  // Buffers per issue: 8 receives in flight per connection.
  static constexpr size_t k_group = 8;

  multishot_reader(backend& be, buffer_pool& pool, int fd, uint32_t len)
      : be_(be), pool_(pool), fd_(fd), len_(len), q_(k_group + 2) {
    group_.reserve(k_group);
  }
  multishot_reader(const multishot_reader&) = delete;
  multishot_reader& operator=(const multishot_reader&) = delete;
  ~multishot_reader() {
    if (active_) be_.drop(id_);
  }

  struct awaiter {
    multishot_reader& r;
    bool await_ready() noexcept { return r.ready(); }
    void await_suspend(std::coroutine_handle<> h) noexcept { r.h_ = h; }
    completion await_resume() noexcept { return r.pop(); }
  };
  awaiter next() noexcept { return awaiter{*this}; }

 private:
  bool ready() noexcept {
    if (count_ > 0 || ended_) return true;
    if (!active_) issue();
    return count_ > 0 || ended_;
  }
  void issue() noexcept {
    group_.fill(pool_, k_group - std::min(group_.size(), k_group));
    if (group_.empty()) {
      end(-ENOBUFS);  // the pool is dry: say so rather than spin
      return;
    }
    active_ = true;
    submitting_ = true;
    op o{.kind = op_kind::recv_multishot, .fd = fd_, .len = len_, .group = &group_};
    id_ = be_.submit(std::move(o), this);
    submitting_ = false;
  }
  completion pop() noexcept {
    if (count_ == 0) return completion{end_res_, 0, {}};
    completion c = std::move(q_[head_]);
    head_ = (head_ + 1) % q_.size();
    --count_;
    return c;
  }
  void push(completion&& c) noexcept {
    if (count_ == q_.size()) return end(-EOVERFLOW);  // more receives than buffers: cannot happen
    q_[(head_ + count_) % q_.size()] = std::move(c);
    ++count_;
  }
  void end(int32_t res) noexcept {
    ended_ = true;
    end_res_ = res;
  }
  void wake() noexcept {
    if (!h_ || submitting_) return;
    // The group ran dry with nothing to hand out: issue again, still waiting.
    if (count_ == 0 && !ended_ && !active_) issue();
    if (count_ > 0 || ended_) std::exchange(h_, {}).resume();  // last: the frame may end
  }
  void on_more(completion&& c) noexcept override {
    push(std::move(c));
    wake();
  }
  void on_complete(completion&& c) noexcept override {
    active_ = false;
    if (c.res > 0) push(std::move(c));  // one last receive; the next next() issues again
    else if (c.res != -ENOBUFS) end(c.res);  // EOF (0) or an error; -ENOBUFS: issue again
    wake();
  }

  backend& be_;
  buffer_pool& pool_;
  int fd_;
  uint32_t len_;
  buffer_group group_;
  std::vector<completion> q_;  // ring of receives not yet handed out
  size_t head_ = 0, count_ = 0;
  op_id id_;
  std::coroutine_handle<> h_;
  int32_t end_res_ = 0;
  bool active_ = false, ended_ = false, submitting_ = false;
};

// Buffers one multishot_reader may hold from the pool: its group, plus the
// one its caller still holds while the next receive is handed out.
constexpr size_t k_multishot_buffers = multishot_reader::k_group + 1;

// Common to the connection-based scenarios: the connections, made untimed.
class conn_scenario : public scenario {
 public:
  conn_scenario(std::string name, const params& p, uint32_t conns, bool nodelay)
      : name_(std::move(name)), p_(p), conns_(std::max<uint32_t>(conns, 1)), nodelay_(nodelay) {
    scen::check_bs(p);
  }

  void prepare(backend& be) override {
    auto l = scen::listen_loopback();
    conns_v_ = std::make_unique<tcp_conn[]>(conns_);
    for (uint32_t i = 0; i < conns_; ++i) {
      conns_v_[i].fds = scen::connect_loopback(l, nodelay_);
      be.adopt(conns_v_[i].fds.client.get());
      be.adopt(conns_v_[i].fds.server.get());
    }
  }

 protected:
  // A stream that cannot go on: close its end, so the peer's blocked recv or
  // send fails (unread data makes the close a reset) instead of hanging.
  // Released before the op: if the frame is destroyed mid-close (watchdog),
  // a second close could hit a reused descriptor number.
  static task<> abort_end(io& x, unique_fd& fd) {
    if (!fd) co_return;
    (void)co_await x.close(fd.release());
  }

  // The client side is done: a clean finish sends EOF (every byte is out, so
  // the peer can finish and verify); a failed one aborts the connection.
  task<> end_client(io& x, run_ctx& ctx, tcp_conn& c, bool ok) {
    if (!ok) co_return co_await abort_end(x, c.fds.client);
    if (int r = scen::shutdown_fd(c.fds.client.get(), SHUT_WR); r < 0)
      scen::report_io(ctx, name_, "shutdown(SHUT_WR)", r);
  }

  std::string name_;
  params p_;
  uint32_t conns_;
  bool nodelay_;
  // Fixed size and never moved: streams hold references into it.
  std::unique_ptr<tcp_conn[]> conns_v_;
};

// ---------------------------------------------------------------------------
// tcp.stream: one-way bulk transfer, one sender and one receiver per connection.
class stream_scenario final : public conn_scenario {
 public:
  explicit stream_scenario(const params& p) : conn_scenario("tcp.stream", p, p.conns, false) {}

  // Multishot: the receiver's group instead of its one buffer.
  [[nodiscard]] size_t buffers_needed() const override {
    return size_t(conns_) * (p_.uring.multishot ? 1 + k_multishot_buffers : 2);
  }

  void start(backend& be, buffer_pool& pool, run_ctx& ctx) override {
    for (uint32_t i = 0; i < conns_; ++i) {
      be.spawn(receiver(be, pool, ctx, i));
      be.spawn(sender(be, pool, ctx, i));
    }
  }

  void verify(run_ctx& ctx) override {
    for (uint32_t i = 0; i < conns_; ++i) {
      const auto& c = conns_v_[i];
      if (c.client_tx != c.server_rx)
        ctx.report("short_transfer",
                   fmt::format("{}: connection {}: sent {} bytes, received {}", name_, i, c.client_tx, c.server_rx));
    }
  }

 private:
  // One op = one chunk of bs bytes, sent completely (partial sends continue
  // within the op). Ends with shutdown(SHUT_WR) so the receiver sees EOF.
  task<> sender(backend& be, buffer_pool& pool, run_ctx& ctx, uint32_t index) {
    io x(be);
    tcp_conn& c = conns_v_[index];
    const int fd = c.fds.client.get();
    stream_stats& st = ctx.new_stream();
    buffer buf = pool.acquire();
    if (!buf) {
      ctx.report("io_error", name_ + ": buffer pool exhausted");
      co_await abort_end(x, c.fds.client);
      co_return;
    }
    const pattern pat(derive_seed(p_.seed, index), p_.bs, p_.verify);
    chunk_writer cw(pat);
    pacer pace(ctx, conns_, index);
    bool ok = true;
    auto now = clock_type::now();
    for (uint64_t off = 0; ok && scen::keep_going(ctx, now); off += p_.bs) {
      const auto slot = co_await pace.next(x);
      if (!slot) break;
      cw.write(buf.first(p_.bs), off);
      const auto t0 = pace.start(*slot);
      // A partial send continues in place from the chunk's rest.
      for (uint64_t done = 0; done < p_.bs;) {
        auto r = co_await x.submit(scen::payload_op(op_kind::send, fd, std::move(buf), done, p_.bs - done));
        buf = std::move(r.buf);
        if (scen::bad_transfer(r.res, p_.bs - done, buf)) {
          scen::report_transfer(ctx, fmt::format("{}: connection {}: send at {}", name_, index, off + done), r.res,
                                p_.bs - done, buf);
          ok = false;
          break;
        }
        done += uint64_t(r.res);
        c.client_tx += uint64_t(r.res);
      }
      if (!ok) break;
      now = clock_type::now();
      ++st.ops;
      st.bytes += p_.bs;
      st.latency.record(ns_between(t0, now));
    }
    co_await end_client(x, ctx, c, ok);
  }

  // Verifies every received piece at its absolute stream offset; drains to
  // EOF even after a mismatch so the sender never blocks on a full socket.
  task<> receiver(backend& be, buffer_pool& pool, run_ctx& ctx, uint32_t index) {
    io x(be);
    tcp_conn& c = conns_v_[index];
    const int fd = c.fds.server.get();
    buffer buf = pool.acquire();
    if (!buf) {
      ctx.report("io_error", name_ + ": buffer pool exhausted");
      co_await abort_end(x, c.fds.server);
      co_return;
    }
    const pattern pat(derive_seed(p_.seed, index), p_.bs, p_.verify);
    bool checking = true;
    std::optional<multishot_reader> ms;
    if (p_.uring.multishot) {
      buf.reset();  // the reader's group holds the buffers
      ms.emplace(be, pool, fd, uint32_t(p_.bs));
    }
    for (;;) {
      completion r;
      if (ms) r = co_await ms->next();
      else r = co_await x.recv(fd, std::move(buf), uint32_t(p_.bs));
      buf = std::move(r.buf);
      if (r.res == 0) break;  // EOF: the sender is done
      if (scen::bad_transfer(r.res, p_.bs, buf)) {
        scen::report_transfer(ctx, fmt::format("{}: connection {}: recv at {}", name_, index, c.server_rx), r.res, p_.bs, buf);
        co_await abort_end(x, c.fds.server);
        co_return;
      }
      const auto got = buf.first(size_t(r.res));
      if (checking) {
        if (auto bad = pat.check(got, c.server_rx)) {
          scen::report_mismatch(ctx, fmt::format("{}: connection {}", name_, index), pat, got, c.server_rx, *bad);
          checking = false;
        }
      }
      c.server_rx += uint64_t(r.res);
    }
  }
};

// ---------------------------------------------------------------------------
// tcp.echo / tcp.rr: closed-loop request/response. Message k of connection c
// is chunk k of connection c's seeded stream, so it carries (seed, c, k) and a
// reply from another message or connection cannot pass.
class echo_scenario final : public conn_scenario {
 public:
  echo_scenario(std::string name, const params& p, uint32_t conns)
      : conn_scenario(std::move(name), p, conns, true) {}

  // Client: request + reply buffers (the request keeps its body between
  // messages). Server: one buffer, echoed from in place.
  [[nodiscard]] size_t buffers_needed() const override {
    return size_t(conns_) * (p_.uring.multishot ? 2 + k_multishot_buffers : 3);
  }

  void start(backend& be, buffer_pool& pool, run_ctx& ctx) override {
    for (uint32_t i = 0; i < conns_; ++i) {
      be.spawn(server(be, pool, ctx, i));
      be.spawn(client(be, pool, ctx, i));
    }
  }

  void verify(run_ctx& ctx) override {
    for (uint32_t i = 0; i < conns_; ++i) {
      const auto& c = conns_v_[i];
      if (c.client_tx != c.server_rx || c.server_rx != c.server_tx || c.server_tx != c.client_rx)
        ctx.report("short_transfer",
                   fmt::format("{}: connection {}: client sent {}, server received {} and sent {}, client received {}",
                               name_, i, c.client_tx, c.server_rx, c.server_tx, c.client_rx));
    }
  }

 private:
  // One op = send one message, receive its whole echo, verify it.
  task<> client(backend& be, buffer_pool& pool, run_ctx& ctx, uint32_t index) {
    io x(be);
    tcp_conn& c = conns_v_[index];
    const int fd = c.fds.client.get();
    stream_stats& st = ctx.new_stream();
    buffer tx = pool.acquire(), rx = pool.acquire();
    if (!tx || !rx) {
      ctx.report("io_error", name_ + ": buffer pool exhausted");
      co_await abort_end(x, c.fds.client);
      co_return;
    }
    const pattern pat(derive_seed(p_.seed, index), p_.bs, p_.verify);
    chunk_writer cw(pat);
    pacer pace(ctx, conns_, index);
    const uint64_t bs = p_.bs;
    bool ok = true;
    auto now = clock_type::now();
    for (uint64_t off = 0; ok && scen::keep_going(ctx, now); off += bs) {
      const auto slot = co_await pace.next(x);
      if (!slot) break;
      cw.write(tx.first(bs), off);
      const auto t0 = pace.start(*slot);
      // Partial sends and split replies continue in place, so the reply
      // lands whole and is checked once, outside its latency.
      for (uint64_t done = 0; done < bs;) {
        auto r = co_await x.submit(scen::payload_op(op_kind::send, fd, std::move(tx), done, bs - done));
        tx = std::move(r.buf);
        if (scen::bad_transfer(r.res, bs - done, tx)) {
          scen::report_transfer(ctx, fmt::format("{}: connection {}: send at {}", name_, index, off + done), r.res, bs - done, tx);
          ok = false;
          break;
        }
        done += uint64_t(r.res);
        c.client_tx += uint64_t(r.res);
      }
      for (uint64_t got = 0; ok && got < bs;) {
        auto r = co_await x.submit(scen::payload_op(op_kind::recv, fd, std::move(rx), got, bs - got));
        rx = std::move(r.buf);
        if (scen::bad_transfer(r.res, bs - got, rx)) {
          // 0 here is EOF in the middle of a reply.
          scen::report_transfer(ctx, fmt::format("{}: connection {}: recv at {}", name_, index, off + got), r.res, bs - got, rx);
          ok = false;
          break;
        }
        got += uint64_t(r.res);
        c.client_rx += uint64_t(r.res);
      }
      if (!ok) break;
      now = clock_type::now();
      const auto reply = rx.first(bs);
      if (auto bad = pat.check(reply, off)) {
        // The whole reply was read, so the server is not left blocked on it:
        // a clean shutdown ends the connection.
        scen::report_mismatch(ctx, fmt::format("{}: connection {} reply", name_, index), pat, reply, off, *bad);
        break;
      }
      ++st.ops;
      st.bytes += bs;
      st.latency.record(ns_between(t0, now));
    }
    co_await end_client(x, ctx, c, ok);
  }

  // Echoes whatever arrives until EOF. Knows nothing of the pattern.
  task<> server(backend& be, buffer_pool& pool, run_ctx& ctx, uint32_t index) {
    io x(be);
    tcp_conn& c = conns_v_[index];
    const int fd = c.fds.server.get();
    buffer buf = pool.acquire();
    if (!buf) {
      ctx.report("io_error", name_ + ": buffer pool exhausted");
      co_await abort_end(x, c.fds.server);
      co_return;
    }
    bool ok = true;
    std::optional<multishot_reader> ms;
    if (p_.uring.multishot) {
      buf.reset();  // the reader's group holds the buffers
      ms.emplace(be, pool, fd, uint32_t(p_.bs));
    }
    while (ok) {
      completion r;
      if (ms) r = co_await ms->next();
      else r = co_await x.recv(fd, std::move(buf), uint32_t(p_.bs));
      buf = std::move(r.buf);
      if (r.res == 0) break;  // the client is done
      if (scen::bad_transfer(r.res, p_.bs, buf)) {
        scen::report_transfer(ctx, fmt::format("{}: connection {}: server recv", name_, index), r.res, p_.bs, buf);
        ok = false;
        break;
      }
      c.server_rx += uint64_t(r.res);
      // A partial send continues in place: an echo server cannot regenerate
      // what it got, and moving the rest would be a payload copy.
      const uint64_t got = uint64_t(r.res);
      for (uint64_t sent = 0; sent < got;) {
        auto w = co_await x.submit(scen::payload_op(op_kind::send, fd, std::move(buf), sent, got - sent));
        buf = std::move(w.buf);
        if (scen::bad_transfer(w.res, got - sent, buf)) {
          scen::report_transfer(ctx, fmt::format("{}: connection {}: server send", name_, index), w.res, got - sent, buf);
          ok = false;
          break;
        }
        c.server_tx += uint64_t(w.res);
        sent += uint64_t(w.res);
      }
    }
    if (!ok) co_await abort_end(x, c.fds.server);
  }
};

// ---------------------------------------------------------------------------
// tcp.accept_storm: conns connectors churn connect -> wait for the server's
// close (EOF) -> close, against one accept loop that closes what it accepts.
// One op = one whole connection. Waiting for EOF makes every connection count
// as served before its connector moves on, and puts TIME_WAIT on the server's
// side, so client ports are reused at once instead of running out.
class accept_storm_scenario final : public scenario {
 public:
  explicit accept_storm_scenario(const params& p) : p_(p), conns_(std::max<uint32_t>(p.conns, 1)) {}

  // One 1-byte recv buffer per connector, for the EOF.
  [[nodiscard]] size_t buffers_needed() const override { return conns_; }

  void prepare(backend& be) override {
    listener_ = scen::listen_loopback();
    be.adopt(listener_.fd.get());
    sockets_before_ = scen::count_open_sockets();
  }

  void start(backend& be, buffer_pool& pool, run_ctx& ctx) override {
    active_.store(conns_);
    be.spawn(acceptor(be, ctx));
    for (uint32_t i = 0; i < conns_; ++i) be.spawn(connector(be, pool, ctx, i));
  }

  void verify(run_ctx& ctx) override {
    const uint64_t made = connected_.load(), got = accepted_.load(), shut = closed_.load();
    if (made != got)
      ctx.report("fd_leak", fmt::format("tcp.accept_storm: {} connections made, {} accepted", made, got));
    if (got != shut)
      ctx.report("fd_leak", fmt::format("tcp.accept_storm: {} connections accepted, {} closed", got, shut));
    if (const int now = scen::count_open_sockets(); sockets_before_ >= 0 && now > sockets_before_)
      ctx.report("fd_leak", fmt::format("tcp.accept_storm: {} sockets open after the run, {} before", now, sockets_before_));
  }

 private:
  static constexpr const char* k_name = "tcp.accept_storm";

  // Accept, close, repeat; ends once the connectors are done and every
  // connection they made (the poison one included) was accepted.
  task<> acceptor(backend& be, run_ctx& ctx) {
    io x(be);
    const int lfd = listener_.fd.get();
    while (!(done_.load() && accepted_.load() == connected_.load())) {
      auto r = co_await x.accept(lfd);
      if (r.res < 0) {
        if (!ctx.stopped()) scen::report_io(ctx, k_name, "accept", r.res);
        // Queued connections get a reset, so no connector waits forever.
        scen::shutdown_fd(lfd, SHUT_RDWR);
        co_return;
      }
      accepted_.fetch_add(1);
      // Closed by the op alone (no unique_fd across it): a frame destroyed
      // mid-close must not close a reused descriptor number a second time.
      auto c = co_await x.close(r.res);
      if (c.res < 0) scen::report_io(ctx, k_name, "close of an accepted fd", c.res);
      else closed_.fetch_add(1);
    }
  }

  task<> connector(backend& be, buffer_pool& pool, run_ctx& ctx, uint32_t index) {
    io x(be);
    stream_stats& st = ctx.new_stream();
    buffer buf = pool.acquire();
    pacer pace(ctx, conns_, index);
    const auto* addr = reinterpret_cast<const sockaddr*>(&listener_.addr);
    auto now = clock_type::now();
    for (bool poison = false; !poison;) {
      std::optional<clock_type::time_point> slot;
      if (scen::keep_going(ctx, now)) slot = co_await pace.next(x);
      if (!slot) {
        // The last connector out wakes the accept loop with one more connection.
        if (active_.fetch_sub(1) != 1) co_return;
        poison = true;
        connected_.fetch_add(1);  // counted before done_, so the acceptor waits for it
        done_.store(true);
      }
      if (!poison) connected_.fetch_add(1);  // before connecting: accepted never overtakes it
      const auto t0 = poison ? clock_type::time_point{} : pace.start(*slot);
      const char* step = "socket";
      int64_t res = sys::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      unique_fd fd(res >= 0 ? int(res) : -1);
      if (res >= 0) {
        step = "adopt";
        res = scen::try_adopt(be, fd.get());
      }
      if (res >= 0) {
        step = "connect";
        auto r = co_await x.connect(fd.get(), addr, sizeof listener_.addr);
        res = r.res;
      }
      if (res < 0) connected_.fetch_sub(1);  // no connection was made
      if (res >= 0 && buf) {
        step = "recv (expecting the server's EOF)";
        // 1 byte: the server never sends; anything but EOF is wrong.
        auto r = co_await x.recv(fd.get(), std::move(buf), 1);
        buf = std::move(r.buf);
        res = r.res;
        // -EPROTO: reported here already.
        if (res > 0) {
          ctx.report("stream_integrity", fmt::format("{}: connector {} received data from a server that sends none", k_name, index));
          res = -EPROTO;
        } else if (!buf) {
          ctx.report("io_error", fmt::format("{}: connector {}: recv completion without its buffer", k_name, index));
          res = -EPROTO;
        }
      } else if (res >= 0) {
        step = "buffer";
        res = -ENOBUFS;
      }
      if (fd) {
        auto r = co_await x.close(fd.release());  // released first: see acceptor()
        if (res >= 0 && r.res < 0) {
          step = "close";
          res = r.res;
        }
      }
      now = clock_type::now();  // the connection's last completion
      if (res < 0) {
        if (res != -EPROTO) scen::report_io(ctx, k_name, fmt::format("connector {}: {}", index, step), res);
        // Wake the acceptor (accept fails) so the run ends instead of hanging.
        scen::shutdown_fd(listener_.fd.get(), SHUT_RDWR);
        if (!poison && active_.fetch_sub(1) == 1) done_.store(true);
        co_return;
      }
      if (poison) break;
      ++st.ops;
      st.latency.record(ns_between(t0, now));
    }
  }

  params p_;
  uint32_t conns_;
  scen::tcp_listener listener_;
  int sockets_before_ = -1;
  std::atomic<uint32_t> active_{0};       // connectors still running
  std::atomic<bool> done_{false};         // set with the poison connection counted
  std::atomic<uint64_t> connected_{0};    // connections made (or being made), poison included
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> closed_{0};       // accepted fds closed
};

params defaults(uint64_t bs, uint32_t conns) {
  params d;
  d.bs = bs;
  d.conns = conns;
  return d;
}

}  // namespace

void register_tcp_scenarios() {
  register_scenario({
      .name = "tcp.stream",
      .checks = "one-way bulk transfer; the receiver verifies the stream by offset, both ends count the same bytes",
      .defaults = defaults(128 << 10, 1),
      .uses = {{"bs", "bs"}, {"conns", "conns"}, {"rate", "rate"}},
      .make = [](const params& p) -> std::unique_ptr<scenario> { return std::make_unique<stream_scenario>(p); },
  });
  register_scenario({
      .name = "tcp.echo",
      .checks = "closed-loop echo over N connections; every reply verified against its message",
      .defaults = defaults(1024, 16),
      .uses = {{"bs", "msg"}, {"conns", "conns"}, {"rate", "rate"}},
      .make = [](const params& p) -> std::unique_ptr<scenario> {
        return std::make_unique<echo_scenario>("tcp.echo", p, p.conns);
      },
  });
  register_scenario({
      .name = "tcp.rr",
      .checks = "QD1 request/response latency on one connection; every reply verified",
      .defaults = defaults(64, 1),
      // One connection, always: it measures a single ping-pong's latency.
      .uses = {{"bs", "msg"}, {"rate", "rate"}},
      .make = [](const params& p) -> std::unique_ptr<scenario> { return std::make_unique<echo_scenario>("tcp.rr", p, 1); },
  });
  register_scenario({
      .name = "tcp.accept_storm",
      .checks = "connect/accept/close churn; every connection made is accepted and every accepted fd closed",
      .defaults = defaults(4096, 8),
      .uses = {{"conns", "conns"}, {"rate", "rate"}},
      .make = [](const params& p) -> std::unique_ptr<scenario> { return std::make_unique<accept_storm_scenario>(p); },
  });
}

}  // namespace ringside
