// asio-uring: Boost.Asio with its io_uring service as the io_context's engine
// (BOOST_ASIO_HAS_IO_URING + BOOST_ASIO_DISABLE_EPOLL: sockets, pipes, files
// and timers all go through io_uring, not only files). The implementation is
// backends/asio_common.hpp, shared with the `asio` backend.
//
// ODR, and how it is avoided: Asio is header-only, and these macros change
// the inline code behind the SAME names (boost::asio::io_context's
// scheduler, detail::reactor, socket services, ...) — linking this TU next
// to backends/asio.cpp (default configuration) would be an ODR violation:
// the linker keeps one definition of each inline function, chosen at random.
// So this TU renames Asio's namespace: `#define asio asio_uring_cfg` before
// any Boost include puts every Asio entity of this configuration in
// boost::asio_uring_cfg. It is sound because (checked in Boost 1.81) no
// Boost header stringizes or token-pastes the identifier `asio` (macro
// names such as BOOST_ASIO_HAS_IO_URING are single tokens, header names in
// #include <...> are not macro-expanded, and the strings such as
// "asio.misc" are literals), and no other Boost library this TU includes
// mentions it. Every ringside header is included first, so the rename
// touches only Asio. Proven by the ctest unit.asio_odr (cmake/asio.cmake,
// tests/unit/asio_odr_test.cpp): nm -C on the two object files shows no
// defined global boost::asio symbol in common, while a probe object built
// from the same code WITHOUT the rename shares many with asio.cpp.o (so the
// check can fail).
#define BOOST_ASIO_HAS_IO_URING 1
#define BOOST_ASIO_DISABLE_EPOLL 1

// Ringside and std headers before the rename (asio_common.hpp includes them too).
#include <liburing.h>
#include <sys/resource.h>

#include <cstring>

#include <string>

#include "harness/backend.hpp"
#include "harness/buffer_group.hpp"
#include "harness/meters.hpp"
#include "harness/perform.hpp"
#include "harness/ring.hpp"
#include "harness/sys.hpp"
#include "harness/task_set.hpp"

#ifndef RINGSIDE_ASIO_NO_RENAME  // only the ODR test's probe object sets it
#define asio asio_uring_cfg
#endif
#define RINGSIDE_ASIO_NAME "asio-uring"
#define RINGSIDE_ASIO_IO_URING 1

#include "backends/asio_common.hpp"

#ifndef RINGSIDE_ASIO_NO_RENAME
#undef asio
#endif

namespace ringside {

#ifndef RINGSIDE_ASIO_NO_RENAME
void register_asio_uring_backend() {
#else
void register_asio_uring_probe() {
#endif
  register_backend(backend_info{
      .name = "asio-uring",
      .description = "Boost.Asio io_context on its io_uring service (sockets and files); per-op "
                     "cancellation slots",
      .unavailable_reason = []() -> std::string {
        // The same reason, worded the same, as the other io_uring backends
        // when the kernel refuses rings at all (seccomp, io_uring_disabled).
        if (std::string why = uring_unavailable_reason(); !why.empty()) return why;
        // Asio's own ring is far bigger (io_uring_service::ring_size, 16384
        // entries) and is made by the first I/O object; when the kernel
        // refuses it (RLIMIT_MEMLOCK charges rings), Asio throws
        // boost::system::system_error ("io_uring_queue_init: Cannot allocate
        // memory"), it never aborts. Probe exactly that, once per process,
        // so the backend is listed unavailable instead of failing every row.
        static const std::string asio_why = []() -> std::string {
          try {
            net::io_context ctx;
            net::steady_timer t(ctx);  // io_uring_service -> init_ring -> io_uring_queue_init
            meters::count_syscall();
          } catch (const std::exception& e) {
            rlimit rl{};
            std::string why = std::string("Boost.Asio io_uring service: ") + e.what();
            if (::getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
              why += " (RLIMIT_MEMLOCK is " + std::to_string(rl.rlim_cur) +
                     " bytes: raise it with ulimit -l or prlimit --memlock)";
            return why;
          }
          return {};
        }();
        return asio_why;
      },
      .make = [](const backend_options&) -> std::unique_ptr<backend> { return std::make_unique<asio_backend>(); },
  });
}

}  // namespace ringside
