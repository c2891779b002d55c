#define _GNU_SOURCE
#include "security.h"

#include <errno.h>
#include <jansson.h>
#include <linux/capability.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>

#include "seccomp.h"
#include "util.h"

#define CAP_BIT(c) (1ull << (c))
#define ALL_CAPS (CAP_BIT(CAP_CHECKPOINT_RESTORE + 1) - 1)

static const char *const cap_names[] = {
	[CAP_CHOWN] = "CHOWN", [CAP_DAC_OVERRIDE] = "DAC_OVERRIDE",
	[CAP_DAC_READ_SEARCH] = "DAC_READ_SEARCH", [CAP_FOWNER] = "FOWNER",
	[CAP_FSETID] = "FSETID", [CAP_KILL] = "KILL", [CAP_SETGID] = "SETGID",
	[CAP_SETUID] = "SETUID", [CAP_SETPCAP] = "SETPCAP",
	[CAP_LINUX_IMMUTABLE] = "LINUX_IMMUTABLE", [CAP_NET_BIND_SERVICE] = "NET_BIND_SERVICE",
	[CAP_NET_BROADCAST] = "NET_BROADCAST", [CAP_NET_ADMIN] = "NET_ADMIN",
	[CAP_NET_RAW] = "NET_RAW", [CAP_IPC_LOCK] = "IPC_LOCK", [CAP_IPC_OWNER] = "IPC_OWNER",
	[CAP_SYS_MODULE] = "SYS_MODULE", [CAP_SYS_RAWIO] = "SYS_RAWIO",
	[CAP_SYS_CHROOT] = "SYS_CHROOT", [CAP_SYS_PTRACE] = "SYS_PTRACE",
	[CAP_SYS_PACCT] = "SYS_PACCT", [CAP_SYS_ADMIN] = "SYS_ADMIN", [CAP_SYS_BOOT] = "SYS_BOOT",
	[CAP_SYS_NICE] = "SYS_NICE", [CAP_SYS_RESOURCE] = "SYS_RESOURCE",
	[CAP_SYS_TIME] = "SYS_TIME", [CAP_SYS_TTY_CONFIG] = "SYS_TTY_CONFIG",
	[CAP_MKNOD] = "MKNOD", [CAP_LEASE] = "LEASE", [CAP_AUDIT_WRITE] = "AUDIT_WRITE",
	[CAP_AUDIT_CONTROL] = "AUDIT_CONTROL", [CAP_SETFCAP] = "SETFCAP",
	[CAP_MAC_OVERRIDE] = "MAC_OVERRIDE", [CAP_MAC_ADMIN] = "MAC_ADMIN",
	[CAP_SYSLOG] = "SYSLOG", [CAP_WAKE_ALARM] = "WAKE_ALARM",
	[CAP_BLOCK_SUSPEND] = "BLOCK_SUSPEND", [CAP_AUDIT_READ] = "AUDIT_READ",
	[CAP_PERFMON] = "PERFMON", [CAP_BPF] = "BPF", [CAP_CHECKPOINT_RESTORE] = "CHECKPOINT_RESTORE",
};

/* Docker's default set (moby oci/caps/defaults.go) */
static const uint64_t docker_default =
	CAP_BIT(CAP_CHOWN) | CAP_BIT(CAP_DAC_OVERRIDE) | CAP_BIT(CAP_FSETID) | CAP_BIT(CAP_FOWNER) |
	CAP_BIT(CAP_MKNOD) | CAP_BIT(CAP_NET_RAW) | CAP_BIT(CAP_SETGID) | CAP_BIT(CAP_SETUID) |
	CAP_BIT(CAP_SETFCAP) | CAP_BIT(CAP_SETPCAP) | CAP_BIT(CAP_NET_BIND_SERVICE) |
	CAP_BIT(CAP_SYS_CHROOT) | CAP_BIT(CAP_KILL) | CAP_BIT(CAP_AUDIT_WRITE);

/* "NET_ADMIN", "cap_net_admin" or "ALL" (*all set) into *mask */
static int parse_caps(json_t *arr, const char *field, uint64_t *mask, int *all, struct hs_err *err)
{
	json_t *item;
	size_t i;

	*mask = 0;
	*all = 0;
	json_array_foreach(arr, i, item) {
		const char *name = json_string_value(item);
		size_t k, n = sizeof(cap_names) / sizeof(cap_names[0]);

		if (strncasecmp(name, "CAP_", 4) == 0)
			name += 4;
		if (strcasecmp(name, "ALL") == 0) {
			*all = 1;
			continue;
		}
		for (k = 0; k < n && strcasecmp(name, cap_names[k]); k++)
			;
		if (k == n)
			return hs_fail(err, "field \"%s\": unknown capability \"%.64s\"", field,
				       json_string_value(item));
		*mask |= CAP_BIT(k);
	}
	return 0;
}

/* Docker's TweakCapabilities: ALL in capAdd wins, then ALL in capDrop, else default - drop + add */
static uint64_t tweak(uint64_t add, int add_all, uint64_t drop, int drop_all)
{
	if (add_all)
		return ALL_CAPS & ~drop;
	if (drop_all)
		return add;
	return (docker_default & ~drop) | add;
}

int hs_security_parse(json_t *spec, struct hs_security *sec, struct hs_err *err)
{
	json_t *add_arr, *drop_arr;
	uint64_t add, drop;
	int add_all, drop_all, privileged = 0;

	sec->seccomp = 1;
	sec->no_new_privs = 0;
	if (hs_json_array(spec, "capAdd", JSON_STRING, &add_arr, err) < 0 ||
	    hs_json_array(spec, "capDrop", JSON_STRING, &drop_arr, err) < 0 ||
	    hs_json_bool(spec, "privileged", &privileged, err) < 0 ||
	    hs_json_bool(spec, "noNewPrivileges", &sec->no_new_privs, err) < 0 ||
	    hs_json_bool(spec, "seccomp", &sec->seccomp, err) < 0 ||
	    parse_caps(add_arr, "capAdd", &add, &add_all, err) < 0 ||
	    parse_caps(drop_arr, "capDrop", &drop, &drop_all, err) < 0)
		return -1;
	if (privileged) {
		sec->caps = ALL_CAPS;
		sec->seccomp = 0;
	} else {
		sec->caps = tweak(add, add_all, drop, drop_all);
	}
	return 0;
}

int hs_security_apply(const struct hs_security *sec, const char **what)
{
	*what = "drop capabilities";
	for (int cap = 0; cap < 64; cap++)
		if (!(sec->caps & CAP_BIT(cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 &&
		    errno != EINVAL) /* EINVAL: a capability this kernel does not have */
			return -1;
	*what = "clear ambient capabilities";
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		return -1;
	*what = "set no_new_privs";
	if (sec->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	*what = "install the seccomp filter";
	if (sec->seccomp && hs_seccomp_install(sec->caps) < 0)
		return -1;
	return 0;
}
