// A detector's finding. Shared by scenarios, detectors and the results writer.
#pragma once

#include <string>

namespace ringside {

struct violation {
  std::string kind;    // e.g. "ledger", "stream_integrity", "data_mismatch", "io_error", "hang"
  std::string detail;  // one line: op, buffer range, what was seen
};

}  // namespace ringside
