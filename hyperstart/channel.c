#define _GNU_SOURCE
#include "channel.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "api.h"
#include "archive.h"
#include "dispatch.h"
#include "loop.h"
#include "process.h"
#include "util.h"

#define STREAM_QUEUE_LIMIT (1u << 20)
#define CTL_QUEUE_LIMIT    (32u << 20) /* stop reading commands while answers pile up */
#define READ_CHUNK         65536
#define RECONNECT_POLL_MS  20
#define PORT_WAIT_MS       300000 /* longer than any boot timeout of the host */
#define PORT_SAY_MS        5000

struct frame {
	struct frame *next;
	size_t len, off;
	int keep; /* survives a host disconnection (events, stream data) */
	unsigned char data[];
};

struct chan {
	struct hs_watch w;
	const char *name;
	int connected;
	struct hs_buf in;
	struct frame *head, *tail;
	size_t queued;
	uint64_t enqueued, written;
	void (*parse)(struct chan *c);
	void (*reset)(struct chan *c);
};

static void ctl_parse(struct chan *c);
static void ctl_reset(struct chan *c);
static void stream_parse(struct chan *c);
static void stream_reset(struct chan *c);
static void chan_cb(struct hs_watch *w, uint32_t revents);
static void reconnect_cb(struct hs_watch *w, uint32_t revents);

static struct chan ctl = {
	.w = { .fd = -1, .cb = chan_cb }, .name = HYPER_CONTROL_PORT,
	.parse = ctl_parse, .reset = ctl_reset,
};
static struct chan stream = {
	.w = { .fd = -1, .cb = chan_cb }, .name = HYPER_STREAM_PORT,
	.parse = stream_parse, .reset = stream_reset,
};
static struct hs_watch reconnect_timer = { .fd = -1, .cb = reconnect_cb };

/* control parser state: payload bytes still to skip after an oversized frame */
static size_t ctl_skip;

/* stream parser state: the frame whose payload is being forwarded */
static struct {
	unsigned char hdr[HYPER_STREAM_HEADER_SIZE];
	size_t hdr_len;
	uint64_t seq;
	uint64_t remaining;
} sp;

/* ---- output queue ---- */

static struct frame *frame_new(size_t len, int keep)
{
	struct frame *f = malloc(sizeof(*f) + len);

	if (!f) {
		hs_log("out of memory for a %zu-byte frame", len);
		return NULL;
	}
	f->next = NULL;
	f->len = len;
	f->off = 0;
	f->keep = keep;
	return f;
}

static void enqueue(struct chan *c, struct frame *f, int at_front)
{
	if (at_front) {
		f->next = c->head;
		c->head = f;
		if (!c->tail)
			c->tail = f;
	} else {
		if (c->tail)
			c->tail->next = f;
		else
			c->head = f;
		c->tail = f;
	}
	c->queued += f->len;
	c->enqueued++;
}

static void dequeue(struct chan *c)
{
	struct frame *f = c->head;

	c->head = f->next;
	if (!c->head)
		c->tail = NULL;
	c->queued -= f->len;
	free(f);
}

static void flush(struct chan *c)
{
	while (c->connected && c->head) {
		struct frame *f = c->head;
		ssize_t n = write(c->w.fd, f->data + f->off, f->len - f->off);

		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				hs_log("%s: write: %m", c->name);
			return;
		}
		f->off += n;
		if (f->off == f->len) {
			dequeue(c);
			c->written++;
		}
	}
}

/*
 * The new host must see whole frames: answers meant for the old host are
 * dropped, kept frames are resent from their first byte.
 */
static void requeue_after_disconnect(struct chan *c)
{
	struct frame *f = c->head, *keep = NULL, **tailp = &keep;

	c->head = c->tail = NULL;
	c->queued = 0;
	while (f) {
		struct frame *next = f->next;

		if (f->keep) {
			f->off = 0;
			f->next = NULL;
			*tailp = f;
			tailp = &f->next;
			c->tail = f;
			c->queued += f->len;
		} else {
			free(f);
		}
		f = next;
	}
	c->head = keep;
}

void hs_ctl_send(uint32_t code, const void *payload, size_t len)
{
	struct frame *f = frame_new(HYPER_CONTROL_HEADER_SIZE + len, 0);

	if (!f)
		return;
	hs_put_be32(f->data, code);
	hs_put_be32(f->data + 4, HYPER_CONTROL_HEADER_SIZE + len);
	if (len)
		memcpy(f->data + HYPER_CONTROL_HEADER_SIZE, payload, len);
	enqueue(&ctl, f, 0);
	flush(&ctl);
}

void hs_ctl_event(const char *json)
{
	size_t len = strlen(json);
	struct frame *f = frame_new(HYPER_CONTROL_HEADER_SIZE + len, 1);

	if (!f)
		return;
	hs_put_be32(f->data, HYPER_PROCESSASYNCEVENT);
	hs_put_be32(f->data + 4, HYPER_CONTROL_HEADER_SIZE + len);
	memcpy(f->data + HYPER_CONTROL_HEADER_SIZE, json, len);
	enqueue(&ctl, f, 0);
	flush(&ctl);
}

void hs_ctl_flush(int timeout_ms)
{
	uint64_t deadline = hs_now_ms() + timeout_ms;

	for (;;) {
		struct pollfd p = { .fd = ctl.w.fd, .events = POLLOUT };
		uint64_t now;

		flush(&ctl);
		now = hs_now_ms();
		if (!ctl.connected || !ctl.head || now >= deadline)
			return;
		poll(&p, 1, (int)(deadline - now));
	}
}

void hs_stream_send(uint64_t seq, const void *data, size_t len)
{
	struct frame *f = frame_new(HYPER_STREAM_HEADER_SIZE + len, 1);

	if (!f)
		return;
	hs_put_be64(f->data, seq);
	hs_put_be32(f->data + 8, HYPER_STREAM_HEADER_SIZE + len);
	if (len)
		memcpy(f->data + HYPER_STREAM_HEADER_SIZE, data, len);
	enqueue(&stream, f, 0);
	flush(&stream);
}

int hs_stream_has_room(void)
{
	return stream.queued < STREAM_QUEUE_LIMIT;
}

uint64_t hs_stream_enqueued(void)
{
	return stream.enqueued;
}

uint64_t hs_stream_written(void)
{
	return stream.written;
}

/* ---- input parsing ---- */

static void ctl_reset(struct chan *c)
{
	(void)c;
	ctl_skip = 0;
}

static void ctl_parse(struct chan *c)
{
	for (;;) {
		const unsigned char *p = (const unsigned char *)hs_buf_head(&c->in);
		size_t avail = hs_buf_used(&c->in);
		uint32_t code, len;

		if (ctl_skip) {
			size_t n = avail < ctl_skip ? avail : ctl_skip;

			hs_buf_consume(&c->in, n);
			ctl_skip -= n;
			if (ctl_skip)
				return;
			continue;
		}
		if (avail < HYPER_CONTROL_HEADER_SIZE)
			return;
		code = hs_get_be32(p);
		len = hs_get_be32(p + 4);
		if (len < HYPER_CONTROL_HEADER_SIZE || len > HYPER_MAX_CONTROL_FRAME) {
			hs_buf_consume(&c->in, HYPER_CONTROL_HEADER_SIZE);
			if (len > HYPER_MAX_CONTROL_FRAME)
				ctl_skip = len - HYPER_CONTROL_HEADER_SIZE;
			hs_dispatch_bad_length(code, len);
			continue;
		}
		if (avail < len)
			return;
		hs_dispatch(code, p + HYPER_CONTROL_HEADER_SIZE, len - HYPER_CONTROL_HEADER_SIZE);
		hs_buf_consume(&c->in, len);
	}
}

static void stream_reset(struct chan *c)
{
	(void)c;
	memset(&sp, 0, sizeof(sp));
}

static void stream_parse(struct chan *c)
{
	while (hs_buf_used(&c->in)) {
		const char *p = hs_buf_head(&c->in);
		size_t avail = hs_buf_used(&c->in);

		if (sp.remaining) {
			size_t n = avail < sp.remaining ? avail : (size_t)sp.remaining;

			if (!hs_archive_in_data(sp.seq, p, n))
				hs_proc_stdin(sp.seq, p, n);
			sp.remaining -= n;
			hs_buf_consume(&c->in, n);
			continue;
		}
		size_t n = HYPER_STREAM_HEADER_SIZE - sp.hdr_len;

		if (n > avail)
			n = avail;
		memcpy(sp.hdr + sp.hdr_len, p, n);
		sp.hdr_len += n;
		hs_buf_consume(&c->in, n);
		if (sp.hdr_len < HYPER_STREAM_HEADER_SIZE)
			return;
		sp.hdr_len = 0;
		sp.seq = hs_get_be64(sp.hdr);
		uint32_t len = hs_get_be32(sp.hdr + 8);

		if (len == HYPER_STREAM_HEADER_SIZE) {
			if (!hs_archive_in_eof(sp.seq))
				hs_proc_stdin_eof(sp.seq);
		} else if (len < HYPER_STREAM_HEADER_SIZE)
			hs_log("stream frame for seq %llu: bad length %u",
			       (unsigned long long)sp.seq, len);
		else
			sp.remaining = len - HYPER_STREAM_HEADER_SIZE;
	}
}

/* ---- connection tracking ---- */

static int host_connected(struct chan *c)
{
	struct pollfd p = { .fd = c->w.fd, .events = POLLIN };

	return poll(&p, 1, 0) >= 0 && !(p.revents & POLLHUP);
}

static void on_connect(struct chan *c)
{
	c->connected = 1;
	hs_log("%s: host connected", c->name);
	if (c == &ctl) {
		struct frame *f = frame_new(HYPER_CONTROL_HEADER_SIZE, 0);

		if (f) {
			hs_put_be32(f->data, HYPER_READY);
			hs_put_be32(f->data + 4, HYPER_CONTROL_HEADER_SIZE);
			enqueue(c, f, 1);
		}
	}
	flush(c);
}

static void on_disconnect(struct chan *c)
{
	hs_log("%s: host disconnected", c->name);
	c->connected = 0;
	hs_watch_set(&c->w, 0);
	hs_buf_reset(&c->in);
	c->reset(c);
	requeue_after_disconnect(c);
}

static int can_read(struct chan *c)
{
	if (!c->connected)
		return 0;
	return c == &ctl ? ctl.queued < CTL_QUEUE_LIMIT : hs_proc_stdin_has_room();
}

static void chan_read(struct chan *c)
{
	/* bounded per wakeup so one busy port cannot starve the other */
	for (int i = 0; i < 16 && can_read(c); i++) {
		char *dst = hs_buf_reserve(&c->in, READ_CHUNK);
		ssize_t n;

		if (!dst)
			return;
		n = read(c->w.fd, dst, READ_CHUNK);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			if (n < 0)
				hs_log("%s: read: %m", c->name);
			on_disconnect(c);
			return;
		}
		c->in.len += n;
		c->parse(c);
	}
}

static void chan_cb(struct hs_watch *w, uint32_t revents)
{
	struct chan *c = (struct chan *)w;

	if (revents & EPOLLOUT)
		flush(c);
	if (revents & EPOLLIN)
		chan_read(c);
	/* data the host sent before hanging up was read above */
	if (c->connected && (revents & EPOLLHUP) && !host_connected(c))
		on_disconnect(c);
}

static void reconnect_cb(struct hs_watch *w, uint32_t revents)
{
	uint64_t ticks;

	(void)revents;
	if (read(w->fd, &ticks, sizeof(ticks)) < 0)
		return;
	if (!ctl.connected && host_connected(&ctl))
		on_connect(&ctl);
	if (!stream.connected && host_connected(&stream))
		on_connect(&stream);
}

static void arm_reconnect_timer(int on)
{
	struct itimerspec its = {0};

	if (on == (reconnect_timer.events != 0))
		return;
	if (on) {
		its.it_interval.tv_nsec = RECONNECT_POLL_MS * 1000000L;
		its.it_value = its.it_interval;
	}
	timerfd_settime(reconnect_timer.fd, 0, &its, NULL);
	hs_watch_set(&reconnect_timer, on ? EPOLLIN : 0);
}

void hs_chan_sync(void)
{
	uint32_t ev;

	if (ctl.connected) {
		ev = can_read(&ctl) ? EPOLLIN : 0;
		hs_watch_set(&ctl.w, ev | (ctl.head ? EPOLLOUT : 0));
	}
	if (stream.connected) {
		ev = can_read(&stream) ? EPOLLIN : 0;
		hs_watch_set(&stream.w, ev | (stream.head ? EPOLLOUT : 0));
	}
	arm_reconnect_timer(!ctl.connected || !stream.connected);
}

/* ---- finding the ports ---- */

static int find_port(const char *name, char *dev, size_t devlen)
{
	return hs_sysfs_find("/sys/class/virtio-ports", "", "name", name, dev, devlen);
}

/*
 * A port is named by the host after the device is probed; with many TCG guests on few
 * cores that took over 5 s. The host bounds the boot (it destroys a VM that is not READY
 * in time), so the agent waits as long as the host would rather than giving up first.
 */
static int open_port(struct chan *c)
{
	uint64_t start = hs_now_ms(), said = 0;
	char dev[300];

	for (;;) {
		uint64_t waited = hs_now_ms() - start;

		if (find_port(c->name, dev, sizeof(dev)) == 0) {
			c->w.fd = open(dev, O_RDWR | O_NONBLOCK | O_CLOEXEC);
			if (c->w.fd >= 0)
				return 0;
		}
		if (waited >= PORT_WAIT_MS) {
			hs_log("%s: port not found in %d s", c->name, PORT_WAIT_MS / 1000);
			return -1;
		}
		if (waited >= said + PORT_SAY_MS) {
			said = waited;
			hs_log("%s: still waiting for the port (%llu s)", c->name,
			       (unsigned long long)(waited / 1000));
		}
		usleep(10000);
	}
}

int hs_chan_open(void)
{
	if (open_port(&ctl) < 0 || open_port(&stream) < 0)
		return -1;
	reconnect_timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (reconnect_timer.fd < 0)
		return -1;
	if (host_connected(&ctl))
		on_connect(&ctl);
	if (host_connected(&stream))
		on_connect(&stream);
	hs_chan_sync();
	return 0;
}
