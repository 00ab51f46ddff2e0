// libFuzzer target over the repro-file reader (harness/repro.hpp load_repro):
// the input is the file's bytes. load_repro must either return a spec or
// throw usage_error with one printable line (the CLI prints it and exits 2);
// a crash, a sanitizer report or any other exception is a bug. What it
// accepts must also survive the round trip the CLI makes of it: detectors
// parsed by apply_detectors (usage_error allowed), and the document written
// from the loaded spec (repro_document) read back to the same spec.
//
// load_repro takes a path (it opens the file itself), so each input goes
// into one memfd read through /proc/self/fd/N: no files on disk, nothing
// left behind.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "harness/repro.hpp"
#include "harness/scenario.hpp"

namespace {

using namespace ringside;

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_repro: %s: %s\n", what, detail.c_str());
  std::abort();
}

void check_message(const usage_error& e) {
  const std::string m = e.what();
  if (m.empty()) fail("empty usage_error message", m);
  for (const char c : m)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) fail("control character in usage_error message", m);
}

struct memfd {
  int fd = -1;
  std::string path;
  memfd() {
    fd = ::memfd_create("fuzz_repro", MFD_CLOEXEC);
    if (fd < 0) fail("memfd_create", "");
    path = "/proc/self/fd/" + std::to_string(fd);
  }
  void set(const uint8_t* data, size_t size) const {
    if (::ftruncate(fd, 0) != 0) fail("ftruncate", "");
    size_t off = 0;
    while (off < size) {
      const ssize_t n = ::pwrite(fd, data + off, size - off, off_t(off));
      if (n <= 0) fail("pwrite", "");
      off += size_t(n);
    }
  }
};

bool same(const repro_spec& a, const repro_spec& b) {
  return a.backend == b.backend && a.scenario == b.scenario && a.seed == b.seed && a.args == b.args &&
         a.detectors == b.detectors && a.timeout == b.timeout && a.plugins == b.plugins;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const memfd in;
  // 1 MiB: repro files are a few KiB; bigger inputs only slow the search.
  if (size > (1u << 20)) return 0;
  in.set(data, size);
  loaded_repro r;
  try {
    r = load_repro(in.path);
  } catch (const usage_error& e) {
    check_message(e);
    return 0;
  }
  if (r.spec.backend.empty() || r.spec.scenario.empty()) fail("accepted an empty backend or scenario", "");
  try {
    run_options o;
    apply_detectors("--detectors", r.spec.detectors, o);
  } catch (const usage_error& e) {
    check_message(e);
  }
  // Round trip: what `run` would write for this spec reads back the same.
  const auto doc = repro_document(r.spec, "ringside", r.verdict, {});
  const std::string text = doc.dump();
  in.set(reinterpret_cast<const uint8_t*>(text.data()), text.size());
  loaded_repro again;
  try {
    again = load_repro(in.path);
  } catch (const usage_error& e) {
    fail("the document written from an accepted spec does not load", e.what());
  }
  if (!same(r.spec, again.spec)) fail("round trip changed the spec", text);
  (void)repro_command(r.spec, "ringside");
  return 0;
}
