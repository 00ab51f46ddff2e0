#include "harness/buffer.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

#include <fmt/format.h>

#include "harness/meters.hpp"
#include "harness/sanitize.hpp"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

namespace ringside {

size_t page_size() noexcept {
  static const size_t p = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  return p;
}

void buffer::reset() noexcept {
  if (pool_ != nullptr) pool_->release(index_);
  pool_ = nullptr;
  data_ = nullptr;
  capacity_ = 0;
  index_ = 0;
}

buffer_pool::buffer_pool(size_t count, size_t size)
    : count_(count), size_(round_up(std::max<size_t>(size, 1), page_size())) {
  if (count == 0) throw std::system_error(EINVAL, std::generic_category(), "buffer_pool: zero buffers");
  mapped_ = count_ * size_;
  void* p = ::mmap(nullptr, mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "buffer_pool: mmap");
  base_ = static_cast<std::byte*>(p);
  free_.reserve(count_);
  // Hand out low indices first: reverse so pop_back yields 0, 1, 2...
  for (size_t i = count_; i-- > 0;) {
    free_.push_back(static_cast<uint32_t>(i));
    poison(static_cast<uint32_t>(i), true);
  }
}

buffer_pool::~buffer_pool() {
#if defined(__SANITIZE_ADDRESS__)
  if (base_ != nullptr) ASAN_UNPOISON_MEMORY_REGION(base_, mapped_);
#endif
  if (base_ != nullptr) ::munmap(base_, mapped_);
}

buffer buffer_pool::acquire() noexcept {
  uint32_t idx;
  {
    std::lock_guard lk(mu_);
    if (free_.empty()) {
      // Dry: take the oldest quarantined buffer rather than fail the run.
      if (quarantine_.empty()) return {};
      idx = quarantine_.front();
      quarantine_.pop_front();
      verify_canary(idx);
    } else {
      idx = free_.back();
      free_.pop_back();
    }
    poison(idx, false);
  }
  for (auto* o : observers_) o->on_acquire(*this, idx);
  return buffer(this, slot_data(idx), size_, idx);
}

void buffer_pool::release(uint32_t index) noexcept {
  for (auto* o : observers_) o->on_release(*this, index);
  // ASan build: a range still lent to the kernel (poisoned by the io_uring
  // loop, harness/sanitize.hpp) is coming back. Report it here, with this
  // stack: the canary fill below would too, but without a quarantine the
  // next acquire() would unpoison it silently.
  sanitize::touch_poisoned(slot_data(index), size_);
  std::lock_guard lk(mu_);
  if (quarantine_depth_ == 0) {
    poison(index, true);
    free_.push_back(index);
    return;
  }
  fill_canary(index);
  poison(index, true);
  protect(index, true);
  quarantine_.push_back(index);
  if (quarantine_.size() > quarantine_depth_) {
    const uint32_t oldest = quarantine_.front();
    quarantine_.pop_front();
    verify_canary(oldest);
    poison(oldest, true);
    free_.push_back(oldest);
  }
}

namespace {
// Varies with position and buffer, so neither a zero fill nor a copy of
// another buffer's canary nor any of the scenarios' patterns matches it.
inline uint8_t canary_byte(uint32_t index, size_t i) noexcept {
  return uint8_t(0xA5u ^ (i * 7u) ^ (i >> 8) ^ (index * 13u));
}
}  // namespace

void buffer_pool::fill_canary(uint32_t index) noexcept {
  auto* p = reinterpret_cast<uint8_t*>(slot_data(index));
  for (size_t i = 0; i < size_; ++i) p[i] = canary_byte(index, i);
}

void buffer_pool::protect(uint32_t index, bool none) noexcept {
  if (!guard_pages_) return;
  meters::count_syscall();
  ::mprotect(slot_data(index), size_, none ? PROT_NONE : PROT_READ | PROT_WRITE);
}

void buffer_pool::verify_canary(uint32_t index) noexcept {
  protect(index, false);
  poison(index, false);
  const auto* p = reinterpret_cast<const uint8_t*>(slot_data(index));
  size_t first = size_, last = 0, changed = 0;
  for (size_t i = 0; i < size_; ++i) {
    if (p[i] != canary_byte(index, i)) {
      if (first == size_) first = i;
      last = i;
      ++changed;
    }
  }
  if (changed == 0) return;
  // 256: enough to diagnose; a broken backend can produce thousands.
  if (violations_.size() >= 256) return;
  violations_.push_back(
      {"canary", fmt::format("buffer {} [{}+{:#x}): {} byte(s) in [{}, {}] written after the buffer was released "
                             "(first: {:#04x}, canary {:#04x})",
                             index, fmt::ptr(p), size_, changed, first, last, p[first], canary_byte(index, first))});
}

void buffer_pool::poison(uint32_t index, bool on) noexcept {
#if defined(__SANITIZE_ADDRESS__)
  // User code touching a released buffer is an ASan report; the kernel's
  // writes are not checked by ASan, which is what the canary is for.
  if (on) ASAN_POISON_MEMORY_REGION(slot_data(index), size_);
  else ASAN_UNPOISON_MEMORY_REGION(slot_data(index), size_);
#else
  (void)index;
  (void)on;
#endif
}

void buffer_pool::enable_quarantine(size_t depth) { quarantine_depth_ = depth; }

void buffer_pool::check_quarantine() {
  std::lock_guard lk(mu_);
  for (uint32_t idx : quarantine_) {
    verify_canary(idx);
    poison(idx, true);
    protect(idx, true);
  }
}

void buffer_pool::collect_violations(std::vector<violation>& out) {
  std::lock_guard lk(mu_);
  for (auto& v : violations_) out.push_back(std::move(v));
  violations_.clear();
}

size_t buffer_pool::quarantined() const noexcept {
  std::lock_guard lk(mu_);
  return quarantine_.size();
}

size_t buffer_pool::available() const noexcept {
  std::lock_guard lk(mu_);
  return free_.size();
}

std::vector<iovec> buffer_pool::iovecs() const {
  std::vector<iovec> v(count_);
  for (size_t i = 0; i < count_; ++i) v[i] = {slot_data(static_cast<uint32_t>(i)), size_};
  return v;
}

void buffer_pool::remove_observer(buffer_observer* o) {
  observers_.erase(std::remove(observers_.begin(), observers_.end(), o), observers_.end());
}

}  // namespace ringside
