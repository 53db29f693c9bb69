/* progress.c — reading KILN_PROGRESS files, or a task's log_progress pattern over the end of
 * its log. A reading is kept with its time in a small ring, so the rate is over the last
 * minute, not since the start (a task that loads a model for two minutes first would
 * otherwise show a rate that is much too low). */
#define _GNU_SOURCE
#include "progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../cache/cache.h"
#include "../recipe/logmetrics.h"

#define SAMPLES 64
#define LOG_EVERY_NS 1000000000LL    /* a log changes with every line: looked at once a second */

struct Progress {
	int64_t mtime_ns, size;
	int64_t looked_ns;      /* when the log was last looked at (log_progress) */
	long long done, total;
	int64_t at[SAMPLES];   /* when each reading was taken */
	long long was[SAMPLES]; /* its done count */
	int n, next;
};

char *progress_path_for(const char *log_path)
{
	char *path = xasprintf("%s" ATTEMPT_PROGRESS_SUFFIX, log_path); /* beside the log: its directory exists */
	unlink(path);
	return path;
}

void progress_end(Job *job)
{
	if (job->progress_path)
		unlink(job->progress_path);
	free(job->progress);
	job->progress = NULL;
}

/* The last complete "done/total" line of the file; 1 if one was found. */
static int last_reading(const char *path, long long *done, long long *total)
{
	size_t len;
	long long from;
	char *whole = read_file_tail(path, 4096, &len, &from); /* a file appended to for days: its end */
	if (!whole)
		return 0;
	char *text = whole;
	if (from > 0) { /* the first line is cut: from the next */
		char *nl = memchr(text, '\n', len);
		size_t skip = nl ? (size_t)(nl + 1 - text) : len;
		text += skip, len -= skip;
	}
	int found = text_last_fraction(text, len, done, total);
	free(whole);
	return found;
}

/* The task's log_progress reading in the end of its log: 1 if there is one. */
static int last_log_reading(const Task *t, const char *log, long long *done, long long *total)
{
	if (!t->opts->log_progress)
		return 0; /* nothing to read it for */
	size_t len;
	long long from;
	char *tail = read_file_tail(log, LOG_PROGRESS_TAIL, &len, &from);
	int found = tail && log_progress_in_tail(t, tail, len, from == 0, done, total);
	free(tail);
	return found;
}

int progress_reading(const Task *t, const char *log_path, long long *done, long long *total)
{
	char *path = xasprintf("%s" ATTEMPT_PROGRESS_SUFFIX, log_path);
	int found = last_reading(path, done, total) || last_log_reading(t, log_path, done, total);
	free(path);
	return found;
}

static void poll_one(Job *job, int64_t now)
{
	struct stat st;
	const char *path = job->progress_path;
	int from_log = 0;
	if (!path || stat(path, &st) != 0) { /* the task writes no KILN_PROGRESS (yet) */
		path = job->task->opts->log_progress ? job->log_path : NULL;
		if (!path || (job->progress && now - job->progress->looked_ns < LOG_EVERY_NS) || stat(path, &st) != 0)
			return;
		from_log = 1;
	}
	int64_t mtime = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
	Progress *p = job->progress;
	if (p && p->mtime_ns == mtime && p->size == st.st_size)
		return;
	if (from_log && !p)
		p = job->progress = xcalloc(1, sizeof *p); /* for when it was looked at: no reading yet */
	if (p)
		p->looked_ns = now, p->mtime_ns = mtime, p->size = st.st_size;
	long long done, total;
	if (!(from_log ? last_log_reading(job->task, path, &done, &total) : last_reading(path, &done, &total)))
		return;
	if (!p)
		p = job->progress = xcalloc(1, sizeof *p);
	p->mtime_ns = mtime, p->size = st.st_size, p->done = done, p->total = total;
	p->at[p->next] = now, p->was[p->next] = done;
	p->next = (p->next + 1) % SAMPLES;
	p->n += p->n < SAMPLES;
}

static void describe(const Job *job, int64_t now, Buf *out)
{
	const Progress *p = job->progress;
	buf_printf(out, "%s%s %lld/%lld", out->len ? "; " : "", job->task->name, p->done, p->total);
	int oldest = -1; /* the earliest reading of the last minute */
	for (int i = 0; i < p->n; i++)
		if (now - p->at[i] <= 60000000000LL && (oldest < 0 || p->at[i] < p->at[oldest]))
			oldest = i;
	double span = oldest >= 0 ? (double)(now - p->at[oldest]) / 1e9 : 0;
	if (span >= 1 && p->done > p->was[oldest]) {
		double rate = (double)(p->done - p->was[oldest]) / span;
		buf_printf(out, ", %.1f/s", rate);
		if (p->done < p->total) {
			char eta[32];
			format_duration((double)(p->total - p->done) / rate, eta, sizeof eta);
			buf_printf(out, ", ETA %s", eta);
		}
	}
}

void progress_poll_jobs(Job *running, Status *st, Buf *line, int64_t *printed_ns)
{
	int64_t now = now_mono_ns();
	Buf shown = {0};
	for (Job *j = running; j; j = j->next) {
		poll_one(j, now);
		if (j->progress && j->progress->n)
			describe(j, now, &shown);
	}
	if (shown.len) {
		buf_printf(line, "%s%s", line->len ? "; " : "", buf_str(&shown));
		if (!st->tty && now - *printed_ns >= 10000000000LL) {
			status_print(st, "progress", "%s", buf_str(&shown));
			*printed_ns = now;
		}
	}
	buf_free(&shown);
}
