/*
 * event.h — PROCESSASYNCEVENT "finished" for processes and archive transfers,
 * sent only after every stream frame queued before it (their EOFs) was written.
 */
#ifndef HS_EVENT_H
#define HS_EVENT_H

/*
 * status: exit code (processes) or 0 / errno (transfers); error: text or NULL;
 * oom_killed: the OOM killer killed a process of the container while this one ran
 */
void hs_event_finished(const char *container, const char *process, int status, const char *error,
		       int oom_killed);
/* sends the events whose stream frames are out; run after every loop iteration */
void hs_event_flush(void);

#endif
