/* mview.h — a read-only view of recorded metrics: for each task its latest ingestion (or
 * the latest at or before a given run), with the tags it had then. Tasks are in recipe
 * (declaration) order, so tables and charts come out the same every time. Reads go
 * through cache/results.h, the one owner of those tables. Library code. */
#ifndef KILN_MVIEW_H
#define KILN_MVIEW_H

#include <stdint.h>

#include "../base/graph.h"
#include "../cache/state/metrics.h"

typedef struct {
	const char *task;
	int64_t run_id;
	KeyValue *tags; /* in key order */
	int ntags;
	Metrics scalars; /* the task's scalar rows (series == 0), in key order */
	int stale;       /* an attempt failed (or was stopped) after these were recorded: charts
			    leave it out, tables mark it */
} MTask;

typedef struct MView MView;

/* Opens db_path read-only; as_of_run 0 means the latest; patterns (glob over task names,
 * n of them; none: all tasks) select tasks. NULL + err when the database cannot be read. */
MView *mview_open(const char *db_path, int64_t as_of_run, char **patterns, int npatterns, Buf *err);
void mview_close(MView *v);
/* The first of the patterns mview_open was given that selected no task with metrics
 * (owned by the caller's list), or NULL; others: up to four names of tasks that have
 * metrics, ", "-separated, and how many there are. */
const char *mview_unmatched(const MView *v, Buf *others, int *nothers);
int mview_count(const MView *v);
const MTask *mview_task(const MView *v, int i);
const MTask *mview_find(const MView *v, const char *task);
const char *mtask_tag(const MTask *t, const char *key);
/* A scalar metric, or a tag parsed as a number; 1 if found. */
int mtask_number(const MTask *t, const char *key, double *out);
/* The series key of a task (steps ascending): malloc'd arrays, returns the count. */
int mview_series(MView *v, const MTask *t, const char *key, double **steps, double **values);
/* The id of the latest run, or 0. */
int64_t mview_latest_run(MView *v);

/* A pivot: row tag x column tag -> mean of the value over the tasks in each cell (repeats
 * of one cell, e.g. seeds, with their standard deviation). No row tag: one row per task;
 * no column tag: one column, the value. */
typedef struct {
	char **rows, **cols; /* distinct tag values, in order of first appearance */
	int nrows, ncols;
	double *cells;       /* nrows x ncols, NAN where empty */
	double *stds;        /* sample standard deviation, NAN where a cell has fewer than 2 values */
	int *counts;         /* values in each cell */
} Pivot;
void pivot_build(const MView *v, const char *row_tag, const char *col_tag, const char *value_key, Pivot *p);
void pivot_free(Pivot *p);

#endif
