// Tiny plugins for ringside's own tests (tests/safety/plugin_load_test.cpp),
// each breaking one rule of harness/plugin_api.hpp, chosen at compile time:
//   TINY_PLUGIN_BAD_VERSION: claims an interface version this ringside does not speak;
//   TINY_PLUGIN_BAD_LAYOUT: as if built against older headers (another sizeof(op));
//   TINY_PLUGIN_CRASH: a backend that segfaults as soon as it runs;
//   neither (built with another sanitizer flavour): the wrong ABI.
// Not an example to follow: see example_uring.cpp for that.
#include <cerrno>
#include <cstdint>
#include <memory>

#include "harness/plugin_api.hpp"

namespace {

using namespace ringside;

// Its run() writes to address 8: unmapped, so a real SIGSEGV in every build
// (not null: UBSan would report a null store first), through a pointer the
// compiler cannot see through.
int* volatile bad_target = reinterpret_cast<int*>(uintptr_t{8});

class crashing final : public backend {
 public:
  [[nodiscard]] std::string_view name() const noexcept override { return "tiny-crash"; }
  [[nodiscard]] const backend_caps& caps() const noexcept override {
    static const backend_caps c{.contract = buffer_contract::owned};
    return c;
  }
  void adopt(int) override {}
  void spawn(task<> t) override { held_ = std::move(t); }
  int run(clock_type::time_point) override {
    *bad_target = 1;  // SIGSEGV: the backend crashes mid-run
    return 0;
  }
  op_id submit(op&& o, op_waiter* w) noexcept override {
    w->on_started({});
    w->on_complete({-EOPNOTSUPP, 0, std::move(o.buf)});
    return {};
  }
  int cancel(op_id) noexcept override { return -ENOENT; }
  void drop(op_id) noexcept override {}

 private:
  task<> held_;
};

std::unique_ptr<backend> make(const backend_options&) { return std::make_unique<crashing>(); }

#if defined(TINY_PLUGIN_CRASH)
constexpr const char* backend_name = "tiny-crash";
#elif defined(TINY_PLUGIN_BAD_VERSION)
constexpr const char* backend_name = "tiny-bad-version";
#elif defined(TINY_PLUGIN_BAD_LAYOUT)
constexpr const char* backend_name = "tiny-bad-layout";
#else
constexpr const char* backend_name = "tiny-other-abi";
#endif

const plugin_backend backends[] = {{.name = backend_name, .description = "test plugin", .make = &make}};

plugin_descriptor make_descriptor() {
  plugin_descriptor d{.name = "tiny", .backends = backends, .backend_count = 1};
#if defined(TINY_PLUGIN_BAD_VERSION)
  d.interface_version = plugin_interface_version + 1;  // from a future ringside
#elif defined(TINY_PLUGIN_BAD_LAYOUT)
  d.layout.op += 8;  // op grew a field since this plugin was built
#endif
  return d;
}
const plugin_descriptor descriptor = make_descriptor();

}  // namespace

RINGSIDE_PLUGIN(descriptor)
