/* timeline.h — pictures of one run for the report, drawn as inline SVG / HTML: the
 * timeline of its attempts on lanes (one per GPU, then job slots for the rest) coloured
 * by outcome, with the GPU utilisation beside it; and the outcome map of a grid (two tags
 * as rows and columns, each cell coloured by what its task did). Library code. */
#ifndef KILN_TIMELINE_H
#define KILN_TIMELINE_H

#include <stdint.h>
#include <stdio.h>

#include "../base/graph.h"
#include "../cache/state/history.h"

/* Writes the run's timeline (an <svg> with one <rect class="attempt"> per attempt and
 * lane, carrying data-task, data-attempt and data-lane) and a line with the utilisation:
 * busy GPU-seconds / (GPUs used x the run's span), or without GPUs the mean number of
 * attempts running at once. Restores (no process) are not drawn. Returns the bars drawn. */
int timeline_write(FILE *f, State *state, const StateRun *run);

/* What a task did, for the outcome map: its latest attempt (any run) and whether that was
 * in the run shown. */
typedef struct {
	const char *outcome, *failure, *log; /* NULL outcome: no attempt recorded */
	int64_t run_id;
} TaskOutcome;

/* Writes one outcome map per group of graph tasks sharing the same two or more tag keys
 * (rows: the tag with the most values, columns: the next); cells link failed attempts to
 * their log tails, which follow the map (id "log-N"). Returns the maps written. */
int outcome_maps_write(FILE *f, State *state, const Graph *g, int64_t run_id);

#endif
