/* sched_line.c — a run's status line: what runs, what the running tasks' progress files say,
 * the maps' items, and what waits in the executors' queues (Executor.describe). On a
 * terminal it is redrawn in place; without one the parts that change are printed as lines
 * now and then. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "progress.h"
#include "sched_internal.h"

/* What waits in the executors' queues, and why ("[12 pending: Resources]"), for the status
 * line; without a terminal it is printed when it changes, every 10 s at most. */
static void queue_parts(Run *r, Buf *line)
{
	Buf parts = {0};
	for (int e = 0; e < r->o->nexecutors; e++)
		if (r->o->executors[e]->describe) {
			Buf part = {0};
			r->o->executors[e]->describe(r->o->executors[e], &part);
			if (part.len)
				buf_printf(&parts, "%s[%s]", parts.len ? " " : "", buf_str(&part));
			buf_free(&part);
		}
	if (parts.len)
		buf_printf(line, "%s%s", line->len ? " " : "", buf_str(&parts));
	int64_t now = now_mono_ns();
	if (!r->st.tty && parts.len && strcmp(buf_str(&parts), buf_str(&r->queue_said)) &&
	    now - r->queue_said_ns >= 10000000000LL) {
		status_print(&r->st, "queue", "%s", buf_str(&parts));
		buf_reset(&r->queue_said);
		buf_puts(&r->queue_said, buf_str(&parts));
		r->queue_said_ns = now;
	}
	buf_free(&parts);
}

void sched_status_line(Run *r)
{
	Task *names[8];
	int nn = 0;
	for (Job *j = r->running; j && nn < 8; j = j->next)
		names[nn++] = j->task;
	Buf line = {0};
	buf_puts(&line, buf_str(&r->wait_text));
	progress_poll_jobs(r->running, &r->st, &line, &r->progress_printed_ns);
	queue_parts(r, &line);
	if (r->g->nshards) {
		Buf progress = {0};
		shards_progress(r, &progress, 0);
		buf_printf(&line, "%s%s", line.len && progress.len ? "; " : "", buf_str(&progress));
		buf_free(&progress);
	}
	/* after a Ctrl-C the tasks are being stopped (SIGTERM, then SIGKILL after the grace) */
	status_line(&r->st, r->done, r->sum->total,
		    r->sum->stopped_by_signal ? "stopping (Ctrl-C again kills them now)" : "running", names, nn,
		    buf_str(&line));
	buf_free(&line);
}
