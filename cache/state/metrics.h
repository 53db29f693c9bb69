/* metrics.h — a task's metrics file (JSON) as rows: scalars, nested objects flattened as
 * a.b.c, and arrays (of numbers, or of objects) as per-step series. Library code. */
#ifndef KILN_METRICS_H
#define KILN_METRICS_H

#include "../../base/util.h"

typedef struct {
	char *key;
	int series;   /* 1: a point of a per-step series */
	double step;  /* series only */
	double value;
	char *text;   /* string metrics: value unused */
} MetricRow;

typedef struct {
	MetricRow *rows;
	int count, cap;
} Metrics;

/* Reads and flattens path. Returns 0, or -1 with "PATH: line L, column C: ..." in err. */
int metrics_read(const char *path, Metrics *m, Buf *err);
/* The same for text already in memory (len bytes, and text[len] == 0 as read_file gives);
 * path only names it in messages. */
int metrics_parse(const char *text, size_t len, const char *path, Metrics *m, Buf *err);
void metrics_free(Metrics *m);

#endif
