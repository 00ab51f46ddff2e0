// The ODR check's negative control (cmake/asio.cmake): the asio-uring backend
// compiled with Asio's io_uring configuration but WITHOUT its namespace
// rename, exactly the clash backends/asio_uring.cpp avoids. Only ever
// compiled, never linked: tests/unit/asio_odr_test.cpp reads its symbols.
#define RINGSIDE_ASIO_NO_RENAME 1
#include "backends/asio_uring.cpp"
