/* units.h — what a metric's name says of it: its unit ("epoch_time_s" is in seconds,
 * "images_per_s" in images/s) and which way is better (a time: less; a throughput: more),
 * so tables print units and call a ratio to a baseline a speedup the right way round. */
#ifndef KILN_UNITS_H
#define KILN_UNITS_H

typedef enum {
	METRIC_PLAIN, /* an accuracy, a loss, a share: a ratio to a baseline is only a ratio */
	METRIC_TIME,  /* less is faster: the speedup is baseline / value */
	METRIC_RATE   /* more is faster: the speedup is value / baseline */
} MetricKind;

/* The unit the name's last word gives ("_s" s, "_ms" ms, "_pct" %, "_gbs" GB/s,
 * "images_per_s" images/s, "tflops" TFLOP/s), or NULL: a static string. */
const char *metric_unit_of_name(const char *name);
/* declared (a plot's `unit`) if set, else the name's. */
const char *metric_unit(const char *name, const char *declared);
/* By the unit when it says (seconds, "/s"), else by the name (time, latency, throughput,
 * bandwidth ...). */
MetricKind metric_kind(const char *name, const char *declared);
/* Decimals that print a column whose largest magnitude is maxabs with four significant
 * digits (1300 -> 0, 102 -> 1, 10 -> 2, 0.75 -> 4), 0..6. */
int metric_decimals(double maxabs);

#endif
