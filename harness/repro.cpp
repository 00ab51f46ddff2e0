#include "harness/repro.hpp"

#include <sys/stat.h>

#include <fmt/format.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

#include "harness/parse.hpp"
#include "harness/results.hpp"

namespace ringside {

namespace {

// Single-quoted for POSIX shells when it holds anything but safe characters.
std::string shell_word(std::string_view w) {
  const bool safe = !w.empty() && w.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                      "0123456789-_.,:/=+@%") == std::string_view::npos;
  if (safe) return std::string(w);
  std::string out = "'";
  for (char c : w) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

// File names: scenario and backend names are [a-z0-9._-]; anything else
// (a plugin's odd name) becomes '_'.
std::string file_safe(std::string_view s) {
  std::string out;
  for (char c : s) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_') ? c : '_';
  return out;
}

}  // namespace

void apply_detectors(std::string_view flag, std::string_view list, run_options& o) {
  for (const auto& d : split_list(std::string(flag), std::string(list))) {
    // 64: deep enough that a late write lands while the buffer still waits.
    if (d == "none") continue;  // only the always-on ones (ledger, watchdog, fd census)
    else if (d == "canary") o.quarantine_depth = 64;
    else if (d == "guard") o.quarantine_depth = 64, o.guard_pages = true;
    else if (d == "exactly-once") o.exactly_once = true;
    else if (d == "all") o.quarantine_depth = 64, o.guard_pages = true, o.exactly_once = true;
    else throw usage_error(fmt::format("{} '{}': expected canary, guard, exactly-once, all or none", flag, printable(d)));
  }
}

std::string_view build_flavour() noexcept {
  constexpr std::string_view san = RINGSIDE_SANITIZER_NAME;
  if (!san.empty()) return san;
  constexpr std::string_view type = RINGSIDE_BUILD_TYPE;
  return type == "Debug" ? "debug" : "release";
}

std::string repro_command(const repro_spec& s, std::string_view exe) {
  std::string cmd = fmt::format("{} repro --backend {} --scenario {} --seed {}", shell_word(exe),
                                shell_word(s.backend), shell_word(s.scenario), s.seed);
  for (const auto& p : s.plugins) cmd += fmt::format(" --plugin {}", shell_word(p));
  for (const auto& [k, v] : s.args) cmd += fmt::format(" --{} {}", k, shell_word(v));
  if (s.detectors != k_safety_detectors) cmd += fmt::format(" --detectors {}", shell_word(s.detectors));
  if (!s.timeout.empty()) cmd += fmt::format(" --timeout {}", shell_word(s.timeout));
  return cmd;
}

nlohmann::json repro_document(const repro_spec& s, std::string_view exe, const std::string& verdict,
                              const std::vector<violation>& v) {
  nlohmann::json args = nlohmann::json::object();
  for (const auto& [k, val] : s.args) args[k] = val;
  auto vs = nlohmann::json::array();
  for (const auto& x : v) vs.push_back(violation_json(x));
  nlohmann::json doc = {
      {"ringside_repro", 1},
      {"backend", s.backend},
      {"scenario", s.scenario},
      {"seed", s.seed},
      {"args", args},
      {"detectors", s.detectors},
      {"build", std::string(build_flavour())},
      {"git_revision", RINGSIDE_GIT_REV},
      {"command", repro_command(s, exe)},
      {"verdict", verdict},
      {"violations", vs},
  };
  if (!s.timeout.empty()) doc["timeout"] = s.timeout;
  if (!s.plugins.empty()) doc["plugins"] = s.plugins;
  return doc;
}

std::string repro_file_name(const repro_spec& s) {
  return fmt::format("{}--{}--seed-{}.json", file_safe(s.scenario), file_safe(s.backend), s.seed);
}

std::string write_repro(const std::string& dir, const repro_spec& s, const nlohmann::json& doc) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
    throw std::system_error(errno, std::generic_category(), "mkdir " + dir);
  const std::string path = dir + "/" + repro_file_name(s);
  write_json_atomic(path, doc);
  return path;
}

loaded_repro load_repro(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw usage_error(fmt::format("repro file {}: cannot open: {}", printable(path), std::strerror(errno)));
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    // nlohmann's message quotes the raw bytes it stopped at ("last read: ..."):
    // printable() keeps the error one line (found by tests/fuzz/fuzz_repro.cpp).
    throw usage_error(fmt::format("repro file {}: not JSON ({})", printable(path), printable(e.what())));
  }
  auto bad = [&](std::string_view what) {
    return usage_error(fmt::format("repro file {}: {}", printable(path), printable(what)));
  };
  if (!j.is_object() || !j.contains("ringside_repro")) throw bad("not a ringside repro file (no \"ringside_repro\")");
  if (!j["ringside_repro"].is_number_integer() || j["ringside_repro"].get<int>() != 1)
    throw bad("unsupported repro format version (this ringside reads version 1)");
  // Only the fields repro_document writes: anything else is a typo or a file
  // from another tool, and silently ignoring it would run something else.
  static constexpr std::string_view known[] = {"ringside_repro", "backend", "scenario", "seed",    "args",
                                               "detectors",      "build",   "git_revision", "command", "verdict",
                                               "violations",     "timeout", "plugins"};
  for (const auto& [k, v] : j.items()) {
    bool ok = false;
    for (auto x : known) ok = ok || k == x;
    if (!ok) throw bad(fmt::format("unknown field \"{}\"", k));
  }
  loaded_repro r;
  try {
    r.spec.backend = j.at("backend").get<std::string>();
    r.spec.scenario = j.at("scenario").get<std::string>();
    if (!j.at("seed").is_number_unsigned()) throw bad("\"seed\" must be a non-negative integer");
    r.spec.seed = j.at("seed").get<uint64_t>();
    if (j.contains("args")) {
      if (!j["args"].is_object()) throw bad("\"args\" must be an object of flag -> string");
      for (const auto& [k, v] : j["args"].items()) {
        if (!v.is_string()) throw bad(fmt::format("\"args\".\"{}\" must be a string", k));
        r.spec.args.emplace_back(k, v.get<std::string>());
      }
    }
    if (j.contains("detectors")) r.spec.detectors = j["detectors"].get<std::string>();
    if (j.contains("timeout")) r.spec.timeout = j["timeout"].get<std::string>();
    if (j.contains("plugins")) {
      if (!j["plugins"].is_array()) throw bad("\"plugins\" must be an array of paths");
      for (const auto& p : j["plugins"]) r.spec.plugins.push_back(p.get<std::string>());
    }
    if (j.contains("verdict")) r.verdict = j["verdict"].get<std::string>();
    if (j.contains("violations")) {
      if (!j["violations"].is_array()) throw bad("\"violations\" must be an array");
      for (const auto& v : j["violations"]) {
        const std::string k = v.at("kind").get<std::string>();
        bool seen = false;
        for (const auto& x : r.kinds) seen = seen || x == k;
        if (!seen) r.kinds.push_back(k);
      }
    }
  } catch (const nlohmann::json::exception& e) {
    throw bad(fmt::format("missing or mistyped field ({})", e.what()));
  }
  if (r.spec.backend.empty() || r.spec.scenario.empty()) throw bad("\"backend\" and \"scenario\" must not be empty");
  return r;
}

}  // namespace ringside
