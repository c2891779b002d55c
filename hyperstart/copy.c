#define _GNU_SOURCE
#include "copy.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsmeta.h"
#include "util.h"

#define MAX_DEPTH 256

struct copy {
	int dst_root;
	struct hs_links links;
	struct hs_err *err;
};

static int fail(struct copy *cp, const char *rel, const char *what)
{
	return hs_fail_errno(cp->err, errno, "copy %s: %s: %s", *rel ? rel : "/", what,
			     hs_strerror(errno));
}

static int copy_data(int src, const char *name, int dst, mode_t mode)
{
	int in = openat(src, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	int out = in < 0 ? -1 : openat(dst, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
				       mode & 0700);
	ssize_t n = 0;
	int e;

	while (out >= 0 && (n = sendfile(out, in, NULL, 1 << 30)) > 0)
		;
	e = errno;
	if (in >= 0)
		close(in);
	if (out >= 0 && close(out) < 0 && n == 0)
		return -1;
	return out < 0 || n < 0 ? (errno = e, -1) : 0;
}

static int copy_dir(struct copy *cp, int src, int dst, const char *rel, int depth);

/* the entry itself, without its metadata */
static int copy_node(struct copy *cp, int src, int dst, const char *name, const struct stat *st,
		     const char *rel, int depth)
{
	char target[PATH_MAX];
	ssize_t n;

	switch (st->st_mode & S_IFMT) {
	case S_IFDIR: {
		int s, d, rc;

		if (mkdirat(dst, name, 0700) < 0 && errno != EEXIST)
			return fail(cp, rel, "mkdir");
		s = openat(src, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		d = s < 0 ? -1 : openat(dst, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (d < 0) {
			if (s >= 0)
				close(s);
			return fail(cp, rel, "open");
		}
		rc = copy_dir(cp, s, d, rel, depth + 1);
		close(s);
		close(d);
		return rc;
	}
	case S_IFREG:
		return copy_data(src, name, dst, st->st_mode) < 0 ? fail(cp, rel, "write") : 0;
	case S_IFLNK:
		n = readlinkat(src, name, target, sizeof(target) - 1);
		if (n < 0)
			return fail(cp, rel, "readlink");
		target[n] = '\0';
		return symlinkat(target, dst, name) < 0 ? fail(cp, rel, "symlink") : 0;
	default:
		return mknodat(dst, name, st->st_mode, st->st_rdev) < 0 ? fail(cp, rel, "mknod") : 0;
	}
}

static int copy_meta(struct copy *cp, int src, int dst, const char *name, const struct stat *st,
		     const char *rel)
{
	struct hs_xattrs x;
	int rc;

	if (hs_xattrs_get(src, name, NULL, &x) < 0)
		return fail(cp, rel, "list xattrs");
	rc = hs_xattrs_set(dst, name, &x);
	hs_xattrs_free(&x);
	/* a volume without xattr support still gets the files */
	if (rc < 0 && errno != ENOTSUP && errno != EOPNOTSUPP)
		return fail(cp, rel, "set xattrs");
	if (hs_meta_apply(dst, name, st->st_mode, st->st_uid, st->st_gid, &st->st_mtim) < 0)
		return fail(cp, rel, "set owner, mode and times");
	return 0;
}

static int copy_entry(struct copy *cp, int src, int dst, const char *name, const char *parent,
		      int depth)
{
	char rel[PATH_MAX];
	struct stat st;
	const char *first;

	if (snprintf(rel, sizeof(rel), "%s%s%s", parent, *parent ? "/" : "", name) >= (int)sizeof(rel))
		return errno = ENAMETOOLONG, fail(cp, parent, name);
	if (fstatat(src, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return fail(cp, rel, "stat");
	if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
		first = hs_links_find(&cp->links, st.st_dev, st.st_ino);
		if (first)
			return linkat(cp->dst_root, first, dst, name, 0) < 0 ? fail(cp, rel, "link") : 0;
		if (hs_links_add(&cp->links, st.st_dev, st.st_ino, rel) < 0)
			return fail(cp, rel, "remember hard link");
	}
	if (copy_node(cp, src, dst, name, &st, rel, depth) < 0)
		return -1;
	return copy_meta(cp, src, dst, name, &st, rel);
}

static int copy_dir(struct copy *cp, int src, int dst, const char *rel, int depth)
{
	int fd = fcntl(src, F_DUPFD_CLOEXEC, 3);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	struct dirent *e;
	int rc = 0;

	if (depth > MAX_DEPTH)
		return errno = ELOOP, fail(cp, rel, "too deep");
	if (!d) {
		if (fd >= 0)
			close(fd);
		return fail(cp, rel, "read directory");
	}
	while (rc == 0 && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			rc = copy_entry(cp, src, dst, e->d_name, rel, depth);
	closedir(d);
	return rc;
}

int hs_copy_tree(int src, int dst, struct hs_err *err)
{
	struct copy cp = { .dst_root = dst, .err = err };
	int rc = copy_dir(&cp, src, dst, "", 0);

	hs_links_free(&cp.links);
	return rc;
}
