// Repro: one backend x scenario x seed x parameters, written as the command
// line that runs it again and as a JSON file `ringside repro FILE` reads.
// `ringside run`, `check` and `repro` all write the same thing for every
// result with violations.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/runner.hpp"

namespace ringside {

// The detectors a safety run turns on when nobody says otherwise (check,
// repro): canary quarantine (ledger and watchdog are always on) and
// exactly-once. Guard pages stay off: they turn the kernel's late write into
// -EFAULT, which would hide it from the canary.
inline constexpr std::string_view k_safety_detectors = "canary,exactly-once";

// "canary,guard,exactly-once" or "all" into run_options; throws usage_error
// naming `flag` for an unknown detector.
void apply_detectors(std::string_view flag, std::string_view list, run_options& o);

struct repro_spec {
  std::string backend;
  std::string scenario;
  uint64_t seed = 1;
  // Other run parameters exactly as given (flag without dashes -> value),
  // e.g. {"ops", "64"}, {"bs", "4k"}: parsed again by the same code.
  std::vector<std::pair<std::string, std::string>> args;
  std::string detectors{k_safety_detectors};
  std::string timeout;  // seconds as given; empty: the runner's default
  // Plugins to load first (absolute paths): the one providing `backend`
  // when it is not built in (`--plugin PATH`, "plugins" in the file).
  std::vector<std::string> plugins;
};

// `<exe> repro --backend B --scenario S --seed N [--flag value...]`, each
// word shell-quoted where needed.
std::string repro_command(const repro_spec& s, std::string_view exe);

// The repro file: spec, the command, the build it came from, the verdict
// and every violation with its detector, op and buffer range.
nlohmann::json repro_document(const repro_spec& s, std::string_view exe, const std::string& verdict,
                              const std::vector<violation>& v);

// "cancel.recv_completed--uring-raw--seed-1.json"
std::string repro_file_name(const repro_spec& s);

// Writes the document as `dir/repro_file_name(s)` (creating dir) and returns
// the path. Throws std::system_error.
std::string write_repro(const std::string& dir, const repro_spec& s, const nlohmann::json& doc);

// Reads a repro file; throws usage_error (one line: path and what is wrong).
struct loaded_repro {
  repro_spec spec;
  std::string verdict;             // as recorded
  std::vector<std::string> kinds;  // the violation kinds recorded
};
loaded_repro load_repro(const std::string& path);

// This build: "release", "asan", "tsan", "ubsan" (or "debug").
std::string_view build_flavour() noexcept;

}  // namespace ringside
