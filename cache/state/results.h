/* results.h — the results tables of state.db (ingests, metrics, series, metric_tags): the
 * one module that writes a task's metrics and reads them back for tables, charts and the
 * report. Metrics keep one shape (metrics.h's rows, base/graph.h's KeyValue tags) from a
 * task's JSON to a chart. Library module: errors come back as -1 (see state_error). */
#ifndef KILN_RESULTS_H
#define KILN_RESULTS_H

#include <stdint.h>

#include "../../base/graph.h"
#include "metrics.h"
#include "state.h"

/* Records m for task in run_id with its tags, at its position in the recipe. 0 or -1. */
int results_put(State *s, int64_t run_id, const char *task, int position, const KeyValue *tags, int ntags,
		const Metrics *m);
/* Calls fn for each task's latest ingest (the latest at or before as_of_run when it is
 * not 0), in recipe order, stale when an attempt of the task failed or was stopped after it
 * (its outputs are gone; the value is its last success's); strings live during the call.
 * 0, or -1 when the database holds no results tables. */
int results_each_ingest(State *s, int64_t as_of_run,
			void (*fn)(void *ctx, const char *task, int64_t run_id, int stale), void *ctx);
/* The tags and the scalar metrics (series == 0) task recorded in run_id, in key order,
 * appended to tags / m; strings are copied into arena. */
void results_read(State *s, const char *task, int64_t run_id, Arena *arena, KeyValue **tags, int *ntags, Metrics *m);
/* The series key of task in run_id, steps ascending: malloc'd arrays; returns the count. */
int results_series(State *s, const char *task, int64_t run_id, const char *key, double **steps, double **values);

#endif
