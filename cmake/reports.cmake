# report: the Python report and compare tools (reports/, scripts/report,
# scripts/compare) under pytest, on the fixture results in tests/report/fixtures.
# Two tests: the headless-Chromium check on its own (so a machine without
# chromium shows it as skipped: exit 77), and everything else in one pytest
# session (one rendered report shared by the chart and HTML tests).
# They never run the C++ build's output, so they are registered in the
# non-sanitizer build only (scripts/test would otherwise run them three times).
if(NOT RINGSIDE_SANITIZER)
  set(ringside_report_dir ${PROJECT_SOURCE_DIR}/tests/report)
  # -p no:cacheprovider and no bytecode: nothing is written into the source tree.
  set(ringside_pytest ${CMAKE_COMMAND} -E env PYTHONDONTWRITEBYTECODE=1
                      /usr/bin/python3 -m pytest -p no:cacheprovider -q -rs)
  add_test(NAME report.tools
           COMMAND ${ringside_pytest} test_load.py test_charts.py test_html.py test_compare.py test_peers_scale.py
           WORKING_DIRECTORY ${ringside_report_dir})
  add_test(NAME report.chromium
           COMMAND ${ringside_pytest} test_chromium.py
           WORKING_DIRECTORY ${ringside_report_dir})
  # 180 s: about 20 s each on a quiet 2-core machine; the bound only catches a hang.
  set_tests_properties(report.tools report.chromium PROPERTIES LABELS report TIMEOUT 180 SKIP_RETURN_CODE 77)
endif()
