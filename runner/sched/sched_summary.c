/* sched_summary.c — the end of a run on screen: why it stopped, each failed task with its
 * reason and the tail of its log, then the counts and the GPU wait (last: they stay in view). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched_internal.h"

/* The widest a log line is shown: a line is what a terminal would show of it (what follows
 * its last carriage return: a progress bar's latest state), its end when longer. */
#define TAIL_LINE_MAX 400

static void print_tail(const char *path, int lines)
{
	size_t len;
	char *text = read_file_tail(path, 64 * 1024, &len, NULL); /* lines past that are not shown anyway */
	if (!text)
		return;
	const char *p = text + len;
	int seen = 0;
	while (p > text && seen <= lines)
		if (*--p == '\n' && p + 1 < text + len)
			seen++;
	if (*p == '\n')
		p++;
	for (const char *line = p; *line;) {
		const char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) : strlen(line), shown = n;
		const char *from = line;
		while (shown > 0 && from[shown - 1] == '\r') /* a bar's line ends "\r\n" at its last state */
			shown--;
		const char *cr = shown ? memrchr(from, '\r', shown) : NULL;
		if (cr)
			shown -= (size_t)(cr + 1 - from), from = cr + 1;
		size_t clip = shown > TAIL_LINE_MAX ? shown - TAIL_LINE_MAX : 0;
		printf("    | %s%.*s\n", clip ? "..." : "", (int)(shown - clip), from + clip);
		line += n + (nl != NULL);
	}
	free(text);
}

/* Orders failures (numbers into the array ctx) by log, then as they came: those that share
 * a log lie together. */
static int by_log_then_order(const void *a, const void *b, void *ctx)
{
	const Failure *failures = ctx;
	int i = *(const int *)a, j = *(const int *)b;
	const char *x = failures[i].log, *y = failures[j].log;
	int c = (x && y) ? strcmp(x, y) : (x != NULL) - (y != NULL);
	return c ? c : (i > j) - (i < j);
}

/* Each failure's recap, in the order they came, with its log's tail. Failures that share a
 * log (a map shard's items) print it once, after the first SAME_LOG_SHOWN of their lines and
 * a count of the rest (each had its FAILED line as it happened). */
#define SAME_LOG_SHOWN 5
static void print_failures(const Failure *failures, int n)
{
	if (n == 0)
		return;
	int *order = xmalloc((size_t)n * sizeof *order); /* failures, a log's together */
	int *group_end = xmalloc((size_t)n * sizeof *group_end); /* a group's first: past its last in order */
	int *first_at = xmalloc((size_t)n * sizeof *first_at);   /* a group's first: its place in order; -1 */
	for (int i = 0; i < n; i++)
		order[i] = i, first_at[i] = -1;
	qsort_r(order, (size_t)n, sizeof *order, by_log_then_order, (void *)failures);
	for (int k = 0, end; k < n; k = end) {
		const char *log = failures[order[k]].log;
		for (end = k + 1; log && end < n && failures[order[end]].log && !strcmp(log, failures[order[end]].log);)
			end++;
		first_at[order[k]] = k, group_end[order[k]] = end;
	}
	for (int i = 0; i < n; i++) { /* each group where its first failure came */
		if (first_at[i] < 0)
			continue;
		int from = first_at[i], end = group_end[i];
		for (int m = from; m < end && m < from + SAME_LOG_SHOWN; m++)
			printf("FAILED %s: %s\n", failures[order[m]].task->name, failures[order[m]].reason);
		if (end - from > SAME_LOG_SHOWN)
			printf("  ... and %d more with the same log\n", end - from - SAME_LOG_SHOWN);
		if (failures[i].log) {
			printf("  log: %s\n", failures[i].log);
			print_tail(failures[i].log, 10);
		}
	}
	free(order), free(group_end), free(first_at);
}

void sched_print_summary(Run *r, SchedSummary *s)
{
	status_clear(&r->st);
	char wall[32];
	format_duration(s->wall_sec, wall, sizeof wall);
	if (s->stopped_by_signal && s->cut_short)
		printf("kiln: stopped by %s; %d running task%s stopped, not recorded as done\n",
		       s->stopped_by_signal == SIGINT ? "Ctrl-C (SIGINT)" : strsignal(s->stopped_by_signal), s->cut_short,
		       s->cut_short == 1 ? "" : "s");
	else if (s->stopped_by_signal) /* what ran had finished (recorded as it ended), or none ran */
		printf("kiln: stopped by %s; no running task was cut short\n",
		       s->stopped_by_signal == SIGINT ? "Ctrl-C (SIGINT)" : strsignal(s->stopped_by_signal));
	if (r->state_error)
		printf("kiln: %s\n", r->state_error);
	print_failures(r->failures, r->nfailures);
	char taken[96] = ""; /* a rerun after a killed kiln: what ran once, in the jobs it left */
	if (s->taken_up)
		snprintf(taken, sizeof taken, " (%d in attempts an earlier kiln started, re-attached)", s->taken_up);
	printf("kiln: %d task%s: %d ran%s, %d up to date, %d restored, %d failed, %d not run, in %s\n", s->total,
	       s->total == 1 ? "" : "s", s->ran, taken, s->up_to_date, s->restored, s->failed, s->not_run, wall);
	if (s->gpu_wait_sec > 0) { /* summed over tasks that waited side by side: it can exceed the run's time */
		char waited[32], longest[32];
		format_duration(s->gpu_wait_sec, waited, sizeof waited);
		format_duration(s->gpu_wait_max_sec, longest, sizeof longest);
		printf("kiln: %d task%s waited for GPUs, %s in all, the longest %s\n", s->gpu_waiters,
		       s->gpu_waiters == 1 ? "" : "s", waited, longest);
	}
	fflush(stdout);
}
