/* sched_line.c — a run's status line: what runs, what the running tasks' progress files say,
 * the maps' items, and what waits in the executors' queues (Executor.describe). On a
 * terminal it is redrawn in place; without one the parts that change are printed as lines
 * now and then. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
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

void sched_eta_planned(Run *r, Task *t)
{
	if (!r->est) {
		r->est = estimator_new(r->g, r->o->cache);
		r->est_state = xcalloc((size_t)r->g->ntasks + 1, 1);
		r->est_sec = xcalloc((size_t)r->g->ntasks + 1, sizeof *r->est_sec);
	}
	if (r->est_state[t->index])
		return;
	r->est_state[t->index] = 1;
	double sec = r->est_sec[t->index] = estimator_task(r->est, t);
	if (sec >= 0)
		r->est_known += sec, r->est_nknown++;
	else
		r->est_nunknown++;
}

void sched_eta_ended(Run *r, const Task *t)
{
	if (!r->est_state || r->est_state[t->index] != 1)
		return;
	r->est_state[t->index] = 2;
	r->est_ended++;
	if (r->est_sec[t->index] >= 0)
		r->est_done_known += r->est_sec[t->index];
	else
		r->est_ended_unknown++;
}

void sched_eta_free(Run *r)
{
	estimator_free(r->est);
	free(r->est_state);
	free(r->est_sec);
}

/* "elapsed 1m20s, ETA 3m": the estimated work left at the pace the work done so far went
 * (which counts the slots, CPUs and GPUs really used); by task counts where nothing is
 * recorded to estimate from. */
static void eta_part(Run *r, Buf *line)
{
	int planned = r->est_nknown + r->est_nunknown;
	if (!planned || !r->started_ns)
		return;
	double elapsed = (double)(now_mono_ns() - r->started_ns) / 1e9;
	double mean = r->est_nknown ? r->est_known / r->est_nknown : 0;
	double total = r->est_known + r->est_nunknown * mean, done = r->est_done_known + r->est_ended_unknown * mean;
	double eta = -1;
	if (total > 0 && done > 0)
		eta = elapsed * (total - done) / done;
	else if (total <= 0 && r->est_ended > 0)
		eta = elapsed * (planned - r->est_ended) / r->est_ended;
	char e[32], left[32];
	format_duration(elapsed, e, sizeof e);
	buf_printf(line, "%selapsed %s", line->len ? "; " : "", e);
	if (eta >= 0 && r->est_ended < planned) {
		format_duration(eta, left, sizeof left);
		buf_printf(line, ", ETA %s", left);
	}
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
	eta_part(r, &line);
	status_line(&r->st, r->done, r->sum->total,
		    r->sum->stopped_by_signal ? "stopping (Ctrl-C again kills them now)" : "running", names, nn,
		    buf_str(&line));
	buf_free(&line);
}
