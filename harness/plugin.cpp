#include "harness/plugin.hpp"

#include <dlfcn.h>
#include <elf.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>

#include "harness/backend.hpp"
#include "harness/plugin_api.hpp"

namespace ringside {

namespace {

std::vector<loaded_plugin>& plugins() {
  static std::vector<loaded_plugin> v;
  return v;
}

[[noreturn]] void fail(const std::string& path, std::string_view why) {
  throw plugin_error(fmt::format("plugin {}: {}", path, why));
}

// The sanitizer runtime a DT_NEEDED name is, or empty.
std::string_view sanitizer_runtime(std::string_view needed) {
  if (needed.rfind("libasan.so", 0) == 0) return "asan";
  if (needed.rfind("libtsan.so", 0) == 0) return "tsan";
  return {};
}

// What can be checked without running any of the file's code: that it is an
// ELF shared object for this machine, and that it needs no sanitizer runtime
// this ringside lacks. (dlopen of an ASan object into a process without ASan
// does not fail: the runtime aborts the whole process. So this is checked
// here, from the file's DT_NEEDED entries.)
void check_elf(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, fmt::format("cannot open: {}", std::strerror(errno)));
  // 1 GiB: far beyond any plugin; a larger file is not one.
  constexpr std::streamoff max_bytes = std::streamoff(1) << 30;
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size > max_bytes) fail(path, "not a plugin (larger than 1 GiB)");
  in.seekg(0);
  std::string bytes(static_cast<size_t>(size > 0 ? size : 0), '\0');
  in.read(bytes.data(), std::streamsize(bytes.size()));
  if (bytes.size() < sizeof(Elf64_Ehdr) || std::memcmp(bytes.data(), ELFMAG, SELFMAG) != 0)
    fail(path, "not an ELF file (a plugin is a shared object built against ringside's headers)");
  Elf64_Ehdr eh;
  std::memcpy(&eh, bytes.data(), sizeof eh);
  if (eh.e_ident[EI_CLASS] != ELFCLASS64) fail(path, "not a 64-bit ELF object");
#if defined(__x86_64__)
  constexpr uint16_t machine = EM_X86_64;
#elif defined(__aarch64__)
  constexpr uint16_t machine = EM_AARCH64;
#else
  constexpr uint16_t machine = EM_NONE;
#endif
  if (machine != EM_NONE && eh.e_machine != machine)
    fail(path, fmt::format("ELF object for another machine (e_machine {})", eh.e_machine));
  if (eh.e_type != ET_DYN) fail(path, "not a shared object (ELF type is not ET_DYN; build it with -shared)");

  // DT_NEEDED, through the section headers (.dynamic and its string table).
  const auto in_file = [&](uint64_t off, uint64_t len) { return off <= bytes.size() && len <= bytes.size() - off; };
  if (eh.e_shentsize != sizeof(Elf64_Shdr) || !in_file(eh.e_shoff, uint64_t(eh.e_shnum) * sizeof(Elf64_Shdr))) return;
  std::vector<std::string> needed;
  for (uint16_t i = 0; i < eh.e_shnum; ++i) {
    Elf64_Shdr sh;
    std::memcpy(&sh, bytes.data() + eh.e_shoff + uint64_t(i) * sizeof sh, sizeof sh);
    if (sh.sh_type != SHT_DYNAMIC || sh.sh_link >= eh.e_shnum || !in_file(sh.sh_offset, sh.sh_size)) continue;
    Elf64_Shdr str;
    std::memcpy(&str, bytes.data() + eh.e_shoff + uint64_t(sh.sh_link) * sizeof str, sizeof str);
    if (!in_file(str.sh_offset, str.sh_size)) continue;
    for (uint64_t off = 0; off + sizeof(Elf64_Dyn) <= sh.sh_size; off += sizeof(Elf64_Dyn)) {
      Elf64_Dyn d;
      std::memcpy(&d, bytes.data() + sh.sh_offset + off, sizeof d);
      if (d.d_tag == DT_NULL) break;
      if (d.d_tag != DT_NEEDED || d.d_un.d_val >= str.sh_size) continue;
      const char* s = bytes.data() + str.sh_offset + d.d_un.d_val;
      needed.emplace_back(s, strnlen(s, size_t(str.sh_size - d.d_un.d_val)));
    }
  }
  constexpr std::string_view ours = RINGSIDE_PLUGIN_SANITIZER_;
  for (const auto& n : needed) {
    const std::string_view theirs = sanitizer_runtime(n);
    if (!theirs.empty() && theirs != ours)
      fail(path, fmt::format("wrong ABI: built with the {} runtime ({}), this ringside has sanitizer {}; build the "
                             "plugin with the same RINGSIDE_SANITIZER as ringside",
                             theirs, n, ours));
  }
}

std::string describe(const plugin_layout& l) {
  return fmt::format("op {} completion {} buffer {} caps {} options {} backend {}", l.op, l.completion, l.buffer,
                     l.caps, l.options, l.backend);
}

bool valid_name(std::string_view n) {
  return !n.empty() && n.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789._-") == std::string_view::npos;
}

}  // namespace

const std::vector<loaded_plugin>& loaded_plugins() { return plugins(); }

const loaded_plugin* plugin_of(std::string_view backend_name) {
  for (const auto& p : plugins())
    for (const auto& b : p.backends)
      if (b == backend_name) return &p;
  return nullptr;
}

const loaded_plugin& load_plugin(const std::string& given) {
  if (given.empty()) throw plugin_error("plugin '': empty path");
  struct stat st{};
  if (::stat(given.c_str(), &st) != 0) fail(given, fmt::format("not found ({})", std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) fail(given, "not a regular file");
  std::unique_ptr<char, decltype(&::free)> real(::realpath(given.c_str(), nullptr), &::free);
  const std::string path = real ? std::string(real.get()) : given;
  for (const auto& p : plugins())
    if (p.path == path) return p;

  check_elf(given);

  // RTLD_NOW: an unresolved symbol (a harness function this ringside does
  // not export, i.e. other headers) fails here, not mid-run. RTLD_LOCAL:
  // two plugins never see each other's symbols.
  ::dlerror();
  void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    const char* e = ::dlerror();
    fail(given, fmt::format("dlopen failed: {}", e ? e : "unknown error"));
  }
  // Never dlclose'd from here on (unless refused below): backends and the
  // buffers they held reference its code until the process ends.
  auto refuse = [&](std::string_view why) {
    ::dlclose(h);
    fail(given, why);
  };
  void* sym = ::dlsym(h, RINGSIDE_PLUGIN_ENTRY_SYMBOL);
  if (sym == nullptr)
    refuse("no entry symbol " RINGSIDE_PLUGIN_ENTRY_SYMBOL " (not a ringside plugin; see harness/plugin_api.hpp)");
  const plugin_descriptor* d = reinterpret_cast<ringside_plugin_entry_fn>(sym)();
  if (d == nullptr) refuse(RINGSIDE_PLUGIN_ENTRY_SYMBOL " returned null");
  if (d->interface_version != plugin_interface_version)
    refuse(fmt::format("wrong interface version {} (this ringside speaks version {}); rebuild the plugin against "
                       "this ringside's headers",
                       d->interface_version, plugin_interface_version));
  if (d->descriptor_size != sizeof(plugin_descriptor))
    refuse(fmt::format("wrong descriptor size {} (expected {}); rebuild against this ringside's headers",
                       d->descriptor_size, sizeof(plugin_descriptor)));
  const std::string_view abi = d->abi ? d->abi : "(null)";
  if (abi != abi_fingerprint)
    refuse(fmt::format("wrong ABI: plugin built as \"{}\", this ringside is \"{}\"", abi, abi_fingerprint));
  if (!(d->layout == plugin_layout{}))
    refuse(fmt::format("wrong layout: plugin has {}, this ringside has {}; rebuild against this ringside's headers",
                       describe(d->layout), describe(plugin_layout{})));
  const std::string pname = d->name ? d->name : "(unnamed)";
  if (d->backend_count == 0 || d->backends == nullptr) refuse("provides no backends");
  // Every name is checked before any is registered: a refused plugin leaves
  // the registry as it was.
  for (size_t i = 0; i < d->backend_count; ++i) {
    const plugin_backend& b = d->backends[i];
    const std::string_view n = b.name ? b.name : "";
    if (!valid_name(n)) refuse(fmt::format("backend name '{}' is not [a-z0-9._-]+", n));
    if (b.make == nullptr) refuse(fmt::format("backend '{}' has no factory", n));
    if (find_backend(n) != nullptr) {
      const loaded_plugin* other = plugin_of(n);
      refuse(fmt::format("duplicate backend name '{}' (already {})", n,
                         other ? "provided by plugin " + other->path : std::string("a built-in backend")));
    }
    for (size_t j = 0; j < i; ++j)
      if (d->backends[j].name && n == d->backends[j].name) refuse(fmt::format("backend '{}' listed twice", n));
  }
  loaded_plugin lp{path, pname, {}};
  for (size_t i = 0; i < d->backend_count; ++i) {
    const plugin_backend& b = d->backends[i];
    lp.backends.emplace_back(b.name);
    backend_info info;
    info.name = b.name;
    info.description = fmt::format("{} [plugin {}]", b.description ? b.description : "", pname);
    if (b.unavailable_reason != nullptr) info.unavailable_reason = b.unavailable_reason;
    info.make = b.make;
    register_backend(std::move(info));
  }
  plugins().push_back(std::move(lp));
  return plugins().back();
}

}  // namespace ringside
