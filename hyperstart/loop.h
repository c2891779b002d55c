/* loop.h — the epoll loop: each fd is a watch with a callback and a wanted event mask. */
#ifndef HS_LOOP_H
#define HS_LOOP_H

#include <stdint.h>

struct hs_watch {
	int fd;
	uint32_t events; /* currently registered; 0 = not in epoll */
	void (*cb)(struct hs_watch *w, uint32_t revents);
};

int hs_loop_init(void);
/* registers, modifies or (events == 0) removes the watch; a no-op when unchanged */
void hs_watch_set(struct hs_watch *w, uint32_t events);
/* removes the watch from epoll and closes its fd */
void hs_watch_close(struct hs_watch *w);
/* waits for events (at most timeout_ms) and runs their callbacks */
void hs_loop_once(int timeout_ms);

#endif
