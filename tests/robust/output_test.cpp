// Output discipline (issue 7, item 6): "results JSON is never polluted by log
// lines; what goes to stdout and stderr is documented" (README: Output).
// stdout: the results table and the `results: PATH` line, nothing else.
// stderr: notes, violations, repro commands, errors, and what a row's child
// process wrote on its stderr. A row's child's stdout goes nowhere. The JSON
// file holds only the document.
//
// The child here writes on both: the test-only fault switch
// (RINGSIDE_SCENARIO_FAULT, harness/runner.cpp) writes a line on stdout and
// one on stderr before it crashes its row. With a plugin row (the example
// plugin, in its own child) in the same run.
#include <gtest/gtest.h>

#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/robust/proc_util.hpp"

namespace ringside::test {
namespace {

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

TEST(output, stdout_has_only_the_table_and_path_and_the_json_only_the_document) {
  scratch_dir d("out");
  const std::string out = d.path + "/r.json", tmp = d.sub("tmp");
  std::vector<std::string> argv = {ringside_bin(), "run", "--scenario", "tcp.stream,tcp.rr", "--duration", "0.2",
                                   "--out", out, "--repro-dir", d.path + "/repros"};
  std::string backends = "epoll";
#ifdef RINGSIDE_EXAMPLE_PLUGIN
  argv.insert(argv.end(), {"--plugin", RINGSIDE_EXAMPLE_PLUGIN});
  backends += ",example-uring";
#endif
  argv.insert(argv.end(), {"--backend", backends});
  const proc p = spawn_proc(argv, {"RINGSIDE_SCENARIO_FAULT=segv@tcp.rr", "TMPDIR=" + tmp}, d.path);
  EXPECT_EQ(wait_proc(p, 120), 1);  // the crashed rows
  const std::string so = slurp_file(p.out_path), se = slurp_file(p.err_path);

  // stdout: header, one line per row, "results: PATH".
  const auto ol = lines(so);
  const size_t rows = backends.find(',') == std::string::npos ? 2 : 4;
  ASSERT_EQ(ol.size(), rows + 2) << so;
  EXPECT_EQ(ol.front().rfind("benchmark", 0), 0u) << so;
  for (size_t i = 1; i <= rows; ++i) EXPECT_TRUE(std::regex_search(ol[i], std::regex("^tcp\\.(stream|rr)/backend:"))) << ol[i];
  EXPECT_EQ(ol.back(), "results: " + out);
  EXPECT_EQ(so.find("fault switch"), std::string::npos) << so;

  // stderr: the note, each crashed row's child's own line, its violation and repro.
  EXPECT_NE(se.find("ringside: note: RINGSIDE_SCENARIO_FAULT=segv@tcp.rr is set"), std::string::npos) << se;
  EXPECT_NE(se.find("scenario fault switch: firing now (stderr line)"), std::string::npos) << se;
  EXPECT_NE(se.find("crashed"), std::string::npos) << se;
  EXPECT_NE(se.find("repro: "), std::string::npos) << se;
  EXPECT_EQ(se.find("stdout line"), std::string::npos) << se;

  // The JSON: the document whole, none of the log lines in it.
  const std::string js = slurp_file(out);
  const nlohmann::json doc = read_json(out);
  ASSERT_TRUE(doc.is_object()) << js;
  EXPECT_EQ(row_count(doc), rows);
  EXPECT_EQ(js.find("fault switch"), std::string::npos);
  EXPECT_EQ(js.find("ringside: "), std::string::npos);
  for (const auto& r : doc["benchmarks"])
    EXPECT_EQ(r.value("verdict", ""), r.value("scenario", "") == "tcp.rr" ? "crashed" : "clean") << r.dump();
}

// Bad usage: one line on stderr, nothing on stdout (the full table of cases
// is tests/robust/test_cli_bad_input.py).
TEST(output, usage_errors_write_nothing_on_stdout) {
  scratch_dir d("out");
  const proc p = spawn_proc({ringside_bin(), "run", "--bs", "0", "--out", d.path + "/r.json"}, {}, d.path);
  EXPECT_EQ(wait_proc(p, 60), 2);
  EXPECT_EQ(slurp_file(p.out_path), "");
  EXPECT_EQ(lines(slurp_file(p.err_path)).size(), 1u);
  EXPECT_EQ(read_json(d.path + "/r.json"), nlohmann::json{});  // no results file either
}

}  // namespace
}  // namespace ringside::test
