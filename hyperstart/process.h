/*
 * process.h — processes in containers: exec, pty or pipes, stdio forwarding
 * with back-pressure, reaping, and the "finished" events.
 */
#ifndef HS_PROCESS_H
#define HS_PROCESS_H

#include <stddef.h>
#include <stdint.h>

struct hs_container;
struct hs_err;
struct json_t;

/*
 * starts a PROCESS object in c: its init (PID 1 of new namespaces) or an exec
 * that joins them; returns -1 with err before anything ran
 */
int hs_proc_start(struct hs_container *c, struct json_t *spec, int init, struct hs_err *err);
/* a finished process is signalled (or resized) as a no-op */
int hs_proc_signal(struct hs_container *c, const char *id, int sig, struct hs_err *err);
int hs_proc_winsize(struct hs_container *c, const char *id, int row, int col, struct hs_err *err);
/* SIGKILLs every process of c (its init first: that ends its PID namespace), waits, forgets them */
void hs_proc_kill_container(struct hs_container *c);

/* stream input from the host */
void hs_proc_stdin(uint64_t seq, const char *data, size_t n);
void hs_proc_stdin_eof(uint64_t seq);
/* false while too much stdin waits for slow readers: stop reading the stream port */
int hs_proc_stdin_has_room(void);

/* SIGCHLD: reaps every zombie */
void hs_proc_reap(void);
/* after every loop iteration: epoll masks, exit bookkeeping, events; returns the loop timeout */
int hs_proc_sync(void);

#endif
