#define _GNU_SOURCE
#include "system.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "channel.h"
#include "container.h"
#include "net.h"
#include "util.h"

static void mount_one(const char *src, const char *target, const char *type,
		      unsigned long flags, const char *data)
{
	if (hs_mkdir_p(target, 0755) < 0 || mount(src, target, type, flags, data) < 0)
		hs_log("mount %s on %s: %m", type, target);
}

static void open_console(void)
{
	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) >= 0)
			continue;
		int c = open("/dev/console", O_RDWR | O_NOCTTY);

		if (c < 0)
			c = open("/dev/null", O_RDWR);
		if (c >= 0 && c != fd) {
			dup2(c, fd);
			close(c);
		}
	}
}

/*
 * jansson seeds its hash function from /dev/urandom on first use, and before the
 * guest's CRNG is ready that read runs jitter entropy collection: ~1 s under TCG,
 * paid by the first command. GRND_INSECURE never blocks; the seed only hardens
 * hash tables against the (trusted) host.
 */
static void seed_json(void)
{
	uint32_t seed = 0;

	if (getrandom(&seed, sizeof(seed), GRND_INSECURE) != sizeof(seed))
		seed = (uint32_t)hs_now_ms() ^ (uint32_t)getpid();
	json_object_seed(seed ? seed : 1);
}

/*
 * pivot_root(2) cannot leave the initramfs (rootfs), and containers pivot into their
 * roots; so the agent moves onto a tmpfs of its own, as switch_root does, and empties
 * the initramfs first: below a container's root nothing of the guest stays reachable.
 */
static void leave_initramfs(void)
{
	static const char *const dirs[] = { "dev", "proc", "sys", "run", "etc", "tmp" };

	if (mkdir("/agent", 0755) < 0 || mount("tmpfs", "/agent", "tmpfs", MS_NOSUID, "mode=755") < 0) {
		hs_log("tmpfs root: %m");
		return;
	}
	unlink("/init"); /* this program: it runs on, its pages are mapped */
	unlink("/dev/console");
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		rmdir(dirs[i]);
	if (chdir("/agent") < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 ||
	    chdir("/") < 0)
		hs_log("move to the tmpfs root: %m");
}

void hs_system_init(void)
{
	const unsigned long nsd = MS_NOSUID | MS_NODEV | MS_NOEXEC;

	seed_json();
	umask(022);
	leave_initramfs();
	mount_one("proc", "/proc", "proc", nsd, NULL);
	mount_one("sysfs", "/sys", "sysfs", nsd, NULL);
	hs_cgroup_init();
	mount_one("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	open_console();
	mount_one("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "ptmxmode=0666,mode=0620,gid=5");
	mount_one("shm", "/dev/shm", "tmpfs", nsd, "mode=1777");
	hs_mkdir_p("/run/hs", 0755);
	setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
	if (hs_net_lo_up() < 0)
		hs_log("lo: %m");
}

/* writes "1" to every matching "online" file that reads "0" */
static int online_all(const char *pattern, struct hs_err *err)
{
	glob_t g;
	int rc = 0;

	if (glob(pattern, 0, NULL, &g) != 0)
		return 0;
	for (size_t i = 0; i < g.gl_pathc; i++) {
		char *s = hs_read_text(g.gl_pathv[i]);

		if (s && s[0] == '0' && hs_write_text(g.gl_pathv[i], "1") < 0 && rc == 0)
			rc = hs_fail(err, "%s: %s", g.gl_pathv[i], strerror(errno));
		free(s);
	}
	globfree(&g);
	return rc;
}

int hs_online_cpu_mem(struct hs_err *err)
{
	if (online_all("/sys/devices/system/cpu/cpu*/online", err) < 0 ||
	    online_all("/sys/devices/system/memory/memory*/online", err) < 0)
		return -1;
	return 0;
}

/* reaps until no child is left or timeout_ms passed */
static void reap_all(int timeout_ms)
{
	uint64_t deadline = hs_now_ms() + timeout_ms;

	while (hs_now_ms() < deadline) {
		pid_t pid = waitpid(-1, NULL, WNOHANG);

		if (pid < 0 && errno == ECHILD)
			return;
		if (pid <= 0)
			usleep(5000);
	}
}

void hs_poweroff(void)
{
	hs_log("power off");
	hs_ctl_flush(1000);
	kill(-1, SIGTERM);
	reap_all(1000);
	kill(-1, SIGKILL);
	reap_all(1000);
	sync();
	hs_container_unmount_all();
	sync();
	reboot(RB_POWER_OFF);
	for (;;)
		pause();
}
