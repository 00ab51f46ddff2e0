// no_uring: runs a command with io_uring switched off by a seccomp filter, as
// a locked-down container (Docker's default profile since 25.0, gVisor, many
// CI sandboxes) or `sysctl kernel.io_uring_disabled=2` does.
//
//   no_uring ENOSYS|EPERM COMMAND [ARGS...]
//
// io_uring_setup, io_uring_enter and io_uring_register then fail with the
// given errno; every other syscall is allowed. Plain classic BPF, no
// libseccomp: the filter is nine instructions. PR_SET_NO_NEW_PRIVS first, so
// an unprivileged process may install it; it is inherited across execve and
// fork, so the command and all its children run without io_uring.
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>

namespace {

#if defined(__x86_64__)
constexpr unsigned k_arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr unsigned k_arch = AUDIT_ARCH_AARCH64;
#else
#error "no_uring: add this architecture's AUDIT_ARCH_* value"
#endif

int install_filter(unsigned err) {
  const unsigned ret_errno = SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA);
  sock_filter prog[] = {
      // A syscall from another ABI (x32, i386 via int 0x80) has other numbers:
      // refuse it outright rather than let io_uring in through it.
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, k_arch, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 3, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_register, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_RET | BPF_K, ret_errno),
  };
  sock_fprog fprog{};
  fprog.len = static_cast<unsigned short>(sizeof prog / sizeof prog[0]);
  fprog.filter = prog;
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  if (::syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0) return errno;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: no_uring ENOSYS|EPERM COMMAND [ARGS...]\n");
    return 2;
  }
  unsigned err = 0;
  if (strcmp(argv[1], "ENOSYS") == 0) err = ENOSYS;
  else if (strcmp(argv[1], "EPERM") == 0) err = EPERM;
  else {
    fprintf(stderr, "no_uring: '%s': expected ENOSYS or EPERM\n", argv[1]);
    return 2;
  }
  if (const int e = install_filter(err); e != 0) {
    fprintf(stderr, "no_uring: cannot install the seccomp filter: %s\n", strerror(e));
    return 77;  // the sandbox itself forbids seccomp: the tests skip
  }
  ::execvp(argv[2], argv + 2);
  fprintf(stderr, "no_uring: exec %s: %s\n", argv[2], strerror(errno));
  return 127;
}
