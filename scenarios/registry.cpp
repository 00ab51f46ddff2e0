// The built-in scenarios; the only place naming them all.
#include "harness/scenario.hpp"

namespace ringside {

void register_file_scenarios();  // scenarios/file.cpp
void register_tcp_scenarios();   // scenarios/tcp.cpp
void register_cancel_recv_scenarios();  // scenarios/cancel_recv.cpp
void register_cancel_aba_scenarios();  // scenarios/cancel_aba.cpp
void register_cancel_submit_fail_scenarios();  // scenarios/cancel_submit_fail.cpp
void register_cancel_teardown_scenarios();  // scenarios/cancel_teardown.cpp
void register_cancel_drop_scenarios();  // scenarios/cancel_drop.cpp
void register_cancel_close_scenarios();  // scenarios/cancel_close.cpp
void register_cancel_accept_scenarios();  // scenarios/cancel_accept.cpp
void register_cancel_thread_scenarios();  // scenarios/cancel_thread.cpp
void register_cancel_timeout_scenarios();  // scenarios/cancel_timeout.cpp
void register_cancel_zc_scenarios();  // scenarios/cancel_zc.cpp
void register_cancel_multishot_scenarios();  // scenarios/cancel_multishot.cpp

void register_cancel_race_scenarios();  // scenarios/cancel_race.cpp
void register_cancel_storm_scenarios();  // scenarios/cancel_storm.cpp

void register_builtin_scenarios() {
  static bool done = false;
  if (done) return;
  done = true;
  register_file_scenarios();
  register_tcp_scenarios();
  register_cancel_recv_scenarios();
  register_cancel_aba_scenarios();
  register_cancel_submit_fail_scenarios();
  register_cancel_teardown_scenarios();
  register_cancel_drop_scenarios();
  register_cancel_close_scenarios();
  register_cancel_accept_scenarios();
  register_cancel_thread_scenarios();
  register_cancel_timeout_scenarios();
  register_cancel_zc_scenarios();
  register_cancel_multishot_scenarios();
  register_cancel_race_scenarios();
  register_cancel_storm_scenarios();
}

}  // namespace ringside
