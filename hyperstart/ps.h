/*
 * ps.h — a container's processes, found in /proc by their PID namespace (the
 * container's; the agent, kernel threads and other containers are in others).
 */
#ifndef HS_PS_H
#define HS_PS_H

#include <sys/types.h>

struct hs_container;
struct hs_err;
struct json_t;

/* PS answer: {"processes": [...]} for the processes of c (pids as the guest sees them) */
int hs_ps(struct hs_container *c, struct json_t **out, struct hs_err *err);
/* SIGKILLs every process of c's PID namespace (daemons that left the agent's tree) */
void hs_ps_kill(struct hs_container *c);
/* sends sig (SIGCONT) to every process of c (not an agent-made holder) */
void hs_ps_signal(struct hs_container *c, int sig);
/*
 * SIGSTOPs the processes of c until every one is stopped (one forked meanwhile too: a
 * stopped process forks no more), for at most timeout_ms; returns how many still run.
 * A signal is only delivered when its process next runs, so sending is not stopping.
 */
int hs_ps_stop(struct hs_container *c, int timeout_ms);

#endif
