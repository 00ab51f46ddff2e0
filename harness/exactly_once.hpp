// The exactly-once detector: a decorator around any backend (a black box, so
// it works on every backend alike). Every submitted op must complete exactly
// once, and never after its waiter was dropped. Ids must name one op only
// (the generation rule, DESIGN.md): an id handed to a second op — while the
// first is live, or at all — and a cancel() of an op that already completed
// or was dropped that the backend accepts (0) are violations too (ABA: the
// stale id reached another op). It also classifies cancel results
// (requested / -ENOENT / other) for the safety reports.
//
// Each op gets a tracking slot that stands between the backend and the real
// waiter. Slots are never reused (a deque: stable addresses, amortised
// allocation), so a late or second completion from a buggy backend is always
// attributed to the right op. This costs memory per op: it is a safety-run
// detector, not for throughput runs.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "harness/backend.hpp"

namespace ringside {

struct cancel_stats {
  uint64_t requested = 0;  // cancel() returned 0
  uint64_t not_found = 0;  // -ENOENT: already done, or a stale id
  uint64_t other = 0;
};

class exactly_once_backend final : public backend {
 public:
  explicit exactly_once_backend(std::unique_ptr<backend> inner);
  ~exactly_once_backend() override;

  [[nodiscard]] std::string_view name() const noexcept override { return inner_->name(); }
  [[nodiscard]] const backend_caps& caps() const noexcept override { return inner_->caps(); }
  void attach_pool(buffer_pool& pool) override { inner_->attach_pool(pool); }
  void adopt(int fd) override { inner_->adopt(fd); }
  void spawn(task<> t) override { inner_->spawn(std::move(t)); }
  int run(clock_type::time_point deadline) override { return inner_->run(deadline); }

  op_id submit(op&& o, op_waiter* w) noexcept override;
  int cancel(op_id id) noexcept override;
  void drop(op_id id) noexcept override;
  void shutdown() noexcept override;
  int inject_submit_failures(int err, uint32_t count) noexcept override {
    return inner_->inject_submit_failures(err, count);
  }
  void collect_violations(std::vector<violation>& out) override;

  [[nodiscard]] cancel_stats cancels() const;

 private:
  enum class state : uint8_t { pending, completed, dropped };
  struct slot final : op_waiter {
    exactly_once_backend* owner = nullptr;
    op_waiter* target = nullptr;
    op_kind kind = op_kind::nop;
    uint64_t seq = 0;  // submission order, for the report
    op_id id;          // the backend's id, once known
    state st = state::pending;
    uint32_t completions = 0;
    const slot* earlier = nullptr;  // an ended op that held the same id (a backend without generations)
    void on_started(op_id i) noexcept override;
    void on_complete(completion&& c) noexcept override;
    // A multishot op's non-final completions: forwarded while the op is
    // pending; one after its final completion or its drop is a violation.
    void on_more(completion&& c) noexcept override;
  };

  void report_locked(std::string kind, std::string detail);
  // Records that s now holds id (from on_started, or submit's return).
  void issue_locked(slot& s, op_id id);

  std::unique_ptr<backend> inner_;
  mutable std::mutex mu_;
  std::deque<slot> slots_;
  std::unordered_map<uint64_t, slot*> by_id_;  // pending ops by backend id
  std::unordered_map<uint64_t, slot*> issued_;  // every id ever started, by its latest holder
  std::vector<violation> violations_;
  cancel_stats cancels_;
  bool shut_down_ = false;
};

}  // namespace ringside
