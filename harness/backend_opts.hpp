// `--backend-opt KEY[=VALUE][,KEY[=VALUE]...]` (repeatable; on run, check and
// repro, and carried in repro specs): io_uring features as backend options.
//
//   fixed-files          sparse registered file table; every op's fd goes in as IOSQE_FIXED_FILE
//   fixed-buffers        the run's pool as registered buffers (READ_FIXED / WRITE_FIXED)
//   batch=N              submit whenever N SQEs are queued (and when the loop waits);
//                        reap at most N CQEs per loop pass (fio's iodepth_batch_*)
//   single-issuer=0|1    IORING_SETUP_SINGLE_ISSUER + DEFER_TASKRUN (default 1)
//   sqpoll[=IDLE_MS]     IORING_SETUP_SQPOLL (kernel thread submits); DEFER_TASKRUN is
//                        off with it (the kernel refuses the pair): sqpoll wins
//   multishot            tcp.* receive paths use recv_multishot + a provided buffer ring
//   send-zc              send ops go out as IORING_OP_SEND_ZC (F_NOTIF ends them)
//   link-timeout=MS      every op (but plain timeouts) carries an IORING_OP_LINK_TIMEOUT
//
// Only the io_uring backends honour them (uring-raw, uring-owned,
// uring-bounce); a run or check over several backends needs at least one of
// those, the others run without the options and their rows say so (an empty
// `backend_options` field). A repro of a backend that cannot honour them is a
// usage error.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/backend.hpp"

namespace ringside {

// Parses the (comma-joined) option text; "" is no options. Throws usage_error
// (one line naming `flag`) for an unknown key, a bad or missing value, or a
// key given twice.
uring_features parse_backend_opts(std::string_view flag, std::string_view text);

// The canonical text ("fixed-files,batch=32,sqpoll=1000"); "" for none.
// parse_backend_opts(to_string(f)) == f.
std::string to_string(const uring_features& f);

// {"fixed-files": true, "batch": 32, ...}: only what was given.
nlohmann::json to_json(const uring_features& f);

// The keys, for messages and --help.
std::string_view backend_opt_keys() noexcept;

// True for the backends that honour uring_features (io_uring, on uring_loop).
bool honours_backend_opts(std::string_view backend_name) noexcept;

// f for a backend that honours it, else the defaults (none).
uring_features backend_opts_for(std::string_view backend_name, const uring_features& f) noexcept;

// Parses `text` for a run over `backends`: usage_error when options are given
// and none of the backends honours them (or, with one backend, when it does
// not); a note on stderr names the selected backends that run without them.
uring_features select_backend_opts(std::string_view flag, std::string_view text,
                                   const std::vector<const backend_info*>& backends);

}  // namespace ringside
