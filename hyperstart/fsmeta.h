/*
 * fsmeta.h — metadata of directory entries, addressed as (directory fd, name) and
 * never following a final symlink: extended attributes, owner/mode/times, and
 * recursive removal. Shared by the volume copy and the tar reader and writer.
 */
#ifndef HS_FSMETA_H
#define HS_FSMETA_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

struct hs_xattr {
	char *name;
	char *value;
	size_t len;
};

struct hs_xattrs {
	struct hs_xattr *v;
	int n;
};

/* (device, inode) -> the first path seen for it: hard links within a tree */
struct hs_link {
	dev_t dev;
	ino_t ino;
	char *path; /* NULL: free slot */
};

struct hs_links {
	struct hs_link *v;
	size_t n, cap;
};

const char *hs_links_find(const struct hs_links *l, dev_t dev, ino_t ino);
int hs_links_add(struct hs_links *l, dev_t dev, ino_t ino, const char *path);
void hs_links_free(struct hs_links *l);

/* "/proc/self/fd/<dfd>/<name>": a path for calls without an *at form */
void hs_fd_path(char *buf, size_t len, int dfd, const char *name);

/*
 * The entry's xattrs whose name does not start with skip_prefix (may be NULL).
 * Filesystems without xattrs give an empty list. -1 with errno on failure.
 */
int hs_xattrs_get(int dfd, const char *name, const char *skip_prefix, struct hs_xattrs *out);
int hs_xattrs_add(struct hs_xattrs *x, const char *name, const void *value, size_t len);
int hs_xattrs_set(int dfd, const char *name, const struct hs_xattrs *x);
void hs_xattrs_free(struct hs_xattrs *x);

/*
 * Owner, then permission bits (not for symlinks: chown clears set-id bits), then
 * mtime (atime too). -1 with errno on failure.
 */
int hs_meta_apply(int dfd, const char *name, mode_t mode, uid_t uid, gid_t gid,
		  const struct timespec *mtime);

/* removes name under dirfd, a directory with everything in it; 0 when absent */
int hs_remove_all(int dfd, const char *name);

/* true when a directory holds nothing but (an empty) lost+found */
int hs_dir_is_empty(int dfd);

#endif
