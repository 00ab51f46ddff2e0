// asio: Boost.Asio's io_context with its default Linux engine, the epoll
// reactor. The implementation is backends/asio_common.hpp (shared with
// asio-uring, compiled again there under another Asio configuration).
//
// ODR: this TU uses Boost.Asio as configured by default, in namespace
// boost::asio. backends/asio_uring.cpp renames its Asio to
// boost::asio_uring_cfg, so the two configurations share no symbol; the
// ctest unit.asio_odr (cmake/asio.cmake, tests/unit/asio_odr_test.cpp) checks
// that with nm on both object files.
#if defined(BOOST_ASIO_HAS_IO_URING) || defined(BOOST_ASIO_DISABLE_EPOLL)
#error "backends/asio.cpp is the epoll-reactor configuration: no io_uring macros here"
#endif
#define RINGSIDE_ASIO_NAME "asio"
#define RINGSIDE_ASIO_IO_URING 0

#include "backends/asio_common.hpp"

namespace ringside {

void register_asio_backend() {
  register_backend(backend_info{
      .name = "asio",
      .description = "Boost.Asio io_context, epoll reactor; per-op cancellation slots; no file I/O "
                     "(Asio's random-access files need io_uring)",
      .unavailable_reason = [] { return std::string(); },
      .make = [](const backend_options&) -> std::unique_ptr<backend> { return std::make_unique<asio_backend>(); },
  });
}

}  // namespace ringside
