// mulligan-deny-syscalls NAME[,NAME...] CMD [ARG...]: runs CMD under a
// seccomp filter that answers the named system calls EPERM, as a container
// runtime's seccomp profile does (Kubernetes' RuntimeDefault refuses the
// io_uring calls that way). The integration tests start the sidecar under
// it to see its fallbacks where a profile refuses io_uring, or AIO too.
//
// Only the names below are known: the calls whose refusal the sidecar
// handles. x86-64 and arm64 share their numbers (the generic table).
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Known {
  const char* name;
  long nr;
};
const Known kKnown[] = {
    {"io_uring_setup", SYS_io_uring_setup}, {"io_uring_enter", SYS_io_uring_enter},
    {"io_uring_register", SYS_io_uring_register}, {"io_setup", SYS_io_setup},
    {"io_submit", SYS_io_submit}, {"io_getevents", SYS_io_getevents},
};

#if defined(__x86_64__)
constexpr uint32_t kArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr uint32_t kArch = AUDIT_ARCH_AARCH64;
#else
#error "mulligan-deny-syscalls: add this architecture's AUDIT_ARCH"
#endif

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: mulligan-deny-syscalls NAME[,NAME...] CMD [ARG...]\n");
    return 2;
  }
  std::vector<long> deny;
  std::stringstream names(argv[1]);
  for (std::string name; std::getline(names, name, ',');) {
    long nr = -1;
    for (const Known& k : kKnown) {
      if (name == k.name) nr = k.nr;
    }
    if (nr < 0) {
      std::fprintf(stderr, "mulligan-deny-syscalls: unknown system call \"%s\"\n", name.c_str());
      return 2;
    }
    deny.push_back(nr);
  }
  // Another architecture's calls are killed (their numbers differ); each
  // named call answers EPERM; everything else is allowed.
  std::vector<sock_filter> prog = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kArch, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
  };
  for (long nr : deny) {
    prog.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(nr), 0, 1));
    prog.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)));
  }
  prog.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  sock_fprog fprog{static_cast<unsigned short>(prog.size()), prog.data()};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
      syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0) {
    std::fprintf(stderr, "mulligan-deny-syscalls: cannot install the filter: %s\n", std::strerror(errno));
    return 1;
  }
  execvp(argv[2], argv + 2);
  std::fprintf(stderr, "mulligan-deny-syscalls: %s: %s\n", argv[2], std::strerror(errno));
  return 127;
}
