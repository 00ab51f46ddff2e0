# The Asio backends (backends/asio.cpp, backends/asio_uring.cpp): both are
# globbed into ringside_core; each configures its own Asio at the top of the
# file (asio_uring.cpp: io_uring macros plus a namespace rename, see its
# opening comment), so no per-file compile definitions are needed here.
#
# This file adds the proof that the two configurations do not clash (ODR):
#   - asio_odr_probe: the asio-uring TU compiled again WITHOUT the rename
#     (RINGSIDE_ASIO_NO_RENAME), never linked anywhere: the negative control;
#   - unit test AsioOdr.* (tests/unit/asio_odr_test.cpp) runs `nm -C
#     --defined-only` on asio.cpp.o, asio_uring.cpp.o and the probe: the two
#     real objects must share no defined global boost::asio* symbol, and the
#     probe must share some with asio.cpp.o (else the check could not fail).
if(TARGET ringside_core AND TARGET unit_tests)
  add_library(asio_odr_probe OBJECT ${PROJECT_SOURCE_DIR}/tests/unit/asio_odr_probe.cpp)
  ringside_target_options(asio_odr_probe)
  target_link_libraries(asio_odr_probe PRIVATE PkgConfig::URING Boost::headers fmt::fmt
                        nlohmann_json::nlohmann_json Threads::Threads)
  # The object lists, one path a line, written at generate time.
  file(GENERATE OUTPUT ${CMAKE_BINARY_DIR}/asio_odr_objects.txt
       CONTENT "$<JOIN:$<TARGET_OBJECTS:ringside_core>,\n>\nprobe:$<JOIN:$<TARGET_OBJECTS:asio_odr_probe>,\n>\n")
  add_dependencies(unit_tests asio_odr_probe)
  target_compile_definitions(unit_tests PRIVATE
                             RINGSIDE_ASIO_ODR_OBJECTS="${CMAKE_BINARY_DIR}/asio_odr_objects.txt")
endif()
