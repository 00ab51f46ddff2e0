// The real ringside binary as a child the test controls: started with its own
// environment, stdout and stderr in files, signalled mid-run, reaped with a
// bound; its descendants found through /proc. Used by the interrupt, crash
// isolation, bad-input and output tests.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace ringside::test {

inline std::string ringside_bin() { return RINGSIDE_BIN; }

inline std::string slurp_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A fresh directory under /tmp, removed with everything in it at scope exit.
struct scratch_dir {
  std::string path;
  explicit scratch_dir(const char* tag = "robust") {
    std::string tmpl = std::string("/tmp/ringside-test-") + tag + "-XXXXXX";
    if (::mkdtemp(tmpl.data()) != nullptr) path = tmpl;
  }
  ~scratch_dir() {
    if (!path.empty()) (void)::system(("rm -rf '" + path + "'").c_str());
  }
  [[nodiscard]] std::string sub(const std::string& name) const {
    const std::string p = path + "/" + name;
    ::mkdir(p.c_str(), 0755);
    return p;
  }
};

// Entries of a directory (not . and ..); empty when it cannot be read.
inline std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (const dirent* e = ::readdir(d))
    if (std::string n = e->d_name; n != "." && n != "..") out.push_back(n);
  ::closedir(d);
  return out;
}

// The pids whose parent is ppid (from /proc/<pid>/stat), zombies included.
inline std::set<pid_t> children_of(pid_t ppid) {
  std::set<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (d == nullptr) return out;
  while (const dirent* e = ::readdir(d)) {
    const pid_t pid = pid_t(std::atoi(e->d_name));
    if (pid <= 0) continue;
    const std::string stat = slurp_file("/proc/" + std::to_string(pid) + "/stat");
    const size_t rp = stat.rfind(')');
    if (rp == std::string::npos) continue;
    std::istringstream in(stat.substr(rp + 1));
    char state = 0;
    long parent = 0;
    in >> state >> parent;
    if (parent == ppid) out.insert(pid);
  }
  ::closedir(d);
  return out;
}

struct proc {
  pid_t pid = -1;
  std::string out_path, err_path;
};

// Starts argv[0] with argv, env additions ("K=V"; "K=" unsets K), cwd, stdout
// and stderr to files in out_dir; no core files.
inline proc spawn_proc(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                       const std::string& out_dir, const std::string& cwd = {}) {
  proc p;
  p.out_path = out_dir + "/stdout.txt";
  p.err_path = out_dir + "/stderr.txt";
  p.pid = ::fork();
  if (p.pid == 0) {
    for (const auto& kv : env) {
      const size_t eq = kv.find('=');
      if (eq + 1 == kv.size()) ::unsetenv(kv.substr(0, eq).c_str());
      else ::setenv(kv.substr(0, eq).c_str(), kv.substr(eq + 1).c_str(), 1);
    }
    rlimit no_core{0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) ::_exit(125);
    const int o = ::open(p.out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int e = ::open(p.err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int n = ::open("/dev/null", O_RDONLY);
    if (o < 0 || e < 0 || n < 0) ::_exit(125);
    ::dup2(n, 0);
    ::dup2(o, 1);
    ::dup2(e, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(126);
  }
  return p;
}

// Waits up to timeout_s; then SIGKILLs it. Returns the exit code, 128+signal
// when a signal ended it, or -1 when it had to be killed.
inline int wait_proc(const proc& p, double timeout_s) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  int st = 0;
  while (std::chrono::steady_clock::now() < end) {
    const pid_t r = ::waitpid(p.pid, &st, WNOHANG);
    if (r == p.pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (r < 0) return -2;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(p.pid, SIGKILL);
  ::waitpid(p.pid, &st, 0);
  return -1;
}

// Parses a results JSON file; a null json when it is missing or not JSON.
inline nlohmann::json read_json(const std::string& path) {
  try {
    return nlohmann::json::parse(slurp_file(path));
  } catch (...) {
    return {};
  }
}

// The rows (run_type iteration) of a results JSON, 0 when it is not one.
inline size_t row_count(const nlohmann::json& doc) {
  if (!doc.is_object() || !doc.contains("benchmarks") || !doc["benchmarks"].is_array()) return 0;
  size_t n = 0;
  for (const auto& b : doc["benchmarks"]) n += b.value("run_type", "") == "iteration";
  return n;
}

}  // namespace ringside::test
