#define _GNU_SOURCE
#include "ps.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "container.h"
#include "util.h"

/* /proc/<pid>/stat after "(comm) ": field 3 (state) is index 0 */
enum { S_STATE, S_PPID, S_TTY = 4, S_UTIME = 11, S_STIME, S_START = 19, S_VSIZE, S_RSS, S_COUNT };

/*
 * calls fn for each process of c: those in its PID namespace (pid as the guest
 * sees it); a holder init is the agent's, not the container's, unless asked for
 */
static void each_in_container(struct hs_container *c, int holder, void (*fn)(pid_t pid, void *arg),
			      void *arg)
{
	DIR *d = opendir("/proc");
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		pid_t pid = atoi(e->d_name);

		if (pid > 1 && (holder || !c->holder || pid != c->init_pid) && hs_ns_has(&c->ns, pid))
			fn(pid, arg);
	}
	closedir(d);
}

static void kill_one(pid_t pid, void *arg)
{
	(void)arg;
	kill(pid, SIGKILL);
}

void hs_ps_kill(struct hs_container *c)
{
	each_in_container(c, 1, kill_one, NULL);
}

static void signal_one(pid_t pid, void *arg)
{
	kill(pid, *(int *)arg);
}

void hs_ps_signal(struct hs_container *c, int sig)
{
	each_in_container(c, 0, signal_one, &sig);
}

/* the state letter of /proc/<pid>/stat ('R', 'S', 'T', ...), 0 when it is gone */
static char state_of(pid_t pid)
{
	char path[64], buf[512], *end;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	end = strrchr(buf, ')');
	return end && end[1] == ' ' ? end[2] : 0;
}

static void stop_one(pid_t pid, void *arg)
{
	char state = state_of(pid);

	if (state && !strchr("TtZX", state)) {
		kill(pid, SIGSTOP);
		++*(int *)arg;
	}
}

int hs_ps_stop(struct hs_container *c, int timeout_ms)
{
	uint64_t deadline = hs_now_ms() + (uint64_t)timeout_ms;
	int running;

	for (;;) {
		running = 0;
		each_in_container(c, 0, stop_one, &running);
		if (!running || hs_now_ms() >= deadline)
			return running;
		usleep(1000);
	}
}

static char *proc_file(pid_t pid, const char *name)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/%s", pid, name);
	return hs_read_text(path);
}

/* "pts/3", "tty1", "ttyS0", "" without a terminal */
static void tty_name(unsigned long long nr, char *buf, size_t len)
{
	unsigned major = (nr >> 8) & 0xfff, minor = (nr & 0xff) | ((nr >> 12) & 0xfff00);

	if (nr == 0)
		snprintf(buf, len, "%s", "");
	else if (major >= 136 && major <= 143)
		snprintf(buf, len, "pts/%u", (major - 136) * 256 + minor);
	else if (major == 4)
		snprintf(buf, len, minor < 64 ? "tty%u" : "ttyS%u", minor < 64 ? minor : minor - 64);
	else if (major == 5)
		snprintf(buf, len, "%s", minor == 1 ? "console" : "tty");
	else
		snprintf(buf, len, "%u:%u", major, minor);
}

/* the second value (effective id) of a "Uid:" or "Gid:" line of /proc/<pid>/status */
static long long status_id(const char *status, const char *key)
{
	const char *line = strstr(status, key);
	unsigned long long real, eff;

	if (!line || sscanf(line + strlen(key), "%llu %llu", &real, &eff) != 2)
		return -1;
	return (long long)eff;
}

static json_t *args_of(pid_t pid, const char *comm)
{
	char path[64];
	FILE *f;
	json_t *args = json_array();
	char *arg = NULL;
	size_t cap = 0;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	f = fopen(path, "re");
	while (f && args && getdelim(&arg, &cap, '\0', f) > 0)
		json_array_append_new(args, json_string(arg));
	if (f)
		fclose(f);
	free(arg);
	if (args && json_array_size(args) == 0) { /* a zombie: ps shows [comm] */
		char name[64];

		snprintf(name, sizeof(name), "[%s]", comm);
		json_array_append_new(args, json_string(name));
	}
	return args;
}

struct ps_ctx {
	json_t *list;
	double boot_time, tick;
	long page;
};

static void describe(pid_t pid, void *arg)
{
	struct ps_ctx *ctx = arg;
	char *stat = proc_file(pid, "stat"), *status = proc_file(pid, "status");
	char *open = stat ? strchr(stat, '(') : NULL, *close = stat ? strrchr(stat, ')') : NULL;
	unsigned long long f[S_COUNT] = {0};
	char state[2] = "?", tty[32], *p;

	if (!open || !close || !status)
		goto out; /* gone meanwhile */
	*close = '\0';
	p = close + 2;
	state[0] = *p;
	for (int i = 1; i < S_COUNT && (p = strchr(p, ' ')); i++)
		f[i] = strtoull(++p, NULL, 10);
	tty_name(f[S_TTY], tty, sizeof(tty));
	json_array_append_new(
		ctx->list,
		json_pack("{s:i, s:I, s:I, s:I, s:s, s:s, s:f, s:I, s:I, s:I, s:o}", "pid", pid,
			  "ppid", (json_int_t)f[S_PPID], "uid", (json_int_t)status_id(status, "Uid:"),
			  "gid", (json_int_t)status_id(status, "Gid:"), "state", state, "tty", tty,
			  "startTime", ctx->boot_time + f[S_START] * ctx->tick, "cpuTime",
			  (json_int_t)((f[S_UTIME] + f[S_STIME]) * ctx->tick * 1000), "rss",
			  (json_int_t)(f[S_RSS] * ctx->page), "vsz", (json_int_t)f[S_VSIZE], "args",
			  args_of(pid, open + 1)));
out:
	free(stat);
	free(status);
}

static double boot_time(void)
{
	char *s = hs_read_text("/proc/stat"), *line = s ? strstr(s, "\nbtime ") : NULL;
	double t = line ? strtod(line + 7, NULL) : 0;

	free(s);
	return t;
}

int hs_ps(struct hs_container *c, json_t **out, struct hs_err *err)
{
	struct ps_ctx ctx = {
		.list = json_array(),
		.boot_time = boot_time(),
		.tick = 1.0 / sysconf(_SC_CLK_TCK),
		.page = sysconf(_SC_PAGESIZE),
	};

	if (!ctx.list)
		return hs_fail(err, "out of memory");
	each_in_container(c, 0, describe, &ctx);
	*out = json_pack("{s:o}", "processes", ctx.list);
	return *out ? 0 : hs_fail(err, "out of memory");
}
