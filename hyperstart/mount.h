/*
 * mount.h — a container's mounts from NEWCONTAINER's "mounts" list: the overlay
 * root from the "/" entries, the kernel filesystems every container sees, then
 * the volumes inside the root, resolved without leaving it.
 */
#ifndef HS_MOUNT_H
#define HS_MOUNT_H

#define HS_MAX_MOUNT_ENTRIES 32

/* one MOUNT object (api.h); strings point into the request */
struct hs_mount {
	const char *type;   /* "block", "9p", "tmpfs" */
	const char *source; /* disk serial, 9p tag; ignored for tmpfs */
	const char *fstype;
	const char *target; /* absolute, inside the container */
	const char *options;
	const char *layer;  /* "lower", "upper" (target "/" only), else "" */
	int readonly, populate;
};

struct hs_container;
struct hs_err;
struct json_t;

/* checks every entry of the "mounts" array before anything is mounted */
int hs_mounts_parse(struct json_t *arr, struct hs_mount *m, int *n, struct hs_err *err);
/* overlay of the lowers and the upper (a tmpfs when there is none) on c->root */
int hs_mount_root(struct hs_container *c, const struct hs_mount *m, int n, struct hs_err *err);
/* /sys /dev /dev/pts /dev/shm like Docker's defaults, and /tmp (/proc: ns.h) */
int hs_mount_kernel_fs(struct hs_container *c, struct hs_err *err);
/* the non-root entries, in list order, inside the root */
int hs_mount_volumes(struct hs_container *c, const struct hs_mount *m, int n, struct hs_err *err);
/* unmounts everything mounted for c, newest first */
void hs_mount_undo(struct hs_container *c);

#endif
