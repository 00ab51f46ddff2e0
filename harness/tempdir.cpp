#include "harness/tempdir.hpp"

#include <stdlib.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <system_error>

namespace ringside {

temp_dir::temp_dir(std::string_view parent) {
  std::string base(parent);
  if (base.empty()) {
    const char* env = std::getenv("TMPDIR");
    base = env != nullptr && *env != '\0' ? env : "/tmp";
  }
  std::string tmpl = base;
  if (tmpl.back() != '/') tmpl += '/';
  tmpl += "ringside.XXXXXX";
  // Setup, not a measured path: mkdtemp is not counted as a syscall.
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::system_error(errno, std::generic_category(), base);
  path_ = std::move(tmpl);
}

temp_dir::~temp_dir() {
  if (path_.empty()) return;
  std::error_code ec;  // a destructor must not throw; what cannot be removed stays
  std::filesystem::remove_all(path_, ec);
}

std::string temp_dir::file(std::string_view name) const {
  std::string p = path_;
  p += '/';
  p += name;
  return p;
}

}  // namespace ringside
