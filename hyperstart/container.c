#define _GNU_SOURCE
#include "container.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <linux/random.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "archive.h"
#include "cgroup.h"
#include "mount.h"
#include "net.h"
#include "process.h"
#include "spawn.h"
#include "util.h"

#define RUN_DIR "/run/hs"

static struct {
	char hostname[256];
	char *resolv; /* resolv.conf text, NULL when the pod has no DNS settings */
} pod;

static struct hs_container *containers;

/* ---- pod ---- */

/* one "<prefix> <item>" line per item, or (joined) a single line for all items */
static int append_lines(json_t *arr, const char *prefix, int joined, struct hs_buf *b)
{
	json_t *item;
	size_t i;

	json_array_foreach(arr, i, item) {
		const char *s = json_string_value(item);
		const char *lead = !joined || i == 0 ? prefix : " ";
		int last = !joined || i + 1 == json_array_size(arr);

		if (hs_buf_append(b, lead, strlen(lead)) < 0 || hs_buf_append(b, s, strlen(s)) < 0 ||
		    (last && hs_buf_append(b, "\n", 1) < 0))
			return -1;
	}
	return 0;
}

#define SEED_MAX_HEX 512

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* STARTPOD's "seed" (hex): its bytes, credited in full, go into the kernel's pool and
   the CRNG is reseeded at once, so that clones of one template diverge from here on */
static int mix_seed(const char *hex, struct hs_err *err)
{
	union {
		struct rand_pool_info info;
		unsigned char raw[sizeof(struct rand_pool_info) + SEED_MAX_HEX / 2];
	} e;
	unsigned char *bytes = e.raw + offsetof(struct rand_pool_info, buf);
	size_t n = strlen(hex) / 2;
	int fd, rc = 0;

	if (!n)
		return 0;
	for (size_t i = 0; i < n; i++)
		bytes[i] = (unsigned char)(hex_digit(hex[2 * i]) << 4 | hex_digit(hex[2 * i + 1]));
	e.info.entropy_count = (int)(n * 8);
	e.info.buf_size = (int)n;
	fd = open("/dev/urandom", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return hs_fail(err, "open /dev/urandom: %s", strerror(errno));
	if (ioctl(fd, RNDADDENTROPY, &e.info) < 0)
		rc = hs_fail(err, "ioctl RNDADDENTROPY: %s", strerror(errno));
	/* ENODATA: the CRNG is not ready yet; it will be seeded from the pool, seed included */
	else if (ioctl(fd, RNDRESEEDCRNG) < 0 && errno != ENODATA)
		rc = hs_fail(err, "ioctl RNDRESEEDCRNG: %s", strerror(errno));
	close(fd);
	explicit_bzero(&e, sizeof(e));
	return rc;
}

int hs_pod_start(json_t *req, struct hs_err *err)
{
	const char *hostname = "", *seed = NULL;
	long long now = LLONG_MIN;
	json_t *dns, *search;
	struct hs_buf b = {0};

	if (hs_json_str(req, "hostname", 0, &hostname, err) < 0 ||
	    hs_json_array(req, "dns", JSON_STRING, &dns, err) < 0 ||
	    hs_json_array(req, "dnsSearch", JSON_STRING, &search, err) < 0 ||
	    hs_json_int(req, "time", 0, &now, err) < 0 || hs_json_str(req, "seed", 0, &seed, err) < 0)
		return -1;
	if (strlen(hostname) >= sizeof(pod.hostname))
		return hs_fail(err, "hostname too long");
	if (now != LLONG_MIN && now < 0)
		return hs_fail(err, "field \"time\": expected nanoseconds since the epoch, got %lld", now);
	if (seed) {
		size_t len = strlen(seed);

		if (len % 2 || len > SEED_MAX_HEX)
			return hs_fail(err, "field \"seed\": expected an even number of hex digits, at most %d, got %zu",
				       SEED_MAX_HEX, len);
		for (size_t i = 0; i < len; i++)
			if (hex_digit(seed[i]) < 0)
				return hs_fail(err, "field \"seed\": not a hex digit at offset %zu", i);
	}
	if (now != LLONG_MIN) {
		struct timespec ts = { .tv_sec = now / 1000000000LL, .tv_nsec = now % 1000000000LL };

		if (clock_settime(CLOCK_REALTIME, &ts) < 0)
			return hs_fail(err, "clock_settime: %s", strerror(errno));
	}
	if (seed && mix_seed(seed, err) < 0)
		return -1;
	if (*hostname && sethostname(hostname, strlen(hostname)) < 0)
		return hs_fail(err, "sethostname: %s", strerror(errno));
	snprintf(pod.hostname, sizeof(pod.hostname), "%s", hostname);
	if (append_lines(dns, "nameserver ", 0, &b) < 0 || append_lines(search, "search ", 1, &b) < 0 ||
	    hs_buf_append(&b, "", 1) < 0) {
		hs_buf_free(&b);
		return hs_fail(err, "out of memory");
	}
	free(pod.resolv);
	pod.resolv = b.len > 1 ? b.data : NULL;
	if (!pod.resolv)
		hs_buf_free(&b);
	return 0;
}

const char *hs_pod_hostname(void)
{
	return pod.hostname;
}

static int write_etc(struct hs_container *c, struct hs_err *err)
{
	char hosts[1024];
	const char *h = pod.hostname;
	const char *ip = *hs_net_first_ip() ? hs_net_first_ip() : "127.0.1.1";

	snprintf(hosts, sizeof(hosts), "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s%s%s%s",
		 *h ? ip : "", *h ? "\t" : "", h, *h ? "\n" : "");
	if (hs_write_in_root(c->rootfd, "/etc/hosts", hosts, strlen(hosts), 0644) < 0)
		return hs_fail(err, "write /etc/hosts: %s", strerror(errno));
	if (*h) {
		snprintf(hosts, sizeof(hosts), "%s\n", h);
		if (hs_write_in_root(c->rootfd, "/etc/hostname", hosts, strlen(hosts), 0644) < 0)
			return hs_fail(err, "write /etc/hostname: %s", strerror(errno));
	}
	if (pod.resolv && hs_write_in_root(c->rootfd, "/etc/resolv.conf", pod.resolv,
					   strlen(pod.resolv), 0644) < 0)
		return hs_fail(err, "write /etc/resolv.conf: %s", strerror(errno));
	return 0;
}

/* checks (write 0) or writes the "sysctl" object: written by the container's init, so
   that those of its IPC and UTS namespaces apply to it (net.* are the guest's) */
static int sysctls(json_t *sysctl, int write, struct hs_err *err)
{
	const char *key;
	json_t *v;

	if (sysctl && !json_is_object(sysctl))
		return hs_fail(err, "field \"sysctl\": expected an object");
	json_object_foreach(sysctl, key, v) {
		char path[512], value[64];
		const char *text = value;

		if (!*key || strchr(key, '/') || strstr(key, ".."))
			return hs_fail(err, "bad sysctl name \"%s\"", key);
		if (json_is_string(v))
			text = json_string_value(v);
		else if (json_is_integer(v))
			snprintf(value, sizeof(value), "%lld", json_integer_value(v));
		else
			return hs_fail(err, "sysctl %s: expected a string", key);
		snprintf(path, sizeof(path), "/proc/sys/%s", key);
		for (char *s = path + 10; *s; s++)
			if (*s == '.')
				*s = '/';
		if (write && hs_write_text(path, text) < 0)
			return hs_fail(err, "sysctl %s: %s", key, strerror(errno));
	}
	return 0;
}

int hs_container_sysctls(struct hs_container *c, struct hs_err *err)
{
	return sysctls(c->sysctl, 1, err);
}

/* ---- containers ---- */

struct hs_container *hs_container_find(const char *id)
{
	for (struct hs_container *c = containers; c; c = c->next)
		if (strcmp(c->id, id) == 0)
			return c;
	return NULL;
}

void hs_container_reaped(pid_t pid)
{
	for (struct hs_container *c = containers; c; c = c->next)
		if (c->init_pid == pid)
			c->init_pid = 0;
}

static void container_free(struct hs_container *c)
{
	hs_cgroup_remove(c);
	hs_ns_close(&c->ns); /* held namespaces would keep the filesystems mounted */
	hs_mount_undo(c);
	if (c->rootfd >= 0)
		close(c->rootfd);
	free(c->main_proc);
	free(c->id);
	free(c);
}

static int valid_id(const char *id)
{
	return *id && strlen(id) < HS_MAX_ID && !strchr(id, '/') && strcmp(id, ".") && strcmp(id, "..");
}

/*
 * The root, the kernel filesystems, the files the agent writes, then the volumes
 * (so a volume on /etc or /dev/shm wins), and last the read-only remount.
 */
static int build(struct hs_container *c, json_t *req, struct hs_err *err)
{
	struct hs_mount mounts[HS_MAX_MOUNT_ENTRIES];
	int n = 0, ro = 0;

	if (hs_mounts_parse(json_object_get(req, "mounts"), mounts, &n, err) < 0 ||
	    hs_json_bool(req, "readOnly", &ro, err) < 0 ||
	    hs_json_bool(req, "privileged", &c->privileged, err) < 0)
		return -1;
	snprintf(c->dir, sizeof(c->dir), RUN_DIR "/%s", c->id);
	snprintf(c->root, sizeof(c->root), "%s/root", c->dir);
	if (hs_mount_root(c, mounts, n, err) < 0)
		return -1;
	c->rootfd = open(c->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (c->rootfd < 0)
		return hs_fail(err, "open %s: %s", c->root, strerror(errno));
	if (hs_mount_kernel_fs(c, err) < 0 || write_etc(c, err) < 0 ||
	    hs_mount_volumes(c, mounts, n, err) < 0 ||
	    sysctls(json_object_get(req, "sysctl"), 0, err) < 0)
		return -1;
	if (ro && mount(NULL, c->root, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
		return hs_fail(err, "remount %s read-only: %s", c->root, strerror(errno));
	return 0;
}

/* the init of the container's namespaces: its main process, or a holder without one */
static int start_init(struct hs_container *c, json_t *proc, struct hs_err *err)
{
	if (!proc || json_is_null(proc)) {
		pid_t pid = hs_spawn_holder(c, err);

		if (pid < 0)
			return -1;
		c->init_pid = pid;
		c->holder = 1;
		return 0;
	}
	if (hs_proc_start(c, proc, 1, err) < 0)
		return -1;
	c->main_proc = strdup(json_string_value(json_object_get(proc, "id")));
	return c->main_proc ? 0 : hs_fail(err, "out of memory");
}

int hs_container_new(json_t *req, struct hs_err *err)
{
	const char *id;
	struct hs_container *c;

	if (hs_json_str(req, "id", 1, &id, err) < 0)
		return -1;
	if (!valid_id(id))
		return hs_fail(err, "bad container id \"%s\"", id);
	if (hs_container_find(id))
		return hs_fail(err, "container %s already exists", id);
	c = calloc(1, sizeof(*c));
	if (!c || !(c->id = strdup(id))) {
		free(c);
		return hs_fail(err, "out of memory");
	}
	c->rootfd = c->cgroup_fd = -1;
	hs_ns_reset(&c->ns);
	c->sysctl = json_object_get(req, "sysctl");
	if (build(c, req, err) < 0 || hs_cgroup_create(c, err) < 0 ||
	    start_init(c, json_object_get(req, "process"), err) < 0) {
		hs_proc_kill_container(c);
		container_free(c);
		return -1;
	}
	c->sysctl = NULL; /* it was the request's */
	c->next = containers;
	containers = c;
	hs_log("container %s: ready", id);
	return 0;
}

int hs_container_relimit(struct hs_err *err)
{
	for (struct hs_container *c = containers; c; c = c->next)
		if (hs_cgroup_limit(c, err) < 0)
			return -1;
	return 0;
}

int hs_container_sync(struct hs_container *c, struct hs_err *err)
{
	for (int i = c->nmounts; i-- > 0;) {
		int fd = open(c->mounts[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (fd < 0 && errno == ENOTDIR)
			continue; /* a device node bound on /dev: nothing to sync */
		if (fd < 0 || syncfs(fd) < 0) {
			int e = errno;

			if (fd >= 0)
				close(fd);
			return hs_fail_errno(err, e, "sync %s: %s", c->mounts[i], hs_strerror(e));
		}
		close(fd);
	}
	return 0;
}

int hs_container_remove(const char *id, struct hs_err *err)
{
	struct hs_container **pc = &containers;

	while (*pc && strcmp((*pc)->id, id) != 0)
		pc = &(*pc)->next;
	if (!*pc)
		return hs_fail(err, "no container %s", id);
	struct hs_container *c = *pc;

	*pc = c->next;
	hs_archive_cancel(c);
	hs_proc_kill_container(c);
	container_free(c);
	hs_log("container %s: removed", id);
	return 0;
}

void hs_container_unmount_all(void)
{
	for (struct hs_container *c = containers; c; c = c->next) {
		hs_ns_close(&c->ns);
		hs_mount_undo(c);
	}
}
