/* net.h — interfaces and routes, configured with ioctls (IPv4). */
#ifndef HS_NET_H
#define HS_NET_H

struct hs_err;
struct json_t;

int hs_net_lo_up(void);
int hs_net_setup_interface(struct json_t *req, struct hs_err *err);
int hs_net_setup_route(struct json_t *req, struct hs_err *err);
int hs_net_delete_interface(struct json_t *req, struct hs_err *err);
/* the first address SETUPINTERFACE configured that DELETEINTERFACE has not removed
   since, "" if none (the address new containers' /etc/hosts give the pod's hostname) */
const char *hs_net_first_ip(void);

#endif
