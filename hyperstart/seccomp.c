#define _GNU_SOURCE
#include "seccomp.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#define NEVER (-1)
#define X32_SYSCALL_BIT 0x40000000u
/* clone flags that create namespaces (Docker refuses them without CAP_SYS_ADMIN) */
#define NS_FLAGS (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | \
		  CLONE_NEWPID | CLONE_NEWNET)
#define MAX_INSNS 256

/* a syscall refused with EPERM unless the process has cap */
static const struct { int nr, cap; } denied[] = {
	{ SYS_kexec_load, CAP_SYS_BOOT }, { SYS_kexec_file_load, CAP_SYS_BOOT },
	{ SYS_reboot, CAP_SYS_BOOT },
	{ SYS_init_module, CAP_SYS_MODULE }, { SYS_finit_module, CAP_SYS_MODULE },
	{ SYS_delete_module, CAP_SYS_MODULE }, { SYS_create_module, CAP_SYS_MODULE },
	{ SYS_get_kernel_syms, CAP_SYS_MODULE }, { SYS_query_module, CAP_SYS_MODULE },
	{ SYS_mount, CAP_SYS_ADMIN }, { SYS_umount2, CAP_SYS_ADMIN }, { SYS_pivot_root, CAP_SYS_ADMIN },
	{ SYS_move_mount, CAP_SYS_ADMIN }, { SYS_open_tree, CAP_SYS_ADMIN },
	{ SYS_fsopen, CAP_SYS_ADMIN }, { SYS_fsconfig, CAP_SYS_ADMIN }, { SYS_fsmount, CAP_SYS_ADMIN },
	{ SYS_fspick, CAP_SYS_ADMIN }, { SYS_mount_setattr, CAP_SYS_ADMIN },
	{ SYS_setns, CAP_SYS_ADMIN }, { SYS_unshare, CAP_SYS_ADMIN },
	{ SYS_swapon, CAP_SYS_ADMIN }, { SYS_swapoff, CAP_SYS_ADMIN },
	{ SYS_quotactl, CAP_SYS_ADMIN }, { SYS_quotactl_fd, CAP_SYS_ADMIN },
	{ SYS_lookup_dcookie, CAP_SYS_ADMIN }, { SYS_fanotify_init, CAP_SYS_ADMIN },
	{ SYS_bpf, CAP_SYS_ADMIN }, { SYS_perf_event_open, CAP_SYS_ADMIN },
	{ SYS_name_to_handle_at, CAP_SYS_ADMIN }, { SYS_open_by_handle_at, CAP_DAC_READ_SEARCH },
	{ SYS_acct, CAP_SYS_PACCT }, { SYS_iopl, CAP_SYS_RAWIO }, { SYS_ioperm, CAP_SYS_RAWIO },
	{ SYS_clock_settime, CAP_SYS_TIME }, { SYS_settimeofday, CAP_SYS_TIME },
	{ SYS_syslog, CAP_SYSLOG }, { SYS_vhangup, CAP_SYS_TTY_CONFIG },
	{ SYS_kcmp, CAP_SYS_PTRACE }, { SYS_userfaultfd, CAP_SYS_PTRACE },
	{ SYS_mbind, CAP_SYS_NICE }, { SYS_set_mempolicy, CAP_SYS_NICE },
	{ SYS_migrate_pages, CAP_SYS_NICE }, { SYS_move_pages, CAP_SYS_NICE },
	{ SYS_uselib, NEVER }, { SYS_nfsservctl, NEVER },
	/* the kernel keyrings are not namespaced */
	{ SYS_keyctl, NEVER }, { SYS_add_key, NEVER }, { SYS_request_key, NEVER },
	{ SYS_io_uring_setup, NEVER }, { SYS_io_uring_enter, NEVER }, { SYS_io_uring_register, NEVER },
};

struct prog {
	struct sock_filter insn[MAX_INSNS];
	unsigned short n;
};

static void emit(struct prog *p, struct sock_filter f)
{
	if (p->n < MAX_INSNS) /* the table above is far below the limit; checked at install */
		p->insn[p->n] = f;
	p->n++;
}

static void stmt(struct prog *p, unsigned short code, unsigned int k)
{
	emit(p, (struct sock_filter)BPF_STMT(code, k));
}

/* if the accumulator matches k (jeq, or jset for flags), return ret; else go on */
static void refuse_if(struct prog *p, unsigned short op, unsigned int k, unsigned int ret)
{
	emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | op | BPF_K, k, 0, 1));
	stmt(p, BPF_RET | BPF_K, ret);
}

static int has(uint64_t caps, int cap)
{
	return cap != NEVER && (caps >> cap) & 1;
}

#define ERRNO(e) (SECCOMP_RET_ERRNO | ((e) & SECCOMP_RET_DATA))

static void build(struct prog *p, uint64_t caps)
{
	stmt(p, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0));
	stmt(p, BPF_RET | BPF_K, ERRNO(EPERM)); /* another ABI (i386): nothing is vetted there */
	stmt(p, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
	emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 0, 1));
	stmt(p, BPF_RET | BPF_K, ERRNO(EPERM));
	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++)
		if (!has(caps, denied[i].cap))
			refuse_if(p, BPF_JEQ, (unsigned int)denied[i].nr, ERRNO(EPERM));
	if (!has(caps, CAP_SYS_ADMIN)) {
		/* clone3 hides its flags in memory: ENOSYS makes libc fall back to clone */
		refuse_if(p, BPF_JEQ, SYS_clone3, ERRNO(ENOSYS));
		emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 3));
		stmt(p, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]));
		refuse_if(p, BPF_JSET, NS_FLAGS, ERRNO(EPERM));
	}
	stmt(p, BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
}

int hs_seccomp_install(uint64_t caps)
{
	static struct prog p;
	struct sock_fprog fprog;

	p.n = 0;
	build(&p, caps);
	if (p.n > MAX_INSNS) {
		errno = E2BIG;
		return -1;
	}
	fprog.len = p.n;
	fprog.filter = p.insn;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0);
}
