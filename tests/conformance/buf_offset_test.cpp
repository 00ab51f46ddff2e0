// Checks: op.buf_offset — a payload op moves exactly the bytes at
// buf.data() + buf_offset, on every backend and every payload kind; a range
// that does not fit the buffer is -EINVAL, before anything moves.
#include <cstring>

#include "tests/conformance/driver.hpp"

namespace ringside::conformance {
namespace {

// 0xEE: a byte no pattern below puts where the test looks for it untouched.
constexpr std::byte marker{0xEE};

// Fills the whole buffer with the marker, a test-side initialisation (not
// payload moved by ringside).
void mark(buffer& b) { std::memset(b.data(), 0xEE, b.capacity()); }

bool all_marker(std::span<const std::byte> s) {
  return std::all_of(s.begin(), s.end(), [](std::byte x) { return x == marker; });
}

// Description: a send of 50 bytes from buf_offset 100 puts exactly bytes
// [100, 150) of the buffer on the wire — no more, none from elsewhere.
TEST_P(backend, send_from_buf_offset_sends_exactly_those_bytes) {
  driver d(GetParam());
  socket_pair sp = make_socketpair();
  d.adopt(sp.a);
  int32_t res = 1;
  auto body = [&]() -> task<> {
    buffer b = d.pool().acquire();
    mark(b);
    fill_pattern(std::span(b.data() + 100, 50), 5, 0);
    completion c = co_await d.io().submit(payload_op(op_kind::send, sp.a.get(), std::move(b), 100, 50));
    res = c.res;
  };
  d.spawn(body());
  ASSERT_EQ(d.run(), 0) << "watchdog: the run hung";
  EXPECT_EQ(res, 50);
  std::byte got[128];
  ASSERT_EQ(raw_recv_now(sp.b.get(), got), 50);
  EXPECT_TRUE(matches_pattern(std::span(got, 50), 5, 0)) << "the bytes sent were not the ones at buf_offset";
  EXPECT_LT(raw_recv_now(sp.b.get(), got), 0) << "more bytes than asked for were sent";
}

// Description: a recv of 64 bytes into buf_offset 200 lands them at [200,
// 264); the bytes before and after are untouched.
TEST_P(backend, recv_into_buf_offset_lands_there) {
  driver d(GetParam());
  socket_pair sp = make_socketpair();
  d.adopt(sp.a);
  std::byte data[64];
  fill_pattern(data, 6, 0);
  ASSERT_EQ(::send(sp.b.get(), data, sizeof data, 0), 64);
  int32_t res = 1;
  bool landed = false, before_untouched = false, after_untouched = false;
  auto body = [&]() -> task<> {
    buffer b = d.pool().acquire();
    mark(b);
    completion c = co_await d.io().submit(payload_op(op_kind::recv, sp.a.get(), std::move(b), 200, 64));
    res = c.res;
    CO_ASSERT_TRUE(c.buf.valid());
    landed = matches_pattern(std::span(c.buf.data() + 200, 64), 6, 0);
    before_untouched = all_marker(std::span(c.buf.data(), 200));
    after_untouched = all_marker(std::span(c.buf.data() + 264, 64));
  };
  d.spawn(body());
  ASSERT_EQ(d.run(), 0) << "watchdog: the run hung";
  EXPECT_EQ(res, 64);
  EXPECT_TRUE(landed) << "the bytes did not land at buf_offset";
  EXPECT_TRUE(before_untouched) << "bytes before buf_offset were written";
  EXPECT_TRUE(after_untouched) << "bytes after the range were written";
}

// Description: on a real file, a write of 1000 bytes from buf_offset 4103
// (not page-aligned) writes exactly those bytes at the file offset, and a
// read into buf_offset 333 lands them there.
TEST_P(backend, file_write_and_read_at_buf_offset) {
  driver d(GetParam());
  if (!d.caps().file_io) GTEST_SKIP() << "caps.file_io = false";
  unique_fd f = temp_file(0, 0);
  d.adopt(f);
  int32_t wres = 1, rres = 1;
  bool read_landed = false, read_before_untouched = false;
  auto body = [&]() -> task<> {
    buffer b = d.pool().acquire();
    mark(b);
    fill_pattern(std::span(b.data() + 4103, 1000), 7, 0);
    completion w = co_await d.io().submit(payload_op(op_kind::write, f.get(), std::move(b), 4103, 1000, 0));
    wres = w.res;
    buffer r = std::move(w.buf);
    CO_ASSERT_TRUE(r.valid());
    mark(r);
    completion c = co_await d.io().submit(payload_op(op_kind::read, f.get(), std::move(r), 333, 1000, 0));
    rres = c.res;
    CO_ASSERT_TRUE(c.buf.valid());
    read_landed = matches_pattern(std::span(c.buf.data() + 333, 1000), 7, 0);
    read_before_untouched = all_marker(std::span(c.buf.data(), 333));
  };
  d.spawn(body());
  ASSERT_EQ(d.run(), 0) << "watchdog: the run hung";
  EXPECT_EQ(wres, 1000);
  std::vector<std::byte> file(2000);
  ASSERT_EQ(::pread(f.get(), file.data(), file.size(), 0), 1000) << "the file is not exactly 1000 bytes";
  EXPECT_TRUE(matches_pattern(std::span(file).first(1000), 7, 0))
      << "the file holds other bytes than those at buf_offset";
  EXPECT_EQ(rres, 1000);
  EXPECT_TRUE(read_landed);
  EXPECT_TRUE(read_before_untouched);
}

// Description: for read, write, recv and send, buf_offset + len one past the
// buffer's capacity completes -EINVAL (with the buffer handed back), and
// moves nothing: the bytes waiting in the socket are still there.
TEST_P(backend, buf_offset_past_capacity_is_einval) {
  driver d(GetParam());
  socket_pair sp = make_socketpair();
  d.adopt(sp.a);
  unique_fd f = temp_file(4096, 8);
  d.adopt(f);
  std::byte data[16];
  fill_pattern(data, 9, 0);
  ASSERT_EQ(::send(sp.b.get(), data, sizeof data, 0), 16);
  struct outcome {
    int32_t res = 1;
    bool buffer_back = false;
  };
  outcome results[5];
  auto body = [&]() -> task<> {
    const op_kind kinds[4] = {op_kind::read, op_kind::write, op_kind::recv, op_kind::send};
    for (size_t k = 0; k < 4; ++k) {
      const bool file = kinds[k] == op_kind::read || kinds[k] == op_kind::write;
      buffer b = d.pool().acquire();
      const auto cap = static_cast<uint32_t>(b.capacity());
      completion c = co_await d.io().submit(
          payload_op(kinds[k], file ? f.get() : sp.a.get(), std::move(b), cap - 10, 11, file ? 0 : ~uint64_t{0}));
      results[k] = {c.res, c.buf.valid()};
    }
    // An offset past the end, even with nothing to move.
    buffer b = d.pool().acquire();
    const auto cap = static_cast<uint32_t>(b.capacity());
    completion c = co_await d.io().submit(payload_op(op_kind::recv, sp.a.get(), std::move(b), cap + 1, 0));
    results[4] = {c.res, c.buf.valid()};
  };
  d.spawn(body());
  ASSERT_EQ(d.run(), 0) << "watchdog: the run hung";
  for (size_t k = 0; k < 5; ++k) {
    EXPECT_EQ(results[k].res, -EINVAL) << "case " << k;
    EXPECT_TRUE(results[k].buffer_back) << "case " << k;
  }
  std::byte left[32];
  ASSERT_EQ(raw_recv_now(sp.a.get(), left), 16) << "an -EINVAL recv consumed bytes";
  EXPECT_TRUE(matches_pattern(std::span(left, 16), 9, 0));
  std::byte peer[32];
  EXPECT_LT(raw_recv_now(sp.b.get(), peer), 0) << "an -EINVAL send sent bytes";
  std::byte head[16];
  ASSERT_EQ(::pread(f.get(), head, sizeof head, 0), 16);
  EXPECT_TRUE(matches_pattern(std::span(head, 16), 8, 0)) << "an -EINVAL write wrote to the file";
}

}  // namespace
}  // namespace ringside::conformance
