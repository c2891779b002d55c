#define _GNU_SOURCE
#include "archive.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "container.h"
#include "event.h"
#include "fsmeta.h"
#include "tar.h"
#include "util.h"

struct dir_time {
	char *rel;
	struct timespec mtime;
};

struct in_job {
	struct in_job *next;
	struct hs_container *c;
	char *id;
	uint64_t seq;
	int no_overwrite;          /* noOverwriteDirNonDir */
	char dest[PATH_MAX];       /* the directory extracted into, in the container */
	char dest_real[PATH_MAX];  /* the same as a guest path: what "beneath" means */
	struct hs_untar tar;
	struct hs_err err;
	int dir;                   /* the current entry's directory (the cached one) */
	char base[NAME_MAX + 1];   /* the current entry's name in it; "" when skipped */
	char cached[PATH_MAX];     /* relative path of dir */
	int file;                  /* regular file being written, or -1 */
	struct dir_time *dirs;     /* directory mtimes, set last */
	size_t ndirs;
};

static struct in_job *jobs;

/* ---- resolution ---- */

static int fail(struct in_job *j, int e, const char *fmt, const char *name)
{
	char what[HS_ERRLEN];

	snprintf(what, sizeof(what), fmt, name);
	return hs_fail_errno(&j->err, e, "%s%s%s", what, e ? ": " : "", e ? hs_strerror(e) : "");
}

/* tar name -> path relative to dest: no "." or empty components; ".." refused */
static int clean_name(struct in_job *j, const char *name, char *rel, size_t len)
{
	char buf[PATH_MAX], *save = NULL;
	size_t used = 0;

	if (snprintf(buf, sizeof(buf), "%s", name) >= (int)sizeof(buf))
		return fail(j, ENAMETOOLONG, "entry \"%.200s\"", name);
	rel[0] = '\0';
	for (char *c = strtok_r(buf, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (!strcmp(c, "."))
			continue;
		if (!strcmp(c, ".."))
			return fail(j, 0, "refusing entry \"%.200s\": \"..\" leads outside the target",
				    name);
		used += snprintf(rel + used, len - used, "%s%s", used ? "/" : "", c);
		if (used >= len)
			return fail(j, ENAMETOOLONG, "entry \"%.200s\"", name);
	}
	return 0;
}

static int beneath(struct in_job *j, int fd)
{
	char real[PATH_MAX];
	size_t n = strlen(j->dest_real);

	return hs_fd_real_path(fd, real, sizeof(real)) == 0 && !strncmp(real, j->dest_real, n) &&
	       (real[n] == '\0' || real[n] == '/' || !strcmp(j->dest_real, "/"));
}

/*
 * The directory rel (relative to dest), one component at a time: each resolved in
 * the container's root, then checked to be under dest before anything is made in
 * it. Missing components are created when create is set. An O_PATH fd, or -1.
 */
static int resolve_dir(struct in_job *j, const char *rel, int create, const char *entry)
{
	char path[2 * PATH_MAX];
	size_t base = (size_t)snprintf(path, sizeof(path), "%s", j->dest);
	int fd = hs_open_in_root(j->c->rootfd, path, O_PATH | O_DIRECTORY, 0);

	for (const char *p = rel; fd >= 0 && *p;) {
		const char *end = strchrnul(p, '/');
		int next;

		snprintf(path + base, sizeof(path) - base, "/%.*s", (int)(end - rel), rel);
		next = hs_open_in_root(j->c->rootfd, path, O_PATH | O_DIRECTORY, 0);
		if (next < 0 && errno == ENOENT && create) {
			char comp[NAME_MAX + 1];

			snprintf(comp, sizeof(comp), "%.*s", (int)(end - p), p);
			if (mkdirat(fd, comp, 0755) == 0 || errno == EEXIST)
				next = hs_open_in_root(j->c->rootfd, path, O_PATH | O_DIRECTORY, 0);
		}
		close(fd);
		if (next < 0)
			return fail(j, errno, "directory of \"%.200s\"", entry);
		if (!beneath(j, next)) {
			close(next);
			return fail(j, EXDEV, "refusing entry \"%.200s\": a symlink leads outside the target",
				    entry);
		}
		fd = next;
		p = *end ? end + 1 : end;
	}
	return fd < 0 ? fail(j, errno, "open %.200s", j->dest) : fd;
}

/* splits rel at its last '/' into the directory part (in dir) and the name */
static void split_rel(const char *rel, char *dir, size_t dlen, char *name, size_t nlen)
{
	const char *slash = strrchr(rel, '/');

	snprintf(dir, dlen, "%.*s", slash ? (int)(slash - rel) : 0, rel);
	snprintf(name, nlen, "%s", slash ? slash + 1 : rel);
}

static void drop_cache(struct in_job *j)
{
	if (j->dir >= 0)
		close(j->dir);
	j->dir = -1;
	j->cached[0] = '\0';
}

/*
 * The entry's directory; consecutive entries of one directory share the lookup.
 * Only an entry of another directory can replace this one or a parent, and that
 * entry moves the cache, so the next entry here resolves (and checks) again.
 */
static int entry_dir(struct in_job *j, const char *dir, const char *entry)
{
	if (j->dir >= 0 && !strcmp(dir, j->cached))
		return 0;
	drop_cache(j);
	j->dir = resolve_dir(j, dir, 1, entry);
	if (j->dir < 0)
		return -1;
	snprintf(j->cached, sizeof(j->cached), "%s", dir);
	return 0;
}

/* ---- extraction ---- */

/* what is in the way goes, unless it is a directory the entry (a directory) reuses */
static int clear_place(struct in_job *j, const struct hs_tar_entry *e)
{
	struct stat st;
	int is_dir = e->type == HS_TAR_DIR;

	if (fstatat(j->dir, j->base, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : fail(j, errno, "stat \"%.200s\"", e->name);
	if (j->no_overwrite && S_ISDIR(st.st_mode) != is_dir)
		return fail(j, EEXIST,
			    is_dir ? "cannot overwrite non-directory with directory \"%.200s\""
				   : "cannot overwrite directory with non-directory \"%.200s\"",
			    e->name);
	if (S_ISDIR(st.st_mode) && is_dir)
		return 1;
	if (hs_remove_all(j->dir, j->base) < 0)
		return fail(j, errno, "replace \"%.200s\"", e->name);
	return 0;
}

static int hard_link(struct in_job *j, const struct hs_tar_entry *e)
{
	char rel[PATH_MAX], dir[PATH_MAX], name[NAME_MAX + 1];
	int fd, rc;

	if (clean_name(j, e->linkname, rel, sizeof(rel)) < 0)
		return -1;
	if (!*rel)
		return fail(j, EINVAL, "hard link \"%.200s\" to the target itself", e->name);
	split_rel(rel, dir, sizeof(dir), name, sizeof(name));
	fd = resolve_dir(j, dir, 0, e->name);
	if (fd < 0)
		return -1;
	rc = linkat(fd, name, j->dir, j->base, 0);
	close(fd);
	return rc < 0 ? fail(j, errno, "hard link \"%.200s\"", e->name) : 0;
}

static int create(struct in_job *j, const struct hs_tar_entry *e)
{
	switch (e->type) {
	case HS_TAR_DIR:
		return mkdirat(j->dir, j->base, 0700) < 0 ? fail(j, errno, "mkdir \"%.200s\"", e->name) : 0;
	case HS_TAR_REG:
		j->file = openat(j->dir, j->base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
				 0600);
		return j->file < 0 ? fail(j, errno, "create \"%.200s\"", e->name) : 0;
	case HS_TAR_SYMLINK:
		return symlinkat(e->linkname, j->dir, j->base) < 0
			       ? fail(j, errno, "symlink \"%.200s\"", e->name)
			       : 0;
	case HS_TAR_CHR:
	case HS_TAR_BLK:
	case HS_TAR_FIFO: {
		mode_t type = e->type == HS_TAR_CHR ? S_IFCHR : e->type == HS_TAR_BLK ? S_IFBLK : S_IFIFO;

		return mknodat(j->dir, j->base, type | 0600, makedev(e->devmajor, e->devminor)) < 0
			       ? fail(j, errno, "mknod \"%.200s\"", e->name)
			       : 0;
	}
	default:
		return fail(j, EINVAL, "entry \"%.200s\": unsupported tar entry type", e->name);
	}
}

static int on_entry(void *ctx, struct hs_tar_entry *e)
{
	struct in_job *j = ctx;
	char rel[PATH_MAX], dir[PATH_MAX];
	int rc;

	j->base[0] = '\0';
	if (clean_name(j, e->name, rel, sizeof(rel)) < 0)
		return -1;
	if (!*rel)
		return 0; /* the archive's "." is the target itself: left as it is */
	split_rel(rel, dir, sizeof(dir), j->base, sizeof(j->base));
	if (entry_dir(j, dir, e->name) < 0 || (rc = clear_place(j, e)) < 0)
		return -1;
	if (e->type == HS_TAR_LINK) {
		rc = hard_link(j, e);
		j->base[0] = '\0'; /* a second name of an inode already extracted: no metadata */
		return rc;
	}
	return rc == 1 ? 0 : create(j, e);
}

static int on_data(void *ctx, const char *p, size_t n)
{
	struct in_job *j = ctx;

	while (j->file >= 0 && n) {
		ssize_t w = write(j->file, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return fail(j, errno, "write \"%.200s\"", j->tar.cur.name);
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int remember_dir(struct in_job *j, const struct hs_tar_entry *e)
{
	struct dir_time *d = realloc(j->dirs, (j->ndirs + 1) * sizeof(*d));

	if (!d)
		return fail(j, ENOMEM, "%s", "directory times");
	j->dirs = d;
	d[j->ndirs].mtime = e->mtime;
	if (asprintf(&d[j->ndirs].rel, "%s%s%s", j->cached, *j->cached ? "/" : "", j->base) < 0)
		return fail(j, ENOMEM, "%s", "directory times");
	j->ndirs++;
	return 0;
}

/* all data is in: xattrs, owner, mode, times (a directory's mtime once it is filled) */
static int on_end(void *ctx)
{
	struct in_job *j = ctx;
	const struct hs_tar_entry *e = &j->tar.cur;
	mode_t type = e->type == HS_TAR_SYMLINK ? S_IFLNK : 0;

	if (j->file >= 0) {
		int rc = close(j->file);

		j->file = -1;
		if (rc < 0)
			return fail(j, errno, "write \"%.200s\"", e->name);
	}
	if (!j->base[0])
		return 0;
	if (hs_xattrs_set(j->dir, j->base, &e->xattrs) < 0 && errno != ENOTSUP && errno != EOPNOTSUPP)
		return fail(j, errno, "set xattrs of \"%.200s\"", e->name);
	if (hs_meta_apply(j->dir, j->base, type | e->mode, e->uid, e->gid, &e->mtime) < 0)
		return fail(j, errno, "set owner, mode and times of \"%.200s\"", e->name);
	return e->type == HS_TAR_DIR ? remember_dir(j, e) : 0;
}

static const struct hs_untar_ops ops = { on_entry, on_data, on_end };

static int set_dir_times(struct in_job *j)
{
	char dir[PATH_MAX], name[NAME_MAX + 1];
	struct timespec ts[2];

	drop_cache(j);
	for (size_t i = j->ndirs; i-- > 0;) {
		int fd, rc;

		split_rel(j->dirs[i].rel, dir, sizeof(dir), name, sizeof(name));
		fd = resolve_dir(j, dir, 0, j->dirs[i].rel);
		if (fd < 0)
			return -1;
		ts[0] = ts[1] = j->dirs[i].mtime;
		rc = utimensat(fd, name, ts, AT_SYMLINK_NOFOLLOW);
		close(fd);
		if (rc < 0)
			return fail(j, errno, "set the time of \"%.200s\"", j->dirs[i].rel);
	}
	return 0;
}

/* ---- jobs ---- */

static void job_end(struct in_job *j, int ok)
{
	struct in_job **pj = &jobs;
	int status = ok ? 0 : j->err.errnum ? j->err.errnum : EINVAL;

	hs_event_finished(j->c->id, j->id, status, ok ? NULL : j->err.msg, 0);
	hs_log("%s/%s: archive in %s", j->c->id, j->id, ok ? "done" : j->err.msg);
	while (*pj != j)
		pj = &(*pj)->next;
	*pj = j->next;
	drop_cache(j);
	if (j->file >= 0)
		close(j->file);
	for (size_t i = 0; i < j->ndirs; i++)
		free(j->dirs[i].rel);
	free(j->dirs);
	hs_untar_free(&j->tar);
	free(j->id);
	free(j);
}

static struct in_job *find(uint64_t seq)
{
	for (struct in_job *j = jobs; j; j = j->next)
		if (j->seq == seq)
			return j;
	return NULL;
}

int hs_archive_in_data(uint64_t seq, const char *p, size_t n)
{
	struct in_job *j = find(seq);

	if (!j)
		return 0;
	if (hs_untar_feed(&j->tar, p, n) < 0)
		job_end(j, 0); /* what the host still sends for seq is dropped */
	return 1;
}

int hs_archive_in_eof(uint64_t seq)
{
	struct in_job *j = find(seq);

	if (!j)
		return 0;
	job_end(j, hs_untar_finish(&j->tar) == 0 && set_dir_times(j) == 0);
	return 1;
}

void hs_archive_in_cancel(struct hs_container *c)
{
	for (struct in_job *j = jobs, *next; j; j = next) {
		next = j->next;
		if (j->c == c) {
			hs_fail_errno(&j->err, ECANCELED, "container %s was removed", c->id);
			job_end(j, 0);
		}
	}
}

int hs_archive_in(struct hs_container *c, json_t *req, struct hs_err *err)
{
	const char *id, *path = "/";
	struct in_job *j;
	uint64_t seq;
	int fd;

	if (hs_archive_args(req, &id, &path, &seq, err) < 0)
		return -1;
	if (find(seq))
		return hs_fail(err, "seq %llu is in use", (unsigned long long)seq);
	fd = hs_open_in_root(c->rootfd, path, O_PATH | O_DIRECTORY, 0);
	if (fd < 0)
		return hs_fail_errno(err, errno, "%s: %s", path, hs_strerror(errno));
	j = calloc(1, sizeof(*j));
	if (!j || !(j->id = strdup(id)) || hs_fd_real_path(fd, j->dest_real, sizeof(j->dest_real)) < 0) {
		close(fd);
		free(j ? j->id : NULL);
		free(j);
		return hs_fail(err, "out of memory");
	}
	close(fd);
	snprintf(j->dest, sizeof(j->dest), "%s", path);
	j->c = c;
	j->seq = seq;
	j->dir = j->file = -1;
	hs_untar_init(&j->tar, &ops, j, &j->err);
	if (hs_json_bool(req, "noOverwriteDirNonDir", &j->no_overwrite, err) < 0) {
		hs_untar_free(&j->tar);
		free(j->id);
		free(j);
		return -1;
	}
	j->next = jobs;
	jobs = j;
	return 0;
}
