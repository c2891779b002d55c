#define _GNU_SOURCE
#include "mount.h"

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

#include "container.h"
#include "copy.h"
#include "fsmeta.h"
#include "util.h"

#define DISK_WAIT_MS 2000
#define NINEP_OPTS "trans=virtio,version=9p2000.L"

/* a source ready for mount(2) */
struct source {
	char dev[300];
	const char *fstype;
	unsigned long flags;
	char data[1024];
};

/* ---- parsing ---- */

static int parse_one(json_t *j, size_t i, struct hs_mount *m, struct hs_err *err)
{
	*m = (struct hs_mount){ .source = "", .fstype = "", .options = "", .layer = "" };
	if (!json_is_object(j))
		return hs_fail(err, "mounts[%zu]: expected an object", i);
	if (hs_json_str(j, "type", 1, &m->type, err) < 0 || hs_json_str(j, "target", 1, &m->target, err) < 0 ||
	    hs_json_str(j, "source", 0, &m->source, err) < 0 ||
	    hs_json_str(j, "fstype", 0, &m->fstype, err) < 0 ||
	    hs_json_str(j, "options", 0, &m->options, err) < 0 ||
	    hs_json_str(j, "layer", 0, &m->layer, err) < 0 ||
	    hs_json_bool(j, "readonly", &m->readonly, err) < 0 ||
	    hs_json_bool(j, "populate", &m->populate, err) < 0) {
		char why[HS_ERRLEN];

		snprintf(why, sizeof(why), "%s", err->msg);
		return hs_fail(err, "mounts[%zu]: %.200s", i, why);
	}
	if (strcmp(m->type, "block") && strcmp(m->type, "9p") && strcmp(m->type, "tmpfs"))
		return hs_fail(err, "mounts[%zu]: unknown type \"%s\" (block, 9p or tmpfs)", i, m->type);
	if (strcmp(m->type, "tmpfs") && !*m->source)
		return hs_fail(err, "mounts[%zu]: a %s mount needs a source", i, m->type);
	if (m->target[0] != '/')
		return hs_fail(err, "mounts[%zu]: target \"%s\" is not absolute", i, m->target);
	if (strcmp(m->target, "/") == 0 ? strcmp(m->layer, "lower") && strcmp(m->layer, "upper")
					 : *m->layer != '\0')
		return hs_fail(err, "mounts[%zu]: layer \"lower\" or \"upper\" goes with target \"/\" only", i);
	return 0;
}

int hs_mounts_parse(json_t *arr, struct hs_mount *m, int *n, struct hs_err *err)
{
	json_t *item;
	size_t i;
	int lowers = 0, uppers = 0;

	if (!json_is_array(arr))
		return hs_fail(err, "field \"mounts\": expected an array");
	if (json_array_size(arr) > HS_MAX_MOUNT_ENTRIES)
		return hs_fail(err, "too many mounts (at most %d)", HS_MAX_MOUNT_ENTRIES);
	json_array_foreach(arr, i, item) {
		if (parse_one(item, i, &m[i], err) < 0)
			return -1;
		lowers += strcmp(m[i].layer, "lower") == 0;
		uppers += strcmp(m[i].layer, "upper") == 0;
	}
	if (!lowers)
		return hs_fail(err, "no root: a mount with target \"/\" and layer \"lower\" is needed");
	if (uppers > 1)
		return hs_fail(err, "more than one mount with layer \"upper\"");
	*n = (int)i;
	return 0;
}

/* ---- sources ---- */

/* a hot-plugged disk may show up a little after the command */
static int find_disk(const char *serial, char *dev, size_t len, struct hs_err *err)
{
	uint64_t deadline = hs_now_ms() + DISK_WAIT_MS;

	while (hs_sysfs_find("/sys/block", "vd", "serial", serial, dev, len) < 0) {
		if (hs_now_ms() >= deadline)
			return hs_fail(err, "no disk with serial \"%s\"", serial);
		usleep(10000);
	}
	return 0;
}

static const struct { const char *word; unsigned long set, clear; } flag_words[] = {
	{ "ro", MS_RDONLY, 0 }, { "rw", 0, MS_RDONLY }, { "nosuid", MS_NOSUID, 0 },
	{ "suid", 0, MS_NOSUID }, { "nodev", MS_NODEV, 0 }, { "dev", 0, MS_NODEV },
	{ "noexec", MS_NOEXEC, 0 }, { "exec", 0, MS_NOEXEC }, { "sync", MS_SYNCHRONOUS, 0 },
	{ "async", 0, MS_SYNCHRONOUS }, { "dirsync", MS_DIRSYNC, 0 }, { "noatime", MS_NOATIME, 0 },
	{ "atime", 0, MS_NOATIME }, { "nodiratime", MS_NODIRATIME, 0 },
	{ "relatime", MS_RELATIME, 0 }, { "strictatime", MS_STRICTATIME, 0 },
};

/* "size=64m,noexec": generic words become flags, the rest is the filesystem's data */
static int split_options(const char *opts, struct source *s, struct hs_err *err)
{
	char buf[1024], *save = NULL;
	size_t used = strlen(s->data);

	if (snprintf(buf, sizeof(buf), "%s", opts) >= (int)sizeof(buf))
		return hs_fail(err, "options too long");
	for (char *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
		size_t k, n = sizeof(flag_words) / sizeof(flag_words[0]);

		for (k = 0; k < n && strcmp(w, flag_words[k].word); k++)
			;
		if (k < n) {
			s->flags = (s->flags | flag_words[k].set) & ~flag_words[k].clear;
			continue;
		}
		if (used + strlen(w) + 2 > sizeof(s->data))
			return hs_fail(err, "options too long");
		used += sprintf(s->data + used, "%s%s", used ? "," : "", w);
	}
	return 0;
}

static int resolve_source(const struct hs_mount *m, struct source *s, struct hs_err *err)
{
	*s = (struct source){ .fstype = *m->fstype ? m->fstype : m->type };
	if (strcmp(m->type, "block") == 0) {
		if (!*m->fstype)
			s->fstype = "ext4";
		if (find_disk(m->source, s->dev, sizeof(s->dev), err) < 0)
			return -1;
	} else if (strcmp(m->type, "9p") == 0) {
		snprintf(s->dev, sizeof(s->dev), "%s", m->source);
		strcpy(s->data, NINEP_OPTS);
	} else {
		strcpy(s->dev, "tmpfs");
	}
	if (split_options(m->options, s, err) < 0)
		return -1;
	if (m->readonly)
		s->flags |= MS_RDONLY;
	return 0;
}

/* a container opens device nodes only in /dev (see hs_mount_kernel_fs) */
static unsigned long nodev(const struct hs_container *c)
{
	return c->privileged ? 0 : MS_NODEV;
}

/* every failure names the mount it belongs to */
static int mount_fail(const struct hs_mount *m, struct hs_err *err)
{
	char reason[HS_ERRLEN];

	snprintf(reason, sizeof(reason), "%s", err->msg);
	return hs_fail(err, "mount %s (%s%s%s%s): %s", m->target, m->type, *m->source ? " \"" : "",
		       m->source, *m->source ? "\"" : "", reason);
}

/* ---- mounting ---- */

static int track(struct hs_container *c, const char *path, struct hs_err *err)
{
	if (c->nmounts == HS_MAX_MOUNTS)
		return hs_fail(err, "too many mounts");
	snprintf(c->mounts[c->nmounts++], HS_PATH, "%s", path);
	return 0;
}

/* mounts on a path of the guest's own (the staging dirs under /run/hs) */
static int mount_guest(struct hs_container *c, const char *dev, const char *target,
		       const char *fstype, unsigned long flags, const char *data, struct hs_err *err)
{
	if (c->nmounts == HS_MAX_MOUNTS)
		return hs_fail(err, "too many mounts");
	if (hs_mkdir_p(target, 0755) < 0)
		return hs_fail(err, "mkdir %s: %s", target, hs_strerror(errno));
	if (mount(dev, target, fstype, flags, *data ? data : NULL) < 0)
		return hs_fail(err, "mount %s on %s (%s): %s", dev, target, fstype, hs_strerror(errno));
	return track(c, target, err);
}

/*
 * Mounts on a directory inside the root, created if missing: the path is resolved
 * in the root (RESOLVE_IN_ROOT), the mount made on the resolved fd, so neither
 * ".." nor a symlink of the image leads out. *covered: an fd of the directory
 * under the new mount (its former content), when asked for.
 */
static int mount_in_root(struct hs_container *c, const char *dev, const char *target,
			 const char *fstype, unsigned long flags, const char *data, int *covered,
			 struct hs_err *err)
{
	char fdpath[64], real[HS_PATH];
	ssize_t n;
	int fd;

	if (hs_mkdir_in_root(c->rootfd, target, 0755) < 0)
		return hs_fail(err, "mkdir %s: %s", target, hs_strerror(errno));
	fd = hs_open_in_root(c->rootfd, target, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return hs_fail(err, "open %s: %s", target, hs_strerror(errno));
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", fd);
	n = readlink(fdpath, real, sizeof(real) - 1);
	if (n < 0 || (size_t)n == sizeof(real) - 1) {
		close(fd);
		return hs_fail(err, "resolve %s: %s", target, hs_strerror(n < 0 ? errno : ENAMETOOLONG));
	}
	real[n] = '\0';
	if (mount(dev, fdpath, fstype, flags, data && *data ? data : NULL) < 0) {
		int e = errno;

		close(fd);
		return hs_fail(err, "%s", hs_strerror(e));
	}
	if (track(c, real, err) < 0) {
		umount2(real, MNT_DETACH);
		close(fd);
		return -1;
	}
	if (covered)
		*covered = fd;
	else
		close(fd);
	return 0;
}

int hs_mount_root(struct hs_container *c, const struct hs_mount *m, int n, struct hs_err *err)
{
	char stage[HS_MAX_ID + 48], lowers[2048] = "", opts[4096], work[HS_MAX_ID + 64];
	const struct hs_mount *upper = NULL;
	struct source s;
	int nl = 0;

	for (int i = 0; i < n; i++) {
		if (strcmp(m[i].target, "/"))
			continue;
		if (strcmp(m[i].layer, "upper") == 0) {
			upper = &m[i];
			continue;
		}
		snprintf(stage, sizeof(stage), "%s/lower%d", c->dir, nl);
		if (resolve_source(&m[i], &s, err) < 0 ||
		    mount_guest(c, s.dev, stage, s.fstype, s.flags | MS_RDONLY, s.data, err) < 0)
			return mount_fail(&m[i], err);
		if (strlen(lowers) + strlen(stage) + 2 > sizeof(lowers))
			return hs_fail(err, "too many lower layers");
		strcat(strcat(lowers, nl++ ? ":" : ""), stage);
	}
	snprintf(stage, sizeof(stage), "%s/upper", c->dir);
	if (upper ? resolve_source(upper, &s, err) < 0 ||
			    mount_guest(c, s.dev, stage, s.fstype, s.flags, s.data, err) < 0
		  : mount_guest(c, "tmpfs", stage, "tmpfs", 0, "mode=755", err) < 0)
		return upper ? mount_fail(upper, err) : -1;
	snprintf(c->upper, sizeof(c->upper), "%s/upper", stage);
	snprintf(work, sizeof(work), "%s/work", stage);
	if (hs_mkdir_p(c->upper, 0755) < 0 || hs_mkdir_p(work, 0755) < 0)
		return hs_fail(err, "mkdir %s: %s", stage, hs_strerror(errno));
	snprintf(opts, sizeof(opts), "lowerdir=%s,upperdir=%s,workdir=%s", lowers, c->upper, work);
	return mount_guest(c, "overlay", c->root, "overlay", nodev(c), opts, err);
}

static const struct { const char *name; mode_t mode; int major, minor; } dev_nodes[] = {
	{ "null", 0666, 1, 3 }, { "zero", 0666, 1, 5 }, { "full", 0666, 1, 7 },
	{ "random", 0666, 1, 8 }, { "urandom", 0666, 1, 9 }, { "tty", 0666, 5, 0 },
};

static const struct { const char *name, *target; } dev_links[] = {
	{ "ptmx", "pts/ptmx" }, { "fd", "/proc/self/fd" }, { "stdin", "/proc/self/fd/0" },
	{ "stdout", "/proc/self/fd/1" }, { "stderr", "/proc/self/fd/2" }, { "core", "/proc/kcore" },
};

#define NDEV_NODES (sizeof(dev_nodes) / sizeof(dev_nodes[0]))

static int make_nodes(int dir, struct hs_err *err)
{
	for (size_t i = 0; i < NDEV_NODES; i++) {
		const char *name = dev_nodes[i].name;

		if (mknodat(dir, name, S_IFCHR | dev_nodes[i].mode,
			    makedev(dev_nodes[i].major, dev_nodes[i].minor)) < 0 ||
		    fchmodat(dir, name, dev_nodes[i].mode, 0) < 0)
			return hs_fail(err, "mknod /dev/%s: %s", name, hs_strerror(errno));
	}
	return 0;
}

/* binds the file src on a new empty file dir/name (dir: the real path of fd dirfd) */
static int bind_file(struct hs_container *c, const char *src, int dirfd, const char *dir,
		     const char *name, struct hs_err *err)
{
	char fdpath[64], target[HS_PATH];
	int fd = openat(dirfd, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0666);

	if (fd < 0)
		return hs_fail(err, "create /dev/%s: %s", name, hs_strerror(errno));
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", fd);
	if (mount(src, fdpath, NULL, MS_BIND, NULL) < 0) {
		int e = errno;

		close(fd);
		return hs_fail(err, "bind /dev/%s: %s", name, hs_strerror(e));
	}
	close(fd);
	if (snprintf(target, sizeof(target), "%s/%s", dir, name) >= (int)sizeof(target)) {
		umount2(fdpath, MNT_DETACH);
		return hs_fail(err, "bind /dev/%s: path too long", name);
	}
	return track(c, target, err);
}

/*
 * The container's /dev is nodev: a node it makes there (CAP_MKNOD, as Docker allows)
 * cannot be opened, so the guest's disks and virtio ports stay out of reach. The
 * nodes it may open are made on a tmpfs of the agent's and bound one by one.
 */
static int bind_nodes(struct hs_container *c, int dev, const char *devpath, struct hs_err *err)
{
	char stage[HS_MAX_ID + 48], src[HS_MAX_ID + 96];
	int nodes, rc;

	snprintf(stage, sizeof(stage), "%s/devnodes", c->dir);
	if (mount_guest(c, "tmpfs", stage, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=64k", err) < 0)
		return -1;
	nodes = open(stage, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (nodes < 0)
		return hs_fail(err, "open %s: %s", stage, hs_strerror(errno));
	rc = make_nodes(nodes, err);
	close(nodes);
	for (size_t i = 0; rc == 0 && i < NDEV_NODES; i++) {
		snprintf(src, sizeof(src), "%s/%s", stage, dev_nodes[i].name);
		rc = bind_file(c, src, dev, devpath, dev_nodes[i].name, err);
	}
	return rc;
}

/* dev: the fresh tmpfs on the container's /dev, devpath: its real path */
static int populate_dev(struct hs_container *c, int dev, const char *devpath, struct hs_err *err)
{
	if (c->privileged ? make_nodes(dev, err) < 0 : bind_nodes(c, dev, devpath, err) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(dev_links) / sizeof(dev_links[0]); i++)
		if (symlinkat(dev_links[i].target, dev, dev_links[i].name) < 0)
			return hs_fail(err, "symlink /dev/%s: %s", dev_links[i].name, hs_strerror(errno));
	return 0;
}

static int kernel_fs(struct hs_container *c, const char *fstype, const char *target,
		     unsigned long flags, const char *data, struct hs_err *err)
{
	char why[HS_ERRLEN];

	if (mount_in_root(c, fstype, target, fstype, flags, data, NULL, err) == 0)
		return 0;
	snprintf(why, sizeof(why), "%s", err->msg);
	return hs_fail(err, "mount %s on %s: %s", fstype, target, why);
}

int hs_mount_kernel_fs(struct hs_container *c, struct hs_err *err)
{
	const unsigned long nsd = MS_NOSUID | MS_NODEV | MS_NOEXEC;
	char devpath[HS_PATH];
	int dev, rc;

	/* /proc is mounted by the container's init, in its own PID namespace */
	if (hs_mkdir_in_root(c->rootfd, "/proc", 0555) < 0)
		return hs_fail(err, "mkdir /proc: %s", hs_strerror(errno));
	if (kernel_fs(c, "sysfs", "/sys", nsd | (c->privileged ? 0 : MS_RDONLY), NULL, err) < 0 ||
	    kernel_fs(c, "tmpfs", "/dev", MS_NOSUID | nodev(c), "mode=755,size=65536k", err) < 0)
		return -1;
	snprintf(devpath, sizeof(devpath), "%s", c->mounts[c->nmounts - 1]);
	dev = hs_open_in_root(c->rootfd, "/dev", O_RDONLY | O_DIRECTORY, 0);
	if (dev < 0)
		return hs_fail(err, "open /dev: %s", hs_strerror(errno));
	rc = populate_dev(c, dev, devpath, err);
	close(dev);
	if (rc < 0 ||
	    kernel_fs(c, "devpts", "/dev/pts", MS_NOSUID | MS_NOEXEC,
		      "newinstance,ptmxmode=0666,mode=0620,gid=5", err) < 0 ||
	    kernel_fs(c, "tmpfs", "/dev/shm", nsd, "mode=1777,size=65536k", err) < 0)
		return -1;
	/* Docker mounts nothing on /tmp; it only has to exist, world-writable when we create it */
	if (faccessat(c->rootfd, "tmp", F_OK, AT_SYMLINK_NOFOLLOW) < 0 &&
	    (hs_mkdir_in_root(c->rootfd, "/tmp", 0755) < 0 ||
	     fchmodat(c->rootfd, "tmp", 01777, 0) < 0))
		return hs_fail(err, "mkdir /tmp: %s", hs_strerror(errno));
	return 0;
}

/* Docker's copy of the image's content into a new volume: only when the volume is empty */
static int populate(struct hs_container *c, const struct hs_mount *m, int covered,
		    struct hs_err *err)
{
	int fresh = hs_open_in_root(c->rootfd, m->target, O_RDONLY | O_DIRECTORY, 0);
	struct stat st;
	int rc = 0;

	if (fresh < 0)
		return hs_fail(err, "open the new mount: %s", hs_strerror(errno));
	if (hs_dir_is_empty(fresh)) {
		rc = hs_copy_tree(covered, fresh, err);
		if (rc == 0 && (fstat(covered, &st) < 0 || fchown(fresh, st.st_uid, st.st_gid) < 0 ||
				fchmod(fresh, st.st_mode & 07777) < 0))
			rc = hs_fail(err, "copy owner and mode: %s", hs_strerror(errno));
	}
	close(fresh);
	return rc;
}

static int mount_volume(struct hs_container *c, const struct hs_mount *m, struct hs_err *err)
{
	struct source s;
	int covered = -1, rc;

	if (resolve_source(m, &s, err) < 0)
		return -1;
	s.flags |= nodev(c);
	if (!m->populate)
		return mount_in_root(c, s.dev, m->target, s.fstype, s.flags, s.data, NULL, err);
	/* filled first, then made read-only: a bind remount touches this mount only */
	if (mount_in_root(c, s.dev, m->target, s.fstype, s.flags & ~MS_RDONLY, s.data, &covered,
			  err) < 0)
		return -1;
	rc = populate(c, m, covered, err);
	close(covered);
	if (rc == 0 && m->readonly &&
	    mount(NULL, c->mounts[c->nmounts - 1], NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | s.flags,
		  NULL) < 0)
		rc = hs_fail(err, "remount read-only: %s", hs_strerror(errno));
	return rc;
}

int hs_mount_volumes(struct hs_container *c, const struct hs_mount *m, int n, struct hs_err *err)
{
	for (int i = 0; i < n; i++)
		if (strcmp(m[i].target, "/") && mount_volume(c, &m[i], err) < 0)
			return mount_fail(&m[i], err);
	return 0;
}

void hs_mount_undo(struct hs_container *c)
{
	while (c->nmounts > 0) {
		const char *m = c->mounts[--c->nmounts];

		if (umount2(m, 0) < 0 && umount2(m, MNT_DETACH) < 0)
			hs_log("umount %s: %m", m);
	}
}
