/*
 * archive.h — files of a container seen from the host: STATPATH, and tar
 * archives streamed out of (ARCHIVEOUT) and into (ARCHIVEIN) a container.
 * Transfers run beside everything else: output is produced while the stream
 * port has room, input is written to disk as it arrives.
 */
#ifndef HS_ARCHIVE_H
#define HS_ARCHIVE_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

struct hs_container;
struct hs_err;
struct json_t;

/* STATPATH: *out = {"name", "size", "mode", "mtime", "linkTarget"} */
int hs_archive_stat(struct hs_container *c, const char *path, struct json_t **out,
		    struct hs_err *err);
/* ARCHIVEOUT: *out = the stat of the path; the tar follows on the stream port */
int hs_archive_out(struct hs_container *c, struct json_t *req, struct json_t **out,
		   struct hs_err *err);
/* ARCHIVEIN: the tar comes on the stream port */
int hs_archive_in(struct hs_container *c, struct json_t *req, struct hs_err *err);

/* stream input: 1 when seq is an ARCHIVEIN's (the data was taken), else 0 */
int hs_archive_in_data(uint64_t seq, const char *p, size_t n);
int hs_archive_in_eof(uint64_t seq);
/* after every loop iteration: sends archive output; the loop timeout (0: more to do) */
int hs_archive_sync(void);
/* the container goes away: its transfers end now (status ECANCELED) */
void hs_archive_cancel(struct hs_container *c);
void hs_archive_out_cancel(struct hs_container *c);
void hs_archive_in_cancel(struct hs_container *c);

/* ---- shared by the two directions ---- */

/* a path in a container, the final component not followed: its directory and name */
struct hs_place {
	int dir;                 /* O_PATH fd */
	char name[NAME_MAX + 1]; /* "." for the root, or a path ending in "." or ".." */
};

int hs_place_find(struct hs_container *c, const char *path, struct hs_place *pl,
		  struct hs_err *err);
/* the guest path an fd stands for (readlink of /proc/self/fd/N) */
int hs_fd_real_path(int fd, char *buf, size_t len);
/* "id", "path" and "seq" of an archive request */
int hs_archive_args(struct json_t *req, const char **id, const char **path, uint64_t *seq,
		    struct hs_err *err);

#endif
