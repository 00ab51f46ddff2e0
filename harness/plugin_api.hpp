// The plugin interface: how a shared object adds backends to ringside
// without touching its source (`ringside run|check|repro|list --plugin PATH`).
//
// A plugin is a C++ shared object that includes this header, implements one
// or more ringside::backend classes exactly as a built-in backend does
// (harness/backend.hpp: the same contract clauses, checked by the same
// conformance and safety suites), and exports ONE symbol:
//
//   RINGSIDE_PLUGIN(my_descriptor)   // defines extern "C" ringside_plugin_entry()
//
// returning a ringside::plugin_descriptor that names the plugin and lists its
// backends (name, description, availability, factory).
//
// What must match (the rules; ringside refuses a plugin that breaks the ones
// it can see, with one line naming the plugin's path and the reason, exit 2):
//   1. Interface version (plugin_interface_version below): bumped whenever
//      this header, backend.hpp, op.hpp, buffer.hpp, task.hpp or io.hpp
//      change incompatibly. A plugin is loaded only by a ringside of the same
//      version.
//   2. ABI: the backend class is used ACROSS the boundary (vtable calls,
//      std::string/std::vector/std::function/unique_ptr in the types it
//      touches, exceptions thrown by its factory). So: the same compiler
//      (g++) major version, the same libstdc++ ABI (_GLIBCXX_USE_CXX11_ABI),
//      and the same sanitizer flavour (an ASan plugin cannot live in a release
//      ringside, nor the reverse). Both sides compile abi_fingerprint below;
//      ringside compares them, and refuses an ASan/TSan plugin in a build
//      without that runtime BEFORE loading it (loading it would abort).
//   3. Layout: the sizes of the types that cross the boundary (op,
//      completion, buffer, backend_caps, backend_options) are in the
//      descriptor too, so a plugin built against older headers is refused
//      instead of corrupting memory.
//   4. Build the plugin against the SAME ringside source tree (headers) as
//      the ringside that loads it. The harness functions it calls (the pool,
//      meters, copy_payload, sys wrappers, task_set...) are resolved from the
//      ringside executable, which exports its symbols for this (CMake
//      ENABLE_EXPORTS): link the plugin with nothing of ringside's.
//   5. Backend names must not clash with built-in backends or another
//      plugin's.
//
// Lifetime: a loaded plugin is never unloaded (its vtables and code must
// outlive every backend object and every buffer it touched).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "harness/backend.hpp"
#include "harness/buffer.hpp"
#include "harness/op.hpp"

namespace ringside {

// 1: the first interface (backend.hpp as of issue 4).
inline constexpr uint32_t plugin_interface_version = 1;

#define RINGSIDE_PLUGIN_STR2_(x) #x
#define RINGSIDE_PLUGIN_STR_(x) RINGSIDE_PLUGIN_STR2_(x)
#if defined(__clang__)
#define RINGSIDE_PLUGIN_COMPILER_ "clang " RINGSIDE_PLUGIN_STR_(__clang_major__)
#elif defined(__GNUC__)
#define RINGSIDE_PLUGIN_COMPILER_ "gcc " RINGSIDE_PLUGIN_STR_(__GNUC__)
#else
#define RINGSIDE_PLUGIN_COMPILER_ "unknown-compiler"
#endif
#if defined(__SANITIZE_ADDRESS__)
#define RINGSIDE_PLUGIN_SANITIZER_ "asan"
#elif defined(__SANITIZE_THREAD__)
#define RINGSIDE_PLUGIN_SANITIZER_ "tsan"
#else
#define RINGSIDE_PLUGIN_SANITIZER_ "none"
#endif

// "gcc 12, libstdc++ cxx11-abi 1, sanitizer asan": what this translation unit
// was compiled as. Compiled into both ringside and the plugin; must be equal.
inline constexpr const char* abi_fingerprint =
    RINGSIDE_PLUGIN_COMPILER_ ", libstdc++ cxx11-abi " RINGSIDE_PLUGIN_STR_(_GLIBCXX_USE_CXX11_ABI)
    ", sanitizer " RINGSIDE_PLUGIN_SANITIZER_;

// The sizes of what crosses the boundary, as this side's headers have them.
struct plugin_layout {
  uint32_t op = sizeof(ringside::op);
  uint32_t completion = sizeof(ringside::completion);
  uint32_t buffer = sizeof(ringside::buffer);
  uint32_t caps = sizeof(ringside::backend_caps);
  uint32_t options = sizeof(ringside::backend_options);
  uint32_t backend = sizeof(ringside::backend);
  friend bool operator==(const plugin_layout&, const plugin_layout&) = default;
};

// One backend a plugin provides.
struct plugin_backend {
  const char* name = nullptr;         // [a-z0-9._-]; unique across built-ins and plugins
  const char* description = nullptr;  // one line, shown by `ringside list backends`
  // Empty when usable here; else why not (e.g. "io_uring_setup: ENOSYS"). May be null.
  std::string (*unavailable_reason)() = nullptr;
  // A new backend; may throw std::system_error (setup). ringside owns it.
  std::unique_ptr<backend> (*make)(const backend_options&) = nullptr;
};

// What ringside_plugin_entry() returns: static storage in the plugin. The
// first three fields keep their place in every interface version, so any
// ringside can read them and refuse a mismatch without touching the rest.
struct plugin_descriptor {
  uint32_t interface_version = plugin_interface_version;
  uint32_t descriptor_size = sizeof(plugin_descriptor);
  const char* abi = abi_fingerprint;
  plugin_layout layout{};
  const char* name = nullptr;  // the plugin's name, for messages
  const plugin_backend* backends = nullptr;
  size_t backend_count = 0;
};

}  // namespace ringside

// The one symbol a plugin exports; ringside looks it up with dlsym.
#define RINGSIDE_PLUGIN_ENTRY_SYMBOL "ringside_plugin_entry"
using ringside_plugin_entry_fn = const ringside::plugin_descriptor* (*)();

// Defines the entry point returning `descriptor` (a plugin_descriptor with
// static storage duration).
#define RINGSIDE_PLUGIN(descriptor)                                                               \
  extern "C" __attribute__((visibility("default"))) const ringside::plugin_descriptor*          \
  ringside_plugin_entry() {                                                                     \
    return &(descriptor);                                                                       \
  }
