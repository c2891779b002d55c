#define _GNU_SOURCE
#include "dispatch.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "archive.h"
#include "channel.h"
#include "container.h"
#include "net.h"
#include "process.h"
#include "ps.h"
#include "system.h"
#include "util.h"

#define FREEZE_WAIT_MS 2000 /* a FREEZE answers once every process has stopped, or fails */

struct reply {
	struct hs_err err;
	char *data; /* ACK payload (malloc'd), or NULL */
	size_t len;
	int poweroff;
};

/* raw/rawlen: the bytes after the JSON object (WRITEFILE only) */
typedef int (*handler)(json_t *req, const unsigned char *raw, size_t rawlen, struct reply *r);

static int reply_json(struct reply *r, json_t *j)
{
	r->data = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!r->data)
		return hs_fail(&r->err, "out of memory");
	r->len = strlen(r->data);
	return 0;
}

static struct hs_container *container_arg(json_t *req, const char *key, struct hs_err *err)
{
	const char *id;
	struct hs_container *c;

	if (hs_json_str(req, key, 1, &id, err) < 0)
		return NULL;
	c = hs_container_find(id);
	if (!c)
		hs_fail(err, "no container %s", id);
	return c;
}

static int signal_arg(json_t *req, int *sig, struct hs_err *err)
{
	long long n;

	if (hs_json_int(req, "signal", 1, &n, err) < 0)
		return -1;
	if (n < 1 || n > SIGRTMAX)
		return hs_fail(err, "bad signal %lld", n);
	*sig = (int)n;
	return 0;
}

static int do_getversion(json_t *req, const unsigned char *raw, size_t rawlen, struct reply *r)
{
	(void)req, (void)raw, (void)rawlen;
	return reply_json(r, json_pack("{s:i}", "version", HYPER_API_VERSION));
}

static int do_ping(json_t *req, const unsigned char *raw, size_t rawlen, struct reply *r)
{
	(void)req, (void)raw, (void)rawlen, (void)r;
	return 0;
}

static int do_startpod(json_t *req, const unsigned char *raw, size_t rawlen, struct reply *r)
{
	(void)raw, (void)rawlen;
	return hs_pod_start(req, &r->err);
}

static int do_destroypod(json_t *req, const unsigned char *raw, size_t rawlen, struct reply *r)
{
	(void)req, (void)raw, (void)rawlen;
	r->poweroff = 1;
	return 0;
}

static int do_execcmd(json_t *req, const unsigned char *raw, size_t rawlen, struct reply *r)
{
	struct hs_container *c = container_arg(req, "container", &r->err);
	json_t *proc = json_object_get(req, "process");

	(void)raw, (void)rawlen;
	if (!c)
		return -1;
	if (!proc)
		return hs_fail(&r->err, "missing field \"process\"");
	return hs_proc_start(c, proc, 0, &r->err);
}

static int do_winsize(json_t *req, const unsigned char *raw, size_t rawlen, struct reply *r)
{
	struct hs_container *c = container_arg(req, "container", &r->err);
	const char *id;
	long long row, col;

	(void)raw, (void)rawlen;
	if (!c || hs_json_str(req, "process", 1, &id, &r->err) < 0 ||
	    hs_json_int(req, "row", 1, &row, &r->err) < 0 || hs_json_int(req, "column", 1, &col, &r->err) < 0)
		return -1;
	if (row < 0 || row > 0xffff || col < 0 || col > 0xffff)
		return hs_fail(&r->err, "bad terminal size %lldx%lld", row, col);
	return hs_proc_winsize(c, id, (int)row, (int)col, &r->err);
}

static int do_next(json_t *req, const unsigned char *raw, size_t rawlen, struct reply *r)
{
	(void)req, (void)raw, (void)rawlen;
	return hs_fail(&r->err, "NEXT is deprecated: virtio-serial provides flow control");
}

/* the container's root, or the guest's own for container "" */
static int root_arg(json_t *req, struct hs_err *err)
{
	const char *id;
	struct hs_container *c;
	int fd;

	if (hs_json_str(req, "container", 1, &id, err) < 0)
		return -1;
	if (!*id) {
		fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
		return fd < 0 ? hs_fail(err, "open /: %s", strerror(errno)) : fd;
	}
	c = hs_container_find(id);
	if (!c)
		return hs_fail(err, "no container %s", id);
	fd = fcntl(c->rootfd, F_DUPFD_CLOEXEC, 3);
	return fd < 0 ? hs_fail(err, "dup: %s", strerror(errno)) : fd;
}

static int do_writefile(json_t *req, const unsigned char *raw, size_t rawlen, struct reply *r)
{
	const char *path;
	long long mode = 0644;
	int rootfd, rc;

	if (hs_json_str(req, "path", 1, &path, &r->err) < 0 ||
	    hs_json_int(req, "mode", 0, &mode, &r->err) < 0)
		return -1;
	if (!*path)
		return hs_fail(&r->err, "empty path");
	if (mode < 0 || mode > 07777)
		return hs_fail(&r->err, "bad mode %llo", mode);
	rootfd = root_arg(req, &r->err);
	if (rootfd < 0)
		return -1;
	rc = hs_write_in_root(rootfd, path, raw, rawlen, (mode_t)mode);
	if (rc < 0)
		hs_fail(&r->err, "write %s: %s", path, strerror(errno));
	close(rootfd);
	return rc;
}

static int do_readfile(json_t *req, const unsigned char *raw, size_t rawlen, struct reply *r)
{
	const char *path;
	int rootfd;

	(void)raw, (void)rawlen;
	if (hs_json_str(req, "path", 1, &path, &r->err) < 0)
		return -1;
	rootfd = root_arg(req, &r->err);
	if (rootfd < 0)
		return -1;
	r->data = hs_read_in_root(rootfd, path, HYPER_MAX_CONTROL_FRAME - HYPER_CONTROL_HEADER_SIZE,
				  &r->len);
	if (!r->data)
		hs_fail(&r->err, "read %s: %s", path,
			errno == EFBIG ? "file larger than a control frame" : strerror(errno));
	close(rootfd);
	return r->data ? 0 : -1;
}

static int do_newcontainer(json_t *req, const unsigned char *raw, size_t rawlen, struct reply *r)
{
	(void)raw, (void)rawlen;
	return hs_container_new(req, &r->err);
}

static int do_killcontainer(json_t *req, const unsigned char *raw, size_t rawlen, struct reply *r)
{
	struct hs_container *c = container_arg(req, "container", &r->err);
	int sig;

	(void)raw, (void)rawlen;
	if (!c || signal_arg(req, &sig, &r->err) < 0)
		return -1;
	if (!c->main_proc)
		return hs_fail(&r->err, "container %s has no main process", c->id);
	return hs_proc_signal(c, c->main_proc, sig, &r->err);
}

static int do_onlinecpumem(json_t *req, const unsigned char *raw, size_t rawlen, struct reply *r)
{
	(void)req, (void)raw, (void)rawlen;
	if (hs_online_cpu_mem(&r->err) < 0)
		return -1;
	return hs_container_relimit(&r->err); /* more memory: more for each container */
}

static int do_setupinterface(json_t *req, const unsigned char *raw, size_t rawlen, struct reply *r)
{
	(void)raw, (void)rawlen;
	return hs_net_setup_interface(req, &r->err);
}

static int do_setuproute(json_t *req, const unsigned char *raw, size_t rawlen, struct reply *r)
{
	(void)raw, (void)rawlen;
	return hs_net_setup_route(req, &r->err);
}

static int do_removecontainer(json_t *req, const unsigned char *raw, size_t rawlen, struct reply *r)
{
	const char *id;

	(void)raw, (void)rawlen;
	if (hs_json_str(req, "container", 1, &id, &r->err) < 0)
		return -1;
	return hs_container_remove(id, &r->err);
}

static int do_signalprocess(json_t *req, const unsigned char *raw, size_t rawlen, struct reply *r)
{
	struct hs_container *c = container_arg(req, "container", &r->err);
	const char *id;
	int sig;

	(void)raw, (void)rawlen;
	if (!c || hs_json_str(req, "process", 1, &id, &r->err) < 0 || signal_arg(req, &sig, &r->err) < 0)
		return -1;
	return hs_proc_signal(c, id, sig, &r->err);
}

static int do_deleteinterface(json_t *req, const unsigned char *raw, size_t rawlen, struct reply *r)
{
	(void)raw, (void)rawlen;
	return hs_net_delete_interface(req, &r->err);
}

static int do_ps(json_t *req, const unsigned char *raw, size_t rawlen, struct reply *r)
{
	struct hs_container *c = container_arg(req, "container", &r->err);
	json_t *out;

	(void)raw, (void)rawlen;
	if (!c || hs_ps(c, &out, &r->err) < 0)
		return -1;
	return reply_json(r, out);
}

static int do_sync(json_t *req, const unsigned char *raw, size_t rawlen, struct reply *r)
{
	struct hs_container *c;

	(void)raw, (void)rawlen;
	if (!json_object_get(req, "container")) {
		sync();
		return 0;
	}
	c = container_arg(req, "container", &r->err);
	return c ? hs_container_sync(c, &r->err) : -1;
}

static int do_freeze(json_t *req, const unsigned char *raw, size_t rawlen, struct reply *r)
{
	struct hs_container *c = container_arg(req, "container", &r->err);
	int frozen = 0, running;

	(void)raw, (void)rawlen;
	if (!c || hs_json_bool(req, "frozen", &frozen, &r->err) < 0)
		return -1;
	if (!frozen) {
		hs_ps_signal(c, SIGCONT);
		return 0;
	}
	running = hs_ps_stop(c, FREEZE_WAIT_MS);
	return running ? hs_fail(&r->err, "%d processes of %s did not stop in %d ms", running,
				 c->id, FREEZE_WAIT_MS) : 0;
}

static int do_statpath(json_t *req, const unsigned char *raw, size_t rawlen, struct reply *r)
{
	struct hs_container *c = container_arg(req, "container", &r->err);
	const char *path;
	json_t *out;

	(void)raw, (void)rawlen;
	if (!c || hs_json_str(req, "path", 1, &path, &r->err) < 0 ||
	    hs_archive_stat(c, path, &out, &r->err) < 0)
		return -1;
	return reply_json(r, out);
}

static int do_archiveout(json_t *req, const unsigned char *raw, size_t rawlen, struct reply *r)
{
	struct hs_container *c = container_arg(req, "container", &r->err);
	json_t *out;

	(void)raw, (void)rawlen;
	if (!c || hs_archive_out(c, req, &out, &r->err) < 0)
		return -1;
	return reply_json(r, out);
}

static int do_archivein(json_t *req, const unsigned char *raw, size_t rawlen, struct reply *r)
{
	struct hs_container *c = container_arg(req, "container", &r->err);

	(void)raw, (void)rawlen;
	return c ? hs_archive_in(c, req, &r->err) : -1;
}

static const struct {
	const char *name;
	handler fn;
} commands[] = {
	[HYPER_GETVERSION] = { "GETVERSION", do_getversion },
	[HYPER_STARTPOD] = { "STARTPOD", do_startpod },
	[HYPER_DESTROYPOD] = { "DESTROYPOD", do_destroypod },
	[HYPER_EXECCMD] = { "EXECCMD", do_execcmd },
	[HYPER_WINSIZE] = { "WINSIZE", do_winsize },
	[HYPER_PING] = { "PING", do_ping },
	[HYPER_NEXT] = { "NEXT", do_next },
	[HYPER_WRITEFILE] = { "WRITEFILE", do_writefile },
	[HYPER_READFILE] = { "READFILE", do_readfile },
	[HYPER_NEWCONTAINER] = { "NEWCONTAINER", do_newcontainer },
	[HYPER_KILLCONTAINER] = { "KILLCONTAINER", do_killcontainer },
	[HYPER_ONLINECPUMEM] = { "ONLINECPUMEM", do_onlinecpumem },
	[HYPER_SETUPINTERFACE] = { "SETUPINTERFACE", do_setupinterface },
	[HYPER_SETUPROUTE] = { "SETUPROUTE", do_setuproute },
	[HYPER_REMOVECONTAINER] = { "REMOVECONTAINER", do_removecontainer },
	[HYPER_SIGNALPROCESS] = { "SIGNALPROCESS", do_signalprocess },
	[HYPER_DELETEINTERFACE] = { "DELETEINTERFACE", do_deleteinterface },
	[HYPER_PS] = { "PS", do_ps },
	[HYPER_SYNC] = { "SYNC", do_sync },
	[HYPER_STATPATH] = { "STATPATH", do_statpath },
	[HYPER_ARCHIVEOUT] = { "ARCHIVEOUT", do_archiveout },
	[HYPER_ARCHIVEIN] = { "ARCHIVEIN", do_archivein },
	[HYPER_FREEZE] = { "FREEZE", do_freeze },
};

/* an empty payload reads as {}; WRITEFILE's JSON is followed by raw bytes */
static json_t *parse_payload(uint32_t code, const unsigned char *p, size_t len, size_t *json_len,
			     struct hs_err *err)
{
	json_error_t jerr;
	json_t *j;

	*json_len = len;
	if (len == 0 && code != HYPER_WRITEFILE)
		return json_object();
	j = json_loadb((const char *)p, len, code == HYPER_WRITEFILE ? JSON_DISABLE_EOF_CHECK : 0, &jerr);
	if (!j) {
		hs_fail(err, "bad JSON payload: %s (at byte %d)", jerr.text, jerr.position);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		hs_fail(err, "bad payload: expected a JSON object");
		return NULL;
	}
	if (code == HYPER_WRITEFILE)
		*json_len = (size_t)jerr.position;
	return j;
}

/* ERROR payload: {"message": str, "exitCode": N (opt.), "errno": N (opt.)} */
static void send_error(const struct hs_err *e)
{
	json_t *j = json_pack("{s:s}", "message", e->msg);
	char *text;

	if (j && e->exit_code)
		json_object_set_new(j, "exitCode", json_integer(e->exit_code));
	if (j && e->errnum)
		json_object_set_new(j, "errno", json_integer(e->errnum));
	text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!text) { /* no memory for JSON: a constant answer still keeps the host in step */
		static const char oom[] = "{\"message\":\"out of memory\"}";

		hs_ctl_send(HYPER_ERROR, oom, sizeof(oom) - 1);
		return;
	}
	hs_ctl_send(HYPER_ERROR, text, strlen(text));
	free(text);
}

static void answer(uint32_t code, struct reply *r, int rc)
{
	if (rc < 0) {
		const char *name = code < sizeof(commands) / sizeof(commands[0]) && commands[code].name
				   ? commands[code].name : "command";

		hs_log("%s: %s", name, r->err.msg);
		send_error(&r->err);
	} else {
		hs_ctl_send(HYPER_ACK, r->data, r->len);
	}
	free(r->data);
}

void hs_dispatch(uint32_t code, const unsigned char *payload, size_t len)
{
	struct reply r = {0};
	size_t json_len;
	json_t *req;
	int rc = -1;

	if (code >= sizeof(commands) / sizeof(commands[0]) || !commands[code].fn) {
		hs_fail(&r.err, "unknown command %u", code);
	} else if ((req = parse_payload(code, payload, len, &json_len, &r.err))) {
		rc = commands[code].fn(req, payload + json_len, len - json_len, &r);
		json_decref(req);
	}
	answer(code, &r, rc);
	if (rc == 0 && r.poweroff)
		hs_poweroff();
}

void hs_dispatch_bad_length(uint32_t code, uint32_t len)
{
	struct reply r = {0};

	hs_fail(&r.err, "bad frame length %u for command %u (allowed %u..%u)", len, code,
		HYPER_CONTROL_HEADER_SIZE, HYPER_MAX_CONTROL_FRAME);
	answer(code, &r, -1);
}
