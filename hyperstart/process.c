#define _GNU_SOURCE
#include "process.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "api.h"
#include "cgroup.h"
#include "channel.h"
#include "container.h"
#include "event.h"
#include "loop.h"
#include "ps.h"
#include "spawn.h"
#include "util.h"

#define STDIN_BACKLOG_LIMIT (1u << 20)
/*
 * After a process exits, its output is forwarded until EOF, or until the pipe
 * (held open by a grandchild) has been idle this long.
 */
#define DRAIN_IDLE_MS 100

struct proc;

struct out_pipe {
	struct hs_watch w;
	struct proc *p;
	uint64_t seq;
};

struct proc {
	struct proc *next;
	struct hs_container *c;
	char *id;
	pid_t pid;           /* 0 once reaped */
	int terminal;
	struct out_pipe out[2]; /* stdout (or the pty), stderr */
	struct hs_watch in;     /* stdin (a dup of the pty master with a terminal) */
	uint64_t stdin_seq;
	struct hs_buf inbuf;
	int stdin_eof;
	int status;
	long oom_base;       /* the container's OOM kills when it started (-1: unknown) */
	int oom_killed;      /* and there were more when it was reaped */
	uint64_t active_ms;  /* exit time, then time of the last output after it */
	int finished;        /* event queued: only kept to answer signals as no-ops */
	int dead;            /* to be freed by hs_proc_sync */
};

static struct proc *procs;
static size_t stdin_backlog;

/* ---- lookup ---- */

static struct proc *find_proc(struct hs_container *c, const char *id)
{
	for (struct proc *p = procs; p; p = p->next)
		if (p->c == c && !p->dead && strcmp(p->id, id) == 0)
			return p;
	return NULL;
}

static struct proc *find_stdin(uint64_t seq)
{
	for (struct proc *p = procs; p; p = p->next)
		if (p->stdin_seq == seq && p->in.fd >= 0 && !p->stdin_eof)
			return p;
	return NULL;
}

/* ---- output ---- */

static void close_out(struct out_pipe *o)
{
	if (o->w.fd < 0)
		return;
	hs_watch_close(&o->w);
	hs_stream_send(o->seq, NULL, 0);
}

static void out_cb(struct hs_watch *w, uint32_t revents)
{
	static char buf[HYPER_MAX_STREAM_FRAME - HYPER_STREAM_HEADER_SIZE];
	struct out_pipe *o = (struct out_pipe *)w;
	ssize_t n;

	(void)revents;
	if (!hs_stream_has_room())
		return;
	n = read(w->fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) { /* EOF, or EIO from a pty whose slave side is all closed */
		close_out(o);
		return;
	}
	hs_stream_send(o->seq, buf, n);
	if (o->p->pid == 0)
		o->p->active_ms = hs_now_ms();
}

/* ---- stdin ---- */

static void close_in(struct proc *p)
{
	stdin_backlog -= hs_buf_used(&p->inbuf);
	hs_buf_free(&p->inbuf);
	hs_watch_close(&p->in);
}

static void write_stdin(struct proc *p)
{
	while (hs_buf_used(&p->inbuf)) {
		ssize_t n = write(p->in.fd, hs_buf_head(&p->inbuf), hs_buf_used(&p->inbuf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) { /* EPIPE: the reader is gone, discard */
			close_in(p);
			return;
		}
		hs_buf_consume(&p->inbuf, n);
		stdin_backlog -= n;
	}
	if (p->stdin_eof)
		close_in(p);
}

static void in_cb(struct hs_watch *w, uint32_t revents)
{
	(void)revents;
	write_stdin((struct proc *)((char *)w - offsetof(struct proc, in)));
}

void hs_proc_stdin(uint64_t seq, const char *data, size_t n)
{
	struct proc *p = find_stdin(seq);

	if (!p || hs_buf_append(&p->inbuf, data, n) < 0)
		return;
	stdin_backlog += n;
	write_stdin(p);
}

void hs_proc_stdin_eof(uint64_t seq)
{
	struct proc *p = find_stdin(seq);

	if (!p)
		return;
	p->stdin_eof = 1;
	if (!hs_buf_used(&p->inbuf))
		close_in(p);
}

int hs_proc_stdin_has_room(void)
{
	return stdin_backlog < STDIN_BACKLOG_LIMIT;
}

/* ---- stdio ---- */

static int set_nonblock(int fd)
{
	return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/*
 * Fills s->fd (the child's ends) and the parent's ends in p; a seq of 0 means
 * no stream: /dev/null for the child.
 */
static int setup_stdio(struct hs_container *c, json_t *spec, struct spawn *s, struct proc *p,
		       uint64_t out_seq, uint64_t err_seq, struct hs_err *err)
{
	int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (null < 0)
		return hs_fail(err, "open /dev/null: %s", strerror(errno));
	s->fd[0] = s->fd[1] = s->fd[2] = s->fd[3] = null;
	if (p->terminal) {
		int master, slave = -1;

		if (hs_spawn_pty(c->rootfd, spec, &master, &slave, err) < 0) {
			close(null);
			return -1;
		}
		close(null);
		s->fd[0] = s->fd[1] = s->fd[2] = slave;
		s->fd[3] = -1;
		s->tty = 1;
		p->out[0].w.fd = master;
		p->in.fd = fcntl(master, F_DUPFD_CLOEXEC, 3);
		return 0;
	}
	if ((out_seq && pipe2(pin, O_CLOEXEC) < 0) || (out_seq && pipe2(pout, O_CLOEXEC) < 0) ||
	    (err_seq && pipe2(perr, O_CLOEXEC) < 0)) {
		int e = errno;

		for (int i = 0; i < 2; i++) {
			if (pin[i] >= 0) close(pin[i]);
			if (pout[i] >= 0) close(pout[i]);
		}
		close(null);
		return hs_fail(err, "pipe: %s", strerror(e));
	}
	if (out_seq) {
		s->fd[0] = pin[0];
		s->fd[1] = pout[1];
		p->in.fd = pin[1];
		p->out[0].w.fd = pout[0];
		set_nonblock(pin[1]);
		set_nonblock(pout[0]);
	}
	if (err_seq) {
		s->fd[2] = perr[1];
		p->out[1].w.fd = perr[0];
		set_nonblock(perr[0]);
	}
	return 0;
}

static void close_child_ends(struct spawn *s)
{
	for (int i = 0; i < 4; i++) {
		int dup = s->fd[i] < 0;

		for (int j = 0; j < i; j++)
			dup |= s->fd[j] == s->fd[i];
		if (!dup)
			close(s->fd[i]);
	}
}

/* ---- lifecycle ---- */

static struct proc *proc_new(struct hs_container *c, const char *id)
{
	struct proc *p = calloc(1, sizeof(*p));

	if (!p || !(p->id = strdup(id))) {
		free(p);
		return NULL;
	}
	p->c = c;
	for (int i = 0; i < 2; i++) {
		p->out[i].w.fd = -1;
		p->out[i].w.cb = out_cb;
		p->out[i].p = p;
	}
	p->in.fd = -1;
	p->in.cb = in_cb;
	return p;
}

static void proc_release(struct proc *p)
{
	close_out(&p->out[0]);
	close_out(&p->out[1]);
	close_in(p);
	p->dead = 1;
}

static int parse_seqs(json_t *spec, struct proc *p, uint64_t *out_seq, uint64_t *err_seq, struct hs_err *err)
{
	long long so = 0, se = 0;

	if (hs_json_bool(spec, "terminal", &p->terminal, err) < 0 ||
	    hs_json_int(spec, "stdio", 0, &so, err) < 0 || hs_json_int(spec, "stderr", 0, &se, err) < 0)
		return -1;
	if (so < 0 || se < 0)
		return hs_fail(err, "stream seqs must not be negative");
	if (p->terminal && !so)
		return hs_fail(err, "a terminal needs a stdio seq");
	if (p->terminal)
		se = 0;
	if (so && so == se)
		return hs_fail(err, "stdio and stderr must use different seqs");
	*out_seq = so;
	*err_seq = se;
	p->stdin_seq = so;
	p->out[0].seq = so;
	p->out[1].seq = se;
	return 0;
}

/* a process that never ran: its streams are closed without EOF frames, it gets no event */
static void discard(struct proc *p)
{
	hs_watch_close(&p->out[0].w);
	hs_watch_close(&p->out[1].w);
	close_in(p);
	p->dead = 1;
}

static int launch(struct hs_container *c, json_t *spec, struct spawn *s, struct proc *p,
		  struct hs_err *err)
{
	if (!s->init && !c->init_pid)
		return hs_fail(err, "container %s is not running: its main process has exited", c->id);
	uint64_t out_seq = 0, err_seq = 0;
	pid_t pid;

	if (parse_seqs(spec, p, &out_seq, &err_seq, err) < 0 ||
	    hs_spawn_env(spec, s, p->terminal, err) < 0)
		return -1;
	if (setup_stdio(c, spec, s, p, out_seq, err_seq, err) < 0)
		return -1;
	pid = hs_spawn_run(s, err);
	close_child_ends(s);
	if (pid < 0) {
		discard(p);
		return -1;
	}
	p->pid = pid;
	if (s->init)
		c->init_pid = pid;
	return 0;
}

int hs_proc_start(struct hs_container *c, json_t *spec, int init, struct hs_err *err)
{
	struct spawn s = { .fd = {-1, -1, -1, -1}, .init = init };
	struct proc *p, *old;
	const char *id = NULL;
	int r = -1;

	if (hs_spawn_parse(c, spec, &s, &id, err) < 0)
		goto out;
	old = find_proc(c, id);
	if (old && !old->finished) {
		hs_fail(err, "process %s already exists in container %s", id, c->id);
		goto out;
	}
	if (!(p = proc_new(c, id))) {
		hs_fail(err, "out of memory");
		goto out;
	}
	p->oom_base = hs_cgroup_oom_kills(c);
	if (launch(c, spec, &s, p, err) < 0) {
		p->next = procs; /* freed by the next hs_proc_sync */
		procs = p;
		p->dead = 1;
		goto out;
	}
	if (old)
		old->dead = 1;
	p->next = procs;
	procs = p;
	hs_log("%s/%s: pid %d %s", c->id, id, p->pid, s.argv[0]);
	r = 0;
out:
	hs_spawn_free(&s);
	return r;
}

int hs_proc_signal(struct hs_container *c, const char *id, int sig, struct hs_err *err)
{
	struct proc *p = find_proc(c, id);

	if (!p)
		return hs_fail(err, "no process %s in container %s", id, c->id);
	if (p->pid && kill(p->pid, sig) < 0)
		return hs_fail(err, "kill %d: %s", p->pid, strerror(errno));
	return 0;
}

int hs_proc_winsize(struct hs_container *c, const char *id, int row, int col, struct hs_err *err)
{
	struct proc *p = find_proc(c, id);
	struct winsize ws = { .ws_row = row, .ws_col = col };

	if (!p)
		return hs_fail(err, "no process %s in container %s", id, c->id);
	if (!p->terminal)
		return hs_fail(err, "process %s has no terminal", id);
	if (p->out[0].w.fd >= 0 && ioctl(p->out[0].w.fd, TIOCSWINSZ, &ws) < 0)
		return hs_fail(err, "TIOCSWINSZ: %s", strerror(errno));
	return 0;
}

/* ---- exits and events ---- */

static void finish(struct proc *p)
{
	close_out(&p->out[0]);
	close_out(&p->out[1]);
	close_in(p);
	p->finished = 1;
	hs_log("%s/%s: exit %d%s", p->c->id, p->id, p->status, p->oom_killed ? " (OOM kill)" : "");
	hs_event_finished(p->c->id, p->id, p->status, NULL, p->oom_killed);
}

static void exited(pid_t pid, int wstatus)
{
	hs_container_reaped(pid);
	for (struct proc *p = procs; p; p = p->next) {
		if (p->pid != pid)
			continue;
		p->pid = 0;
		p->status = WIFSIGNALED(wstatus) ? 128 + WTERMSIG(wstatus) : WEXITSTATUS(wstatus);
		p->oom_killed = p->oom_base >= 0 && hs_cgroup_oom_kills(p->c) > p->oom_base;
		p->active_ms = hs_now_ms();
		return;
	}
}

void hs_proc_reap(void)
{
	int wstatus;
	pid_t pid;

	while ((pid = waitpid(-1, &wstatus, WNOHANG)) > 0)
		exited(pid, wstatus);
}

static int readable(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, 0) > 0;
}

/* closes outputs left open by grandchildren once they idled DRAIN_IDLE_MS after the exit */
static int drain_exited(struct proc *p, uint64_t now)
{
	int open = 0;

	for (int i = 0; i < 2; i++) {
		struct out_pipe *o = &p->out[i];

		if (o->w.fd < 0)
			continue;
		if (now - p->active_ms >= DRAIN_IDLE_MS && hs_stream_has_room() && !readable(o->w.fd))
			close_out(o);
		else
			open = 1;
	}
	return open;
}

static void sync_watches(struct proc *p)
{
	uint32_t out_ev = hs_stream_has_room() ? EPOLLIN : 0;

	hs_watch_set(&p->out[0].w, out_ev);
	hs_watch_set(&p->out[1].w, out_ev);
	hs_watch_set(&p->in, hs_buf_used(&p->inbuf) ? EPOLLOUT : 0);
}

int hs_proc_sync(void)
{
	uint64_t now = hs_now_ms();
	int timeout = -1;

	for (struct proc **pp = &procs; *pp; ) {
		struct proc *p = *pp;

		if (p->dead) {
			proc_release(p);
			*pp = p->next;
			free(p->id);
			free(p);
			continue;
		}
		if (!p->finished && !p->pid) {
			if (drain_exited(p, now))
				timeout = DRAIN_IDLE_MS / 2;
			else
				finish(p);
		}
		sync_watches(p);
		pp = &p->next;
	}
	return timeout;
}

/* ---- container removal ---- */

static int has_live(struct hs_container *c)
{
	if (c->init_pid)
		return 1;
	for (struct proc *p = procs; p; p = p->next)
		if (p->c == c && p->pid)
			return 1;
	return 0;
}

void hs_proc_kill_container(struct hs_container *c)
{
	uint64_t deadline = hs_now_ms() + 2000;

	if (c->init_pid)
		kill(c->init_pid, SIGKILL);
	for (struct proc *p = procs; p; p = p->next)
		if (p->c == c && p->pid)
			kill(p->pid, SIGKILL);
	hs_ps_kill(c);
	while (has_live(c) && hs_now_ms() < deadline) {
		usleep(5000);
		hs_proc_reap();
	}
	for (struct proc *p = procs; p; p = p->next) {
		if (p->c != c || p->dead)
			continue;
		if (!p->finished && !p->pid)
			finish(p);
		proc_release(p);
	}
}
