#define _GNU_SOURCE
#include "container.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "net.h"
#include "process.h"
#include "util.h"

#define RUN_DIR "/run/hs"
#define DISK_WAIT_MS 2000

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

int hs_pod_start(json_t *req, char *err)
{
	const char *hostname = "";
	json_t *dns, *search;
	struct hs_buf b = {0};

	if (hs_json_str(req, "hostname", 0, &hostname, err) < 0 ||
	    hs_json_array(req, "dns", JSON_STRING, &dns, err) < 0 ||
	    hs_json_array(req, "dnsSearch", JSON_STRING, &search, err) < 0)
		return -1;
	if (strlen(hostname) >= sizeof(pod.hostname))
		return hs_fail(err, "hostname too long");
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

/* ---- disks ---- */

static int find_disk_once(const char *serial, char *dev, size_t len)
{
	return hs_sysfs_find("/sys/block", "vd", "serial", serial, dev, len);
}

/* a hot-plugged disk may show up a little after the command */
static int find_disk(const char *serial, char *dev, size_t len, char *err)
{
	uint64_t deadline = hs_now_ms() + DISK_WAIT_MS;

	while (find_disk_once(serial, dev, len) < 0) {
		if (hs_now_ms() >= deadline)
			return hs_fail(err, "no disk with serial \"%s\"", serial);
		usleep(10000);
	}
	return 0;
}

/* ---- mounts ---- */

static int do_mount(struct hs_container *c, const char *src, const char *target,
		    const char *fstype, unsigned long flags, const char *data, char *err)
{
	if (c->nmounts == HS_MAX_MOUNTS)
		return hs_fail(err, "too many mounts");
	if (hs_mkdir_p(target, 0755) < 0)
		return hs_fail(err, "mkdir %s: %s", target, strerror(errno));
	if (mount(src, target, fstype, flags, data) < 0)
		return hs_fail(err, "mount %s on %s (%s): %s", src, target, fstype, strerror(errno));
	snprintf(c->mounts[c->nmounts++], HS_PATH, "%s", target);
	return 0;
}

static void unmount_all(struct hs_container *c)
{
	while (c->nmounts > 0) {
		const char *m = c->mounts[--c->nmounts];

		if (umount2(m, 0) < 0 && umount2(m, MNT_DETACH) < 0)
			hs_log("umount %s: %m", m);
	}
}

static int mount_layers(struct hs_container *c, const char *dir, const char *image,
			const char *fstype, const char *rw, char *err)
{
	char dev[300], img[HS_PATH], upper[HS_PATH], sub[2][HS_PATH + 16], opts[3 * HS_PATH + 64];

	snprintf(img, sizeof(img), "%s/image", dir);
	snprintf(upper, sizeof(upper), "%s/rw", dir);
	if (find_disk(image, dev, sizeof(dev), err) < 0 ||
	    do_mount(c, dev, img, fstype, MS_RDONLY, NULL, err) < 0)
		return -1;
	if (*rw) {
		if (find_disk(rw, dev, sizeof(dev), err) < 0 ||
		    do_mount(c, dev, upper, "ext4", 0, NULL, err) < 0)
			return -1;
	} else if (do_mount(c, "tmpfs", upper, "tmpfs", 0, "mode=755", err) < 0) {
		return -1;
	}
	snprintf(sub[0], sizeof(sub[0]), "%s/upper", upper);
	snprintf(sub[1], sizeof(sub[1]), "%s/work", upper);
	if (hs_mkdir_p(sub[0], 0755) < 0 || hs_mkdir_p(sub[1], 0755) < 0)
		return hs_fail(err, "mkdir %s: %s", upper, strerror(errno));
	snprintf(opts, sizeof(opts), "lowerdir=%s,upperdir=%s,workdir=%s", img, sub[0], sub[1]);
	return do_mount(c, "overlay", c->root, "overlay", 0, opts, err);
}

static const struct { const char *name; mode_t mode; int major, minor; } dev_nodes[] = {
	{ "null", 0666, 1, 3 }, { "zero", 0666, 1, 5 }, { "full", 0666, 1, 7 },
	{ "random", 0666, 1, 8 }, { "urandom", 0666, 1, 9 }, { "tty", 0666, 5, 0 },
};

static const struct { const char *name, *target; } dev_links[] = {
	{ "ptmx", "pts/ptmx" }, { "fd", "/proc/self/fd" }, { "stdin", "/proc/self/fd/0" },
	{ "stdout", "/proc/self/fd/1" }, { "stderr", "/proc/self/fd/2" }, { "core", "/proc/kcore" },
};

static int populate_dev(const char *dev, char *err)
{
	char path[HS_PATH + 32];

	for (size_t i = 0; i < sizeof(dev_nodes) / sizeof(dev_nodes[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dev, dev_nodes[i].name);
		if (mknod(path, S_IFCHR | dev_nodes[i].mode,
			  makedev(dev_nodes[i].major, dev_nodes[i].minor)) < 0 ||
		    chmod(path, dev_nodes[i].mode) < 0)
			return hs_fail(err, "mknod %s: %s", path, strerror(errno));
	}
	for (size_t i = 0; i < sizeof(dev_links) / sizeof(dev_links[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dev, dev_links[i].name);
		if (symlink(dev_links[i].target, path) < 0)
			return hs_fail(err, "symlink %s: %s", path, strerror(errno));
	}
	return 0;
}

/* the kernel file systems a container sees, like Docker's defaults */
static int mount_inner(struct hs_container *c, char *err)
{
	char p[HS_PATH + 16];
	const unsigned long nsd = MS_NOSUID | MS_NODEV | MS_NOEXEC;

#define AT(sub) (snprintf(p, sizeof(p), "%s%s", c->root, sub), p)
	if (do_mount(c, "proc", AT("/proc"), "proc", nsd, NULL, err) < 0 ||
	    do_mount(c, "sysfs", AT("/sys"), "sysfs", nsd | MS_RDONLY, NULL, err) < 0 ||
	    do_mount(c, "tmpfs", AT("/dev"), "tmpfs", MS_NOSUID, "mode=755,size=65536k", err) < 0 ||
	    populate_dev(AT("/dev"), err) < 0 ||
	    do_mount(c, "devpts", AT("/dev/pts"), "devpts", MS_NOSUID | MS_NOEXEC,
		     "newinstance,ptmxmode=0666,mode=0620,gid=5", err) < 0 ||
	    do_mount(c, "shm", AT("/dev/shm"), "tmpfs", nsd, "mode=1777,size=65536k", err) < 0)
		return -1;
	/* Docker mounts nothing on /tmp; it only has to exist, world-writable when we create it */
	if (faccessat(c->rootfd, "tmp", F_OK, AT_SYMLINK_NOFOLLOW) < 0 &&
	    (hs_mkdir_in_root(c->rootfd, "/tmp", 0755) < 0 || chmod(AT("/tmp"), 01777) < 0))
		return hs_fail(err, "mkdir /tmp: %s", strerror(errno));
#undef AT
	return 0;
}

static int write_etc(struct hs_container *c, char *err)
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

static int write_sysctls(json_t *sysctl, char *err)
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
		if (hs_write_text(path, text) < 0)
			return hs_fail(err, "sysctl %s: %s", key, strerror(errno));
	}
	return 0;
}

/* ---- containers ---- */

struct hs_container *hs_container_find(const char *id)
{
	for (struct hs_container *c = containers; c; c = c->next)
		if (strcmp(c->id, id) == 0)
			return c;
	return NULL;
}

static void container_free(struct hs_container *c)
{
	unmount_all(c);
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

static int build(struct hs_container *c, json_t *req, char *err)
{
	const char *image, *fstype = "ext4", *rw = "";
	int ro = 0;
	char dir[HS_MAX_ID + 16];

	if (hs_json_str(req, "image", 1, &image, err) < 0 ||
	    hs_json_str(req, "fstype", 0, &fstype, err) < 0 || hs_json_str(req, "rw", 0, &rw, err) < 0 ||
	    hs_json_bool(req, "readOnly", &ro, err) < 0)
		return -1;
	snprintf(dir, sizeof(dir), RUN_DIR "/%s", c->id);
	snprintf(c->root, sizeof(c->root), "%s/root", dir);
	if (mount_layers(c, dir, image, fstype, ro ? "" : rw, err) < 0)
		return -1;
	c->rootfd = open(c->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (c->rootfd < 0)
		return hs_fail(err, "open %s: %s", c->root, strerror(errno));
	if (mount_inner(c, err) < 0 || write_etc(c, err) < 0 ||
	    write_sysctls(json_object_get(req, "sysctl"), err) < 0)
		return -1;
	/* read-only: the upper layer only holds what was written above */
	if (ro && mount(NULL, c->root, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
		return hs_fail(err, "remount %s read-only: %s", c->root, strerror(errno));
	return 0;
}

static int start_main(struct hs_container *c, json_t *proc, char *err)
{
	if (!proc || json_is_null(proc))
		return 0;
	if (hs_proc_start(c, proc, err) < 0)
		return -1;
	c->main_proc = strdup(json_string_value(json_object_get(proc, "id")));
	return c->main_proc ? 0 : hs_fail(err, "out of memory");
}

int hs_container_new(json_t *req, char *err)
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
	c->rootfd = -1;
	if (build(c, req, err) < 0 || start_main(c, json_object_get(req, "process"), err) < 0) {
		hs_proc_kill_container(c);
		container_free(c);
		return -1;
	}
	c->next = containers;
	containers = c;
	hs_log("container %s: ready", id);
	return 0;
}

int hs_container_remove(const char *id, char *err)
{
	struct hs_container **pc = &containers;

	while (*pc && strcmp((*pc)->id, id) != 0)
		pc = &(*pc)->next;
	if (!*pc)
		return hs_fail(err, "no container %s", id);
	struct hs_container *c = *pc;

	*pc = c->next;
	hs_proc_kill_container(c);
	container_free(c);
	hs_log("container %s: removed", id);
	return 0;
}

void hs_container_unmount_all(void)
{
	for (struct hs_container *c = containers; c; c = c->next)
		unmount_all(c);
}
