/*
 * user.h — user and group resolution from a container's own /etc/passwd and
 * /etc/group (parsed here: a static binary cannot use glibc's NSS).
 */
#ifndef HS_USER_H
#define HS_USER_H

#include <sys/types.h>

#define HS_MAX_GROUPS 64

struct hs_user {
	uid_t uid;
	gid_t gid;
	gid_t groups[HS_MAX_GROUPS];
	int ngroups;
	char home[256];
};

struct hs_err;
struct json_t;
/*
 * user: name or uid ("" = root; "user:group" accepted when group is empty),
 * group: name or gid ("" = the user's primary group, or 0 when the uid has no
 * passwd entry), extra: JSON array of group names/gids (may be NULL).
 */
int hs_user_resolve(int rootfd, const char *user, const char *group,
		    struct json_t *extra, struct hs_user *u, struct hs_err *err);

#endif
