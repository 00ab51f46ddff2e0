// A detector's finding. Shared by scenarios, detectors and the results writer.
#pragma once

#include <string>
#include <string_view>

namespace ringside {

struct violation {
  std::string kind;    // e.g. "ledger", "stream_integrity", "data_mismatch", "io_error", "hang"
  std::string detail;  // one line: what was seen
  // Where, when the detector knows (repro files carry them; empty otherwise).
  // Both are stable from run to run (no addresses), so a repro can be
  // compared with the run it came from.
  std::string op;      // the op: kind, the scenario's step or the op's sequence number, e.g. "recv step 17"
  std::string range;   // pool buffer and bytes, e.g. "buffer 3 [0, 4096)"
};

// The detector that reports a violation kind (DESIGN.md's detector table):
// "ledger", "canary", "guard", "asan", "tsan", "stream", "resources",
// "exactly-once", "watchdog", or "scenario" for checks a scenario makes itself
// (io_error, error...).
constexpr std::string_view detector_of(std::string_view kind) noexcept {
  if (kind == "ledger") return "ledger";
  if (kind == "canary") return "canary";
  if (kind == "guard_page") return "guard";
  if (kind == "asan") return "asan";
  if (kind == "tsan") return "tsan";
  if (kind == "stream_integrity" || kind == "data_mismatch" || kind == "short_transfer" || kind == "lost_result")
    return "stream";
  if (kind == "fd_leak" || kind == "connection_leak" || kind == "ring_buffer_leak") return "resources";
  if (kind == "exactly_once") return "exactly-once";
  if (kind == "hang") return "watchdog";
  return "scenario";
}

}  // namespace ringside
