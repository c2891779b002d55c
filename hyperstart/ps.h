/*
 * ps.h — a container's processes, found in /proc by their root directory (the
 * container's root; the agent's own and kernel threads have the guest's).
 */
#ifndef HS_PS_H
#define HS_PS_H

#include <sys/types.h>

struct hs_err;
struct json_t;

/* PS answer: {"processes": [...]} for the processes whose root is root */
int hs_ps(const char *root, struct json_t **out, struct hs_err *err);
/* SIGKILLs every process whose root is root (daemons that left the agent's tree) */
void hs_ps_kill_root(const char *root);
/* sends sig (SIGSTOP, SIGCONT) to every process whose root is root */
void hs_ps_signal_root(const char *root, int sig);

#endif
