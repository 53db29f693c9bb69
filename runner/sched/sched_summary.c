/* sched_summary.c — the end of a run on screen: why it stopped, each failed task with its
 * reason and the tail of its log, then the counts and the GPU wait (last: they stay in view). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched_internal.h"

static void print_tail(const char *path, int lines)
{
	size_t len;
	char *text = read_file(path, &len);
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
		int n = nl ? (int)(nl - line) : (int)strlen(line);
		printf("    | %.*s\n", n, line);
		line += n + (nl != NULL);
	}
	free(text);
}

void sched_print_summary(Run *r, SchedSummary *s)
{
	status_clear(&r->st);
	char wall[32];
	format_duration(s->wall_sec, wall, sizeof wall);
	if (s->stopped_by_signal)
		printf("kiln: stopped by %s; running tasks were stopped and are not recorded as done\n",
		       s->stopped_by_signal == SIGINT ? "Ctrl-C (SIGINT)" : strsignal(s->stopped_by_signal));
	if (r->state_error)
		printf("kiln: %s\n", r->state_error);
	/* each failure's recap first: the counts close the run, where the eye lands */
	for (int i = 0; i < r->nfailures; i++) {
		Failure *f = &r->failures[i];
		printf("FAILED %s: %s\n", f->task->name, f->reason);
		if (f->log) {
			printf("  log: %s\n", f->log);
			print_tail(f->log, 10);
		}
	}
	printf("kiln: %d task%s: %d ran, %d up to date, %d restored, %d failed, %d not run, in %s\n", s->total,
	       s->total == 1 ? "" : "s", s->ran, s->up_to_date, s->restored, s->failed, s->not_run, wall);
	if (s->gpu_wait_sec > 0) {
		char waited[32];
		format_duration(s->gpu_wait_sec, waited, sizeof waited);
		printf("kiln: tasks waited %s for GPUs in all\n", waited);
	}
	fflush(stdout);
}
