/*
 * hyperstart — the guest's PID 1: mounts the basics, opens the host channels
 * and serves the protocol in hyperstart/api.h from a single epoll loop.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "api.h"
#include "archive.h"
#include "channel.h"
#include "event.h"
#include "loop.h"
#include "ns.h"
#include "process.h"
#include "spawn.h"
#include "system.h"
#include "util.h"

static void sigchld_cb(struct hs_watch *w, uint32_t revents)
{
	struct signalfd_siginfo si;

	(void)revents;
	while (read(w->fd, &si, sizeof(si)) == sizeof(si))
		;
	hs_proc_reap();
}

int main(int argc, char **argv)
{
	static struct hs_watch sigchld = { .cb = sigchld_cb };
	sigset_t mask;

	/* the program of the host's warm-up container (hyperd/sandbox/warmup.py), run
	   there as /proc/self/exe: an exec of a static binary that exits at once */
	if (argc > 1 && strcmp(argv[1], HYPER_EXIT_ARG) == 0)
		return 0;
	hs_spawn_title(argv[0]);
	hs_system_init();
	if (hs_ns_boot() < 0)
		hs_log("no pid namespace of its own: %m");
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sigchld.fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sigchld.fd < 0 || hs_loop_init() < 0) {
		hs_log("cannot set up the event loop: %m");
		hs_poweroff();
	}
	hs_watch_set(&sigchld, EPOLLIN);
	if (hs_chan_open() < 0)
		hs_poweroff();
	hs_log("ready");
	for (;;) {
		int timeout = hs_proc_sync(), archive = hs_archive_sync();

		if (archive >= 0 && (timeout < 0 || archive < timeout))
			timeout = archive;
		hs_event_flush();
		hs_chan_sync();
		hs_loop_once(timeout);
	}
}
