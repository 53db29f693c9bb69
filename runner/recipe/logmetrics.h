/* logmetrics.h — metrics from a log's lines: a task's log_metrics names Lua patterns, one
 * per metric, whose matches in an attempt's output become that metric's series (a point
 * per match) and scalar (the last match), recorded as a metrics file's are; and its
 * log_progress, a pattern whose last match in a running attempt's output is its progress. */
#ifndef KILN_LOGMETRICS_H
#define KILN_LOGMETRICS_H

#include "../../base/graph.h"
#include "../../cache/state/metrics.h"

/* Whether pattern is a Lua pattern with one or two captures (the value, then maybe the
 * step): 0, or -1 with why in err. Runs in a Lua state of its own, so a recipe that
 * replaced string.find changes nothing. */
int log_metrics_check(const char *pattern, Buf *err);
/* Appends to m, for each (name, pattern) of the n given, one series point per match in the
 * log at log_path (after kiln's header; step: the second capture, else the match's index
 * from 0) and the last match as the scalar name. A capture that is no number makes a text
 * scalar. 0, or -1 with why in err (the log cannot be read). */
int log_metrics_extract(const char *log_path, const KeyValue *patterns, int n, Metrics *m, Buf *err);

/* log_progress: whether pattern is a Lua pattern with two captures (the count done, then
 * the total) or, when total > 0 is given, one (the count done): 0, or -1 with why in err. */
int log_progress_check(const char *pattern, long long total, Buf *err);
/* The last match in text[0, len) of a log_progress pattern whose captures are whole numbers
 * (done >= 0, total > 0): 1 with *done and *total (total_given when > 0, else the second
 * capture), or 0 when there is none. */
int log_progress_last(const char *text, size_t len, const char *pattern, long long total_given, long long *done,
		      long long *total);
/* Task t's log_progress reading in a log's end (tail: its last len bytes; whole: all of it,
 * kiln's header maybe first, which is left out; else the line the tail's start cut is): 1
 * with *done and *total, or 0 (none, or t has no log_progress). */
int log_progress_in_tail(const Task *t, const char *tail, size_t len, int whole, long long *done, long long *total);
/* How much of a log's end log_progress_in_tail needs: a bar redrawn with \r for hours. */
#define LOG_PROGRESS_TAIL 16384

#endif
