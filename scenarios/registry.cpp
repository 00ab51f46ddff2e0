// The built-in scenarios; the only place naming them all.
#include "harness/scenario.hpp"

namespace ringside {

void register_file_scenarios();  // scenarios/file.cpp
void register_tcp_scenarios();   // scenarios/tcp.cpp
void register_cancel_recv_scenarios();  // scenarios/cancel_recv.cpp

void register_builtin_scenarios() {
  static bool done = false;
  if (done) return;
  done = true;
  register_file_scenarios();
  register_tcp_scenarios();
  register_cancel_recv_scenarios();
}

}  // namespace ringside
