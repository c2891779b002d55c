#define _GNU_SOURCE
#include "fsmeta.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define XATTR_LIST_MAX_BYTES 65536

static size_t slot(const struct hs_links *l, dev_t dev, ino_t ino)
{
	uint64_t h = ((uint64_t)dev * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)ino * 0xc2b2ae3d27d4eb4full);

	return (size_t)(h % l->cap);
}

const char *hs_links_find(const struct hs_links *l, dev_t dev, ino_t ino)
{
	if (!l->cap)
		return NULL;
	for (size_t i = slot(l, dev, ino); l->v[i].path; i = (i + 1) % l->cap)
		if (l->v[i].dev == dev && l->v[i].ino == ino)
			return l->v[i].path;
	return NULL;
}

static int links_grow(struct hs_links *l)
{
	struct hs_links bigger = { .cap = l->cap ? l->cap * 2 : 64 };

	bigger.v = calloc(bigger.cap, sizeof(*bigger.v));
	if (!bigger.v)
		return errno = ENOMEM, -1;
	for (size_t i = 0; i < l->cap; i++) {
		if (!l->v[i].path)
			continue;
		size_t j = slot(&bigger, l->v[i].dev, l->v[i].ino);

		while (bigger.v[j].path)
			j = (j + 1) % bigger.cap;
		bigger.v[j] = l->v[i];
	}
	bigger.n = l->n;
	free(l->v);
	*l = bigger;
	return 0;
}

int hs_links_add(struct hs_links *l, dev_t dev, ino_t ino, const char *path)
{
	size_t i;

	if ((l->n + 1) * 2 > l->cap && links_grow(l) < 0)
		return -1;
	for (i = slot(l, dev, ino); l->v[i].path; i = (i + 1) % l->cap)
		;
	l->v[i].path = strdup(path);
	if (!l->v[i].path)
		return errno = ENOMEM, -1;
	l->v[i].dev = dev;
	l->v[i].ino = ino;
	l->n++;
	return 0;
}

void hs_links_free(struct hs_links *l)
{
	for (size_t i = 0; i < l->cap; i++)
		free(l->v[i].path);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

void hs_fd_path(char *buf, size_t len, int dfd, const char *name)
{
	snprintf(buf, len, "/proc/self/fd/%d/%s", dfd, name);
}

static int no_xattrs(int e)
{
	return e == ENOTSUP || e == EOPNOTSUPP || e == ENODATA;
}

int hs_xattrs_add(struct hs_xattrs *x, const char *name, const void *value, size_t len)
{
	struct hs_xattr *v = realloc(x->v, (x->n + 1) * sizeof(*v));
	char *n, *val;

	if (!v)
		return errno = ENOMEM, -1;
	x->v = v;
	n = strdup(name);
	val = malloc(len ? len : 1);
	if (!n || !val) {
		free(n);
		free(val);
		return errno = ENOMEM, -1;
	}
	memcpy(val, value, len);
	x->v[x->n++] = (struct hs_xattr){ n, val, len };
	return 0;
}

static int get_one(const char *path, const char *key, struct hs_xattrs *out)
{
	char small[4096], *buf = small;
	ssize_t n = lgetxattr(path, key, small, sizeof(small));
	int rc;

	if (n < 0 && errno == ERANGE) {
		n = lgetxattr(path, key, NULL, 0);
		buf = n >= 0 ? malloc(n + 1) : NULL;
		n = buf ? lgetxattr(path, key, buf, n) : -1;
	}
	if (n < 0) {
		if (buf != small)
			free(buf);
		return no_xattrs(errno) ? 0 : -1; /* removed meanwhile: skip it */
	}
	rc = hs_xattrs_add(out, key, buf, n);
	if (buf != small)
		free(buf);
	return rc;
}

int hs_xattrs_get(int dfd, const char *name, const char *skip_prefix, struct hs_xattrs *out)
{
	char path[PATH_MAX], list[XATTR_LIST_MAX_BYTES];
	ssize_t n;

	out->v = NULL;
	out->n = 0;
	hs_fd_path(path, sizeof(path), dfd, name);
	n = llistxattr(path, list, sizeof(list));
	if (n < 0)
		return no_xattrs(errno) ? 0 : -1;
	for (char *key = list; key < list + n; key += strlen(key) + 1) {
		if (skip_prefix && strncmp(key, skip_prefix, strlen(skip_prefix)) == 0)
			continue;
		if (get_one(path, key, out) < 0) {
			int e = errno;

			hs_xattrs_free(out);
			return errno = e, -1;
		}
	}
	return 0;
}

int hs_xattrs_set(int dfd, const char *name, const struct hs_xattrs *x)
{
	char path[PATH_MAX];

	hs_fd_path(path, sizeof(path), dfd, name);
	for (int i = 0; i < x->n; i++)
		if (lsetxattr(path, x->v[i].name, x->v[i].value, x->v[i].len, 0) < 0)
			return -1;
	return 0;
}

void hs_xattrs_free(struct hs_xattrs *x)
{
	for (int i = 0; i < x->n; i++) {
		free(x->v[i].name);
		free(x->v[i].value);
	}
	free(x->v);
	x->v = NULL;
	x->n = 0;
}

int hs_meta_apply(int dfd, const char *name, mode_t mode, uid_t uid, gid_t gid,
		  const struct timespec *mtime)
{
	struct timespec ts[2];

	if (fchownat(dfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
		return -1;
	if (!S_ISLNK(mode) && fchmodat(dfd, name, mode & 07777, 0) < 0)
		return -1;
	ts[0] = ts[1] = *mtime;
	return utimensat(dfd, name, ts, AT_SYMLINK_NOFOLLOW);
}

static int remove_children(int fd)
{
	DIR *d = fdopendir(fd);
	struct dirent *e;
	int rc = 0;

	if (!d) {
		close(fd);
		return -1;
	}
	while (rc == 0 && (e = readdir(d))) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			rc = hs_remove_all(dirfd(d), e->d_name);
	}
	closedir(d);
	return rc;
}

int hs_remove_all(int dfd, const char *name)
{
	int fd;

	if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -1;
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || remove_children(fd) < 0)
		return -1;
	return unlinkat(dfd, name, AT_REMOVEDIR);
}

int hs_dir_is_empty(int dfd)
{
	int fd = fcntl(dfd, F_DUPFD_CLOEXEC, 3), empty = 1;
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	struct dirent *e;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	rewinddir(d);
	while (empty && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (strcmp(e->d_name, "lost+found") == 0) {
			int sub = openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			empty = sub >= 0 && hs_dir_is_empty(sub);
			if (sub >= 0)
				close(sub);
		} else {
			empty = 0;
		}
	}
	closedir(d);
	return empty;
}
