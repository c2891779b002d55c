#define _GNU_SOURCE
#include "archive.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "api.h"
#include "channel.h"
#include "container.h"
#include "event.h"
#include "fsmeta.h"
#include "tar.h"
#include "util.h"

#define FRAME (HYPER_MAX_STREAM_FRAME - HYPER_STREAM_HEADER_SIZE)
#define MAX_DEPTH 256
/* archive bytes sent per job and loop iteration, so commands keep being served */
#define SLICE (1u << 20)
#define OVERLAY_XATTRS "trusted.overlay."
#define PROC_SUPER_MAGIC 0x9fa0
#define SYSFS_MAGIC 0x62656572
#define DEVPTS_SUPER_MAGIC 0x1cd1

struct level {
	DIR *d;
	size_t name_len; /* of job->name while this directory is read */
};

struct out_job {
	struct out_job *next;
	struct hs_container *c;
	char *id;
	uint64_t seq;
	int changes;
	struct level stack[MAX_DEPTH];
	int depth;
	char name[PATH_MAX + 1]; /* archive name of the directory being read, "/"-terminated */
	int file;                /* regular file whose data is being sent, or -1 */
	uint64_t left, size;     /* its bytes still to send, its size in the header */
	struct hs_links links;
	struct hs_buf out;       /* tar bytes not yet sent */
	int walked;              /* the end-of-archive blocks are in out */
	int status;              /* 0, or the errno that stopped the walk */
	struct hs_err err;
};

static struct out_job *jobs;

/* ---- entries ---- */

static int job_fail(struct out_job *j, int e, const char *what, const char *name)
{
	j->status = e ? e : EIO;
	return hs_fail(&j->err, "%s %s: %s", what, *name ? name : "/", hs_strerror(j->status));
}

/* proc, sysfs and devpts content is the kernel's, not the container's */
static int skip_content(int fd)
{
	struct statfs sf;

	return fstatfs(fd, &sf) == 0 && (sf.f_type == PROC_SUPER_MAGIC || sf.f_type == SYSFS_MAGIC ||
					 sf.f_type == DEVPTS_SUPER_MAGIC);
}

static int push_dir(struct out_job *j, int dfd, const char *base, const char *name)
{
	int fd = openat(dfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct level *l;

	if (fd < 0)
		return job_fail(j, errno, "open", name);
	if (skip_content(fd) || j->depth == MAX_DEPTH) {
		close(fd);
		return j->depth == MAX_DEPTH ? job_fail(j, ELOOP, "descend into", name) : 0;
	}
	l = &j->stack[j->depth];
	l->d = fdopendir(fd);
	if (!l->d) {
		close(fd);
		return job_fail(j, errno, "read", name);
	}
	l->name_len = strlen(name);
	if (snprintf(j->name, sizeof(j->name), "%s", name) >= (int)sizeof(j->name)) {
		closedir(l->d);
		return job_fail(j, ENAMETOOLONG, "archive", name);
	}
	j->depth++;
	return 0;
}

static int overlay_opaque(int dfd, const char *base)
{
	char path[PATH_MAX], v[2];

	hs_fd_path(path, sizeof(path), dfd, base);
	return lgetxattr(path, OVERLAY_XATTRS "opaque", v, sizeof(v)) == 1 && v[0] == 'y';
}

/* an empty regular file: an OCI whiteout */
static int whiteout(struct out_job *j, const char *name, const struct stat *st)
{
	struct hs_tar_entry e = {
		.name = (char *)name, .type = HS_TAR_REG, .mode = 0600,
		.uid = st->st_uid, .gid = st->st_gid, .mtime = st->st_mtim,
	};

	return hs_tar_header(&e, &j->out) < 0 ? job_fail(j, ENOMEM, "archive", name) : 0;
}

/* fills e's type and type-specific fields from st; 1 for what is not archived (a socket,
 * except in a layer of changes, where it is an empty entry marked HYPER.socket) */
static int describe(struct out_job *j, int dfd, const char *base, const struct stat *st,
		    struct hs_tar_entry *e, char *link, size_t linklen)
{
	const char *first;
	ssize_t n;

	switch (st->st_mode & S_IFMT) {
	case S_IFREG:
		e->type = HS_TAR_REG;
		e->size = st->st_size;
		if (st->st_nlink > 1 && (first = hs_links_find(&j->links, st->st_dev, st->st_ino))) {
			e->type = HS_TAR_LINK;
			e->size = 0;
			snprintf(link, linklen, "%s", first);
			e->linkname = link;
		} else if (st->st_nlink > 1 &&
			   hs_links_add(&j->links, st->st_dev, st->st_ino, e->name) < 0) {
			return job_fail(j, ENOMEM, "archive", e->name);
		}
		return 0;
	case S_IFLNK:
		e->type = HS_TAR_SYMLINK;
		n = readlinkat(dfd, base, link, linklen - 1);
		if (n < 0)
			return job_fail(j, errno, "readlink", e->name);
		link[n] = '\0';
		e->linkname = link;
		return 0;
	case S_IFDIR:
		e->type = HS_TAR_DIR;
		return 0;
	case S_IFCHR:
	case S_IFBLK:
		e->type = S_ISCHR(st->st_mode) ? HS_TAR_CHR : HS_TAR_BLK;
		e->devmajor = major(st->st_rdev);
		e->devminor = minor(st->st_rdev);
		return 0;
	case S_IFIFO:
		e->type = HS_TAR_FIFO;
		return 0;
	case S_IFSOCK:
		if (!j->changes)
			return 1;
		/* tar has no sockets: the layer of changes says where one is, the host decides */
		e->type = HS_TAR_REG;
		e->socket = 1;
		return 0;
	default:
		return 1;
	}
}

static int open_data(struct out_job *j, int dfd, const char *base, const struct hs_tar_entry *e)
{
	if (e->type != HS_TAR_REG || !e->size)
		return 0;
	j->file = openat(dfd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (j->file < 0)
		return job_fail(j, errno, "open", e->name);
	j->left = j->size = e->size;
	return 0;
}

/* the header of one entry (name: its archive name), its data next, its content later */
static int emit(struct out_job *j, int dfd, const char *base, const char *name)
{
	char full[PATH_MAX + 2], link[PATH_MAX];
	struct hs_tar_entry e = {0};
	struct stat st;
	int rc, is_dir;

	if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : job_fail(j, errno, "stat", name); /* gone meanwhile */
	is_dir = S_ISDIR(st.st_mode);
	if (snprintf(full, sizeof(full), "%s%s", name, is_dir && *name ? "/" : "") >= PATH_MAX)
		return job_fail(j, ENAMETOOLONG, "archive", name);
	if (j->changes && S_ISCHR(st.st_mode) && st.st_rdev == 0) {
		snprintf(full, sizeof(full), "%.*s.wh.%s", (int)(strlen(name) - strlen(base)), name, base);
		return whiteout(j, full, &st);
	}
	e = (struct hs_tar_entry){
		.name = full, .mode = st.st_mode & 07777, .uid = st.st_uid, .gid = st.st_gid,
		.mtime = st.st_mtim,
	};
	rc = describe(j, dfd, base, &st, &e, link, sizeof(link));
	if (rc)
		return rc > 0 ? 0 : -1;
	if (hs_xattrs_get(dfd, base, j->changes ? OVERLAY_XATTRS : NULL, &e.xattrs) < 0)
		return job_fail(j, errno, "read xattrs of", name);
	rc = *full ? hs_tar_header(&e, &j->out) : 0; /* the layer root has no entry */
	hs_xattrs_free(&e.xattrs);
	if (rc < 0)
		return job_fail(j, ENOMEM, "archive", name);
	if (!is_dir)
		return open_data(j, dfd, base, &e);
	if (j->changes && *full && overlay_opaque(dfd, base)) {
		if (snprintf(link, sizeof(link), "%s.wh..wh..opq", full) >= (int)sizeof(link))
			return job_fail(j, ENAMETOOLONG, "archive", name);
		if (whiteout(j, link, &st) < 0)
			return -1;
	}
	return push_dir(j, dfd, base, full);
}

/* ---- producing ---- */

static int file_data(struct out_job *j)
{
	size_t want = j->left < FRAME ? (size_t)j->left : FRAME;
	char *dst = hs_buf_reserve(&j->out, want + HS_TAR_BLOCK);
	ssize_t n;

	if (!dst)
		return job_fail(j, ENOMEM, "read", j->name);
	n = read(j->file, dst, want);
	if (n < 0)
		return job_fail(j, errno, "read", j->name);
	if (n == 0) { /* the file shrank since its header: zeros keep the archive whole */
		memset(dst, 0, want);
		n = (ssize_t)want;
	}
	j->out.len += n;
	j->left -= n;
	if (!j->left) {
		memset(j->out.data + j->out.len, 0, hs_tar_padding(j->size));
		j->out.len += hs_tar_padding(j->size);
		close(j->file);
		j->file = -1;
	}
	return 0;
}

/* appends the next piece of the archive to j->out */
static int produce(struct out_job *j)
{
	struct level *l;
	struct dirent *d;
	char name[PATH_MAX + 1];

	if (j->file >= 0)
		return file_data(j);
	if (!j->depth) {
		j->walked = 1;
		return hs_buf_append(&j->out, (char[2 * HS_TAR_BLOCK]){0}, 2 * HS_TAR_BLOCK) < 0
			       ? job_fail(j, ENOMEM, "archive", "")
			       : 0;
	}
	l = &j->stack[j->depth - 1];
	errno = 0;
	while ((d = readdir(l->d)) && (!strcmp(d->d_name, ".") || !strcmp(d->d_name, "..")))
		;
	if (!d) {
		if (errno)
			return job_fail(j, errno, "read", j->name);
		closedir(l->d);
		j->depth--;
		return 0;
	}
	j->name[l->name_len] = '\0';
	if (snprintf(name, sizeof(name), "%s%s", j->name, d->d_name) >= (int)sizeof(name))
		return job_fail(j, ENAMETOOLONG, "archive", j->name);
	return emit(j, dirfd(l->d), d->d_name, name);
}

static void job_free(struct out_job *j)
{
	while (j->depth)
		closedir(j->stack[--j->depth].d);
	if (j->file >= 0)
		close(j->file);
	hs_links_free(&j->links);
	hs_buf_free(&j->out);
	free(j->id);
	free(j);
}

/* the EOF frame, then the event; the job is done */
static void job_end(struct out_job *j)
{
	hs_stream_send(j->seq, NULL, 0);
	hs_event_finished(j->c->id, j->id, j->status, j->status ? j->err.msg : NULL, 0);
	hs_log("%s/%s: archive out %s", j->c->id, j->id, j->status ? j->err.msg : "done");
}

/* sends up to SLICE bytes; 1 when the job is over */
static int pump(struct out_job *j)
{
	size_t sent = 0;

	while (hs_stream_has_room() && sent < SLICE) {
		size_t used = hs_buf_used(&j->out);
		int over = j->walked || j->status;

		if (used >= FRAME || (over && used)) {
			size_t n = used < FRAME ? used : FRAME;

			hs_stream_send(j->seq, hs_buf_head(&j->out), n);
			hs_buf_consume(&j->out, n);
			sent += n;
		} else if (over) {
			job_end(j);
			return 1;
		} else if (produce(j) < 0) {
			hs_buf_reset(&j->out); /* a truncated archive: the event tells why */
		}
	}
	return 0;
}

int hs_archive_sync(void)
{
	int busy = 0;

	for (struct out_job **pj = &jobs; *pj;) {
		struct out_job *j = *pj;

		if (pump(j)) {
			*pj = j->next;
			job_free(j);
			continue;
		}
		busy = 1;
		pj = &j->next;
	}
	return busy && hs_stream_has_room() ? 0 : -1;
}

/* ---- the command ---- */

static int start(struct out_job *j, const char *path, json_t **out, struct hs_err *err)
{
	struct hs_place pl;
	int rc;

	if (j->changes) {
		int upper = open(j->c->upper, O_PATH | O_DIRECTORY | O_CLOEXEC);

		if (upper < 0)
			return hs_fail_errno(err, errno, "open the upper layer: %s", hs_strerror(errno));
		rc = emit(j, upper, ".", "");
		close(upper);
		return rc < 0 ? hs_fail(err, "%s", j->err.msg) : hs_archive_stat(j->c, "/", out, err);
	}
	if (hs_archive_stat(j->c, path, out, err) < 0 || hs_place_find(j->c, path, &pl, err) < 0)
		return -1;
	/* Docker's shape: the entries are under the path's base name, "." for the root */
	rc = emit(j, pl.dir, pl.name, strcmp(pl.name, ".") ? pl.name : ".");
	close(pl.dir);
	if (rc < 0) {
		json_decref(*out);
		return hs_fail_errno(err, j->status, "%s", j->err.msg);
	}
	return 0;
}

int hs_archive_out(struct hs_container *c, json_t *req, json_t **out, struct hs_err *err)
{
	const char *id, *path = "/";
	struct out_job *j;
	uint64_t seq;

	if (hs_archive_args(req, &id, &path, &seq, err) < 0)
		return -1;
	j = calloc(1, sizeof(*j));
	if (!j || !(j->id = strdup(id))) {
		free(j);
		return hs_fail(err, "out of memory");
	}
	j->c = c;
	j->seq = seq;
	j->file = -1;
	if (hs_json_bool(req, "changes", &j->changes, err) < 0 || start(j, path, out, err) < 0) {
		job_free(j);
		return -1;
	}
	j->next = jobs;
	jobs = j;
	return 0;
}

void hs_archive_out_cancel(struct hs_container *c)
{
	for (struct out_job **pj = &jobs; *pj;) {
		struct out_job *j = *pj;

		if (j->c != c) {
			pj = &j->next;
			continue;
		}
		hs_fail(&j->err, "container %s was removed", c->id);
		j->status = ECANCELED;
		job_end(j);
		*pj = j->next;
		job_free(j);
	}
}
