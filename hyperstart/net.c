#define _GNU_SOURCE
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <net/if.h>
#include <net/route.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

static char first_ip[INET_ADDRSTRLEN];

const char *hs_net_first_ip(void)
{
	return first_ip;
}

static void set_name(char dst[IFNAMSIZ], const char *name)
{
	size_t n = strnlen(name, IFNAMSIZ - 1);

	memcpy(dst, name, n);
	dst[n] = '\0';
}

static int sock(void)
{
	return socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
}

static int ifreq_ioctl(unsigned long req, struct ifreq *ifr)
{
	int fd = sock(), r;

	if (fd < 0)
		return -1;
	r = ioctl(fd, req, ifr);
	if (r < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	close(fd);
	return 0;
}

static int set_flags(const char *name, int up)
{
	struct ifreq ifr = {0};

	set_name(ifr.ifr_name, name);
	if (ifreq_ioctl(SIOCGIFFLAGS, &ifr) < 0)
		return -1;
	if (up)
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	else
		ifr.ifr_flags &= ~IFF_UP;
	return ifreq_ioctl(SIOCSIFFLAGS, &ifr);
}

int hs_net_lo_up(void)
{
	return set_flags("lo", 1);
}

static int is_mac(const char *s)
{
	unsigned int b[6];
	char tail;

	return sscanf(s, "%x:%x:%x:%x:%x:%x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) == 6;
}

/* device: an interface name, or a MAC address matched against every interface */
static int find_device(const char *device, char name[IFNAMSIZ], struct hs_err *err)
{
	struct if_nameindex *all, *i;
	int found = -1;

	if (!is_mac(device)) {
		if (!if_nametoindex(device))
			return hs_fail(err, "no interface %s", device);
		set_name(name, device);
		return 0;
	}
	all = if_nameindex();
	if (!all)
		return hs_fail(err, "if_nameindex: %s", strerror(errno));
	for (i = all; i->if_index && found < 0; i++) {
		struct ifreq ifr = {0};
		unsigned char *m = (unsigned char *)ifr.ifr_hwaddr.sa_data;
		char mac[18];

		set_name(ifr.ifr_name, i->if_name);
		if (ifreq_ioctl(SIOCGIFHWADDR, &ifr) < 0)
			continue;
		snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
		if (strcasecmp(mac, device) == 0) {
			set_name(name, i->if_name);
			found = 0;
		}
	}
	if_freenameindex(all);
	return found < 0 ? hs_fail(err, "no interface with MAC %s", device) : 0;
}

static int parse_ip(const char *s, struct in_addr *a, struct hs_err *err)
{
	if (inet_pton(AF_INET, s, a) != 1)
		return hs_fail(err, "bad IPv4 address \"%s\"", s);
	return 0;
}

/* netMask: a prefix length ("24") or a dotted mask */
static int parse_mask(const char *s, struct in_addr *m, struct hs_err *err)
{
	char *end;
	long n;

	if (strchr(s, '.'))
		return parse_ip(s, m, err);
	n = strtol(s, &end, 10);
	if (!*s || *end || n < 0 || n > 32)
		return hs_fail(err, "bad netmask \"%s\"", s);
	m->s_addr = htonl(n ? 0xffffffffu << (32 - n) : 0);
	return 0;
}

static int set_addr(const char *name, unsigned long req, struct in_addr a)
{
	struct ifreq ifr = {0};
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;

	set_name(ifr.ifr_name, name);
	sin->sin_family = AF_INET;
	sin->sin_addr = a;
	return ifreq_ioctl(req, &ifr);
}

/* the first address goes on the device, the others on aliases dev:1, dev:2, ... */
static int add_addresses(const char *name, json_t *addrs, struct hs_err *err)
{
	json_t *item;
	size_t i;

	json_array_foreach(addrs, i, item) {
		const char *ip, *mask = "32";
		struct in_addr a, m;
		char label[IFNAMSIZ + 32];

		if (hs_json_str(item, "ipAddress", 1, &ip, err) < 0 ||
		    hs_json_str(item, "netMask", 0, &mask, err) < 0 || parse_ip(ip, &a, err) < 0 ||
		    parse_mask(mask, &m, err) < 0)
			return -1;
		if (i == 0)
			snprintf(label, sizeof(label), "%s", name);
		else
			snprintf(label, sizeof(label), "%s:%zu", name, i);
		if (strlen(label) >= IFNAMSIZ)
			return hs_fail(err, "alias name %s too long", label);
		if (set_addr(label, SIOCSIFADDR, a) < 0 || set_addr(label, SIOCSIFNETMASK, m) < 0)
			return hs_fail(err, "%s: set address %s/%s: %s", label, ip, mask, strerror(errno));
		if (!*first_ip)
			snprintf(first_ip, sizeof(first_ip), "%s", ip);
	}
	return 0;
}

static int rename_link(char name[IFNAMSIZ], const char *new_name, struct hs_err *err)
{
	struct ifreq ifr = {0};

	if (!*new_name || strcmp(new_name, name) == 0)
		return 0;
	if (strlen(new_name) >= IFNAMSIZ)
		return hs_fail(err, "interface name %s too long", new_name);
	set_flags(name, 0);
	set_name(ifr.ifr_name, name);
	set_name(ifr.ifr_newname, new_name);
	if (ifreq_ioctl(SIOCSIFNAME, &ifr) < 0)
		return hs_fail(err, "rename %s to %s: %s", name, new_name, strerror(errno));
	set_name(name, new_name);
	return 0;
}

int hs_net_setup_interface(json_t *req, struct hs_err *err)
{
	const char *device, *new_name = "";
	long long mtu = 0;
	json_t *addrs;
	char name[IFNAMSIZ];

	if (hs_json_str(req, "device", 1, &device, err) < 0 ||
	    hs_json_str(req, "newName", 0, &new_name, err) < 0 ||
	    hs_json_int(req, "mtu", 0, &mtu, err) < 0 ||
	    hs_json_array(req, "ipAddresses", JSON_OBJECT, &addrs, err) < 0 ||
	    find_device(device, name, err) < 0 || rename_link(name, new_name, err) < 0)
		return -1;
	if (mtu > 0) {
		struct ifreq ifr = { .ifr_mtu = (int)mtu };

		set_name(ifr.ifr_name, name);
		if (ifreq_ioctl(SIOCSIFMTU, &ifr) < 0)
			return hs_fail(err, "%s: mtu %lld: %s", name, mtu, strerror(errno));
	}
	if (add_addresses(name, addrs, err) < 0)
		return -1;
	if (set_flags(name, 1) < 0)
		return hs_fail(err, "%s: up: %s", name, strerror(errno));
	return 0;
}

static int parse_dest(const char *dest, struct in_addr *a, struct in_addr *m, struct hs_err *err)
{
	char ip[INET_ADDRSTRLEN + 4];
	const char *slash = strchr(dest, '/');

	if (strcmp(dest, "default") == 0 || strcmp(dest, "0.0.0.0/0") == 0) {
		a->s_addr = m->s_addr = 0;
		return 0;
	}
	if (!slash || (size_t)(slash - dest) >= sizeof(ip))
		return hs_fail(err, "bad route destination \"%s\"", dest);
	snprintf(ip, sizeof(ip), "%.*s", (int)(slash - dest), dest);
	return parse_ip(ip, a, err) < 0 || parse_mask(slash + 1, m, err) < 0 ? -1 : 0;
}

static int add_route(json_t *r, struct hs_err *err)
{
	const char *dest, *gw = "", *dev = "";
	struct rtentry rt = {0};
	struct in_addr a, m, g;
	char name[IFNAMSIZ];
	int fd, rc;

	if (!json_is_object(r))
		return hs_fail(err, "route: expected an object");
	if (hs_json_str(r, "dest", 1, &dest, err) < 0 || hs_json_str(r, "gateway", 0, &gw, err) < 0 ||
	    hs_json_str(r, "device", 0, &dev, err) < 0 || parse_dest(dest, &a, &m, err) < 0)
		return -1;
	rt.rt_flags = RTF_UP;
	((struct sockaddr_in *)&rt.rt_dst)->sin_family = AF_INET;
	((struct sockaddr_in *)&rt.rt_dst)->sin_addr.s_addr = a.s_addr & m.s_addr;
	((struct sockaddr_in *)&rt.rt_genmask)->sin_family = AF_INET;
	((struct sockaddr_in *)&rt.rt_genmask)->sin_addr = m;
	((struct sockaddr_in *)&rt.rt_gateway)->sin_family = AF_INET;
	if (*gw) {
		if (parse_ip(gw, &g, err) < 0)
			return -1;
		((struct sockaddr_in *)&rt.rt_gateway)->sin_addr = g;
		rt.rt_flags |= RTF_GATEWAY;
	}
	if (m.s_addr == 0xffffffffu)
		rt.rt_flags |= RTF_HOST;
	if (*dev) {
		if (find_device(dev, name, err) < 0)
			return -1;
		rt.rt_dev = name;
	}
	fd = sock();
	rc = fd < 0 ? -1 : ioctl(fd, SIOCADDRT, &rt);
	if (rc < 0 && errno != EEXIST)
		hs_fail(err, "route %s via %s: %s", dest, *gw ? gw : "-", strerror(errno));
	if (fd >= 0)
		close(fd);
	return rc < 0 && errno != EEXIST ? -1 : 0;
}

int hs_net_setup_route(json_t *req, struct hs_err *err)
{
	json_t *routes, *r;
	size_t i;

	if (hs_json_array(req, "routes", JSON_OBJECT, &routes, err) < 0)
		return -1;
	json_array_foreach(routes, i, r)
		if (add_route(r, err) < 0)
			return -1;
	return 0;
}

/* the address going is no longer the one new containers' /etc/hosts name */
static void forget_first_ip(const struct sockaddr *addr)
{
	char ip[INET_ADDRSTRLEN];

	if (addr->sa_family == AF_INET &&
	    inet_ntop(AF_INET, &((const struct sockaddr_in *)addr)->sin_addr, ip, sizeof(ip)) &&
	    strcmp(ip, first_ip) == 0)
		first_ip[0] = '\0';
}

/* setting 0.0.0.0 deletes an IPv4 address; aliases are found with SIOCGIFCONF */
static void flush_addresses(const char *name)
{
	struct ifreq reqs[64];
	struct ifconf ifc = { .ifc_len = sizeof(reqs), .ifc_req = reqs };
	struct in_addr zero = { 0 };
	size_t n = strlen(name);
	int fd = sock();

	if (fd < 0)
		return;
	if (ioctl(fd, SIOCGIFCONF, &ifc) == 0)
		for (size_t i = 0; i < ifc.ifc_len / sizeof(struct ifreq); i++)
			if (strncmp(reqs[i].ifr_name, name, n) == 0 &&
			    (!reqs[i].ifr_name[n] || reqs[i].ifr_name[n] == ':')) {
				forget_first_ip(&reqs[i].ifr_addr);
				set_addr(reqs[i].ifr_name, SIOCSIFADDR, zero);
			}
	close(fd);
}

int hs_net_delete_interface(json_t *req, struct hs_err *err)
{
	const char *device;
	char name[IFNAMSIZ];

	if (hs_json_str(req, "device", 1, &device, err) < 0 || find_device(device, name, err) < 0)
		return -1;
	flush_addresses(name);
	if (set_flags(name, 0) < 0)
		return hs_fail(err, "%s: down: %s", name, strerror(errno));
	return 0;
}
