/*
 * seccomp.h — the default seccomp filter of container processes, in the spirit of
 * Docker's default profile: what would let a process reach past its container
 * (kernel modules, kexec, reboot, mounts, namespaces, keyrings, bpf, perf,
 * file handles, clock setting, swap, ...) fails with EPERM. As in Docker, a
 * syscall that a capability guards is allowed when the process has that
 * capability; keyrings and io_uring never are.
 */
#ifndef HS_SECCOMP_H
#define HS_SECCOMP_H

#include <stdint.h>

/* installs the filter for a process whose capability set is caps (bit n = capability n) */
int hs_seccomp_install(uint64_t caps);

#endif
