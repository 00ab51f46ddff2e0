// The built-in backends. Each backend file defines one registration function
// (its factory goes into the registry); this is the only place naming them all.
#include "harness/backend.hpp"

namespace ringside {

// Weak while the backends are being written in parallel; each is defined in
// backends/<name>.cpp.
void register_blocking_backend() __attribute__((weak));
void register_epoll_backend() __attribute__((weak));
void register_uring_raw_backend() __attribute__((weak));
void register_uring_owned_backend() __attribute__((weak));

void register_builtin_backends() {
  static bool done = false;
  if (done) return;
  done = true;
  for (auto* f : {register_blocking_backend, register_epoll_backend, register_uring_raw_backend,
                  register_uring_owned_backend})
    if (f) f();
}

}  // namespace ringside
