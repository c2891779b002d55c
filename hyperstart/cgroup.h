/*
 * cgroup.h — a cgroup v2 per container, to learn of its OOM kills (memory.events
 * "oom_kill") and to make them happen. The VM's memory is the container's limit,
 * but a guest that runs out of it as a whole thrashes (file pages evicted and read
 * again) for minutes under TCG before the OOM killer acts (15 min measured for a
 * 64 MiB VM). So each container's memory.max is what the guest has available
 * less HS_CGROUP_HEADROOM_KB for the agent's buffers and the kernel's watermarks:
 * the container hits its own limit first, its cgroup has little to reclaim, and
 * the OOM killer picks a victim in it within seconds.
 */
#ifndef HS_CGROUP_H
#define HS_CGROUP_H

struct hs_container;
struct hs_err;

/* at boot: cgroup2 on /sys/fs/cgroup, memory controller on for children (else off, logged) */
void hs_cgroup_init(void);
#define HS_CGROUP_HEADROOM_KB (6 * 1024)

/* c->cgroup_fd: its cgroup's directory, limited (-1, and 0 returned, when cgroups are off) */
int hs_cgroup_create(struct hs_container *c, struct hs_err *err);
/* memory.max: MemAvailable plus what c uses already, less the headroom (again after
   memory was brought online) */
int hs_cgroup_limit(const struct hs_container *c, struct hs_err *err);
/* in a child process before it enters the container: moves itself into the cgroup of fd */
int hs_cgroup_join(int fd);
/* how many of c's processes the OOM killer killed so far; -1 when unknown */
long hs_cgroup_oom_kills(const struct hs_container *c);
/* closes c->cgroup_fd and removes the cgroup (its processes are gone by then) */
void hs_cgroup_remove(struct hs_container *c);

#endif
