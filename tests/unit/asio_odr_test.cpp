// Description: the two Asio configurations linked into one ringside binary
// (backends/asio.cpp: epoll reactor; backends/asio_uring.cpp: io_uring
// service) define no Asio symbol under the same name, so the linker never
// picks one configuration's inline code for the other (an ODR violation).
// Checked on the real object files with `nm -C --defined-only`; a probe
// object built without asio_uring.cpp's namespace rename must clash, which
// proves the check can fail.
#include <cstdio>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#ifndef RINGSIDE_ASIO_ODR_OBJECTS
#define RINGSIDE_ASIO_ODR_OBJECTS ""
#endif

namespace {

struct objects {
  std::string asio, asio_uring, probe;
};

objects find_objects() {
  objects o;
  std::ifstream in(RINGSIDE_ASIO_ODR_OBJECTS);
  for (std::string line; std::getline(in, line);) {
    auto ends_with = [&](const std::string& s) {
      return line.size() >= s.size() && line.compare(line.size() - s.size(), s.size(), s) == 0;
    };
    if (line.rfind("probe:", 0) == 0) o.probe = line.substr(6);
    else if (ends_with("/backends/asio.cpp.o")) o.asio = line;
    else if (ends_with("/backends/asio_uring.cpp.o")) o.asio_uring = line;
  }
  return o;
}

// Defined symbols with external linkage (global or weak: the ones the linker
// merges across objects) whose demangled name mentions boost::asio.
std::set<std::string> asio_globals(const std::string& path) {
  std::set<std::string> out;
  const std::string cmd = "nm -C --defined-only '" + path + "' 2>/dev/null";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char line[8192];
  while (std::fgets(line, sizeof line, p) != nullptr) {
    std::string s(line);
    if (!s.empty() && s.back() == '\n') s.pop_back();
    // "ADDRESS TYPE NAME"
    const auto a = s.find(' ');
    if (a == std::string::npos || a + 3 > s.size()) continue;
    const char type = s[a + 1];
    const std::string name = s.substr(a + 3);
    // Uppercase = global; V/W weak; u unique global (inline statics).
    if (std::string("TDBRVWu").find(type) == std::string::npos) continue;
    if (name.find("boost::asio") == std::string::npos) continue;
    out.insert(name);
  }
  ::pclose(p);
  return out;
}

std::vector<std::string> common(const std::set<std::string>& a, const std::set<std::string>& b) {
  std::vector<std::string> out;
  for (const auto& s : a)
    if (b.count(s) != 0) out.push_back(s);
  return out;
}

std::string sample(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < 5; ++i) s += "\n  " + v[i];
  return s;
}

class AsioOdr : public ::testing::Test {
 protected:
  void SetUp() override {
    o_ = find_objects();
    if (o_.asio.empty() || o_.asio_uring.empty() || o_.probe.empty())
      GTEST_SKIP() << "object list " << RINGSIDE_ASIO_ODR_OBJECTS << " not found (built without cmake/asio.cmake?)";
    if (std::system("nm --version >/dev/null 2>&1") != 0) GTEST_SKIP() << "no nm here";
  }
  objects o_;
};

TEST_F(AsioOdr, each_object_holds_its_own_configuration) {
  const auto epoll = asio_globals(o_.asio);
  const auto uring = asio_globals(o_.asio_uring);
  ASSERT_FALSE(epoll.empty()) << o_.asio;
  ASSERT_FALSE(uring.empty()) << o_.asio_uring;
  bool epoll_reactor = false, uring_in_epoll = false, uring_service = false, unrenamed_in_uring = false;
  for (const auto& s : epoll) {
    epoll_reactor |= s.find("boost::asio::detail::epoll_reactor") != std::string::npos;
    uring_in_epoll |= s.find("io_uring_service") != std::string::npos;
  }
  for (const auto& s : uring) {
    uring_service |= s.find("boost::asio_uring_cfg::detail::io_uring_service") != std::string::npos;
    unrenamed_in_uring |= s.find("boost::asio::") != std::string::npos;
  }
  EXPECT_TRUE(epoll_reactor) << "asio.cpp.o should use the epoll reactor";
  EXPECT_FALSE(uring_in_epoll) << "asio.cpp.o should not contain the io_uring service";
  EXPECT_TRUE(uring_service) << "asio_uring.cpp.o should hold io_uring_service in boost::asio_uring_cfg";
  EXPECT_FALSE(unrenamed_in_uring) << "asio_uring.cpp.o defines a symbol in boost::asio itself";
}

TEST_F(AsioOdr, the_two_configurations_share_no_asio_symbol) {
  const auto shared = common(asio_globals(o_.asio), asio_globals(o_.asio_uring));
  EXPECT_TRUE(shared.empty()) << shared.size() << " boost::asio symbols defined in both:" << sample(shared);
}

TEST_F(AsioOdr, without_the_rename_they_would_clash) {
  const auto shared = common(asio_globals(o_.asio), asio_globals(o_.probe));
  EXPECT_FALSE(shared.empty()) << "the probe (io_uring config, no rename) should share symbols with asio.cpp.o";
  // The clash is real: a definition that differs between the configurations.
  bool context = false;
  for (const auto& s : shared) context |= s.find("boost::asio::io_context") != std::string::npos ||
                                          s.find("boost::asio::detail::scheduler") != std::string::npos;
  EXPECT_TRUE(context) << "expected io_context/scheduler code among the shared symbols:" << sample(shared);
}

}  // namespace
