// The file throughput scenarios: file.seq_read, file.rand_read, file.seq_write
// and file.copy.
//
// Checks: every byte read is the file's seeded pattern at its offset, and
// every byte written (or copied) reads back as that pattern afterwards — a
// backend that returns the wrong data, or reports writes it never made, loses.
//
// Shape: qd streams, each with one op in flight (so an io_uring loop has qd
// SQEs outstanding and the blocking backend runs qd threads). Sequential
// scenarios share one next-chunk counter, so offsets stay sequential across
// the streams and wrap at the end of the file; random reads draw bs-aligned
// chunks from a per-stream PRNG seeded with seed + stream index. The file is
// `size` bytes of chunks of `bs` (the last one shorter when bs does not divide
// size); it is prefilled (untimed) for the read scenarios and the copy source.
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "harness/buffer.hpp"
#include "harness/io.hpp"
#include "harness/pacer.hpp"
#include "harness/pattern.hpp"
#include "harness/scenario.hpp"
#include "harness/sys.hpp"
#include "harness/task.hpp"
#include "harness/unique_fd.hpp"
#include "scenarios/common.hpp"

namespace ringside {

void register_file_scenarios();

namespace {

enum class file_work : uint8_t { seq_read, rand_read, seq_write, copy };

// 1 MiB: prefill and read-back move the file in large pieces (untimed), but
// keep their staging memory small.
constexpr uint64_t k_stage_bytes = 1ull << 20;

class file_scenario final : public scenario {
 public:
  file_scenario(std::string name, file_work work, const params& p)
      : name_(std::move(name)), work_(work), p_(p), pat_(p.seed, p.bs, p.verify), place_(validated(p)),
        chunks_((p.size + p.bs - 1) / p.bs), streams_(std::max<uint32_t>(p.qd, 1)) {}

  [[nodiscard]] std::string unsupported_reason(const backend_caps& caps) const override {
    return caps.file_io ? std::string{} : std::string("no regular-file I/O (caps.file_io is false)");
  }
  [[nodiscard]] size_t buffers_needed() const override { return streams_; }  // one per stream, reused

  void prepare(backend& be) override {
    if (work_ != file_work::seq_write) {
      src_ = place_.create("data");
      prefill(src_.get());
      be.adopt(src_.get());
    }
    if (work_ == file_work::seq_write || work_ == file_work::copy) {
      dst_ = place_.create(work_ == file_work::copy ? "copy" : "data");
      be.adopt(dst_.get());
    }
  }

  void start(backend& be, buffer_pool& pool, run_ctx& ctx) override {
    for (uint32_t i = 0; i < streams_; ++i) {
      switch (work_) {
        case file_work::seq_read:
        case file_work::rand_read: be.spawn(reader(be, pool, ctx, i)); break;
        case file_work::seq_write: be.spawn(writer(be, pool, ctx, i)); break;
        case file_work::copy: be.spawn(copier(be, pool, ctx, i)); break;
      }
    }
  }

  // Reads the written file back (sample mode: every chunk boundary plus one
  // word per 4 KiB; full mode: every byte).
  void verify(run_ctx& ctx) override {
    if (work_ != file_work::seq_write && work_ != file_work::copy) return;
    const uint64_t written = std::min(next_.load(), chunks_);
    const uint64_t end = std::min(written * p_.bs, p_.size);
    std::vector<std::byte> stage(std::min<uint64_t>(std::max<uint64_t>(end, 1), k_stage_bytes));
    for (uint64_t off = 0; off < end;) {
      const auto want = std::span<std::byte>(stage).first(std::min<uint64_t>(stage.size(), end - off));
      const int64_t n = sys::pread(dst_.get(), want, off);
      if (n <= 0) {
        if (n == 0)
          ctx.report("short_transfer", fmt::format("{}: file ends at {}, but {} bytes were written", name_, off, end));
        else
          scen::report_io(ctx, name_, fmt::format("read-back pread at {}", off), n);
        return;
      }
      const auto got = want.first(size_t(n));
      if (auto bad = pat_.check(got, off)) {
        scen::report_mismatch(ctx, name_ + " read-back", pat_, got, off, *bad);
        return;
      }
      off += uint64_t(n);
    }
  }

 private:
  static const params& validated(const params& p) {
    scen::check_bs(p);
    if (p.size < p.bs) throw usage_error(fmt::format("--size {}: must be at least --bs ({})", p.size, p.bs));
    return p;
  }

  [[nodiscard]] uint64_t chunk_len(uint64_t chunk) const noexcept {
    return std::min(p_.bs, p_.size - chunk * p_.bs);
  }

  // The whole file, so reads never hit a hole or EOF. Untimed.
  void prefill(int fd) const {
    std::vector<std::byte> stage(std::min(p_.size, k_stage_bytes));
    for (uint64_t off = 0; off < p_.size;) {
      auto piece = std::span<std::byte>(stage).first(std::min<uint64_t>(stage.size(), p_.size - off));
      pat_.fill(piece, off);
      const int64_t n = sys::pwrite(fd, piece, off);
      if (n <= 0) throw std::system_error(n < 0 ? int(-n) : EIO, std::generic_category(), "prefill pwrite");
      off += uint64_t(n);
    }
  }

  // The next sequential chunk, shared by all streams; wraps at the end.
  uint64_t seq_chunk() noexcept { return next_.fetch_add(1, std::memory_order_relaxed) % chunks_; }

  // file.seq_read, file.rand_read: read a chunk, verify it where it lands.
  task<> reader(backend& be, buffer_pool& pool, run_ctx& ctx, uint32_t index) {
    io x(be);
    stream_stats& st = ctx.new_stream();
    buffer buf = pool.acquire();
    if (!buf) co_return ctx.report("io_error", name_ + ": buffer pool exhausted");
    pacer pace(ctx, streams_, index);
    prng rng(p_.seed + index);
    for (auto now = clock_type::now(); scen::keep_going(ctx, now);) {
      const auto slot = co_await pace.next(x);
      if (!slot) break;
      const uint64_t chunk = work_ == file_work::rand_read ? rng.below(chunks_) : seq_chunk();
      const uint64_t off = chunk * p_.bs, len = chunk_len(chunk);
      const auto t0 = pace.start(*slot);
      // A short read (legal, rare on regular files) continues in place, so
      // the chunk lands whole and is checked once, outside its latency.
      for (uint64_t done = 0; done < len;) {
        auto c = co_await x.submit(scen::payload_op(op_kind::read, src_.get(), std::move(buf), done, len - done, off + done));
        buf = std::move(c.buf);
        if (scen::bad_transfer(c.res, len - done, buf)) co_return fail(ctx, "read", off + done, c.res, len - done, buf);
        done += uint64_t(c.res);
      }
      now = clock_type::now();
      const auto got = buf.first(len);
      if (auto bad = pat_.check(got, off)) co_return scen::report_mismatch(ctx, name_, pat_, got, off, *bad);
      ++st.ops;
      st.bytes += len;
      st.latency.record(ns_between(t0, now));
    }
  }

  // file.seq_write: write the pattern; verify() reads it back.
  task<> writer(backend& be, buffer_pool& pool, run_ctx& ctx, uint32_t index) {
    io x(be);
    stream_stats& st = ctx.new_stream();
    buffer buf = pool.acquire();
    if (!buf) co_return ctx.report("io_error", name_ + ": buffer pool exhausted");
    pacer pace(ctx, streams_, index);
    chunk_writer cw(pat_);
    for (auto now = clock_type::now(); scen::keep_going(ctx, now);) {
      const auto slot = co_await pace.next(x);
      if (!slot) break;
      const uint64_t chunk = seq_chunk(), off = chunk * p_.bs, len = chunk_len(chunk);
      cw.write(buf.first(len), off);
      const auto t0 = pace.start(*slot);
      // A short write continues in place from the rest of the chunk.
      for (uint64_t done = 0; done < len;) {
        auto c = co_await x.submit(scen::payload_op(op_kind::write, dst_.get(), std::move(buf), done, len - done, off + done));
        buf = std::move(c.buf);
        if (scen::bad_transfer(c.res, len - done, buf)) co_return fail(ctx, "write", off + done, c.res, len - done, buf);
        done += uint64_t(c.res);
      }
      now = clock_type::now();
      ++st.ops;
      st.bytes += len;
      st.latency.record(ns_between(t0, now));
    }
  }

  // file.copy: read a chunk of the source into ONE reused buffer and write that
  // same buffer to the destination at the same offset: no user-space copy.
  task<> copier(backend& be, buffer_pool& pool, run_ctx& ctx, uint32_t index) {
    io x(be);
    stream_stats& st = ctx.new_stream();
    buffer buf = pool.acquire();
    if (!buf) co_return ctx.report("io_error", name_ + ": buffer pool exhausted");
    pacer pace(ctx, streams_, index);
    for (auto now = clock_type::now(); scen::keep_going(ctx, now);) {
      const auto slot = co_await pace.next(x);
      if (!slot) break;
      const uint64_t chunk = seq_chunk(), off = chunk * p_.bs, len = chunk_len(chunk);
      const auto t0 = pace.start(*slot);
      // The whole chunk in, then the whole chunk out; short transfers
      // continue in place.
      for (uint64_t got = 0; got < len;) {
        auto r = co_await x.submit(scen::payload_op(op_kind::read, src_.get(), std::move(buf), got, len - got, off + got));
        buf = std::move(r.buf);
        if (scen::bad_transfer(r.res, len - got, buf)) co_return fail(ctx, "read", off + got, r.res, len - got, buf);
        got += uint64_t(r.res);
      }
      for (uint64_t put = 0; put < len;) {
        auto w = co_await x.submit(scen::payload_op(op_kind::write, dst_.get(), std::move(buf), put, len - put, off + put));
        buf = std::move(w.buf);
        if (scen::bad_transfer(w.res, len - put, buf)) co_return fail(ctx, "write", off + put, w.res, len - put, buf);
        put += uint64_t(w.res);
      }
      now = clock_type::now();
      ++st.ops;
      st.bytes += len;
      st.latency.record(ns_between(t0, now));
    }
  }

  void fail(run_ctx& ctx, std::string_view what, uint64_t off, int32_t res, uint64_t asked, const buffer& buf) {
    scen::report_transfer(ctx, fmt::format("{}: {} at {}", name_, what, off), res, asked, buf);
  }

  std::string name_;
  file_work work_;
  params p_;
  pattern pat_;
  scen::file_place place_;
  uint64_t chunks_;
  uint32_t streams_;
  unique_fd src_, dst_;
  // Sequential scenarios: chunks claimed so far (all streams); also how much
  // of the destination verify() reads back.
  std::atomic<uint64_t> next_{0};
};

scenario_info file_info(std::string name, std::string checks, file_work work, uint64_t bs) {
  params d;
  d.bs = bs;
  d.qd = 1;
  d.size = 64ull << 20;  // 64 MiB: several times the L2/L3, small enough for any tmpfs
  return scenario_info{
      .name = name,
      .checks = std::move(checks),
      .defaults = d,
      .uses = {{"bs", "bs"}, {"qd", "qd"}, {"size", ""}, {"rate", "rate"}},
      .make = [name, work](const params& p) -> std::unique_ptr<scenario> {
        return std::make_unique<file_scenario>(name, work, p);
      },
  };
}

}  // namespace

void register_file_scenarios() {
  register_scenario(file_info("file.seq_read", "sequential reads of a prefilled file; every chunk verified",
                              file_work::seq_read, 128 << 10));
  register_scenario(file_info("file.rand_read", "random bs-aligned reads of a prefilled file; every chunk verified",
                              file_work::rand_read, 4 << 10));
  register_scenario(file_info("file.seq_write", "sequential writes; the file is read back and verified afterwards",
                              file_work::seq_write, 128 << 10));
  register_scenario(file_info("file.copy",
                              "read+write through one reused buffer, no user copy; the copy is verified afterwards",
                              file_work::copy, 128 << 10));
}

}  // namespace ringside
