#include "harness/buffer.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

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
  for (size_t i = count_; i-- > 0;) free_.push_back(static_cast<uint32_t>(i));
}

buffer_pool::~buffer_pool() {
  if (base_ != nullptr) ::munmap(base_, mapped_);
}

buffer buffer_pool::acquire() noexcept {
  uint32_t idx;
  {
    std::lock_guard lk(mu_);
    if (free_.empty()) return {};
    idx = free_.back();
    free_.pop_back();
  }
  for (auto* o : observers_) o->on_acquire(*this, idx);
  return buffer(this, slot_data(idx), size_, idx);
}

void buffer_pool::release(uint32_t index) noexcept {
  for (auto* o : observers_) o->on_release(*this, index);
  std::lock_guard lk(mu_);
  free_.push_back(index);
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
