/*
 * probe — what a process in a container tries against its VM (the isolation tests
 * build it statically and write it into the container). Every call is made so that
 * it harms nothing where it is allowed (targets of its own, invalid arguments), but
 * never run it as root on a machine you care about:
 *   probe syscalls   each dangerous syscall, harmlessly: "name errno" per line
 *   probe ptrace PID PTRACE_ATTACH: "ok" or the errno name
 *   probe escape     the classic chroot escape, then what "/" holds there
 *   probe euid       its effective uid (a setuid copy shows what exec gave it)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *name(int e)
{
	switch (e) {
	case 0: return "ok";
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case ENOSYS: return "ENOSYS";
	case EINVAL: return "EINVAL";
	case EFAULT: return "EFAULT";
	case EBADF: return "EBADF";
	case ENOENT: return "ENOENT";
	case ESRCH: return "ESRCH";
	default: return strerrorname_np(e) ? strerrorname_np(e) : "?";
	}
}

static void try(const char *what, long rc)
{
	printf("%s %s\n", what, name(rc < 0 ? errno : 0));
}

static int syscalls(void)
{
	long rc;

	mkdir("probe-mnt", 0755);
	try("reboot", syscall(SYS_reboot, 0, 0, 0, NULL)); /* bad magic: EINVAL if allowed */
	try("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0x7fff0000)); /* bad arch */
	try("init_module", syscall(SYS_init_module, NULL, 0, ""));
	try("finit_module", syscall(SYS_finit_module, -1, "", 0));
	try("delete_module", syscall(SYS_delete_module, "probe-none", 0));
	rc = syscall(SYS_mount, "none", "probe-mnt", "tmpfs", MS_RDONLY, NULL);
	try("mount", rc);
	if (rc == 0)
		umount2("probe-mnt", MNT_DETACH);
	try("umount2", syscall(SYS_umount2, "probe-mnt", MNT_DETACH)); /* not mounted */
	try("pivot_root", syscall(SYS_pivot_root, "probe-mnt", "probe-mnt"));
	try("swapon", syscall(SYS_swapon, "/probe-nonexistent", 0));
	try("swapoff", syscall(SYS_swapoff, "/probe-nonexistent"));
	try("keyctl", syscall(SYS_keyctl, 0, 0, 0, 0, 0));
	try("bpf", syscall(SYS_bpf, 0, NULL, 0));
	try("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
	try("open_by_handle_at", syscall(SYS_open_by_handle_at, -1, NULL, 0));
	try("setns", syscall(SYS_setns, -1, 0));
	rc = syscall(SYS_clone, CLONE_NEWUTS | SIGCHLD, NULL, NULL, NULL, 0);
	if (rc == 0)
		_exit(0);
	try("clone_newuts", rc > 0 ? waitpid((pid_t)rc, NULL, 0) : rc);
	try("clone3", syscall(SYS_clone3, NULL, 0));
	try("io_uring_setup", syscall(SYS_io_uring_setup, 1, NULL));
	try("settimeofday", syscall(SYS_settimeofday, NULL, NULL)); /* sets nothing */
	try("acct", syscall(SYS_acct, "/probe-nonexistent/acct"));
	try("unshare", syscall(SYS_unshare, CLONE_NEWNS)); /* last: only this process */
	/* a plain fork still works */
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	try("fork", pid < 0 ? -1 : waitpid(pid, NULL, 0));
	return 0;
}

static int escape(void)
{
	struct dirent *e;
	DIR *d;

	mkdir("escape-dir", 0755);
	if (chroot("escape-dir") < 0) {
		printf("chroot %s\n", name(errno));
		return 1;
	}
	for (int i = 0; i < 64; i++)
		if (chdir("..") < 0)
			break;
	printf("chroot-out %s\n", name(chroot(".") < 0 ? errno : 0));
	d = opendir("/");
	printf("root:");
	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			printf(" %s", e->d_name);
	printf("\n");
	printf("open-vda %s\n", name(open("/dev/vda", O_RDONLY) < 0 ? errno : 0));
	printf("open-agent %s\n", name(open("/init", O_RDONLY) < 0 ? errno : 0));
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && !strcmp(argv[1], "syscalls"))
		return syscalls();
	if (argc == 3 && !strcmp(argv[1], "ptrace")) {
		long rc = ptrace(PTRACE_ATTACH, atoi(argv[2]), NULL, NULL);

		printf("%s\n", name(rc < 0 ? errno : 0));
		return rc < 0;
	}
	if (argc == 2 && !strcmp(argv[1], "escape"))
		return escape();
	if (argc == 2 && !strcmp(argv[1], "euid"))
		return printf("%d\n", (int)geteuid()) < 0;
	fprintf(stderr, "usage: probe syscalls | ptrace PID | escape | euid\n");
	return 2;
}
