// A temporary directory the run creates and removes: file scenarios put their
// files here unless the user names a file (--file) of their own.
#pragma once

#include <string>
#include <string_view>

namespace ringside {

class temp_dir {
 public:
  // Creates a fresh "ringside.XXXXXX" directory inside parent (empty: $TMPDIR,
  // else /tmp). Throws std::system_error (the errno of mkdtemp, the parent as
  // what()) when parent is missing or not writable.
  explicit temp_dir(std::string_view parent = {});
  temp_dir(temp_dir&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
  temp_dir& operator=(temp_dir&&) = delete;
  temp_dir(const temp_dir&) = delete;
  // Removes the directory and everything in it.
  ~temp_dir();

  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  // path()/name
  [[nodiscard]] std::string file(std::string_view name) const;

 private:
  std::string path_;
};

}  // namespace ringside
