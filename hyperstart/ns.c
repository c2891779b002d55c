#define _GNU_SOURCE
#include "ns.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

static const char *const ns_names[HS_NS_COUNT] = { "pid", "mnt", "ipc", "uts" };
static const int ns_types[HS_NS_COUNT] = { CLONE_NEWPID, CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUTS };

/* the agent's own PID namespace: where it returns after forking an exec into a container's */
static int agent_pidns = -1;

int hs_ns_boot(void)
{
	agent_pidns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
	return agent_pidns < 0 ? -1 : 0;
}

void hs_ns_reset(struct hs_ns *ns)
{
	for (int i = 0; i < HS_NS_COUNT; i++)
		ns->fd[i] = -1;
	ns->pid_ino = 0;
}

pid_t hs_ns_clone(void)
{
	/* a raw clone returns like fork (same stack, copied): the agent is single-threaded */
	return (pid_t)syscall(SYS_clone, CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD,
			      NULL, NULL, NULL, NULL);
}

pid_t hs_ns_fork_into(const struct hs_ns *ns, struct hs_err *err)
{
	pid_t pid;
	int e;

	if (ns->fd[HS_NS_PID] < 0)
		return hs_fail(err, "the container has no namespaces");
	if (setns(ns->fd[HS_NS_PID], CLONE_NEWPID) < 0)
		return hs_fail(err, "setns pid: %s", hs_strerror(errno));
	pid = fork();
	e = errno;
	if (pid == 0)
		return 0;
	/* back to the agent's own namespace for its next children; cannot fail: it is ours */
	if (setns(agent_pidns, CLONE_NEWPID) < 0)
		hs_log("setns back to the agent's pid namespace: %m");
	if (pid < 0)
		return hs_fail(err, e == ENOMEM ? "the container's init has exited" : "fork: %s",
			       hs_strerror(e));
	return pid;
}

int hs_ns_open(struct hs_ns *ns, pid_t pid, struct hs_err *err)
{
	struct stat st;

	for (int i = 0; i < HS_NS_COUNT; i++) {
		char path[64];

		snprintf(path, sizeof(path), "/proc/%d/ns/%s", pid, ns_names[i]);
		ns->fd[i] = open(path, O_RDONLY | O_CLOEXEC);
		if (ns->fd[i] < 0) {
			int e = errno;

			hs_ns_close(ns);
			return hs_fail(err, "open %s: %s", path, hs_strerror(e));
		}
	}
	if (fstat(ns->fd[HS_NS_PID], &st) < 0) {
		hs_ns_close(ns);
		return hs_fail(err, "stat pid namespace: %s", hs_strerror(errno));
	}
	ns->pid_ino = st.st_ino;
	return 0;
}

void hs_ns_close(struct hs_ns *ns)
{
	for (int i = 0; i < HS_NS_COUNT; i++)
		if (ns->fd[i] >= 0)
			close(ns->fd[i]);
	hs_ns_reset(ns);
}

int hs_ns_has(const struct hs_ns *ns, pid_t pid)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/ns/pid", pid);
	return ns->pid_ino && stat(path, &st) == 0 && st.st_ino == ns->pid_ino;
}

/* ---- in the child ---- */

/* Docker's defaults: hidden (an empty read-only tmpfs or /dev/null on top) ... */
static const char *const masked[] = {
	"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
	"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
	"/sys/firmware", "/sys/devices/virtual/powercap",
};
/* ... and read-only */
static const char *const readonly[] = {
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

static int mask(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return errno == ENOENT ? 0 : -1;
	if (S_ISDIR(st.st_mode))
		return mount("tmpfs", path, "tmpfs", MS_RDONLY, "size=0");
	return mount("/dev/null", path, NULL, MS_BIND, NULL);
}

static int make_readonly(const char *path)
{
	const unsigned long keep = MS_NOSUID | MS_NODEV | MS_NOEXEC;

	if (access(path, F_OK) < 0)
		return errno == ENOENT ? 0 : -1;
	if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0)
		return -1;
	return mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | keep, NULL);
}

int hs_ns_hide_kernel_paths(const char **what)
{
	for (size_t i = 0; i < sizeof(masked) / sizeof(masked[0]); i++)
		if (mask(masked[i]) < 0) {
			*what = masked[i];
			return -1;
		}
	for (size_t i = 0; i < sizeof(readonly) / sizeof(readonly[0]); i++)
		if (make_readonly(readonly[i]) < 0) {
			*what = readonly[i];
			return -1;
		}
	return 0;
}

/* a /proc of the new PID namespace, on the root's /proc (resolved inside the root) */
static int mount_proc(int rootfd)
{
	char fdpath[64];
	int fd = hs_open_in_root(rootfd, "/proc", O_RDONLY | O_DIRECTORY, 0), rc;

	if (fd < 0)
		return -1;
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", fd);
	rc = mount("proc", fdpath, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	close(fd);
	return rc;
}

int hs_ns_enter_root(const char *root, const char **what)
{
	int rootfd, rc;

	*what = "make mounts private";
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -1;
	*what = "open the root";
	rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return -1;
	*what = "mount /proc";
	rc = mount_proc(rootfd);
	if (rc == 0) {
		*what = "pivot_root";
		rc = fchdir(rootfd);
	}
	close(rootfd);
	if (rc < 0)
		return -1;
	/*
	 * pivot_root(".", ".") stacks the old root on the new one; detaching it
	 * takes the whole guest tree (agent, /dev, other containers) out of this
	 * namespace. The old root must not be the initramfs: see hs_system_init.
	 */
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return -1;
	*what = "detach the guest's root";
	return umount2(".", MNT_DETACH) < 0 || chdir("/") < 0 ? -1 : 0;
}

int hs_ns_join(const struct hs_ns *ns, const char **what)
{
	/* the mount namespace last: it changes root and cwd, and needs no path after */
	static const int order[] = { HS_NS_IPC, HS_NS_UTS, HS_NS_MNT };

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		int k = order[i];

		*what = ns_names[k];
		if (setns(ns->fd[k], ns_types[k]) < 0)
			return -1;
	}
	*what = "chdir /";
	return chdir("/");
}
