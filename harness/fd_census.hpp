// Resource accounting: the process's open descriptors, from /proc/self/fd.
// The runner takes a census before a scenario's setup and after its teardown;
// a descriptor open after that was not before is a leak (an accepted
// connection nobody served or closed, a socket a backend forgot).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "harness/violation.hpp"

namespace ringside {

// fd -> what it points at ("socket:[123]", "/tmp/x", "anon_inode:[io_uring]").
// Empty if /proc is not mounted.
std::map<int, std::string> open_fds();

// Counts the descriptors whose target starts with `prefix` ("socket:").
int count_open_fds(std::string_view prefix);

// One "fd_leak" violation naming every fd in `after` that was not in `before`
// (or was, but now points elsewhere); nothing when there is none.
void report_fd_leaks(const std::map<int, std::string>& before, const std::map<int, std::string>& after,
                     std::vector<violation>& out);

}  // namespace ringside
