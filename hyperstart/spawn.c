#define _GNU_SOURCE
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "container.h"
#include "ns.h"
#include "util.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* what a child that could not exec tells its parent through the CLOEXEC pipe */
struct child_error {
	int exit_code;
	char msg[HS_ERRLEN];
};

/* ---- the child ---- */

/* the write end of the CLOEXEC pipe: closed by a successful exec */
static int report_fd = -1;

static void __attribute__((noreturn, format(printf, 2, 3))) child_fail(int code, const char *fmt, ...)
{
	struct child_error ce = { .exit_code = code };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ce.msg, sizeof(ce.msg), fmt, ap);
	va_end(ap);
	/* smaller than PIPE_BUF: one atomic write the parent reads whole */
	if (write(report_fd, &ce, sizeof(ce)) < 0)
		_exit(code);
	_exit(code);
}

static const char *env_get(char **envp, const char *key)
{
	size_t n = strlen(key);

	for (; *envp; envp++)
		if (strncmp(*envp, key, n) == 0 && (*envp)[n] == '=')
			return *envp + n + 1;
	return NULL;
}

/* execvpe with the process's own PATH, telling "not found" (127) from "cannot run" (126) */
static void __attribute__((noreturn)) child_exec(struct spawn *s)
{
	const char *prog = s->argv[0];
	const char *path = env_get(s->envp, "PATH");
	char full[PATH_MAX];
	struct stat st;
	int denied = 0;

	if (strchr(prog, '/')) {
		execve(prog, s->argv, s->envp);
		child_fail(errno == ENOENT || errno == ENOTDIR ? 127 : 126, "exec: \"%s\": %s", prog,
			   hs_strerror(errno));
	}
	for (const char *dir = path ? path : ""; ; ) {
		const char *end = strchrnul(dir, ':');
		int len = (int)(end - dir);

		snprintf(full, sizeof(full), "%.*s%s%s", len, dir, len ? "/" : "", prog);
		/* a stat skips a missing file: a failed execve copies argv and env first (~1 ms
		 * each under TCG, 5 of them to find busybox's /bin/true in Docker's PATH) */
		if (stat(full, &st) == 0 || (errno != ENOENT && errno != ENOTDIR))
			execve(full, s->argv, s->envp);
		if (errno == EACCES)
			denied = 1;
		else if (errno != ENOENT && errno != ENOTDIR)
			child_fail(126, "exec: \"%s\": %s", prog, hs_strerror(errno));
		if (!*end)
			break;
		dir = end + 1;
	}
	if (denied)
		child_fail(126, "exec: \"%s\": %s", prog, hs_strerror(EACCES));
	child_fail(127, "exec: \"%s\": executable file not found in $PATH", prog);
}

static char *title;

void hs_spawn_title(char *argv0)
{
	title = argv0;
}

/* PID 1 of a container without a main process: the kernel reaps the orphans it gets */
static void __attribute__((noreturn)) hold(void)
{
	if (title) { /* its command line, as the container's ps shows it */
		size_t n = strlen(title);

		memset(title, 0, n);
		memcpy(title, "pause", n < 5 ? n : 5);
	}
	prctl(PR_SET_NAME, "pause", 0, 0, 0);
	close_range(0, ~0U, 0); /* the report pipe too: its EOF tells the agent all is set */
	signal(SIGCHLD, SIG_IGN);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	for (;;)
		pause();
}

/* the container's init: into its root, its sysctls set, kernel paths hidden */
static void enter_root(struct hs_container *c)
{
	struct hs_err err = {0};
	const char *what;

	if (hs_ns_enter_root(c->root, &what) < 0)
		child_fail(126, "container namespaces: %s: %s", what, hs_strerror(errno));
	if (hs_container_sysctls(c, &err) < 0)
		child_fail(126, "%s", err.msg);
	if (!c->privileged && hs_ns_hide_kernel_paths(&what) < 0)
		child_fail(126, "hide %s: %s", what, hs_strerror(errno));
}

static void __attribute__((noreturn)) child(struct spawn *s)
{
	struct hs_container *c = s->c;
	const char *what;
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	setsid();
	if (hs_cgroup_join(c->cgroup_fd) < 0)
		child_fail(126, "join the container's cgroup: %s", hs_strerror(errno));
	for (int i = 0; i < 3; i++)
		if (dup2(s->fd[i], i) < 0)
			child_fail(126, "dup2: %s", hs_strerror(errno));
	if (s->tty && ioctl(0, TIOCSCTTY, 0) < 0)
		child_fail(126, "TIOCSCTTY: %s", hs_strerror(errno));
	/* none of the agent's descriptors (ports, disks, namespaces) may reach the program */
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		child_fail(126, "close_range: %s", hs_strerror(errno));
	if (s->init)
		enter_root(c);
	else if (hs_ns_join(&c->ns, &what) < 0)
		child_fail(126, "container namespaces: %s: %s", what, hs_strerror(errno));
	if (!s->argv)
		hold();
	if (hs_mkdir_p(s->workdir, 0755) < 0)
		child_fail(126, "mkdir %s: %s", s->workdir, hs_strerror(errno));
	for (int i = 0; i < s->nrl; i++)
		if (setrlimit(s->rl[i].res, &s->rl[i].rl) < 0)
			child_fail(126, "setrlimit: %s", hs_strerror(errno));
	if (hs_security_apply(&s->sec, &what) < 0)
		child_fail(126, "%s: %s", what, hs_strerror(errno));
	if (setgroups(s->user.ngroups, s->user.groups) < 0 || setgid(s->user.gid) < 0 ||
	    setuid(s->user.uid) < 0)
		child_fail(126, "cannot switch to uid %u: %s", s->user.uid, hs_strerror(errno));
	if (chdir(s->workdir) < 0)
		child_fail(126, "chdir to cwd (\"%s\"): %s", s->workdir, hs_strerror(errno));
	child_exec(s);
}

/* ---- spec parsing ---- */

static const struct { const char *name; int res; } rlimit_names[] = {
	{ "RLIMIT_AS", RLIMIT_AS }, { "RLIMIT_CORE", RLIMIT_CORE },
	{ "RLIMIT_CPU", RLIMIT_CPU }, { "RLIMIT_DATA", RLIMIT_DATA },
	{ "RLIMIT_FSIZE", RLIMIT_FSIZE }, { "RLIMIT_LOCKS", RLIMIT_LOCKS },
	{ "RLIMIT_MEMLOCK", RLIMIT_MEMLOCK }, { "RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE },
	{ "RLIMIT_NICE", RLIMIT_NICE }, { "RLIMIT_NOFILE", RLIMIT_NOFILE },
	{ "RLIMIT_NPROC", RLIMIT_NPROC }, { "RLIMIT_RSS", RLIMIT_RSS },
	{ "RLIMIT_RTPRIO", RLIMIT_RTPRIO }, { "RLIMIT_RTTIME", RLIMIT_RTTIME },
	{ "RLIMIT_SIGPENDING", RLIMIT_SIGPENDING }, { "RLIMIT_STACK", RLIMIT_STACK },
};

static int parse_rlimits(json_t *spec, struct spawn *s, struct hs_err *err)
{
	json_t *arr, *item;
	size_t i;

	if (hs_json_array(spec, "rlimits", JSON_OBJECT, &arr, err) < 0)
		return -1;
	if (json_array_size(arr) > HS_MAX_RLIMITS)
		return hs_fail(err, "too many rlimits");
	json_array_foreach(arr, i, item) {
		const char *type;
		long long soft, hard;
		size_t k;

		if (hs_json_str(item, "type", 1, &type, err) < 0 ||
		    hs_json_int(item, "soft", 1, &soft, err) < 0 ||
		    hs_json_int(item, "hard", 1, &hard, err) < 0)
			return -1;
		for (k = 0; k < sizeof(rlimit_names) / sizeof(rlimit_names[0]); k++)
			if (strcmp(type, rlimit_names[k].name) == 0)
				break;
		if (k == sizeof(rlimit_names) / sizeof(rlimit_names[0]))
			return hs_fail(err, "unknown rlimit %s", type);
		s->rl[s->nrl].res = rlimit_names[k].res;
		s->rl[s->nrl].rl.rlim_cur = soft < 0 ? RLIM_INFINITY : (rlim_t)soft;
		s->rl[s->nrl].rl.rlim_max = hard < 0 ? RLIM_INFINITY : (rlim_t)hard;
		s->nrl++;
	}
	return 0;
}

static int parse_argv(json_t *spec, struct spawn *s, struct hs_err *err)
{
	json_t *arr, *item;
	size_t i;

	if (hs_json_array(spec, "args", JSON_STRING, &arr, err) < 0)
		return -1;
	if (json_array_size(arr) == 0 || !*json_string_value(json_array_get(arr, 0)))
		return hs_fail(err, "field \"args\": must not be empty");
	s->argv = calloc(json_array_size(arr) + 1, sizeof(char *));
	if (!s->argv)
		return hs_fail(err, "out of memory");
	json_array_foreach(arr, i, item)
		s->argv[i] = (char *)json_string_value(item);
	return 0;
}

static int add_env(char **envp, int *n, const char *key, const char *value)
{
	if (env_get(envp, key) || !value)
		return 0;
	if (asprintf(&envp[*n], "%s=%s", key, value) < 0)
		return -1;
	(*n)++;
	return 0;
}

int hs_spawn_env(json_t *spec, struct spawn *s, int terminal, struct hs_err *err)
{
	json_t *arr, *item;
	size_t i;
	int n = 0;

	if (hs_json_array(spec, "envs", JSON_OBJECT, &arr, err) < 0)
		return -1;
	s->envp = calloc(json_array_size(arr) + 5, sizeof(char *));
	if (!s->envp)
		return hs_fail(err, "out of memory");
	json_array_foreach(arr, i, item) {
		const char *key, *value = "";

		if (hs_json_str(item, "env", 1, &key, err) < 0 ||
		    hs_json_str(item, "value", 0, &value, err) < 0)
			return -1;
		if (!*key || strchr(key, '='))
			return hs_fail(err, "bad environment variable name \"%s\"", key);
		if (asprintf(&s->envp[n], "%s=%s", key, value) < 0)
			return hs_fail(err, "out of memory");
		n++;
	}
	if (add_env(s->envp, &n, "PATH", DEFAULT_PATH) < 0 ||
	    add_env(s->envp, &n, "HOME", s->user.home) < 0 ||
	    add_env(s->envp, &n, "HOSTNAME", *hs_pod_hostname() ? hs_pod_hostname() : NULL) < 0 ||
	    add_env(s->envp, &n, "TERM", terminal ? "xterm" : NULL) < 0)
		return hs_fail(err, "out of memory");
	return 0;
}

static int parse_user(json_t *spec, struct hs_container *c, struct spawn *s, struct hs_err *err)
{
	const char *user = "", *group = "";
	json_t *extra;

	if (hs_json_str(spec, "user", 0, &user, err) < 0 ||
	    hs_json_str(spec, "group", 0, &group, err) < 0 ||
	    hs_json_array(spec, "additionalGroups", JSON_STRING, &extra, err) < 0)
		return -1;
	return hs_user_resolve(c->rootfd, user, group, extra, &s->user, err);
}

void hs_spawn_free(struct spawn *s)
{
	for (char **e = s->envp; e && *e; e++)
		free(*e);
	free(s->envp);
	free(s->argv);
}

int hs_spawn_parse(struct hs_container *c, json_t *spec, struct spawn *s, const char **id,
		   struct hs_err *err)
{
	s->workdir = "/";
	s->c = c;
	if (!json_is_object(spec))
		return hs_fail(err, "field \"process\": expected an object");
	if (hs_json_str(spec, "id", 1, id, err) < 0 || hs_json_str(spec, "workdir", 0, &s->workdir, err) < 0)
		return -1;
	if (!**id)
		return hs_fail(err, "field \"id\": must not be empty");
	if (!*s->workdir)
		s->workdir = "/";
	if (*s->workdir != '/')
		return hs_fail(err, "workdir %s is not absolute", s->workdir);
	if (parse_argv(spec, s, err) < 0 || parse_rlimits(spec, s, err) < 0 ||
	    parse_user(spec, c, s, err) < 0 || hs_security_parse(spec, &s->sec, err) < 0)
		return -1;
	return 0;
}

/* ---- terminal ---- */

int hs_spawn_pty(int rootfd, json_t *spec, int *master, int *slave, struct hs_err *err)
{
	long long row = 0, col = 0;

	if (hs_json_int(spec, "row", 0, &row, err) < 0 || hs_json_int(spec, "column", 0, &col, err) < 0)
		return -1;
	*master = hs_open_in_root(rootfd, "/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_NONBLOCK, 0);
	if (*master < 0)
		*master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	if (*master < 0)
		return hs_fail(err, "open ptmx: %s", strerror(errno));
	if (unlockpt(*master) < 0 ||
	    (*slave = ioctl(*master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) {
		close(*master);
		return hs_fail(err, "pty: %s", strerror(errno));
	}
	if (row > 0 && col > 0) {
		struct winsize ws = { .ws_row = row, .ws_col = col };

		ioctl(*master, TIOCSWINSZ, &ws);
	}
	return 0;
}

/* ---- fork, exec, and the check that exec happened ---- */

/* the child's report: EOF (exec done) or a struct child_error; then reaps a failed child */
static int await_exec(pid_t pid, int fd, struct hs_err *err)
{
	struct child_error ce;
	ssize_t n;

	do
		n = read(fd, &ce, sizeof(ce));
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n == 0)
		return 0;
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(ce))
		return hs_fail(err, "process setup failed before exec");
	ce.msg[sizeof(ce.msg) - 1] = '\0';
	err->exit_code = ce.exit_code;
	return hs_fail(err, "%s", ce.msg);
}

/* a cloned init waits until the agent holds its namespaces (a quick exit would lose them) */
static void await_go(int fd)
{
	char go;
	ssize_t n;

	do
		n = read(fd, &go, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1)
		_exit(126);
	close(fd);
}

/* the agent's side of a cloned init: keep its namespaces, then let it go on */
static int release_init(struct spawn *s, pid_t pid, int go, struct hs_err *err)
{
	int rc = hs_ns_open(&s->c->ns, pid, err);

	if (rc == 0 && write(go, "g", 1) != 1)
		rc = hs_fail(err, "start the container's init: %s", hs_strerror(errno));
	close(go);
	if (rc < 0) {
		hs_ns_close(&s->c->ns);
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	return rc;
}

pid_t hs_spawn_run(struct spawn *s, struct hs_err *err)
{
	int report[2], go[2] = {-1, -1};
	pid_t pid;

	if (pipe2(report, O_CLOEXEC) < 0)
		return hs_fail(err, "pipe: %s", strerror(errno));
	if (s->init && pipe2(go, O_CLOEXEC) < 0) {
		close(report[0]);
		close(report[1]);
		return hs_fail(err, "pipe: %s", strerror(errno));
	}
	pid = s->init ? hs_ns_clone() : hs_ns_fork_into(&s->c->ns, err);
	if (pid == 0) {
		close(report[0]);
		report_fd = report[1];
		if (s->init) {
			close(go[1]);
			await_go(go[0]);
		}
		child(s);
	}
	close(report[1]);
	if (s->init)
		close(go[0]);
	if (pid < 0) {
		close(report[0]);
		if (s->init) {
			close(go[1]);
			hs_fail(err, "clone: %s", strerror(errno));
		}
		return -1;
	}
	if (s->init && release_init(s, pid, go[1], err) < 0) {
		close(report[0]);
		return -1;
	}
	return await_exec(pid, report[0], err) < 0 ? -1 : pid;
}

pid_t hs_spawn_holder(struct hs_container *c, struct hs_err *err)
{
	struct spawn s = { .c = c, .init = 1 };
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	pid_t pid;

	if (null < 0)
		return hs_fail(err, "open /dev/null: %s", strerror(errno));
	s.fd[0] = s.fd[1] = s.fd[2] = s.fd[3] = null;
	pid = hs_spawn_run(&s, err);
	close(null);
	return pid;
}
