// The built-in scenarios; the only place naming them all.
#include "harness/scenario.hpp"

namespace ringside {

void register_file_scenarios() __attribute__((weak));  // scenarios/file.cpp
void register_tcp_scenarios() __attribute__((weak));   // scenarios/tcp.cpp

void register_builtin_scenarios() {
  static bool done = false;
  if (done) return;
  done = true;
  for (auto* f : {register_file_scenarios, register_tcp_scenarios})
    if (f) f();
}

}  // namespace ringside
