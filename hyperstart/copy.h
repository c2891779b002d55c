/*
 * copy.h — copies a directory tree between two directory fds: all file types,
 * modes, owners, times, xattrs, hard links within the tree; symlinks are copied,
 * never followed. Used to populate an empty volume from the image (Docker's copy).
 */
#ifndef HS_COPY_H
#define HS_COPY_H

struct hs_err;

/* copies the content of directory src into directory dst (both O_RDONLY fds) */
int hs_copy_tree(int src, int dst, struct hs_err *err);

#endif
