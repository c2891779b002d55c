/*
 * spawn.h — starting one process: the PROCESS object, the child's setup in the
 * container (its namespaces, root, limits, user and security), and the parent's
 * check that exec really happened (a CLOEXEC pipe: EOF means exec succeeded, a
 * message means it failed and why).
 */
#ifndef HS_SPAWN_H
#define HS_SPAWN_H

#include <sys/resource.h>
#include <sys/types.h>

#include "security.h"
#include "user.h"

#define HS_MAX_RLIMITS 16

struct spawn {
	struct hs_container *c;
	int init;   /* the container's init: clone its namespaces; else join them (exec) */
	char **argv, **envp;
	const char *workdir;
	struct hs_user user;
	struct hs_security sec;
	int nrl;
	struct { int res; struct rlimit rl; } rl[HS_MAX_RLIMITS];
	int fd[4]; /* the child's stdin, stdout, stderr; fd[3]: /dev/null */
	int tty;
};

struct hs_container;
struct hs_err;
struct json_t;

/* id, workdir, args, rlimits and user of a PROCESS object (pointers into spec) */
int hs_spawn_parse(struct hs_container *c, struct json_t *spec, struct spawn *s, const char **id,
		   struct hs_err *err);
/* the environment: envs plus PATH, HOME, HOSTNAME (and TERM with a terminal) when absent */
int hs_spawn_env(struct json_t *spec, struct spawn *s, int terminal, struct hs_err *err);
void hs_spawn_free(struct spawn *s);
/* a pty from the container's devpts instance (else the guest's), sized by "row"/"column" */
int hs_spawn_pty(int rootfd, struct json_t *spec, int *master, int *slave, struct hs_err *err);
/*
 * Forks the child and waits until it has exec'd: returns its pid, or -1 with err
 * (exit_code 127 not found, 126 cannot execute) once the failed child is reaped.
 * With s->init, the child is the container's PID 1 and c->ns holds its namespaces.
 */
pid_t hs_spawn_run(struct spawn *s, struct hs_err *err);
/*
 * The init of a container that has no main process: PID 1 of its namespaces,
 * it only reaps orphans, so that execs have namespaces to join.
 */
pid_t hs_spawn_holder(struct hs_container *c, struct hs_err *err);
/* the agent's argv[0], which a holder overwrites so that it shows as "pause" */
void hs_spawn_title(char *argv0);

#endif
