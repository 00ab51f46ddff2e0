#include "harness/exactly_once.hpp"

#include <fmt/format.h>

#include <cerrno>

namespace ringside {

exactly_once_backend::exactly_once_backend(std::unique_ptr<backend> inner) : inner_(std::move(inner)) {}

exactly_once_backend::~exactly_once_backend() { shutdown(); }

void exactly_once_backend::report_locked(std::string kind, std::string detail) {
  // 256: enough to diagnose; a broken backend can produce thousands.
  if (violations_.size() < 256) violations_.push_back({std::move(kind), std::move(detail)});
}

op_id exactly_once_backend::submit(op&& o, op_waiter* w) noexcept {
  slot* s;
  {
    std::lock_guard lk(mu_);
    s = &slots_.emplace_back();
    s->owner = this;
    s->target = w;
    s->kind = o.kind;
    s->seq = slots_.size();
  }
  const op_id id = inner_->submit(std::move(o), s);
  std::lock_guard lk(mu_);
  if (s->st == state::pending && !s->id) {
    // No on_started yet: the backend broke its promise to call it first.
    s->id = id;
    if (id) issue_locked(*s, id);
  }
  return id;
}

void exactly_once_backend::issue_locked(slot& s, op_id id) {
  auto [it, fresh] = issued_.try_emplace(id.value, &s);
  if (!fresh && it->second != &s) {
    const slot& old = *it->second;
    if (old.st == state::pending)
      report_locked("exactly_once", fmt::format("two live ops with one id {:#x}: op #{} ({}) and op #{} ({})",
                                                id.value, old.seq, to_string(old.kind), s.seq, to_string(s.kind)));
    else
      report_locked("exactly_once",
                    fmt::format("op id {:#x} reused: op #{} ({}) got the id of op #{} ({}, {}), so a cancel of the "
                                "old id reaches the new op (ABA: no generation)",
                                id.value, s.seq, to_string(s.kind), old.seq, to_string(old.kind),
                                old.st == state::completed ? "completed" : "dropped"));
    if (old.st != state::pending) s.earlier = &old;
    it->second = &s;
  }
  if (s.st == state::pending) by_id_[id.value] = &s;
}

void exactly_once_backend::slot::on_started(op_id i) noexcept {
  {
    std::lock_guard lk(owner->mu_);
    id = i;
    if (i) owner->issue_locked(*this, i);
  }
  target->on_started(i);
}

void exactly_once_backend::slot::on_complete(completion&& c) noexcept {
  op_waiter* to = nullptr;
  {
    std::lock_guard lk(owner->mu_);
    ++completions;
    if (st == state::dropped) {
      owner->report_locked("exactly_once", fmt::format("op #{} ({}) completed (res {}) after it was dropped: the "
                                                      "backend called a waiter whose frame is gone",
                                                      seq, to_string(kind), c.res));
    } else if (completions > 1) {
      owner->report_locked("exactly_once",
                           fmt::format("op #{} ({}) completed {} times (res {})", seq, to_string(kind), completions, c.res));
    } else {
      st = state::completed;
      // Only this op's entry: with a backend that repeats ids another live
      // op may hold it now.
      if (auto it = owner->by_id_.find(id.value); it != owner->by_id_.end() && it->second == this)
        owner->by_id_.erase(it);
      to = target;
    }
  }
  // Outside the lock: the waiter may resume a coroutine that submits more.
  if (to != nullptr) to->on_complete(std::move(c));
}

void exactly_once_backend::slot::on_more(completion&& c) noexcept {
  op_waiter* to = nullptr;
  {
    std::lock_guard lk(owner->mu_);
    if (st == state::pending) {
      to = target;
    } else {
      owner->report_locked("exactly_once",
                           fmt::format("op #{} ({}) delivered a non-final completion (res {}) after it {}", seq,
                                       to_string(kind), c.res, st == state::dropped ? "was dropped" : "completed"));
    }
  }
  if (to != nullptr) to->on_more(std::move(c));
}

int exactly_once_backend::cancel(op_id id) noexcept {
  // The op this id named had ended before the cancel was made: the backend
  // must say -ENOENT. (Decided before the call: on thread-per-stream
  // backends the op may end while cancel() runs, and then 0 is right.)
  const slot* ended = nullptr;
  {
    std::lock_guard lk(mu_);
    if (auto it = issued_.find(id.value); it != issued_.end()) {
      // The id's latest op ended; or it is live but the id named an ended op
      // before (the caller may well mean that one: ambiguous is wrong too).
      ended = it->second->st != state::pending ? it->second : it->second->earlier;
    }
  }
  const int r = inner_->cancel(id);
  std::lock_guard lk(mu_);
  if (r == 0 && ended != nullptr)
    report_locked("exactly_once", fmt::format("cancel of id {:#x} accepted (0) after its op #{} ({}) had {}: a stale "
                                              "id reached another op, or a finished op was cancelled (ABA)",
                                              id.value, ended->seq, to_string(ended->kind),
                                              ended->st == state::completed ? "completed" : "been dropped"));
  if (r == 0) ++cancels_.requested;
  else if (r == -ENOENT) ++cancels_.not_found;
  else ++cancels_.other;
  return r;
}

void exactly_once_backend::drop(op_id id) noexcept {
  {
    std::lock_guard lk(mu_);
    if (auto it = by_id_.find(id.value); it != by_id_.end()) {
      it->second->st = state::dropped;
      by_id_.erase(it);
    }
  }
  inner_->drop(id);
}

void exactly_once_backend::shutdown() noexcept {
  inner_->shutdown();
  std::lock_guard lk(mu_);
  if (shut_down_) return;
  shut_down_ = true;
  // Every task has ended and teardown has drained: an op neither completed
  // nor dropped was lost by the backend.
  size_t missing = 0;
  const slot* first = nullptr;
  for (const auto& s : slots_) {
    if (s.st != state::pending) continue;
    if (!first) first = &s;
    ++missing;
  }
  if (missing)
    report_locked("exactly_once", fmt::format("{} op(s) never completed and were never dropped (first: op #{}, {})",
                                              missing, first->seq, to_string(first->kind)));
}

void exactly_once_backend::collect_violations(std::vector<violation>& out) {
  inner_->collect_violations(out);
  std::lock_guard lk(mu_);
  for (auto& v : violations_) out.push_back(std::move(v));
  violations_.clear();
}

cancel_stats exactly_once_backend::cancels() const {
  std::lock_guard lk(mu_);
  return cancels_;
}

}  // namespace ringside
