/* container.h — pod settings and containers: their roots, mounts and /etc files. */
#ifndef HS_CONTAINER_H
#define HS_CONTAINER_H

#include <sys/types.h>

#include "ns.h"

#define HS_MAX_MOUNTS 64

struct json_t;
#define HS_MAX_ID 128
/* paths under /run/hs/<id> (ids are shorter than HS_MAX_ID) */
#define HS_PATH 512

struct hs_container {
	struct hs_container *next;
	char *id;
	char dir[HS_MAX_ID + 16]; /* "/run/hs/<id>": staging mounts of the layers */
	char root[HS_PATH];  /* "<dir>/root" */
	char upper[HS_PATH]; /* the overlay's upper directory: the container's changes */
	int rootfd;          /* O_PATH of root */
	int privileged;      /* no nodev mounts, /sys writable, nothing of /proc hidden */
	int cgroup_fd;       /* its cgroup (to count OOM kills); -1 without one */
	struct hs_ns ns;     /* the namespaces of its processes, held for execs */
	pid_t init_pid;      /* PID 1 of those namespaces; 0 once it is gone */
	int holder;          /* that init is the agent's holder (no main process) */
	char *main_proc;     /* id of the main process, or NULL */
	struct json_t *sysctl; /* while NEWCONTAINER runs: its "sysctl" object */
	int nmounts;
	char mounts[HS_MAX_MOUNTS][HS_PATH]; /* in mount order */
};

struct hs_err;
/* STARTPOD */
int hs_pod_start(struct json_t *req, struct hs_err *err);
const char *hs_pod_hostname(void);

int hs_container_new(struct json_t *req, struct hs_err *err);
struct hs_container *hs_container_find(const char *id);
/* a reaped child: the container whose init it was has none any more */
void hs_container_reaped(pid_t pid);
int hs_container_remove(const char *id, struct hs_err *err);
/* in the container's init: writes the sysctls NEWCONTAINER asked for */
int hs_container_sysctls(struct hs_container *c, struct hs_err *err);
/* every container's memory limit again, from the guest's memory now */
int hs_container_relimit(struct hs_err *err);
/* syncfs of every filesystem mounted for c */
int hs_container_sync(struct hs_container *c, struct hs_err *err);
/* lazily unmounts every container (power off) */
void hs_container_unmount_all(void);

#endif
