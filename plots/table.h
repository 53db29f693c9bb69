/* table.h — `kiln metrics`: recorded metrics as a table (pivot of two tags, rows grouped by
 * one tag, or one row per task) in aligned text, Markdown, TSV or JSON, optionally with
 * deltas against an earlier run and ratios to a baseline row. Repeats of one cell (seeds)
 * print as "mean ± std". Library code: returns 0, or -1 with a message. */
#ifndef KILN_TABLE_H
#define KILN_TABLE_H

#include <stdio.h>

#include "../base/util.h"

typedef struct {
	const char *db_path;
	char **tasks;          /* task names/globs; none: all */
	int ntasks;
	const char *rows, *cols, *value; /* pivot when rows and cols are set */
	const char *format;    /* "text" (default), "md", "tsv", "json", "latex" */
	long long vs_run;      /* 0: no deltas; -1: against the run before the latest one that recorded these tasks */
	double threshold;      /* cells whose relative change exceeds it are marked (Table.marks) */
	int mean_row;          /* add a row of column means (pivot) */
	const char *baseline;  /* "TAG=VALUE": a ratio column to that row after each value column
				  (a speedup for a time or a throughput: plots/units.h) */
	const char *unit;      /* the value's unit as declared (a plot's), or NULL: from its name */
	const char *best;      /* "max", "min" or "METRIC=max|min,...": the best value of each row
				  (a pivot) or column bold; NULL: none */
} MetricsQuery;

int metrics_print(const MetricsQuery *q, FILE *out, Buf *err);

/* A grid of strings; row 0 is the header. Shared with the HTML report. */
typedef struct {
	char **cells;
	signed char *marks; /* per cell: +1 / -1 changed up / down beyond the threshold, else 0 */
	unsigned char *best; /* per cell: 1 when the best of its row (a pivot) or column (--best) */
	int nrows, ncols;
	int mean_row;       /* the row of column means (--mean), 0 when none */
	long long vs_run;   /* the run the deltas are against, 0 when none */
	char unmatched[512]; /* "" or what the query's names or globs missed, in words: the first
				that selects no task with metrics, and some that have them */
} Table;
/* Builds the table the query describes. */
int metrics_table(const MetricsQuery *q, Table *t, Buf *err);
/* text (aligned, best cells **bold**), md, tsv, json (one object per row) or latex (a
 * booktabs tabular: \usepackage{booktabs}; best cells \textbf). plots/table_write.c */
void table_write(FILE *out, const Table *t, const char *format);
/* The format --out's name implies (.tex latex, .md, .tsv, .json), or NULL. */
const char *table_format_of_path(const char *path);
void table_free(Table *t);
const char *table_cell(const Table *t, int r, int c);

#endif
