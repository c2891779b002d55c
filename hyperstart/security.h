/*
 * security.h — what a container process may do: its capabilities (Docker's default
 * set, changed by capAdd/capDrop, all of them when privileged), no_new_privs, and
 * the default seccomp filter (seccomp.h). Parsed from the PROCESS object by the
 * agent, applied by the child just before it becomes the container's program.
 */
#ifndef HS_SECURITY_H
#define HS_SECURITY_H

#include <stdint.h>

struct hs_security {
	uint64_t caps;     /* bit n: capability n stays in the bounding set */
	int seccomp;       /* the default filter */
	int no_new_privs;
};

struct hs_err;
struct json_t;

/* "capAdd", "capDrop", "privileged", "noNewPrivileges", "seccomp" of a PROCESS object */
int hs_security_parse(struct json_t *spec, struct hs_security *sec, struct hs_err *err);
/*
 * In the child, as root, before it switches to the process's user: drops every
 * capability outside the set from the bounding set (so neither root nor a setuid
 * program gets it back at exec), clears the ambient set, sets no_new_privs and
 * installs the filter. -1 with errno, *what naming the step.
 */
int hs_security_apply(const struct hs_security *sec, const char **what);

#endif
