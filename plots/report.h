/* report.h — `kiln report`: one self-contained HTML page (inline SVG and CSS, no
 * network) with the last run's summary, the metric tables and the charts. */
#ifndef KILN_REPORT_H
#define KILN_REPORT_H

#include "../base/util.h"
#include "plot.h"

/* Writes the report for the given plots (their tables and rendered svg files). */
int report_write(const char *path, const char *db_path, const char *title, const PlotSpec *plots, int nplots, Buf *err);

#endif
