# Plugins (harness/plugin_api.hpp): ringside exports its symbols, so a
# plugin's calls into the harness (pool, meters, task_set, ...) resolve to the
# executable that loads it; the example plugin and the small test plugins are
# built with everything else, so the test command builds and checks them.

foreach(tgt ringside conformance_tests)
  if(TARGET ${tgt})
    set_target_properties(${tgt} PROPERTIES ENABLE_EXPORTS ON)
    target_link_libraries(${tgt} PRIVATE ${CMAKE_DL_LIBS})
  endif()
endforeach()

set(RINGSIDE_SOURCE_DIR ${PROJECT_SOURCE_DIR})  # the example builds against this tree
add_subdirectory(${PROJECT_SOURCE_DIR}/examples/plugin ${CMAKE_BINARY_DIR}/examples/plugin)

# Test plugins (tests/safety/plugin_load_test.cpp): each breaks one rule.
set(RINGSIDE_TINY_PLUGIN_SRC ${PROJECT_SOURCE_DIR}/examples/plugin/testing/tiny_plugin.cpp)
ringside_plugin(ringside_test_plugin_bad_version ${RINGSIDE_TINY_PLUGIN_SRC})
target_compile_definitions(ringside_test_plugin_bad_version PRIVATE TINY_PLUGIN_BAD_VERSION=1)
ringside_plugin(ringside_test_plugin_bad_layout ${RINGSIDE_TINY_PLUGIN_SRC})
target_compile_definitions(ringside_test_plugin_bad_layout PRIVATE TINY_PLUGIN_BAD_LAYOUT=1)
ringside_plugin(ringside_test_plugin_crash ${RINGSIDE_TINY_PLUGIN_SRC})
target_compile_definitions(ringside_test_plugin_crash PRIVATE TINY_PLUGIN_CRASH=1)
# Built as the other sanitizer flavour: a release ringside must refuse an ASan
# plugin (before loading it: its runtime would abort the process), an ASan
# (or TSan) ringside a plugin without a sanitizer.
add_library(ringside_test_plugin_other_abi MODULE ${RINGSIDE_TINY_PLUGIN_SRC})
set_target_properties(ringside_test_plugin_other_abi PROPERTIES CXX_STANDARD 20 CXX_VISIBILITY_PRESET hidden)
target_include_directories(ringside_test_plugin_other_abi PRIVATE ${PROJECT_SOURCE_DIR})
if(RINGSIDE_SANITIZER STREQUAL "" OR RINGSIDE_SANITIZER STREQUAL "ubsan")
  target_compile_options(ringside_test_plugin_other_abi PRIVATE -fsanitize=address)
  target_link_options(ringside_test_plugin_other_abi PRIVATE -fsanitize=address)
endif()

set(RINGSIDE_PLUGIN_TARGETS ringside_example_plugin ringside_test_plugin_bad_version ringside_test_plugin_bad_layout
    ringside_test_plugin_crash
    ringside_test_plugin_other_abi)
if(TARGET safety_tests)
  add_dependencies(safety_tests ${RINGSIDE_PLUGIN_TARGETS})
  target_compile_definitions(safety_tests PRIVATE
    RINGSIDE_EXAMPLE_PLUGIN="$<TARGET_FILE:ringside_example_plugin>"
    RINGSIDE_TEST_PLUGIN_BAD_VERSION="$<TARGET_FILE:ringside_test_plugin_bad_version>"
    RINGSIDE_TEST_PLUGIN_BAD_LAYOUT="$<TARGET_FILE:ringside_test_plugin_bad_layout>"
    RINGSIDE_TEST_PLUGIN_CRASH="$<TARGET_FILE:ringside_test_plugin_crash>"
    RINGSIDE_TEST_PLUGIN_OTHER_ABI="$<TARGET_FILE:ringside_test_plugin_other_abi>")
endif()
if(TARGET conformance_tests)
  # The conformance suite loads the example (tests/conformance/plugin_load_test.cpp):
  # gtest's discovery runs the binary, so the plugin must exist first.
  add_dependencies(conformance_tests ringside_example_plugin)
  target_compile_definitions(conformance_tests PRIVATE
    RINGSIDE_EXAMPLE_PLUGIN="$<TARGET_FILE:ringside_example_plugin>")
endif()
