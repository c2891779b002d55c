/*
 * channel.h — the two virtio-serial ports: finding them, framing, buffered
 * non-blocking IO, and host (dis)connection tracking.
 */
#ifndef HS_CHANNEL_H
#define HS_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

/* finds and opens both ports (waiting for them briefly); -1 when they never show up */
int hs_chan_open(void);

/* a command answer: dropped if the host disconnects before it is written */
void hs_ctl_send(uint32_t code, const void *payload, size_t len);
/* PROCESSASYNCEVENT: kept across disconnections and sent after the next READY */
void hs_ctl_event(const char *json);
/* best effort: writes queued control frames out, waiting at most timeout_ms */
void hs_ctl_flush(int timeout_ms);

/* queues one stream frame (len == 0: EOF); len <= HYPER_MAX_STREAM_FRAME - header */
void hs_stream_send(uint64_t seq, const void *data, size_t len);
/* false once the stream port's queue is full: stop reading process output */
int hs_stream_has_room(void);
/* frames queued so far / frames written to the port so far */
uint64_t hs_stream_enqueued(void);
uint64_t hs_stream_written(void);

/* recomputes the ports' epoll masks; run after every loop iteration */
void hs_chan_sync(void);

#endif
