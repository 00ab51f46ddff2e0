#include "harness/fd_census.hpp"

#include <dirent.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cstdlib>

namespace ringside {

std::map<int, std::string> open_fds() {
  std::map<int, std::string> out;
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return out;
  const int own = ::dirfd(d);
  char target[256];
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const int fd = std::atoi(e->d_name);
    if (fd == own) continue;
    const std::string p = std::string("/proc/self/fd/") + e->d_name;
    const ssize_t n = ::readlink(p.c_str(), target, sizeof target - 1);
    out.emplace(fd, n > 0 ? std::string(target, size_t(n)) : std::string("?"));
  }
  ::closedir(d);
  return out;
}

int count_open_fds(std::string_view prefix) {
  int n = 0;
  for (const auto& [fd, target] : open_fds()) n += std::string_view(target).starts_with(prefix) ? 1 : 0;
  return n;
}

void report_fd_leaks(const std::map<int, std::string>& before, const std::map<int, std::string>& after,
                     std::vector<violation>& out) {
  std::string leaked;
  size_t count = 0;
  for (const auto& [fd, target] : after) {
    auto it = before.find(fd);
    if (it != before.end() && it->second == target) continue;
    ++count;
    // 8: enough to see the pattern (all sockets? all one file?).
    if (count <= 8) leaked += fmt::format("{}{} -> {}", leaked.empty() ? "" : ", ", fd, target);
  }
  if (count == 0) return;
  if (count > 8) leaked += fmt::format(", ... ({} more)", count - 8);
  out.push_back({"fd_leak", fmt::format("{} descriptor(s) open after teardown that were not before: {}", count, leaked)});
}

}  // namespace ringside
