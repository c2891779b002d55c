#define _GNU_SOURCE
#include "cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "container.h"
#include "util.h"

#define CGROUP_ROOT "/sys/fs/cgroup"
#define OOM_KILL_KEY "oom_kill "

static int enabled;

void hs_cgroup_init(void)
{
	if (mount("cgroup2", CGROUP_ROOT, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
		hs_log("mount cgroup2 on " CGROUP_ROOT ": %m (OOM kills go unreported)");
		return;
	}
	if (hs_write_text(CGROUP_ROOT "/cgroup.subtree_control", "+memory") < 0) {
		hs_log("memory controller: %m (OOM kills go unreported)");
		return;
	}
	enabled = 1;
}

static void cgroup_path(const struct hs_container *c, char *buf, size_t len)
{
	/* the prefix keeps ids off the names of the controllers' own files */
	snprintf(buf, len, CGROUP_ROOT "/c-%s", c->id);
}

int hs_cgroup_create(struct hs_container *c, struct hs_err *err)
{
	char path[HS_PATH];

	c->cgroup_fd = -1;
	if (!enabled)
		return 0;
	cgroup_path(c, path, sizeof(path));
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return hs_fail(err, "create cgroup %s: %s", path, hs_strerror(errno));
	c->cgroup_fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (c->cgroup_fd < 0)
		return hs_fail(err, "open cgroup %s: %s", path, hs_strerror(errno));
	return hs_cgroup_limit(c, err);
}

/* a "Key:   N kB" field of /proc/meminfo, in KiB; -1 when unreadable */
static long meminfo_kb(const char *key)
{
	char *text = hs_read_text("/proc/meminfo"), *at;
	long kb = -1;

	if (text && (at = strstr(text, key)))
		kb = strtol(at + strlen(key), NULL, 10);
	free(text);
	return kb;
}

/* a small file of c's cgroup into buf, NUL-terminated; -1 when unreadable */
static int read_file(const struct hs_container *c, const char *file, char *buf, size_t len)
{
	int fd = openat(c->cgroup_fd, file, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, len - 1);

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

/* the number in one of c's cgroup files; -1 when unreadable */
static long long cgroup_number(const struct hs_container *c, const char *file)
{
	char buf[32];

	return read_file(c, file, buf, sizeof(buf)) < 0 ? -1 : strtoll(buf, NULL, 10);
}

int hs_cgroup_limit(const struct hs_container *c, struct hs_err *err)
{
	long long avail, used, limit;
	char text[32];
	int fd, n;

	if (c->cgroup_fd < 0)
		return 0;
	avail = meminfo_kb("MemAvailable:");
	used = cgroup_number(c, "memory.current");
	if (avail <= 0 || used < 0)
		return hs_fail(err, "cannot tell how much memory the guest has");
	avail += used / 1024; /* what the container holds is its own */
	limit = avail > 2 * HS_CGROUP_HEADROOM_KB ? avail - HS_CGROUP_HEADROOM_KB : avail / 2;
	n = snprintf(text, sizeof(text), "%lld", limit * 1024);
	fd = openat(c->cgroup_fd, "memory.max", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, text, n) != n) {
		int e = errno;

		if (fd >= 0)
			close(fd);
		return hs_fail(err, "memory.max of container %s: %s", c->id, hs_strerror(e));
	}
	close(fd);
	hs_log("container %s: memory.max %lld KiB", c->id, limit);
	return 0;
}

int hs_cgroup_join(int fd)
{
	int procs, e;
	ssize_t n;

	if (fd < 0)
		return 0;
	procs = openat(fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
	if (procs < 0)
		return -1;
	n = write(procs, "0", 1); /* "0": the writing process */
	e = errno;
	close(procs);
	errno = e;
	return n == 1 ? 0 : -1;
}

long hs_cgroup_oom_kills(const struct hs_container *c)
{
	char buf[512], *at;

	if (c->cgroup_fd < 0 || read_file(c, "memory.events", buf, sizeof(buf)) < 0)
		return -1;
	if (strncmp(buf, OOM_KILL_KEY, strlen(OOM_KILL_KEY)) == 0)
		at = buf;
	else if ((at = strstr(buf, "\n" OOM_KILL_KEY)))
		at++;
	else
		return -1;
	return strtol(at + strlen(OOM_KILL_KEY), NULL, 10);
}

void hs_cgroup_remove(struct hs_container *c)
{
	char path[HS_PATH];

	if (c->cgroup_fd < 0)
		return;
	close(c->cgroup_fd);
	c->cgroup_fd = -1;
	cgroup_path(c, path, sizeof(path));
	if (rmdir(path) < 0)
		hs_log("remove cgroup %s: %m", path);
}
