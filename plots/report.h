/* report.h — `kiln report`: one self-contained HTML page (inline SVG and CSS, no script,
 * no network): the last run (outcomes, a timeline of its attempts with the GPU
 * utilisation, the slowest tasks), an outcome map of every grid, each chart with links to
 * its svg/png/pdf and its table (deltas against an earlier run, cells that moved shaded),
 * the setup (setup.h: version, params, an environment check's results), the Markdown files
 * tasks wrote, and the history of runs. */
#ifndef KILN_REPORT_H
#define KILN_REPORT_H

#include "../base/graph.h"
#include "../base/util.h"
#include "plot.h"

typedef struct {
	const char *path, *db_path, *title;
	const char *version, *recipe; /* kiln's version and the recipe's path, for the setup */
	const PlotSpec *plots; /* the charts, their tables and rendered files */
	int nplots;
	const Graph *graph;    /* the recipe's tasks and tags, for the outcome maps; NULL: none */
	long long vs_run;      /* deltas against the values as of this run; 0: the run before the latest
				  one that recorded each chart's tasks */
	double threshold;      /* relative change beyond which a cell is shaded */
} ReportOptions;

int report_write(const ReportOptions *o, Buf *err);

#endif
