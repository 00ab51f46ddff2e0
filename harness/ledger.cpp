#include "harness/ledger.hpp"

#include <cxxabi.h>
#include <dlfcn.h>
#include <execinfo.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

namespace ringside {

namespace {

// A demangled name, without "ringside::", anonymous namespaces or parameters.
std::string short_name(const char* mangled) {
  int status = 0;
  char* d = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string s = (status == 0 && d != nullptr) ? d : mangled;
  std::free(d);
  for (std::string_view drop : {"(anonymous namespace)::", "ringside::"}) {
    for (size_t p; (p = s.find(drop)) != std::string::npos;) s.erase(p, drop.size());
  }
  int depth = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '<') ++depth;
    if (s[i] == '>') --depth;
    if (s[i] == '(' && depth == 0 && i > 0) {
      s.resize(i);
      break;
    }
  }
  return s;
}

// Names for frames the dynamic symbol table does not know (the executable is
// not linked with -rdynamic): ask addr2line, one process per module.
void resolve_with_addr2line(const std::string& module, const std::vector<std::pair<size_t, uintptr_t>>& want,
                            std::vector<std::string>& names) {
  std::string cmd = fmt::format("addr2line -f -C -e '{}'", module);
  for (auto& [i, off] : want) cmd += fmt::format(" {:#x}", off);
  cmd += " 2>/dev/null";
  FILE* f = ::popen(cmd.c_str(), "r");
  if (f == nullptr) return;
  char line[1024];
  for (auto& [i, off] : want) {
    if (std::fgets(line, sizeof line, f) == nullptr) break;
    std::string fn(line);
    while (!fn.empty() && (fn.back() == '\n' || fn.back() == '\r')) fn.pop_back();
    if (std::fgets(line, sizeof line, f) == nullptr) break;  // file:line, unused
    if (!fn.empty() && fn != "??") names[i] = short_name(fn.c_str());
  }
  ::pclose(f);
}

// "a <- b <- c": the first frames outside the ledger and the pool.
std::string symbolise(void* const* frames, int depth) {
  std::vector<std::string> names(size_t(std::max(depth, 0)));
  std::vector<std::pair<std::string, std::vector<std::pair<size_t, uintptr_t>>>> unresolved;
  for (int i = 0; i < depth; ++i) {
    // Return addresses point after the call; -1 lands inside it.
    auto addr = reinterpret_cast<uintptr_t>(frames[i]) - (i > 0 ? 1 : 0);
    Dl_info info{};
    if (::dladdr(reinterpret_cast<void*>(addr), &info) != 0 && info.dli_sname != nullptr) {
      names[size_t(i)] = short_name(info.dli_sname);
    } else if (info.dli_fname != nullptr) {
      const uintptr_t off = addr - reinterpret_cast<uintptr_t>(info.dli_fbase);
      names[size_t(i)] = fmt::format("{}+{:#x}", info.dli_fname, off);
      auto it = std::find_if(unresolved.begin(), unresolved.end(),
                             [&](auto& u) { return u.first == info.dli_fname; });
      if (it == unresolved.end()) it = unresolved.insert(unresolved.end(), {info.dli_fname, {}});
      it->second.push_back({size_t(i), off});
    }
  }
  for (auto& [module, want] : unresolved) resolve_with_addr2line(module, want, names);

  // 5 frames: the caller's chain, short enough for one line of a report.
  constexpr int shown = 5;
  std::string out;
  int n = 0;
  for (auto& nm : names) {
    if (nm.empty() || nm.find("buffer_ledger::") != std::string::npos ||
        nm.find("buffer_pool::") != std::string::npos || nm.rfind("buffer::", 0) == 0 ||
        nm.find("backtrace") != std::string::npos)
      continue;
    if (n++ > 0) out += " <- ";
    out += nm;
    if (n == shown) break;
  }
  return out.empty() ? "?" : out;
}

}  // namespace

buffer_ledger::buffer_ledger(size_t expected_in_flight) {
  // Load factor <= 1/2 keeps linear probe chains short.
  size_t cap = 64;
  while (cap < expected_in_flight * 2) cap *= 2;
  table_.resize(cap);
  mask_ = cap - 1;
  shift_ = 64 - unsigned(__builtin_ctzll(cap));
}

buffer_ledger::~buffer_ledger() { unwatch(); }

void buffer_ledger::watch(buffer_pool& pool) {
  unwatch();
  watch_also(pool);
}

void buffer_ledger::watch_also(buffer_pool& pool) {
  if (find_pool(pool) != nullptr) return;
  // Ranges recorded before this pool was watched keep first = -1: a pool
  // is watched at setup, before any op lends its memory.
  watched_pool w{&pool, pool.region().data(), pool.region().size(), pool.buffer_size(),
                 uint32_t(per_buffer_.size()), uint32_t(pool.count())};
  pools_.reserve(pools_.size() + 1);
  per_buffer_.resize(per_buffer_.size() + pool.count(), 0);
  pools_.push_back(w);
  pool.add_observer(this);
}

void buffer_ledger::unwatch() noexcept {
  if (pools_.empty()) return;
  for (auto& w : pools_) w.pool->remove_observer(this);
  pools_.clear();
  // In-flight entries stay (their final CQEs still arrive) but no longer
  // point into a watched pool.
  per_buffer_.clear();
  for (auto& e : table_)
    for (auto& r : e.r) r.first = r.last = -1;
}

void buffer_ledger::set_capture_stacks(bool on) {
  if (on && stacks_.size() != table_.size()) stacks_.assign(table_.size(), stack_rec{});
  capture_ = on;
}

size_t buffer_ledger::find(uint64_t key) const noexcept {
  for (size_t i = home(key);; i = (i + 1) & mask_) {
    if (table_[i].key == key) return i;
    if (table_[i].key == 0) return npos;
  }
}

void buffer_ledger::move_entry(size_t from, size_t to) noexcept {
  table_[to] = table_[from];
  if (capture_) stacks_[to] = stacks_[from];
}

void buffer_ledger::grow() {
  std::vector<entry> old = std::move(table_);
  std::vector<stack_rec> old_stacks = std::move(stacks_);
  const size_t cap = old.size() * 2;
  table_.assign(cap, entry{});
  if (capture_) stacks_.assign(cap, stack_rec{});
  mask_ = cap - 1;
  shift_ = 64 - unsigned(__builtin_ctzll(cap));
  for (size_t j = 0; j < old.size(); ++j) {
    if (old[j].key == 0) continue;
    size_t i = home(old[j].key);
    while (table_[i].key != 0) i = (i + 1) & mask_;
    table_[i] = old[j];
    if (capture_ && j < old_stacks.size()) stacks_[i] = old_stacks[j];
  }
}

void buffer_ledger::add_counts(const entry& e, int delta) noexcept {
  for (size_t k = 0; k < e.nranges; ++k) {
    const auto& r = e.r[k];
    if (r.first < 0) continue;
    for (int32_t i = r.first; i <= r.last; ++i) per_buffer_[size_t(i)] += uint32_t(delta);
  }
}

void buffer_ledger::on_submit(uint64_t user_data, op_kind kind, std::span<const byte_range> ranges) noexcept {
  if (user_data == 0) return;
  entry e;
  e.key = user_data;
  e.kind = kind;
  for (const auto& br : ranges) {
    if (br.len == 0 || e.nranges == max_ranges) continue;
    auto& r = e.r[e.nranges++];
    r.data = static_cast<const std::byte*>(br.data);
    r.len = br.len;
    for (const auto& w : pools_) {
      if (!w.pool->contains(br.data)) continue;
      const size_t off = size_t(r.data - w.base);
      const size_t end = std::min(off + br.len, w.bytes) - 1;
      r.first = int32_t(w.first + off / w.buf_size);
      r.last = int32_t(w.first + end / w.buf_size);
      break;
    }
  }
  if (e.nranges == 0) return;

  // Lending memory another op still holds: harmless only if neither op lets
  // the kernel write it (two sends of one buffer).
  for (size_t k = 0; k < e.nranges; ++k)
    for (int32_t i = e.r[k].first; i >= 0 && i <= e.r[k].last; ++i)
      if (per_buffer_[size_t(i)] != 0) report_conflicts(uint32_t(i), "lent to another op", &e);

  if ((size_ + 1) * 2 > table_.size()) {
    try {
      grow();
    } catch (...) {
      record({"ledger", fmt::format("ledger full: op {:#x} ({}) not tracked", user_data, to_string(kind))});
      return;
    }
  }
  size_t i = home(user_data);
  while (table_[i].key != 0) {
    if (table_[i].key == user_data) {
      record({"ledger", fmt::format("op {:#x} ({}) submitted twice while in flight", user_data, to_string(kind))});
      add_counts(table_[i], -1);
      --size_;
      break;
    }
    i = (i + 1) & mask_;
  }
  table_[i] = e;
  ++size_;
  add_counts(e, +1);
  if (capture_) stacks_[i].depth = ::backtrace(stacks_[i].frames, int(stack_depth));
}

void buffer_ledger::on_final(uint64_t user_data) noexcept {
  if (size_ == 0 || user_data == 0) return;
  size_t i = find(user_data);
  if (i == npos) return;
  add_counts(table_[i], -1);
  --size_;
  // Backward-shift deletion: pull later members of the probe chain into the
  // hole so lookups never need tombstones.
  for (size_t j = i;;) {
    j = (j + 1) & mask_;
    if (table_[j].key == 0) break;
    const size_t h = home(table_[j].key);
    // Entry j may move to i only if its home is not in the cyclic range (i, j].
    const bool stays = (i <= j) ? (h > i && h <= j) : (h > i || h <= j);
    if (stays) continue;
    move_entry(j, i);
    i = j;
  }
  table_[i].key = 0;
}

bool buffer_ledger::lends(const void* p) const noexcept {
  const auto* b = static_cast<const std::byte*>(p);
  for (const auto& e : table_) {
    if (e.key == 0) continue;
    for (size_t k = 0; k < e.nranges; ++k)
      if (b >= e.r[k].data && b < e.r[k].data + e.r[k].len) return true;
  }
  return false;
}

void buffer_ledger::on_event(const buffer_pool& pool, uint32_t index, const char* what) noexcept {
  // One pool in the common case: the loop ends at its first entry.
  for (const auto& w : pools_) {
    if (w.pool != &pool) continue;
    if (index < w.count && per_buffer_[w.first + index] != 0) report_conflicts(w.first + index, what, nullptr);
    return;
  }
}

void buffer_ledger::on_acquire(const buffer_pool& pool, uint32_t index) noexcept {
  on_event(pool, index, "re-acquired");
}

void buffer_ledger::on_release(const buffer_pool& pool, uint32_t index) noexcept { on_event(pool, index, "released"); }

void buffer_ledger::report_conflicts(uint32_t index, const char* what, const entry* newcomer) noexcept {
  try {
    std::string here;  // the stack of this event, captured once
    for (size_t t = 0; t < table_.size(); ++t) {
      entry& e = table_[t];
      if (e.key == 0 || e.reported) continue;
      bool covers = false;
      for (size_t k = 0; k < e.nranges; ++k)
        covers |= e.r[k].first >= 0 && int32_t(index) >= e.r[k].first && int32_t(index) <= e.r[k].last;
      if (!covers) continue;
      if (newcomer != nullptr && !kernel_writes_buffer(e.kind) && !kernel_writes_buffer(newcomer->kind)) continue;
      e.reported = true;
      if (violations_.size() >= max_stored_violations) {
        ++dropped_;  // counted, not formatted: a storm must not cost a string each
        continue;
      }
      const watched_pool* w = pool_at(index);
      const uint32_t local = w != nullptr ? index - w->first : index;
      const size_t size = w != nullptr ? w->buf_size : 0;
      const std::byte* at = w != nullptr ? w->base + size_t(local) * size : nullptr;
      std::string d = fmt::format("buffer {} [{},+{}) {} while op {:#x} ({}) in flight", local,
                                  static_cast<const void*>(at), size, what, e.key, to_string(e.kind));
      if (newcomer != nullptr) d += fmt::format(" (new op {:#x} ({}))", newcomer->key, to_string(newcomer->kind));
      if (capture_) {
        if (here.empty()) {
          void* frames[stack_depth];
          here = symbolise(frames, ::backtrace(frames, int(stack_depth)));
        }
        d += fmt::format("; submitted at: {}; {} at: {}", symbolise(stacks_[t].frames, stacks_[t].depth),
                         newcomer != nullptr ? "lent again" : what, here);
      }
      record({"ledger", std::move(d)});
    }
  } catch (...) {
    ++dropped_;  // formatting ran out of memory; still counted
  }
}

void buffer_ledger::record(violation v) noexcept {
  if (violations_.size() >= max_stored_violations) {
    ++dropped_;
    return;
  }
  try {
    violations_.push_back(std::move(v));
  } catch (...) {
    ++dropped_;
  }
}

void buffer_ledger::take_violations(std::vector<violation>& out) {
  for (auto& v : violations_) out.push_back(std::move(v));
  violations_.clear();
  if (dropped_ != 0)
    out.push_back({"ledger", fmt::format("{} more ledger violations not recorded individually", dropped_)});
  dropped_ = 0;
}

}  // namespace ringside
