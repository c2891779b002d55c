#include "loop.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "util.h"

static int epfd = -1;

int hs_loop_init(void)
{
	epfd = epoll_create1(EPOLL_CLOEXEC);
	return epfd < 0 ? -1 : 0;
}

void hs_watch_set(struct hs_watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };
	int op;

	if (w->fd < 0 || w->events == events)
		return;
	op = !w->events ? EPOLL_CTL_ADD : events ? EPOLL_CTL_MOD : EPOLL_CTL_DEL;
	if (epoll_ctl(epfd, op, w->fd, &ev) < 0)
		hs_log("epoll_ctl(%d, fd %d): %m", op, w->fd);
	w->events = events;
}

void hs_watch_close(struct hs_watch *w)
{
	if (w->fd < 0)
		return;
	hs_watch_set(w, 0);
	close(w->fd);
	w->fd = -1;
}

void hs_loop_once(int timeout_ms)
{
	struct epoll_event evs[32];
	int n = epoll_wait(epfd, evs, 32, timeout_ms);

	if (n < 0 && errno != EINTR)
		hs_log("epoll_wait: %m");
	/*
	 * A callback may close another watch of this batch (a process finishing
	 * closes its pipes); owners mark such watches fd = -1 and free them only
	 * from hs_proc_sync, which runs after the batch, so the pointers stay valid.
	 */
	for (int i = 0; i < n; i++) {
		struct hs_watch *w = evs[i].data.ptr;

		if (w->fd >= 0)
			w->cb(w, evs[i].events);
	}
}
