/* plot.h — a chart as a typed spec (what plot{} declares, carried on its task) and its
 * rendering from recorded metrics with gnuplot (svg, and png through pngcairo). The spec's
 * canonical text is the task's key component, so a change of style re-renders. Library
 * code: returns 0, or -1 with a message. */
#ifndef KILN_PLOT_H
#define KILN_PLOT_H

#include "../base/util.h"
#include "table.h"

typedef struct PlotSpec {
	const char *name, *type;       /* type: one of plot_types */
	const char **from;             /* task name globs */
	int nfrom;
	const char *x, *series, *y;    /* bars: x tag, series tag, y metric; heatmap: x = column tag,
					  series = row tag, y = value; lines: y = series metric, one line
					  per task (titled by the series tag); scatter: x, y metrics */
	const char *title, *xlabel, *ylabel, *unit;
	const char *baseline;          /* bars: "TAG=VALUE", the report's table adds ratios to that bar */
	const char *xscale;            /* lines, scatter: "linear" (default), "log" (base 10), "log2"
					  (base 2, ticks with binary prefixes: 1k, 4k, 1M: message sizes) */
	const char *size;              /* the pdf's width: "column", "text" (default) or "page" */
	const char *best;              /* bars, heatmap: "max" or "min", the best of each row of its
					  table bold (out.tex, the report) */
	const char *out;               /* path without extension: writes out.svg, out.png and out.pdf,
					  and for bars and heatmaps out.tex (plot_has_table) */
} PlotSpec;

/* The pdf presets: a page this many points wide (its height keeps the chart's shape within
 * bounds), every text on it at least PLOT_PDF_MIN_PT. NULL-terminated names. */
extern const char *const plot_sizes[];
double plot_pdf_width_pt(const char *size);
#define PLOT_PDF_MIN_PT 8.0
/* The drawing's version, part of every plot's key: raised when kiln draws charts differently
 * (3: bars and heatmaps write their table as LaTeX too). */
#define PLOT_DRAWING "3"

/* The chart types, NULL-terminated: "bars", "lines", "scatter", "heatmap". */
extern const char *const plot_types[];
/* Series colours ("#rrggbb"), colour-blind-safe and apart in greyscale. */
#define PLOT_COLOURS 8
extern const char *const plot_palette[PLOT_COLOURS];
/* Charts are at most this wide (svg px): the report shows them unscaled, text >= 11 px. */
#define PLOT_MAX_WIDTH 1300
/* Decimals for value labels: three significant digits on the largest |value| (809 -> 0,
 * 12.3 -> 1, 0.87 -> 3), the same for every label of a chart. */
int plot_label_decimals(const double *values, int n);
/* Whether spec can be drawn (its type is known and it has the fields its type needs). */
int plot_spec_check(const PlotSpec *spec, Buf *err);
/* The spec as one canonical line ("plot\tname=acc\ttype=bars\tfrom=eval/x ..."); malloc'd. */
char *plot_spec_text(const PlotSpec *spec);
/* Whether the chart has a table (bars, heatmap: one value per cell), written as out.tex
 * and shown under it in the report. */
int plot_has_table(const PlotSpec *spec);
/* The query of that table: rows the x tag (a heatmap's series), columns the series tag,
 * the chart's metric, a row of means unless a baseline adds ratios instead. */
MetricsQuery plot_table_query(const PlotSpec *spec, const char *db_path);
/* Renders spec from the metrics in db_path; gnuplot's messages go to log_fd (-1: this
 * process's stdout and stderr). */
int plot_render(const PlotSpec *spec, const char *db_path, int log_fd, Buf *err);

#endif
