#include "harness/backend_opts.hpp"

#include <fmt/format.h>

#include <cstdio>

#include "harness/parse.hpp"
#include "harness/scenario.hpp"

namespace ringside {

namespace {

constexpr std::string_view k_keys =
    "fixed-files, fixed-buffers, batch=N, single-issuer=0|1, sqpoll[=IDLE_MS], multishot, send-zc, link-timeout=MS";

[[noreturn]] void bad(std::string_view flag, std::string_view item, std::string_view why) {
  throw usage_error(fmt::format("{} '{}': {}", flag, printable(item), why));
}

// A flag key: bare, =1 or =0.
bool parse_switch(std::string_view flag, std::string_view item, bool has_value, std::string_view value) {
  if (!has_value || value == "1") return true;
  if (value == "0") return false;
  bad(flag, item, "expected no value, 0 or 1");
}

}  // namespace

std::string_view backend_opt_keys() noexcept { return k_keys; }

uring_features parse_backend_opts(std::string_view flag, std::string_view text) {
  uring_features f;
  std::vector<std::string> seen;
  // Repeated flags arrive joined with ',' (CLI11) or '\n' (older joins).
  std::string joined(text);
  for (char& c : joined)
    if (c == '\n') c = ',';
  std::string_view rest = joined;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    const std::string_view key = item.substr(0, eq);
    const bool has_value = eq != std::string_view::npos;
    const std::string_view value = has_value ? item.substr(eq + 1) : std::string_view{};
    for (const auto& k : seen)
      if (k == key) bad(flag, item, "given twice");
    seen.emplace_back(key);
    const std::string opt = fmt::format("{} {}", flag, key);
    if (key == "fixed-files") {
      f.fixed_files = parse_switch(flag, item, has_value, value);
    } else if (key == "fixed-buffers") {
      f.fixed_buffers = parse_switch(flag, item, has_value, value);
    } else if (key == "multishot") {
      f.multishot = parse_switch(flag, item, has_value, value);
    } else if (key == "send-zc") {
      f.send_zc = parse_switch(flag, item, has_value, value);
    } else if (key == "batch") {
      if (!has_value) bad(flag, item, "needs a value: batch=N (1..4096)");
      f.batch = uint32_t(parse_count(opt, value, 1, 4096));
    } else if (key == "single-issuer") {
      if (has_value && value != "0" && value != "1") bad(flag, item, "expected single-issuer=0 or single-issuer=1");
      f.single_issuer = int8_t(!has_value || value == "1" ? 1 : 0);
    } else if (key == "sqpoll") {
      f.sqpoll = true;
      if (has_value) f.sqpoll_idle_ms = uint32_t(parse_count(opt, value, 1, 60000));
    } else if (key == "link-timeout") {
      if (!has_value) bad(flag, item, "needs a value: link-timeout=MS (1..86400000)");
      f.link_timeout_ms = uint32_t(parse_count(opt, value, 1, 86400000));
    } else {
      bad(flag, item, fmt::format("unknown backend option (known: {})", k_keys));
    }
  }
  return f;
}

std::string to_string(const uring_features& f) {
  std::string out;
  auto add = [&](std::string item) {
    if (!out.empty()) out += ',';
    out += item;
  };
  if (f.fixed_files) add("fixed-files");
  if (f.fixed_buffers) add("fixed-buffers");
  if (f.batch != 0) add(fmt::format("batch={}", f.batch));
  if (f.single_issuer >= 0) add(fmt::format("single-issuer={}", int(f.single_issuer)));
  if (f.sqpoll) add(f.sqpoll_idle_ms != 0 ? fmt::format("sqpoll={}", f.sqpoll_idle_ms) : std::string("sqpoll"));
  if (f.multishot) add("multishot");
  if (f.send_zc) add("send-zc");
  if (f.link_timeout_ms != 0) add(fmt::format("link-timeout={}", f.link_timeout_ms));
  return out;
}

nlohmann::json to_json(const uring_features& f) {
  nlohmann::json j = nlohmann::json::object();
  if (f.fixed_files) j["fixed-files"] = true;
  if (f.fixed_buffers) j["fixed-buffers"] = true;
  if (f.batch != 0) j["batch"] = f.batch;
  if (f.single_issuer >= 0) j["single-issuer"] = int(f.single_issuer);
  if (f.sqpoll) j["sqpoll"] = f.sqpoll_idle_ms;  // 0: the kernel's default idle time
  if (f.multishot) j["multishot"] = true;
  if (f.send_zc) j["send-zc"] = true;
  if (f.link_timeout_ms != 0) j["link-timeout"] = f.link_timeout_ms;
  return j;
}

bool honours_backend_opts(std::string_view backend_name) noexcept {
  return backend_name == "uring-raw" || backend_name == "uring-owned" || backend_name == "uring-bounce";
}

uring_features backend_opts_for(std::string_view backend_name, const uring_features& f) noexcept {
  return honours_backend_opts(backend_name) ? f : uring_features{};
}

uring_features select_backend_opts(std::string_view flag, std::string_view text,
                                   const std::vector<const backend_info*>& backends) {
  const uring_features f = parse_backend_opts(flag, text);
  if (f == uring_features{}) return f;
  std::string without;
  bool any = false;
  for (const auto* b : backends) {
    if (honours_backend_opts(b->name)) any = true;
    else without += (without.empty() ? "" : ", ") + b->name;
  }
  if (!any)
    throw usage_error(fmt::format("{} {}: only the io_uring backends (uring-raw, uring-owned, uring-bounce) honour it, "
                                  "not {}",
                                  flag, printable(to_string(f)), without.empty() ? "none selected" : without));
  if (!without.empty())
    fmt::print(stderr, "ringside: note: {} applies to the io_uring backends only; {} run without it\n", flag, without);
  return f;
}

}  // namespace ringside
