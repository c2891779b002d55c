#include "event.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "channel.h"
#include "util.h"

struct event {
	struct event *next;
	uint64_t mark; /* sent once the stream port has written this many frames */
	char *json;
};

static struct event *events, **events_tail = &events;

void hs_event_finished(const char *container, const char *process, int status, const char *error,
		       int oom_killed)
{
	struct event *e = calloc(1, sizeof(*e));
	json_t *j = json_pack("{s:s, s:s, s:s, s:i}", "container", container, "process", process,
			      "event", "finished", "status", status);

	if (j && error && json_object_set_new(j, "error", json_string(error)) < 0)
		json_decref(j), j = NULL;
	if (j && oom_killed && json_object_set_new(j, "oomKilled", json_true()) < 0)
		json_decref(j), j = NULL;
	if (!e || !j || !(e->json = json_dumps(j, JSON_COMPACT))) {
		hs_log("%s/%s: cannot queue the finished event", container, process);
		free(e);
		json_decref(j);
		return;
	}
	json_decref(j);
	e->mark = hs_stream_enqueued();
	*events_tail = e;
	events_tail = &e->next;
}

void hs_event_flush(void)
{
	while (events && hs_stream_written() >= events->mark) {
		struct event *e = events;

		hs_ctl_event(e->json);
		events = e->next;
		if (!events)
			events_tail = &events;
		free(e->json);
		free(e);
	}
}
