# Robustness (issue 7): io_uring switched off, resource limits, no growth over
# many runs, and fuzzing of the parsers.
#
#   no_uring        tests/robust/no_uring.cpp: runs a command under a seccomp
#                   filter that makes io_uring_setup/enter/register fail with
#                   ENOSYS or EPERM (no libseccomp: plain BPF).
#   robust_tests    tests/robust/*_test.cpp, ctest label `robust`: the real
#                   ringside binary under no_uring and under prlimit, fixed
#                   buffers under a low RLIMIT_MEMLOCK, 100 runs in one process
#                   without growth, interrupts (SIGINT/SIGTERM mid-run and
#                   mid-check), crash isolation (RINGSIDE_SCENARIO_FAULT),
#                   output discipline.
#   robust.cli_bad_input  tests/robust/test_cli_bad_input.py (pytest): every
#                   option of run/check/repro/list given bad values.
#   fuzz_parse,     libFuzzer targets (tests/fuzz/), built with clang++ only
#   fuzz_repro      when clang++ and its fuzzer runtime are present; ctest
#                   label `fuzz` runs each for a bounded time over the seed
#                   corpus (tests/fuzz/corpus/), and once over the corpus alone
#                   (regressions: every input that ever crashed stays there).
if(NOT TARGET ringside_core OR NOT TARGET ringside)
  return()
endif()

add_executable(no_uring ${PROJECT_SOURCE_DIR}/tests/robust/no_uring.cpp)
ringside_target_options(no_uring)

file(GLOB RINGSIDE_ROBUST_TESTS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/robust/*_test.cpp)
if(RINGSIDE_ROBUST_TESTS)
  add_executable(robust_tests ${RINGSIDE_ROBUST_TESTS})
  ringside_target_options(robust_tests)
  target_link_libraries(robust_tests PRIVATE ringside_core ringside_alloc_counter GTest::gtest GTest::gtest_main)
  add_dependencies(robust_tests ringside no_uring)
  target_compile_definitions(robust_tests PRIVATE RINGSIDE_BIN="$<TARGET_FILE:ringside>"
                             RINGSIDE_NO_URING_BIN="$<TARGET_FILE:no_uring>"
                             RINGSIDE_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  # The example plugin, for a plugin row in the output-discipline test (plugins.cmake
  # is included first when present).
  if(TARGET ringside_example_plugin)
    add_dependencies(robust_tests ringside_example_plugin)
    target_compile_definitions(robust_tests PRIVATE RINGSIDE_EXAMPLE_PLUGIN="$<TARGET_FILE:ringside_example_plugin>")
  endif()
  # 300 s: the no-growth series (100 runs) is the longest, about 10-30 s here.
  gtest_discover_tests(robust_tests TEST_PREFIX "robust." DISCOVERY_TIMEOUT 60
                       PROPERTIES LABELS robust TIMEOUT 300 SKIP_RETURN_CODE 77)
endif()

# Bad input at the CLI (tests/robust/test_cli_bad_input.py): a table of bad
# values for every option of run, check, repro and list, each run through the
# real binary under pytest; every one must be one line on stderr, exit 2.
add_test(NAME robust.cli_bad_input
         COMMAND ${CMAKE_COMMAND} -E env RINGSIDE_BIN=$<TARGET_FILE:ringside> PYTHONDONTWRITEBYTECODE=1
                 /usr/bin/python3 -m pytest -p no:cacheprovider -q ${PROJECT_SOURCE_DIR}/tests/robust/test_cli_bad_input.py)
set_tests_properties(robust.cli_bad_input PROPERTIES LABELS robust TIMEOUT 900)

# ---- fuzzers: clang++ -fsanitize=fuzzer,address,undefined ----
# The project builds with g++; libFuzzer comes with clang. Each source is
# compiled to its own object by clang++ (with a depfile, so header edits
# rebuild it), then linked; no second CMake project. fmt is used header-only
# here (FMT_HEADER_ONLY) so nothing g++-built is linked into the fuzzers.
find_program(RINGSIDE_CLANGXX NAMES clang++ clang++-16 clang++-15 clang++-14)
if(NOT RINGSIDE_CLANGXX OR RINGSIDE_SANITIZER STREQUAL "tsan")
  return()
endif()
# Is the fuzzer runtime there? (Debian: libclang-rt-dev.) Checked once per
# configure with a one-line target.
set(_probe_dir ${CMAKE_BINARY_DIR}/fuzz/probe)
file(MAKE_DIRECTORY ${_probe_dir})
file(WRITE ${_probe_dir}/probe.cpp
     "#include <cstddef>\n#include <cstdint>\nextern \"C\" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }\n")
execute_process(COMMAND ${RINGSIDE_CLANGXX} -fsanitize=fuzzer,address,undefined ${_probe_dir}/probe.cpp
                        -o ${_probe_dir}/probe
                RESULT_VARIABLE _probe_rc OUTPUT_QUIET ERROR_QUIET)
if(NOT _probe_rc EQUAL 0)
  message(STATUS "ringside: ${RINGSIDE_CLANGXX} cannot build libFuzzer targets; fuzz tests not added")
  return()
endif()

set(RINGSIDE_FUZZ_FLAGS -std=c++20 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
    -fno-sanitize-recover=undefined -I${PROJECT_SOURCE_DIR} -DFMT_HEADER_ONLY=1
    # repro.cpp records the build it came from.
    -DRINGSIDE_BUILD_TYPE="Debug" -DRINGSIDE_SANITIZER_NAME="fuzz" -DRINGSIDE_GIT_REV="${RINGSIDE_GIT_REV}"
    -DRINGSIDE_VERSION="${PROJECT_VERSION}" -DRINGSIDE_URING_VERSION="${URING_VERSION}")
# fmt's and nlohmann-json's headers where their packages say they are
# (plain paths; the system include dirs are clang's own already, and naming
# them again with -isystem would break libstdc++'s #include_next).
set(_fuzz_include_dirs)
foreach(tgt fmt::fmt nlohmann_json::nlohmann_json)
  get_target_property(_dirs ${tgt} INTERFACE_INCLUDE_DIRECTORIES)
  foreach(d ${_dirs})
    if(d AND NOT d MATCHES "^\\$<" AND NOT d MATCHES "^/usr(/local)?/include/?$")
      list(APPEND _fuzz_include_dirs ${d})
    endif()
  endforeach()
endforeach()
list(REMOVE_DUPLICATES _fuzz_include_dirs)
set(_fuzz_include_flags)
foreach(d ${_fuzz_include_dirs})
  list(APPEND _fuzz_include_flags -isystem ${d})
endforeach()

# ringside_fuzzer(NAME seconds source...): builds NAME from the sources and
# adds the tests fuzz.SHORT (bounded run) and fuzz.SHORT.corpus (regressions),
# SHORT being NAME without its "fuzz_".
function(ringside_fuzzer name seconds)
  set(objs)
  foreach(src ${ARGN})
    get_filename_component(base ${src} NAME_WE)
    set(obj ${CMAKE_BINARY_DIR}/fuzz/${name}.dir/${base}.o)
    add_custom_command(
      OUTPUT ${obj}
      COMMAND ${RINGSIDE_CLANGXX} ${RINGSIDE_FUZZ_FLAGS} ${_fuzz_include_flags} -MD -MF ${obj}.d
              -c ${PROJECT_SOURCE_DIR}/${src} -o ${obj}
      DEPENDS ${PROJECT_SOURCE_DIR}/${src}
      DEPFILE ${obj}.d
      COMMENT "clang++ (libFuzzer) ${src}"
      COMMAND_EXPAND_LISTS VERBATIM)
    list(APPEND objs ${obj})
  endforeach()
  set(exe ${CMAKE_BINARY_DIR}/fuzz/${name})
  add_custom_command(
    OUTPUT ${exe}
    COMMAND ${RINGSIDE_CLANGXX} -fsanitize=fuzzer,address,undefined ${objs} -o ${exe}
    DEPENDS ${objs}
    COMMENT "Linking libFuzzer target ${name}"
    VERBATIM)
  add_custom_target(${name} ALL DEPENDS ${exe})

  set(corpus ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/${name})
  # New inputs go to the build tree (first corpus dir), never the sources.
  set(work ${CMAKE_BINARY_DIR}/fuzz/${name}.work)
  file(MAKE_DIRECTORY ${work})
  # -max_total_time bounds the run; -timeout and -rss_limit_mb turn a hang or
  # a runaway allocation into a failure; -artifact_prefix keeps a crashing
  # input in the build tree (copy it into the corpus once fixed).
  string(REGEX REPLACE "^fuzz_" "" short ${name})
  add_test(NAME fuzz.${short}
           COMMAND ${exe} -max_total_time=${seconds} -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
                   -artifact_prefix=${CMAKE_BINARY_DIR}/fuzz/${name}- ${work} ${corpus})
  add_test(NAME fuzz.${short}.corpus
           COMMAND ${exe} -runs=0 -timeout=10 -artifact_prefix=${CMAKE_BINARY_DIR}/fuzz/${name}- ${corpus})
  # TIMEOUT: the bounded run plus libFuzzer's start and final merge.
  math(EXPR limit "${seconds} + 60")
  set_tests_properties(fuzz.${short} fuzz.${short}.corpus PROPERTIES LABELS fuzz TIMEOUT ${limit})
endfunction()

# 20 s each: thousands of executions per second on these parsers; enough to
# get past the easy bugs on every test run without slowing the suite.
ringside_fuzzer(fuzz_parse 20 tests/fuzz/fuzz_parse.cpp harness/parse.cpp)
# repro.cpp's load_repro and repro_document need parse.cpp (split_list),
# results.cpp (violation_json), histogram.cpp and scenario.cpp (results.cpp's
# row writer): the closure is listed here, nothing else of the core.
ringside_fuzzer(fuzz_repro 20 tests/fuzz/fuzz_repro.cpp harness/repro.cpp harness/parse.cpp harness/results.cpp
                harness/histogram.cpp harness/scenario.cpp harness/backend_opts.cpp)
