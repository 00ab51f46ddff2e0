// Loading backend plugins (harness/plugin_api.hpp has the interface and its
// rules). `--plugin PATH` on run, check, repro and list calls load_plugin();
// the plugin's backends then sit in the registry after the built-ins, and
// everything that takes a backend by name takes them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "harness/scenario.hpp"

namespace ringside {

// A plugin that cannot be loaded. A usage_error, so the CLI prints its one
// line ("plugin PATH: reason") and exits 2.
struct plugin_error : usage_error {
  using usage_error::usage_error;
};

struct loaded_plugin {
  std::string path;  // absolute (realpath): repro files and children reload it from anywhere
  std::string name;  // the plugin's own name
  std::vector<std::string> backends;
};

// Checks the file (exists, an ELF shared object for this machine, no
// sanitizer runtime this build lacks), dlopens it (RTLD_NOW | RTLD_LOCAL),
// checks the entry symbol, the interface version, the ABI fingerprint and
// the layout, and registers its backends (a name already registered is an
// error). Loading the same file twice is a no-op. Throws plugin_error, the
// message naming the path and the reason. Call after
// register_builtin_backends().
const loaded_plugin& load_plugin(const std::string& path);

// Plugins loaded so far, in load order.
const std::vector<loaded_plugin>& loaded_plugins();

// The plugin a backend comes from, or null for a built-in one.
const loaded_plugin* plugin_of(std::string_view backend_name);

}  // namespace ringside
