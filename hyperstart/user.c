#define _GNU_SOURCE
#include "user.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* splits a passwd/group line into at most n ':'-separated fields; returns the count */
static int split(char *line, char **f, int n)
{
	int i = 0;

	while (i < n) {
		f[i++] = line;
		line = strchr(line, ':');
		if (!line)
			break;
		*line++ = '\0';
	}
	return i;
}

static int parse_id(const char *s, unsigned long *out)
{
	char *end;

	if (!*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return *end || errno || *out > 0xfffffffeUL ? -1 : 0;
}

/* calls fn on each line of a file inside root; stops when fn returns non-zero */
static int each_line(int rootfd, const char *path, int (*fn)(char **f, int n, void *arg),
		     void *arg)
{
	size_t len;
	char *text = hs_read_in_root(rootfd, path, 4u << 20, &len), *save = NULL;
	int r = 0;

	if (!text)
		return 0;
	for (char *line = strtok_r(text, "\n", &save); line && !r; line = strtok_r(NULL, "\n", &save)) {
		char *f[7];
		int n;

		if (*line == '#')
			continue;
		n = split(line, f, 7);
		r = fn(f, n, arg);
	}
	free(text);
	return r;
}

struct pw_query {
	const char *name; /* or NULL: match uid */
	uid_t uid;
	struct hs_user *u;
	char *user_name; /* out, for supplementary groups */
	size_t name_len;
};

static int pw_match(char **f, int n, void *arg)
{
	struct pw_query *q = arg;
	unsigned long uid, gid;

	if (n < 6 || parse_id(f[2], &uid) < 0 || parse_id(f[3], &gid) < 0)
		return 0;
	if (q->name ? strcmp(f[0], q->name) != 0 : uid != q->uid)
		return 0;
	q->u->uid = uid;
	q->u->gid = gid;
	snprintf(q->u->home, sizeof(q->u->home), "%s", *f[5] ? f[5] : "/");
	snprintf(q->user_name, q->name_len, "%s", f[0]);
	return 1;
}

struct gr_query {
	const char *name; /* group name to find, or NULL */
	gid_t gid;
	const char *member; /* collect groups listing this user, or NULL */
	struct hs_user *u;
};

static void add_group(struct hs_user *u, gid_t gid)
{
	for (int i = 0; i < u->ngroups; i++)
		if (u->groups[i] == gid)
			return;
	if (u->ngroups < HS_MAX_GROUPS)
		u->groups[u->ngroups++] = gid;
}

static int gr_match(char **f, int n, void *arg)
{
	struct gr_query *q = arg;
	unsigned long gid;
	char *save = NULL;

	if (n < 3 || parse_id(f[2], &gid) < 0)
		return 0;
	if (q->name) {
		q->gid = gid;
		return strcmp(f[0], q->name) == 0;
	}
	if (n < 4)
		return 0;
	for (char *m = strtok_r(f[3], ",", &save); m; m = strtok_r(NULL, ",", &save))
		if (strcmp(m, q->member) == 0)
			add_group(q->u, gid);
	return 0;
}

static int resolve_group(int rootfd, const char *name, gid_t *gid, struct hs_err *err)
{
	unsigned long id;
	struct gr_query q = { .name = name };

	if (parse_id(name, &id) == 0) {
		*gid = id;
		return 0;
	}
	if (!each_line(rootfd, "/etc/group", gr_match, &q))
		return hs_fail(err, "unable to find group %s: no matching entries in group file", name);
	*gid = q.gid;
	return 0;
}

static int resolve_uid(int rootfd, const char *user, struct hs_user *u, char *name, size_t len,
		       struct hs_err *err)
{
	unsigned long id;
	struct pw_query q = { .u = u, .user_name = name, .name_len = len };

	u->uid = 0;
	u->gid = 0;
	snprintf(u->home, sizeof(u->home), "/");
	name[0] = '\0';
	if (!*user)
		user = "0";
	if (parse_id(user, &id) == 0) {
		q.uid = id;
		u->uid = id;
		each_line(rootfd, "/etc/passwd", pw_match, &q);
		return 0;
	}
	q.name = user;
	if (!each_line(rootfd, "/etc/passwd", pw_match, &q))
		return hs_fail(err, "unable to find user %s: no matching entries in passwd file", user);
	return 0;
}

int hs_user_resolve(int rootfd, const char *user, const char *group, json_t *extra,
		    struct hs_user *u, struct hs_err *err)
{
	char ubuf[256], name[256];
	const char *colon = strchr(user, ':');
	json_t *item;
	size_t i;

	if (colon && !*group) {
		snprintf(ubuf, sizeof(ubuf), "%.*s", (int)(colon - user), user);
		group = colon + 1;
		user = ubuf;
	}
	u->ngroups = 0;
	if (resolve_uid(rootfd, user, u, name, sizeof(name), err) < 0)
		return -1;
	if (*group && resolve_group(rootfd, group, &u->gid, err) < 0)
		return -1;
	if (*name) {
		struct gr_query q = { .member = name, .u = u };

		each_line(rootfd, "/etc/group", gr_match, &q);
	}
	json_array_foreach(extra, i, item) {
		gid_t gid;

		if (resolve_group(rootfd, json_string_value(item), &gid, err) < 0)
			return -1;
		add_group(u, gid);
	}
	return 0;
}
