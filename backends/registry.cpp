// The built-in backends. Each backend file defines one registration function
// (its factory goes into the registry); this is the only place naming them all.
#include "harness/backend.hpp"

namespace ringside {

void register_blocking_backend();     // backends/blocking.cpp
void register_epoll_backend();        // backends/epoll.cpp
void register_asio_backend();         // backends/asio.cpp
void register_asio_uring_backend();   // backends/asio_uring.cpp
void register_uring_raw_backend();    // backends/uring_raw.cpp
void register_uring_owned_backend();  // backends/uring_owned.cpp
void register_uring_bounce_backend();  // backends/uring_bounce.cpp

void register_builtin_backends() {
  static bool done = false;
  if (done) return;
  done = true;
  register_blocking_backend();
  register_epoll_backend();
  register_asio_backend();
  register_asio_uring_backend();
  register_uring_raw_backend();
  register_uring_owned_backend();
  register_uring_bounce_backend();
}

}  // namespace ringside
