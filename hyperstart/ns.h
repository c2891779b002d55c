/*
 * ns.h — a container's namespaces. Its init (the main process, or a holder when
 * the container has none) is cloned into new PID, mount, IPC and UTS namespaces
 * and pivots into the container's root; the agent keeps those namespaces open
 * so that every exec joins them. Nothing of the guest (the agent, its ports,
 * the raw disks, other containers) is visible from inside.
 */
#ifndef HS_NS_H
#define HS_NS_H

#include <sys/types.h>

enum { HS_NS_PID, HS_NS_MNT, HS_NS_IPC, HS_NS_UTS, HS_NS_COUNT };

struct hs_ns {
	int fd[HS_NS_COUNT]; /* -1 when not open */
	ino_t pid_ino;       /* identifies the container's processes in /proc */
};

struct hs_err;

/* at boot: remembers the agent's own PID namespace (to return to after an exec's fork) */
int hs_ns_boot(void);
void hs_ns_reset(struct hs_ns *ns);
/* fork-like: the child (return 0) is PID 1 of new PID, mount, IPC and UTS namespaces */
pid_t hs_ns_clone(void);
/* fork-like: the child is in ns's PID namespace (it still has to hs_ns_join the others) */
pid_t hs_ns_fork_into(const struct hs_ns *ns, struct hs_err *err);
/* keeps the namespaces of pid (a freshly cloned init) open in ns */
int hs_ns_open(struct hs_ns *ns, pid_t pid, struct hs_err *err);
void hs_ns_close(struct hs_ns *ns);
/* is pid a process of these namespaces? */
int hs_ns_has(const struct hs_ns *ns, pid_t pid);

/*
 * In the child. Each returns -1 with errno set and a short description of the
 * failed step in *what.
 */
/* a cloned init: its own /proc, then pivot_root into root (a path: the agent's
 * descriptors lead to its own mounts, not to this namespace's copies); the guest's
 * tree is gone from its view */
int hs_ns_enter_root(const char *root, const char **what);
/* then, unless privileged: Docker's masked and read-only paths of /proc and /sys */
int hs_ns_hide_kernel_paths(const char **what);
/* an exec: joins the IPC, UTS and mount namespaces (root and cwd become the container's) */
int hs_ns_join(const struct hs_ns *ns, const char **what);

#endif
