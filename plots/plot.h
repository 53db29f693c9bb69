/* plot.h — rendering a chart from recorded metrics with gnuplot (svg, and png through
 * pngcairo). The spec travels as the plot task's command line, so a change of style changes
 * the task's key. Library code: returns 0, or -1 with a message. */
#ifndef KILN_PLOT_H
#define KILN_PLOT_H

#include "../base/util.h"

typedef struct {
	const char *name, *type;       /* type: bars, lines, scatter, heatmap */
	char **from;                   /* task name globs */
	int nfrom;
	const char *x, *series, *y;    /* bars: x tag, series tag, y metric; heatmap: x = column tag,
					  series = row tag, y = value; lines: y = series metric, one line
					  per task (titled by the series tag); scatter: x, y metrics */
	const char *title, *xlabel, *ylabel, *unit;
	const char *out;               /* path without extension: writes out.svg and out.png */
} PlotSpec;

/* Parses render-plot's command-line words into spec (pointers into argv). -1 + err on misuse. */
int plot_spec_parse(int argc, char **argv, PlotSpec *spec, Buf *err);
/* Renders spec from the metrics in db_path. */
int plot_render(const PlotSpec *spec, const char *db_path, Buf *err);

#endif
