// Runs the real ringside binary from safety tests: a command line through
// /bin/sh, its combined output and exit code. Bounded by `timeout`.
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <string>

namespace ringside::test {

struct cli_result {
  int code = -1;  // exit code; 128 + signal when killed
  std::string out;
};

// cmd is a shell command line; `timeout -k 5 <secs>` bounds it.
inline cli_result run_cli(const std::string& cmd, int timeout_s = 300) {
  cli_result r;
  std::string quoted = "'";
  for (char c : cmd) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  quoted += "'";
  const std::string full = "timeout -k 5 " + std::to_string(timeout_s) + " sh -c " + quoted + " 2>&1";
  FILE* p = ::popen(full.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = ::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = ::pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

inline std::string bin() { return RINGSIDE_BIN; }

// A fresh directory under /tmp, removed with everything in it at scope exit.
struct temp_dir_guard {
  std::string path;
  temp_dir_guard() {
    char tmpl[] = "/tmp/ringside-safety-XXXXXX";
    if (::mkdtemp(tmpl) != nullptr) path = tmpl;
  }
  ~temp_dir_guard() {
    if (!path.empty()) (void)::system(("rm -rf '" + path + "'").c_str());
  }
};

}  // namespace ringside::test
