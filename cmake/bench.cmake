# Google Benchmark microbenchmarks (bench/): per-op submit -> complete cost of
# every backend. Built by the test command and smoke-run there (label
# bench-smoke: a failed op or a hung backend fails it; timings are printed,
# never asserted).
file(GLOB RINGSIDE_BENCH_SRC CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/bench/*.cpp)
if(RINGSIDE_BENCH_SRC)
  add_executable(ringside_bench ${RINGSIDE_BENCH_SRC})
  ringside_target_options(ringside_bench)
  target_link_libraries(ringside_bench PRIVATE ringside_core ringside_alloc_counter benchmark::benchmark)
  # 0.01 s per benchmark: enough to run every batch path once or more.
  add_test(NAME bench-smoke.microbench COMMAND ringside_bench --benchmark_min_time=0.01)
  set_tests_properties(bench-smoke.microbench PROPERTIES LABELS bench-smoke TIMEOUT 300)
endif()
