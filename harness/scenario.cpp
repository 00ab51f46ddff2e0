#include "harness/scenario.hpp"

#include <fmt/format.h>

namespace ringside {

std::string_view to_string(verify_mode m) noexcept {
  return m == verify_mode::full ? "full" : "sample";
}

std::atomic<bool>& interrupted() noexcept {
  static std::atomic<bool> flag{false};
  return flag;
}

stream_stats& run_ctx::new_stream() {
  std::lock_guard lk(mu_);
  return streams_.emplace_back();
}

void run_ctx::report(std::string kind, std::string detail) { report(violation{std::move(kind), std::move(detail)}); }

void run_ctx::report(violation v) {
  {
    std::lock_guard lk(mu_);
    // 64: enough to diagnose; a broken backend can produce millions.
    if (violations_.size() < 64) violations_.push_back(std::move(v));
    else ++dropped_violations_;
  }
  stop();
}

std::vector<violation> run_ctx::violations() const {
  std::lock_guard lk(mu_);
  auto v = violations_;
  if (dropped_violations_) v.push_back({"more", fmt::format("{} further violations not kept", dropped_violations_)});
  return v;
}

namespace {
std::vector<scenario_info>& scenarios() {
  static std::vector<scenario_info> v;
  return v;
}
}  // namespace

void register_scenario(scenario_info info) {
  for (auto& s : scenarios())
    if (s.name == info.name) { s = std::move(info); return; }
  scenarios().push_back(std::move(info));
}

const std::vector<scenario_info>& registered_scenarios() { return scenarios(); }

const scenario_info* find_scenario(std::string_view name) {
  for (auto& s : scenarios())
    if (s.name == name) return &s;
  return nullptr;
}

params resolve_params(const scenario_info& s, const param_overrides& o) {
  params p = s.defaults;
  if (o.bs) p.bs = *o.bs;
  if (o.size) p.size = *o.size;
  if (o.ops) p.ops = *o.ops;
  if (o.seed) p.seed = *o.seed;
  if (o.qd) p.qd = *o.qd;
  if (o.conns) p.conns = *o.conns;
  if (o.duration_s) p.duration_s = *o.duration_s;
  if (o.rate) p.rate = *o.rate;
  if (o.file) p.file = *o.file;
  if (o.dir) p.dir = *o.dir;
  if (o.verify) p.verify = *o.verify;
  return p;
}

std::string name_params(const scenario_info& s, const params& p) {
  std::string out;
  for (const auto& u : s.uses) {
    if (u.name_key.empty()) continue;
    std::string v;
    if (u.param == "bs") v = fmt::format("{}", p.bs);
    else if (u.param == "qd") v = fmt::format("{}", p.qd);
    else if (u.param == "conns") v = fmt::format("{}", p.conns);
    else if (u.param == "size") v = fmt::format("{}", p.size);
    else if (u.param == "rate") { if (p.rate <= 0) continue; v = fmt::format("{}", p.rate); }
    else continue;
    out += fmt::format("/{}:{}", u.name_key, v);
  }
  return out;
}

}  // namespace ringside
