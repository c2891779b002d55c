#define _GNU_SOURCE
#include "util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void hs_log(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n = snprintf(line, sizeof(line), "hyperstart: ");

	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	strcat(line, "\n");
	if (write(STDERR_FILENO, line, strlen(line)) < 0)
		return;
}

int hs_fail(struct hs_err *err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return -1;
}

int hs_fail_errno(struct hs_err *err, int errnum, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	err->errnum = errnum;
	return -1;
}

const char *hs_strerror(int errnum)
{
	static char buf[128];

	snprintf(buf, sizeof(buf), "%s", strerror(errnum));
	buf[0] = tolower((unsigned char)buf[0]);
	return buf;
}

size_t hs_buf_used(const struct hs_buf *b)
{
	return b->len - b->off;
}

char *hs_buf_head(const struct hs_buf *b)
{
	return b->data + b->off;
}

char *hs_buf_reserve(struct hs_buf *b, size_t n)
{
	if (b->off > 0 && b->cap - b->len < n) {
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	if (b->cap - b->len < n) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		while (cap - b->len < n)
			cap *= 2;
		p = realloc(b->data, cap);
		if (!p)
			return NULL;
		b->data = p;
		b->cap = cap;
	}
	return b->data + b->len;
}

int hs_buf_append(struct hs_buf *b, const void *p, size_t n)
{
	char *dst = hs_buf_reserve(b, n);

	if (!dst)
		return -1;
	memcpy(dst, p, n);
	b->len += n;
	return 0;
}

void hs_buf_reset(struct hs_buf *b)
{
	b->off = b->len = 0;
	/* a 16 MiB frame should not pin 16 MiB forever */
	if (b->cap > (1u << 20))
		hs_buf_free(b);
}

void hs_buf_consume(struct hs_buf *b, size_t n)
{
	b->off += n;
	if (b->off == b->len)
		hs_buf_reset(b);
}

void hs_buf_free(struct hs_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

void hs_put_be32(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

void hs_put_be64(unsigned char *p, uint64_t v)
{
	hs_put_be32(p, v >> 32);
	hs_put_be32(p + 4, (uint32_t)v);
}

uint32_t hs_get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

uint64_t hs_get_be64(const unsigned char *p)
{
	return (uint64_t)hs_get_be32(p) << 32 | hs_get_be32(p + 4);
}

int hs_mkdir_p(const char *path, mode_t mode)
{
	char buf[4096];
	size_t n = strlen(path);

	if (n >= sizeof(buf))
		return errno = ENAMETOOLONG, -1;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

static char *read_fd_all(int fd, size_t max, size_t *lenp)
{
	struct hs_buf b = {0};
	ssize_t n = -1;

	for (;;) {
		char *dst = hs_buf_reserve(&b, 65536);

		if (!dst) {
			errno = ENOMEM;
			break;
		}
		n = read(fd, dst, 65536);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		b.len += n;
		if (b.len > max) {
			errno = EFBIG;
			n = -1;
			break;
		}
	}
	if (n < 0 || !hs_buf_reserve(&b, 1)) {
		int e = errno;

		hs_buf_free(&b);
		errno = e;
		return NULL;
	}
	b.data[b.len] = '\0';
	*lenp = b.len;
	return b.data;
}

char *hs_read_text(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t len;
	char *s;

	if (fd < 0)
		return NULL;
	s = read_fd_all(fd, 1u << 20, &len);
	close(fd);
	return s;
}

int hs_write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

uint64_t hs_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int hs_open_in_root(int rootfd, const char *path, int flags, mode_t mode)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.mode = (flags & O_CREAT) ? mode : 0,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};

	while (*path == '/')
		path++;
	return syscall(SYS_openat2, rootfd, *path ? path : ".", &how, sizeof(how));
}

int hs_mkdir_in_root(int rootfd, const char *path, mode_t mode)
{
	char buf[4096];
	size_t n = strlen(path);

	if (n >= sizeof(buf))
		return errno = ENAMETOOLONG, -1;
	memcpy(buf, path, n + 1);
	for (char *p = buf; *p; ) {
		char *slash = strchr(p + 1, '/');
		char *name;
		int dfd;

		if (slash)
			*slash = '\0';
		name = strrchr(buf, '/');
		name = name ? name + 1 : buf;
		if (*name && strcmp(name, ".") && strcmp(name, "..")) {
			char save = *name;

			*name = '\0';
			dfd = hs_open_in_root(rootfd, buf, O_PATH | O_DIRECTORY, 0);
			*name = save;
			if (dfd < 0)
				return -1;
			if (mkdirat(dfd, name, mode) < 0 && errno != EEXIST) {
				int e = errno;

				close(dfd);
				return errno = e, -1;
			}
			close(dfd);
		}
		if (!slash)
			break;
		*slash = '/';
		p = slash;
	}
	return 0;
}

int hs_write_in_root(int rootfd, const char *path, const void *data, size_t len, mode_t mode)
{
	char parent[4096];
	const char *slash = strrchr(path, '/');
	int fd;

	if (slash && slash != path) {
		if ((size_t)(slash - path) >= sizeof(parent))
			return errno = ENAMETOOLONG, -1;
		memcpy(parent, path, slash - path);
		parent[slash - path] = '\0';
		if (hs_mkdir_in_root(rootfd, parent, 0755) < 0)
			return -1;
	}
	fd = hs_open_in_root(rootfd, path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd < 0)
		return -1;
	fchmod(fd, mode);
	for (size_t off = 0; off < len; ) {
		ssize_t n = write(fd, (const char *)data + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;

			close(fd);
			return errno = e, -1;
		}
		off += n;
	}
	return close(fd);
}

char *hs_read_in_root(int rootfd, const char *path, size_t max, size_t *len)
{
	int fd = hs_open_in_root(rootfd, path, O_RDONLY, 0);
	struct stat st;
	char *s = NULL;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0)
		goto out;
	if (S_ISDIR(st.st_mode)) {
		errno = EISDIR;
		goto out;
	}
	s = read_fd_all(fd, max, len);
out:
	if (!s) {
		int e = errno;

		close(fd);
		errno = e;
		return NULL;
	}
	close(fd);
	return s;
}

static json_t *field(json_t *obj, const char *key, int required, struct hs_err *err)
{
	json_t *v = json_object_get(obj, key);

	if (v && json_is_null(v))
		v = NULL;
	if (!v && required)
		hs_fail(err, "missing field \"%s\"", key);
	return v;
}

int hs_json_str(json_t *obj, const char *key, int required, const char **out, struct hs_err *err)
{
	json_t *v = field(obj, key, required, err);

	if (!v)
		return required ? -1 : 0;
	if (!json_is_string(v))
		return hs_fail(err, "field \"%s\": expected a string", key);
	*out = json_string_value(v);
	return 0;
}

int hs_json_int(json_t *obj, const char *key, int required, long long *out, struct hs_err *err)
{
	json_t *v = field(obj, key, required, err);

	if (!v)
		return required ? -1 : 0;
	if (!json_is_integer(v))
		return hs_fail(err, "field \"%s\": expected an integer", key);
	*out = json_integer_value(v);
	return 0;
}

int hs_json_bool(json_t *obj, const char *key, int *out, struct hs_err *err)
{
	json_t *v = field(obj, key, 0, err);

	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return hs_fail(err, "field \"%s\": expected a boolean", key);
	*out = json_is_true(v);
	return 0;
}

int hs_json_array(json_t *obj, const char *key, int type, json_t **out, struct hs_err *err)
{
	json_t *v = field(obj, key, 0, err), *item;
	size_t i;

	*out = NULL;
	if (!v)
		return 0;
	if (!json_is_array(v))
		return hs_fail(err, "field \"%s\": expected an array", key);
	json_array_foreach(v, i, item) {
		if ((int)json_typeof(item) != type)
			return hs_fail(err, "field \"%s\": item %zu has the wrong type", key, i);
	}
	*out = v;
	return 0;
}

int hs_sysfs_find(const char *dir, const char *prefix, const char *attr, const char *value,
		  char *dev, size_t devlen)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int found = -1;

	if (!d)
		return -1;
	while (found < 0 && (e = readdir(d))) {
		char path[512], *s;

		if (e->d_name[0] == '.' || strncmp(e->d_name, prefix, strlen(prefix)) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s/%s", dir, e->d_name, attr);
		s = hs_read_text(path);
		if (s && strcmp(strtok(s, "\n") ? s : "", value) == 0) {
			snprintf(dev, devlen, "/dev/%s", e->d_name);
			found = 0;
		}
		free(s);
	}
	closedir(d);
	return found;
}
