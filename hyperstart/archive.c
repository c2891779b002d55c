#define _GNU_SOURCE
#include "archive.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "container.h"
#include "util.h"

int hs_fd_real_path(int fd, char *buf, size_t len)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, buf, len - 1);
	if (n < 0 || (size_t)n == len - 1)
		return n < 0 ? -1 : (errno = ENAMETOOLONG, -1);
	buf[n] = '\0';
	return 0;
}

/* the path's last component ("" for "/"), trailing slashes ignored */
static void split_last(const char *path, char *parent, size_t plen, char *name, size_t nlen)
{
	size_t len = strlen(path);
	const char *slash;

	while (len > 1 && path[len - 1] == '/')
		len--;
	snprintf(parent, plen, "%.*s", (int)len, path);
	slash = strrchr(parent, '/');
	snprintf(name, nlen, "%s", slash ? slash + 1 : parent);
	if (slash)
		slash == parent ? (parent[1] = '\0') : (parent[slash - parent] = '\0');
	else
		strcpy(parent, "/");
}

int hs_place_find(struct hs_container *c, const char *path, struct hs_place *pl,
		  struct hs_err *err)
{
	char parent[PATH_MAX];
	const char *open_path;

	if (strlen(path) >= sizeof(parent))
		return hs_fail_errno(err, ENAMETOOLONG, "path too long");
	split_last(path, parent, sizeof(parent), pl->name, sizeof(pl->name));
	/* nothing to keep unfollowed in "/", "x/." or "x/..": resolve it all */
	open_path = !*pl->name || !strcmp(pl->name, ".") || !strcmp(pl->name, "..") ? path : parent;
	if (open_path == path)
		strcpy(pl->name, ".");
	pl->dir = hs_open_in_root(c->rootfd, open_path, O_PATH | O_DIRECTORY, 0);
	if (pl->dir < 0)
		return hs_fail_errno(err, errno, "stat %s: %s", path, hs_strerror(errno));
	return 0;
}

/* where a symlink leads, as a path in the container (its text if it leads nowhere) */
static void link_target(struct hs_container *c, const char *path, const struct hs_place *pl,
			char *buf, size_t len)
{
	int fd = hs_open_in_root(c->rootfd, path, O_PATH, 0);
	size_t rootlen = strlen(c->root);
	ssize_t n;

	if (fd >= 0 && hs_fd_real_path(fd, buf, len) == 0 && !strncmp(buf, c->root, rootlen) &&
	    (buf[rootlen] == '/' || !buf[rootlen])) {
		memmove(buf, buf + rootlen, strlen(buf + rootlen) + 1);
		if (!*buf)
			strcpy(buf, "/");
	} else {
		n = readlinkat(pl->dir, pl->name, buf, len - 1);
		buf[n < 0 ? 0 : n] = '\0';
	}
	if (fd >= 0)
		close(fd);
}

static int stat_json(struct hs_container *c, const char *path, const struct hs_place *pl,
		     json_t **out, struct hs_err *err)
{
	char parent[PATH_MAX], name[NAME_MAX + 1], target[PATH_MAX] = "";
	struct stat st;

	if (fstatat(pl->dir, pl->name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return hs_fail_errno(err, errno, "stat %s: %s", path, hs_strerror(errno));
	split_last(path, parent, sizeof(parent), name, sizeof(name));
	if (S_ISLNK(st.st_mode))
		link_target(c, path, pl, target, sizeof(target));
	*out = json_pack("{s:s, s:I, s:I, s:f, s:s}", "name", *name ? name : "/", "size",
			 (json_int_t)st.st_size, "mode", (json_int_t)st.st_mode, "mtime",
			 st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9, "linkTarget", target);
	return *out ? 0 : hs_fail(err, "out of memory");
}

int hs_archive_stat(struct hs_container *c, const char *path, json_t **out, struct hs_err *err)
{
	struct hs_place pl;
	int rc;

	if (hs_place_find(c, path, &pl, err) < 0)
		return -1;
	rc = stat_json(c, path, &pl, out, err);
	close(pl.dir);
	return rc;
}

int hs_archive_args(json_t *req, const char **id, const char **path, uint64_t *seq,
		    struct hs_err *err)
{
	long long s;

	if (hs_json_str(req, "id", 1, id, err) < 0 || hs_json_str(req, "path", 0, path, err) < 0 ||
	    hs_json_int(req, "seq", 1, &s, err) < 0)
		return -1;
	if (!**id)
		return hs_fail(err, "field \"id\": must not be empty");
	if (s <= 0)
		return hs_fail(err, "field \"seq\": must be positive");
	*seq = (uint64_t)s;
	return 0;
}

void hs_archive_cancel(struct hs_container *c)
{
	hs_archive_out_cancel(c);
	hs_archive_in_cancel(c);
}
