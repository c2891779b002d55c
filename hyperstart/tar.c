#define _GNU_SOURCE
#include "tar.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_LEN 100
#define PREFIX_LEN 155
#define MAX_EXT_HEADER (1u << 20)
#define XATTR_KEY "SCHILY.xattr."

/* ustar header field offsets and widths */
enum {
	F_NAME = 0, F_MODE = 100, F_UID = 108, F_GID = 116, F_SIZE = 124, F_MTIME = 136,
	F_CHKSUM = 148, F_TYPE = 156, F_LINK = 157, F_MAGIC = 257, F_VERSION = 263,
	F_DEVMAJOR = 329, F_DEVMINOR = 337, F_PREFIX = 345,
};

size_t hs_tar_padding(uint64_t size)
{
	return (size_t)((HS_TAR_BLOCK - size % HS_TAR_BLOCK) % HS_TAR_BLOCK);
}

/* ---- writer ---- */

static int fits_octal(uint64_t v, size_t width)
{
	return v < (1ull << (3 * (width - 1)));
}

static void put_octal(unsigned char *b, size_t width, uint64_t v)
{
	char tmp[24];

	snprintf(tmp, sizeof(tmp), "%0*llo", (int)width - 1, (unsigned long long)v);
	memcpy(b, tmp, width - 1); /* the last byte stays NUL */
}

/* where name splits into ustar's prefix and name fields, or -1 */
static int split_name(const char *name)
{
	size_t len = strlen(name);

	if (len <= NAME_LEN)
		return 0;
	for (size_t i = len - 1; i > 0; i--) {
		if (name[i] != '/')
			continue;
		if (len - i - 1 > NAME_LEN)
			return -1;
		if (i <= PREFIX_LEN && len - i - 1 > 0)
			return (int)i;
	}
	return -1;
}

/* "%d key=value\n" where %d counts the whole record, itself included */
static int pax_add(struct hs_buf *pax, const char *key, const char *value, size_t vlen)
{
	size_t body = strlen(key) + vlen + 3, len = body + 1;
	char num[24];

	while ((size_t)snprintf(num, sizeof(num), "%zu", len) + body != len)
		len = strlen(num) + body;
	if (hs_buf_append(pax, num, strlen(num)) < 0 || hs_buf_append(pax, " ", 1) < 0 ||
	    hs_buf_append(pax, key, strlen(key)) < 0 || hs_buf_append(pax, "=", 1) < 0 ||
	    hs_buf_append(pax, value, vlen) < 0 || hs_buf_append(pax, "\n", 1) < 0)
		return -1;
	return 0;
}

static int pax_num(struct hs_buf *pax, const char *key, unsigned long long v)
{
	char s[24];

	snprintf(s, sizeof(s), "%llu", v);
	return pax_add(pax, key, s, strlen(s));
}

static int pax_records(const struct hs_tar_entry *e, struct hs_buf *pax)
{
	char key[300];
	int rc = 0;

	if (split_name(e->name) < 0)
		rc |= pax_add(pax, "path", e->name, strlen(e->name));
	if (e->linkname && strlen(e->linkname) > NAME_LEN)
		rc |= pax_add(pax, "linkpath", e->linkname, strlen(e->linkname));
	if (!fits_octal(e->uid, 8))
		rc |= pax_num(pax, "uid", e->uid);
	if (!fits_octal(e->gid, 8))
		rc |= pax_num(pax, "gid", e->gid);
	if (!fits_octal(e->size, 12))
		rc |= pax_num(pax, "size", e->size);
	if (e->mtime.tv_sec < 0 || !fits_octal((uint64_t)e->mtime.tv_sec, 12))
		rc |= pax_num(pax, "mtime", e->mtime.tv_sec < 0 ? 0 : (uint64_t)e->mtime.tv_sec);
	for (int i = 0; i < e->xattrs.n; i++) {
		snprintf(key, sizeof(key), XATTR_KEY "%s", e->xattrs.v[i].name);
		rc |= pax_add(pax, key, e->xattrs.v[i].value, e->xattrs.v[i].len);
	}
	if (e->socket)
		rc |= pax_add(pax, "HYPER.socket", "1", 1);
	return rc ? -1 : 0;
}

static void checksum(unsigned char *b)
{
	unsigned sum = 0;

	memset(b + F_CHKSUM, ' ', 8);
	for (int i = 0; i < HS_TAR_BLOCK; i++)
		sum += b[i];
	snprintf((char *)b + F_CHKSUM, 8, "%06o", sum);
	b[F_CHKSUM + 7] = ' ';
}

/* one ustar block; fields that do not fit were given in the PAX header */
static void ustar_block(unsigned char *b, const struct hs_tar_entry *e, const char *name,
			uint64_t size, char type)
{
	int split = split_name(name);
	uint64_t mtime = e->mtime.tv_sec < 0 ? 0 : (uint64_t)e->mtime.tv_sec;

	memset(b, 0, HS_TAR_BLOCK);
	if (split > 0) {
		memcpy(b + F_PREFIX, name, split);
		strncpy((char *)b + F_NAME, name + split + 1, NAME_LEN);
	} else {
		strncpy((char *)b + F_NAME, name, NAME_LEN);
	}
	put_octal(b + F_MODE, 8, e->mode & 07777);
	put_octal(b + F_UID, 8, fits_octal(e->uid, 8) ? e->uid : 0);
	put_octal(b + F_GID, 8, fits_octal(e->gid, 8) ? e->gid : 0);
	put_octal(b + F_SIZE, 12, fits_octal(size, 12) ? size : 0);
	put_octal(b + F_MTIME, 12, fits_octal(mtime, 12) ? mtime : 0);
	b[F_TYPE] = type;
	if (e->linkname)
		strncpy((char *)b + F_LINK, e->linkname, NAME_LEN);
	memcpy(b + F_MAGIC, "ustar", 6);
	memcpy(b + F_VERSION, "00", 2);
	if (type == HS_TAR_CHR || type == HS_TAR_BLK) {
		put_octal(b + F_DEVMAJOR, 8, e->devmajor);
		put_octal(b + F_DEVMINOR, 8, e->devminor);
	}
	checksum(b);
}

int hs_tar_header(const struct hs_tar_entry *e, struct hs_buf *out)
{
	struct hs_buf pax = {0};
	unsigned char *b;
	int rc = -1;

	if (pax_records(e, &pax) < 0)
		goto out;
	if (pax.len) {
		const char *base = strrchr(e->name, '/');
		char name[NAME_LEN + 1];

		/* the base name of a directory entry ("dir/") is the part before the slash */
		base = base && base[1] ? base + 1 : e->name;
		snprintf(name, sizeof(name), "PaxHeaders.0/%.*s", 80, base);
		if (!(b = (unsigned char *)hs_buf_reserve(out, HS_TAR_BLOCK)))
			goto out;
		ustar_block(b, &(struct hs_tar_entry){ .mode = 0644, .mtime = e->mtime }, name,
			    pax.len, 'x');
		out->len += HS_TAR_BLOCK;
		if (hs_buf_append(out, pax.data, pax.len) < 0 ||
		    hs_buf_append(out, (char[HS_TAR_BLOCK]){0}, hs_tar_padding(pax.len)) < 0)
			goto out;
	}
	if (!(b = (unsigned char *)hs_buf_reserve(out, HS_TAR_BLOCK)))
		goto out;
	ustar_block(b, e, e->name, e->size, e->type);
	out->len += HS_TAR_BLOCK;
	rc = 0;
out:
	hs_buf_free(&pax);
	return rc;
}

/* ---- reader ---- */

enum { ST_HDR, ST_DATA, ST_PAD, ST_EXT, ST_END };
enum { OV_NAME = 1, OV_LINK = 2, OV_SIZE = 4, OV_UID = 8, OV_GID = 16, OV_MTIME = 32 };

static void entry_clear(struct hs_tar_entry *e)
{
	free(e->name);
	free(e->linkname);
	hs_xattrs_free(&e->xattrs);
	memset(e, 0, sizeof(*e));
}

void hs_untar_init(struct hs_untar *u, const struct hs_untar_ops *ops, void *ctx, struct hs_err *err)
{
	memset(u, 0, sizeof(*u));
	u->ops = ops;
	u->ctx = ctx;
	u->err = err;
}

void hs_untar_free(struct hs_untar *u)
{
	entry_clear(&u->next);
	entry_clear(&u->cur);
	hs_buf_free(&u->ext);
}

/* octal (NUL/space terminated) or GNU base-256 */
static int parse_num(const unsigned char *f, size_t width, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;

	if (f[0] & 0x80) {
		v = f[0] & 0x3f;
		for (i = 1; i < width; i++) {
			if (v >> 56)
				return -1;
			v = v << 8 | f[i];
		}
		*out = v;
		return 0;
	}
	while (i < width && (f[i] == ' ' || f[i] == '\0'))
		i++;
	for (; i < width && f[i] >= '0' && f[i] <= '7'; i++) {
		if (v >> 60)
			return -1;
		v = v << 3 | (uint64_t)(f[i] - '0');
	}
	if (i < width && f[i] != ' ' && f[i] != '\0')
		return -1;
	*out = v;
	return 0;
}

static int checksum_ok(const unsigned char *b)
{
	uint64_t want;
	unsigned sum = 0;
	int ssum = 0;

	if (parse_num(b + F_CHKSUM, 8, &want) < 0)
		return 0;
	for (int i = 0; i < HS_TAR_BLOCK; i++) {
		unsigned char c = i >= F_CHKSUM && i < F_CHKSUM + 8 ? ' ' : b[i];

		sum += c;
		ssum += (signed char)c;
	}
	return want == sum || want == (uint64_t)(unsigned)ssum;
}

static char *field_str(const unsigned char *f, size_t width)
{
	return strndup((const char *)f, strnlen((const char *)f, width));
}

static int parse_time(const char *s, struct timespec *ts)
{
	char *end;
	long long sec = strtoll(s, &end, 10);
	long nsec = 0;

	if (end == s)
		return -1;
	if (*end == '.') {
		long scale = 100000000;

		for (end++; *end >= '0' && *end <= '9'; end++, scale /= 10)
			nsec += scale * (*end - '0');
	}
	ts->tv_sec = sec;
	ts->tv_nsec = nsec;
	return 0;
}

static int pax_record(struct hs_untar *u, const char *key, const char *v, size_t vlen)
{
	struct hs_tar_entry *n = &u->next;
	char *s = strndup(v, vlen), *end = NULL;
	uint64_t num;

	if (!s)
		return hs_fail(u->err, "out of memory");
	if (strncmp(key, XATTR_KEY, strlen(XATTR_KEY)) == 0) {
		int rc = hs_xattrs_add(&n->xattrs, key + strlen(XATTR_KEY), v, vlen);

		free(s);
		return rc < 0 ? hs_fail(u->err, "out of memory") : 0;
	}
	if (strcmp(key, "path") == 0) {
		free(n->name);
		n->name = s;
		u->over |= OV_NAME;
		return 0;
	}
	if (strcmp(key, "linkpath") == 0) {
		free(n->linkname);
		n->linkname = s;
		u->over |= OV_LINK;
		return 0;
	}
	if (strcmp(key, "mtime") == 0) {
		if (parse_time(s, &n->mtime) == 0)
			u->over |= OV_MTIME;
	} else if (!strcmp(key, "size") || !strcmp(key, "uid") || !strcmp(key, "gid")) {
		errno = 0;
		num = strtoull(s, &end, 10);
		if (end == s || *end || errno) {
			free(s);
			return hs_fail(u->err, "bad PAX record %s=%.40s", key, v);
		}
		if (key[0] == 's')
			n->size = num, u->over |= OV_SIZE;
		else if (key[0] == 'u')
			n->uid = (uid_t)num, u->over |= OV_UID;
		else
			n->gid = (gid_t)num, u->over |= OV_GID;
	}
	free(s); /* other keys (atime, ctime, uname, ...) are not needed */
	return 0;
}

static int parse_pax(struct hs_untar *u)
{
	const char *p = hs_buf_head(&u->ext), *end = p + hs_buf_used(&u->ext);

	while (p < end) {
		char *sp, *eq;
		unsigned long len = strtoul(p, &sp, 10);
		char key[256];

		if (sp == p || *sp != ' ' || len < 5 || len > (unsigned long)(end - p) || p[len - 1] != '\n')
			return hs_fail(u->err, "malformed PAX header");
		eq = memchr(sp + 1, '=', p + len - sp - 1);
		if (!eq || (size_t)(eq - sp - 1) >= sizeof(key))
			return hs_fail(u->err, "malformed PAX record");
		memcpy(key, sp + 1, eq - sp - 1);
		key[eq - sp - 1] = '\0';
		if (pax_record(u, key, eq + 1, p + len - 1 - (eq + 1)) < 0)
			return -1;
		p += len;
	}
	return 0;
}

/* a whole extended header was collected */
static int ext_done(struct hs_untar *u)
{
	char *text;
	int rc = 0;

	if (u->ext_type == 'x')
		rc = parse_pax(u);
	else if (u->ext_type == 'L' || u->ext_type == 'K') {
		text = strndup(hs_buf_head(&u->ext), hs_buf_used(&u->ext));
		if (!text)
			return hs_fail(u->err, "out of memory");
		if (u->ext_type == 'L') {
			free(u->next.name);
			u->next.name = text;
			u->over |= OV_NAME;
		} else {
			free(u->next.linkname);
			u->next.linkname = text;
			u->over |= OV_LINK;
		}
	}
	hs_buf_reset(&u->ext);
	return rc; /* 'g': global headers carry nothing we use */
}

static char *header_name(const unsigned char *b)
{
	char *name = field_str(b + F_NAME, NAME_LEN), *prefix, *full = NULL;

	if (!name || memcmp(b + F_MAGIC, "ustar", 6) || !b[F_PREFIX])
		return name;
	prefix = field_str(b + F_PREFIX, PREFIX_LEN);
	if (prefix && asprintf(&full, "%s/%s", prefix, name) < 0)
		full = NULL;
	free(prefix);
	free(name);
	return full;
}

/* fills cur from the ustar block and the pending overrides */
static int build_entry(struct hs_untar *u, const unsigned char *b)
{
	struct hs_tar_entry *e = &u->cur, *n = &u->next;
	uint64_t mode, uid, gid, size, mtime, maj = 0, min = 0;
	size_t len;

	entry_clear(e);
	if (parse_num(b + F_MODE, 8, &mode) < 0 || parse_num(b + F_UID, 8, &uid) < 0 ||
	    parse_num(b + F_GID, 8, &gid) < 0 || parse_num(b + F_SIZE, 12, &size) < 0 ||
	    parse_num(b + F_MTIME, 12, &mtime) < 0 || parse_num(b + F_DEVMAJOR, 8, &maj) < 0 ||
	    parse_num(b + F_DEVMINOR, 8, &min) < 0)
		return hs_fail(u->err, "malformed tar header (bad number)");
	e->type = b[F_TYPE] == '\0' || b[F_TYPE] == '7' ? HS_TAR_REG : (char)b[F_TYPE];
	e->mode = mode & 07777;
	e->uid = u->over & OV_UID ? n->uid : (uid_t)uid;
	e->gid = u->over & OV_GID ? n->gid : (gid_t)gid;
	e->size = u->over & OV_SIZE ? n->size : size;
	e->mtime = u->over & OV_MTIME ? n->mtime : (struct timespec){ (time_t)mtime, 0 };
	e->devmajor = (unsigned)maj;
	e->devminor = (unsigned)min;
	e->name = u->over & OV_NAME ? n->name : header_name(b);
	e->linkname = u->over & OV_LINK ? n->linkname : field_str(b + F_LINK, NAME_LEN);
	if (u->over & OV_NAME)
		n->name = NULL;
	if (u->over & OV_LINK)
		n->linkname = NULL;
	e->xattrs = n->xattrs;
	n->xattrs = (struct hs_xattrs){0};
	entry_clear(n);
	u->over = 0;
	if (!e->name || !e->linkname)
		return hs_fail(u->err, "out of memory");
	len = strlen(e->name);
	if (e->type == HS_TAR_REG && len && e->name[len - 1] == '/')
		e->type = HS_TAR_DIR; /* old tars mark directories by the slash only */
	return 0;
}

static int header_block(struct hs_untar *u)
{
	const unsigned char *b = u->block;
	char t = (char)b[F_TYPE];
	uint64_t size;

	u->have = 0;
	if (memcmp(b, (char[HS_TAR_BLOCK]){0}, HS_TAR_BLOCK) == 0) {
		if (++u->zero_blocks == 2)
			u->state = ST_END;
		return 0;
	}
	u->zero_blocks = 0;
	if (!checksum_ok(b))
		return hs_fail(u->err, "not a tar archive (bad header checksum)");
	if (t == 'x' || t == 'g' || t == 'L' || t == 'K') {
		if (parse_num(b + F_SIZE, 12, &size) < 0 || size > MAX_EXT_HEADER)
			return hs_fail(u->err, "extended tar header too large");
		u->ext_type = t;
		u->left = size;
		u->state = ST_EXT;
		return size ? 0 : (u->state = ST_HDR, ext_done(u));
	}
	if (build_entry(u, b) < 0 || u->ops->entry(u->ctx, &u->cur) < 0)
		return -1;
	/* hard links, symlinks and others may announce a size but carry no data we use */
	u->left = u->cur.size;
	u->state = ST_DATA;
	return u->left ? 0 : (u->state = ST_HDR, u->ops->end(u->ctx));
}

/* consumes at most n bytes; returns how many, or -1 */
static ssize_t step(struct hs_untar *u, const char *p, size_t n)
{
	size_t k;

	switch (u->state) {
	case ST_HDR:
		k = n < HS_TAR_BLOCK - u->have ? n : HS_TAR_BLOCK - u->have;
		memcpy(u->block + u->have, p, k);
		u->have += k;
		if (u->have == HS_TAR_BLOCK && header_block(u) < 0)
			return -1;
		return (ssize_t)k;
	case ST_DATA:
		k = n < u->left ? n : (size_t)u->left;
		if (u->ops->data(u->ctx, p, k) < 0)
			return -1;
		if ((u->left -= k) == 0) {
			u->left = hs_tar_padding(u->cur.size);
			u->state = u->left ? ST_PAD : ST_HDR;
			if (u->ops->end(u->ctx) < 0)
				return -1;
		}
		return (ssize_t)k;
	case ST_EXT:
		k = n < u->left ? n : (size_t)u->left;
		if (hs_buf_append(&u->ext, p, k) < 0)
			return hs_fail(u->err, "out of memory");
		if ((u->left -= k) == 0) {
			u->left = hs_tar_padding(hs_buf_used(&u->ext));
			u->state = u->left ? ST_PAD : ST_HDR;
			if (ext_done(u) < 0)
				return -1;
		}
		return (ssize_t)k;
	case ST_PAD:
		k = n < u->left ? n : (size_t)u->left;
		if ((u->left -= k) == 0)
			u->state = ST_HDR;
		return (ssize_t)k;
	default: /* ST_END: what follows the end marker is ignored */
		return (ssize_t)n;
	}
}

int hs_untar_feed(struct hs_untar *u, const char *p, size_t n)
{
	while (n) {
		ssize_t k = step(u, p, n);

		if (k < 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

int hs_untar_finish(struct hs_untar *u)
{
	if (u->state == ST_END || (u->state == ST_HDR && u->have == 0))
		return 0;
	return hs_fail(u->err, "unexpected end of the tar archive");
}
