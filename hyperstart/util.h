/* util.h — logging, byte buffers, paths resolved inside a root, small file helpers. */
#ifndef HS_UTIL_H
#define HS_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HS_ERRLEN 256

void hs_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* a failed command: the text and the optional fields of the ERROR answer */
struct hs_err {
	char msg[HS_ERRLEN];
	int exit_code; /* "exitCode": Docker's code for a failed start (126, 127); 0 = none */
	int errnum;    /* "errno": the cause, when the host acts on it; 0 = none */
};

/* printf into err->msg; always returns -1 so callers can `return hs_fail(...)` */
int hs_fail(struct hs_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* hs_fail that also sets err->errnum */
int hs_fail_errno(struct hs_err *err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* strerror in Go's (and so Docker's) style: "no such file or directory" */
const char *hs_strerror(int errnum);

/* growable byte buffer; data[off..len) is the unconsumed part */
struct hs_buf {
	char *data;
	size_t off, len, cap;
};

size_t hs_buf_used(const struct hs_buf *b);
char *hs_buf_head(const struct hs_buf *b);
int hs_buf_append(struct hs_buf *b, const void *p, size_t n);
/* make room for n more bytes at data + len; returns that pointer or NULL */
char *hs_buf_reserve(struct hs_buf *b, size_t n);
void hs_buf_consume(struct hs_buf *b, size_t n);
void hs_buf_reset(struct hs_buf *b);
void hs_buf_free(struct hs_buf *b);

void hs_put_be32(unsigned char *p, uint32_t v);
void hs_put_be64(unsigned char *p, uint64_t v);
uint32_t hs_get_be32(const unsigned char *p);
uint64_t hs_get_be64(const unsigned char *p);

int hs_mkdir_p(const char *path, mode_t mode);
/* whole small file into a NUL-terminated malloc'd string; NULL on error */
char *hs_read_text(const char *path);
/*
 * The entry of sysfs directory DIR (names starting with PREFIX) whose ATTR file holds
 * VALUE (first line): writes "/dev/<entry>" to dev. 0 when found, -1 otherwise.
 */
int hs_sysfs_find(const char *dir, const char *prefix, const char *attr, const char *value,
		  char *dev, size_t devlen);
int hs_write_text(const char *path, const char *text);
uint64_t hs_now_ms(void);

/*
 * Paths inside a container root: ".." and absolute symlinks stay inside the
 * root (openat2 RESOLVE_IN_ROOT), so an image cannot redirect a write to the guest.
 */
int hs_open_in_root(int rootfd, const char *path, int flags, mode_t mode);
int hs_mkdir_in_root(int rootfd, const char *path, mode_t mode);
/* writes data to path inside root, creating parent directories */
int hs_write_in_root(int rootfd, const char *path, const void *data, size_t len, mode_t mode);
/* reads a whole file inside root; *len receives its size; NULL on error (errno set) */
char *hs_read_in_root(int rootfd, const char *path, size_t max, size_t *len);

/*
 * JSON fields. Each getter fills err and returns -1 on a wrong type, or when
 * the field is missing and required; a missing optional field keeps *out.
 */
struct json_t;
int hs_json_str(struct json_t *obj, const char *key, int required, const char **out, struct hs_err *err);
int hs_json_int(struct json_t *obj, const char *key, int required, long long *out, struct hs_err *err);
int hs_json_bool(struct json_t *obj, const char *key, int *out, struct hs_err *err);
/* an array (possibly absent: *out = NULL) whose items all have JSON type `type` */
int hs_json_array(struct json_t *obj, const char *key, int type, struct json_t **out, struct hs_err *err);

#endif
