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
/* sends sig (SIGSTOP, SIGCONT) to every process of c (not an agent-made holder) */
void hs_ps_signal(struct hs_container *c, int sig);

#endif
