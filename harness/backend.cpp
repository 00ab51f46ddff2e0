#include "harness/backend.hpp"

#include <mutex>

namespace ringside {

std::string_view to_string(buffer_contract c) noexcept {
  switch (c) {
    case buffer_contract::borrowed_in_syscall: return "borrowed-in-syscall";
    case buffer_contract::borrowed_unsound: return "borrowed-unsound";
    case buffer_contract::owned: return "owned";
    case buffer_contract::bounce: return "bounce";
  }
  return "?";
}

std::string_view to_string(op_kind k) noexcept {
  switch (k) {
    case op_kind::nop: return "nop";
    case op_kind::read: return "read";
    case op_kind::write: return "write";
    case op_kind::recv: return "recv";
    case op_kind::send: return "send";
    case op_kind::accept: return "accept";
    case op_kind::connect: return "connect";
    case op_kind::close: return "close";
    case op_kind::fsync: return "fsync";
    case op_kind::timeout: return "timeout";
    case op_kind::send_zc: return "send_zc";
    case op_kind::recv_multishot: return "recv_multishot";
  }
  return "?";
}

namespace {
std::vector<backend_info>& backends() {
  static std::vector<backend_info> v;
  return v;
}
}  // namespace

void register_backend(backend_info info) {
  for (auto& b : backends())
    if (b.name == info.name) { b = std::move(info); return; }
  backends().push_back(std::move(info));
}

const std::vector<backend_info>& registered_backends() { return backends(); }

const backend_info* find_backend(std::string_view name) {
  for (auto& b : backends())
    if (b.name == name) return &b;
  return nullptr;
}

}  // namespace ringside
