// Checks: a backend loaded from a plugin (examples/plugin, the example the
// README walks through) meets every clause of the conformance suite, like a
// built-in one: this file loads it before the suite is instantiated, so every
// TEST_P of the `backend` fixture runs on it too
// (conformance.conformance/backend.*/example_uring).
//
// The plugin is RINGSIDE_CONFORMANCE_PLUGIN from the environment if set (run
// the suite on your own plugin: conformance_tests --gtest_filter='*your_backend*'),
// else the example built with this tree (RINGSIDE_EXAMPLE_PLUGIN).
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "harness/backend.hpp"
#include "harness/plugin.hpp"

namespace ringside::conformance {
namespace {

std::string plugin_path() {
  if (const char* p = std::getenv("RINGSIDE_CONFORMANCE_PLUGIN"); p != nullptr && *p != '\0') return p;
#ifdef RINGSIDE_EXAMPLE_PLUGIN
  return RINGSIDE_EXAMPLE_PLUGIN;
#else
  return {};
#endif
}

// Why loading failed, or empty. Runs during static initialisation: gtest
// evaluates the suite's backend list later (InitGoogleTest), so the plugin's
// backends are in the registry by then.
const std::string& load_error() {
  static const std::string error = [] {
    const std::string path = plugin_path();
    if (path.empty()) return std::string("no plugin given (RINGSIDE_CONFORMANCE_PLUGIN / RINGSIDE_EXAMPLE_PLUGIN)");
    register_builtin_backends();  // built-ins first, as in ringside
    try {
      load_plugin(path);
      return std::string();
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
  }();
  return error;
}
[[maybe_unused]] const bool loaded_at_startup = load_error().empty();

// Description: the plugin loads into the test binary (which exports the
// harness's symbols as ringside does) and its backends are registered.
TEST(plugin_conformance, plugin_loaded) {
  ASSERT_EQ(load_error(), "");
  const auto& ps = loaded_plugins();
  ASSERT_FALSE(ps.empty());
  for (const auto& name : ps.back().backends) EXPECT_NE(find_backend(name), nullptr) << name;
}

}  // namespace
}  // namespace ringside::conformance
