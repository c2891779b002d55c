/* container.h — pod settings and containers: their roots, mounts and /etc files. */
#ifndef HS_CONTAINER_H
#define HS_CONTAINER_H

#define HS_MAX_MOUNTS 48
#define HS_MAX_ID 128
/* paths under /run/hs/<id> (ids are shorter than HS_MAX_ID) */
#define HS_PATH 512

struct hs_container {
	struct hs_container *next;
	char *id;
	char dir[HS_MAX_ID + 16]; /* "/run/hs/<id>": staging mounts of the layers */
	char root[HS_PATH];  /* "<dir>/root" */
	char upper[HS_PATH]; /* the overlay's upper directory: the container's changes */
	int rootfd;          /* O_PATH of root */
	char *main_proc;     /* id of the main process, or NULL */
	int nmounts;
	char mounts[HS_MAX_MOUNTS][HS_PATH]; /* in mount order */
};

struct hs_err;
struct json_t;
/* STARTPOD */
int hs_pod_start(struct json_t *req, struct hs_err *err);
const char *hs_pod_hostname(void);

int hs_container_new(struct json_t *req, struct hs_err *err);
struct hs_container *hs_container_find(const char *id);
int hs_container_remove(const char *id, struct hs_err *err);
/* syncfs of every filesystem mounted for c */
int hs_container_sync(struct hs_container *c, struct hs_err *err);
/* lazily unmounts every container (power off) */
void hs_container_unmount_all(void);

#endif
