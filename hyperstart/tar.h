/*
 * tar.h — the tar codec of ARCHIVEOUT and ARCHIVEIN: POSIX ustar headers with
 * PAX extended headers where ustar falls short (long names and links, big ids,
 * sizes and times, SCHILY.xattr.* for xattrs); the reader also takes GNU long
 * names and base-256 numbers. The reader is fed bytes as they come.
 */
#ifndef HS_TAR_H
#define HS_TAR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "fsmeta.h"
#include "util.h"

#define HS_TAR_BLOCK 512

enum {
	HS_TAR_REG = '0',
	HS_TAR_LINK = '1', /* hard link to linkname */
	HS_TAR_SYMLINK = '2',
	HS_TAR_CHR = '3',
	HS_TAR_BLK = '4',
	HS_TAR_DIR = '5',
	HS_TAR_FIFO = '6',
};

struct hs_tar_entry {
	char *name;     /* as in the archive (malloc'd by the reader) */
	char *linkname; /* symlink target or hard link name, or NULL */
	char type;
	mode_t mode;    /* permission bits */
	uid_t uid;
	gid_t gid;
	uint64_t size;
	unsigned devmajor, devminor;
	struct timespec mtime;
	struct hs_xattrs xattrs;
	int socket;     /* writer: an empty entry standing for a socket (PAX "HYPER.socket") */
};

/* appends the header blocks of e (a PAX header first when needed) to out */
int hs_tar_header(const struct hs_tar_entry *e, struct hs_buf *out);
/* bytes of zero padding after size bytes of data */
size_t hs_tar_padding(uint64_t size);

/* ---- reader ---- */

struct hs_untar_ops {
	/* a header: e is the reader's (valid until end); data of e->size bytes follows */
	int (*entry)(void *ctx, struct hs_tar_entry *e);
	int (*data)(void *ctx, const char *p, size_t n);
	/* all of the entry's data was given */
	int (*end)(void *ctx);
};

struct hs_untar {
	const struct hs_untar_ops *ops;
	void *ctx;
	int state;
	unsigned char block[HS_TAR_BLOCK];
	size_t have;             /* bytes of block, or of ext, collected */
	uint64_t left;           /* data or padding bytes still to pass or skip */
	char ext_type;           /* 'x', 'g', 'L' or 'K' while collecting ext */
	struct hs_buf ext;
	struct hs_tar_entry next; /* overrides from PAX / GNU headers for the next entry */
	unsigned over;            /* which fields of next are set */
	struct hs_tar_entry cur;
	int zero_blocks;
	struct hs_err *err;
};

void hs_untar_init(struct hs_untar *u, const struct hs_untar_ops *ops, void *ctx, struct hs_err *err);
/* -1 at the first malformed header or callback failure (err filled) */
int hs_untar_feed(struct hs_untar *u, const char *p, size_t n);
/* the stream ended: -1 when it stopped inside an entry */
int hs_untar_finish(struct hs_untar *u);
void hs_untar_free(struct hs_untar *u);

#endif
