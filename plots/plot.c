/* plot.c — turning recorded metrics into gnuplot data and scripts. Values come from the
 * latest ingestion of each task the spec's globs select; several tasks in one cell are
 * averaged. gnuplot runs once per chart and writes both the svg and the png. */
#define _GNU_SOURCE
#include "plot.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../base/os.h"
#include "mview.h"

const char *const plot_types[] = {"bars", "lines", "scatter", "heatmap", NULL};

/* Okabe & Ito's colour-blind-safe colours, ordered so that the first five also differ in
 * lightness (relative luminance 0.15, 0.42, 0.26, 0.74, 0): a greyscale print keeps the
 * series apart; lines add a dash pattern and a marker each. */
const char *const plot_palette[PLOT_COLOURS] = {"#0072B2", "#E69F00", "#009E73", "#F0E442",
						"#000000", "#56B4E9", "#D55E00", "#CC79A7"};

int plot_label_decimals(const double *values, int n)
{
	double top = 0;
	for (int i = 0; i < n; i++)
		if (isfinite(values[i]))
			top = fmax(top, fabs(values[i]));
	if (top == 0)
		return 0;
	int d = 2 - (int)floor(log10(top)); /* three significant digits on the largest value */
	return d < 0 ? 0 : d > 6 ? 6 : d;
}


int plot_spec_check(const PlotSpec *spec, Buf *err)
{
	if (!spec->type || !spec->nfrom || !spec->y || !spec->out) {
		buf_puts(err, "a plot needs type, from, y and out");
		return -1;
	}
	int known = 0;
	for (int i = 0; plot_types[i]; i++)
		known |= !strcmp(spec->type, plot_types[i]);
	if (!known) {
		buf_printf(err, "type must be bars, lines, scatter or heatmap, got \"%s\"", spec->type);
		return -1;
	}
	if ((!strcmp(spec->type, "heatmap") || !strcmp(spec->type, "scatter")) && (!spec->x || !spec->series)) {
		buf_printf(err, "a %s plot needs x and series", spec->type);
		return -1;
	}
	if (!strcmp(spec->type, "bars") && !spec->x) {
		buf_puts(err, "a bars plot needs x (the tag along the axis)");
		return -1;
	}
	if (spec->xscale && strcmp(spec->xscale, "linear") && strcmp(spec->xscale, "log") && strcmp(spec->xscale, "log2")) {
		buf_printf(err, "xscale must be linear, log or log2, got \"%s\"", spec->xscale);
		return -1;
	}
	if (spec->xscale && strcmp(spec->xscale, "linear") && strcmp(spec->type, "lines") && strcmp(spec->type, "scatter")) {
		buf_printf(err, "xscale applies to lines and scatter plots, not %s", spec->type);
		return -1;
	}
	if (spec->best && strcmp(spec->best, "max") && strcmp(spec->best, "min")) {
		buf_printf(err, "best must be max or min (which value of each row is the best), got \"%s\"", spec->best);
		return -1;
	}
	if (spec->best && !plot_has_table(spec)) {
		buf_printf(err, "best applies to bars and heatmap plots (their tables), not %s", spec->type);
		return -1;
	}
	if (spec->size && plot_pdf_width_pt(spec->size) <= 0) {
		buf_printf(err, "size must be column, text or page (the pdf's width in a paper), got \"%s\"", spec->size);
		return -1;
	}
	const char *eq = spec->baseline ? strchr(spec->baseline, '=') : NULL;
	if (spec->baseline && (strcmp(spec->type, "bars") || !eq || (size_t)(eq - spec->baseline) != strlen(spec->x) ||
			       strncmp(spec->baseline, spec->x, strlen(spec->x)) || !eq[1])) {
		buf_printf(err, "baseline names one bar as X_TAG=VALUE (here %s=...), on a bars plot", spec->x ? spec->x : "x");
		return -1;
	}
	return 0;
}

static void text_field(Buf *b, const char *name, const char *value)
{
	if (!value)
		return;
	buf_printf(b, "\t%s=", name);
	buf_put_escaped(b, value); /* one line, tab-separated */
}

char *plot_spec_text(const PlotSpec *s)
{
	Buf b = {0};
	buf_puts(&b, "plot");
	text_field(&b, "name", s->name);
	text_field(&b, "type", s->type);
	for (int i = 0; i < s->nfrom; i++)
		text_field(&b, "from", s->from[i]);
	text_field(&b, "x", s->x);
	text_field(&b, "series", s->series);
	text_field(&b, "y", s->y);
	text_field(&b, "title", s->title);
	text_field(&b, "xlabel", s->xlabel);
	text_field(&b, "ylabel", s->ylabel);
	text_field(&b, "unit", s->unit);
	text_field(&b, "baseline", s->baseline);
	text_field(&b, "xscale", s->xscale);
	text_field(&b, "size", s->size);
	text_field(&b, "best", s->best);
	text_field(&b, "out", s->out);
	/* how kiln draws: a kiln that draws differently (pdf presets) re-renders charts once */
	text_field(&b, "draw", PLOT_DRAWING);
	return b.data;
}

/* A gnuplot string literal: single quotes, with '' for a quote. */
static void gp_str(FILE *f, const char *s)
{
	fputc('\'', f);
	for (; s && *s; s++) {
		if (*s == '\'')
			fputc('\'', f);
		fputc(*s, f);
	}
	fputc('\'', f);
}

static void header(FILE *gp, const PlotSpec *s, int width, int height)
{
	/* noenhanced: dataset names like eurosat_clip must not turn into subscripts */
	/* name: the SVG's <title> (and its groups' ids) is the chart's, not "Gnuplot" */
	char id[64];
	const char *label = s->title && *s->title ? s->title : s->name ? s->name : "chart";
	size_t n = 0;
	for (const char *c = label; *c && n < sizeof id - 1; c++)
		id[n++] = (char)((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ? *c : '_');
	id[n] = 0;
	fprintf(gp, "set terminal svg size %d,%d dynamic noenhanced font 'Helvetica,13' background rgb 'white' name ", width,
		height);
	gp_str(gp, id);
	fputc('\n', gp);
	fprintf(gp, "set output ");
	char *svg = xasprintf("%s.svg", s->out);
	gp_str(gp, svg);
	free(svg);
	fprintf(gp, "\nset title ");
	gp_str(gp, s->title ? s->title : s->name ? s->name : s->y);
	fprintf(gp, " font ',15'\nset xlabel ");
	gp_str(gp, s->xlabel ? s->xlabel : s->x ? s->x : "step");
	char *yl = s->unit ? xasprintf("%s (%s)", s->ylabel ? s->ylabel : s->y, s->unit) : xstrdup(s->ylabel ? s->ylabel : s->y);
	fprintf(gp, "\nset ylabel ");
	gp_str(gp, yl);
	free(yl);
	fprintf(gp, "\nset grid ytics lc rgb '#dddddd'\nset border 3\nset tics nomirror\nset datafile missing '?'\n");
	for (int i = 0; i < PLOT_COLOURS; i++)
		fprintf(gp, "set linetype %d lc rgb '%s'\n", i + 1, plot_palette[i]);
	fprintf(gp, "set linetype cycle %d\n", PLOT_COLOURS);
}

/* A logarithmic x axis where the spec asks for one; whether it did. */
static int x_scale(FILE *gp, const PlotSpec *s)
{
	if (!s->xscale || !strcmp(s->xscale, "linear"))
		return 0;
	if (!strcmp(s->xscale, "log2")) /* 1k 4k 16k 64k 256k 1M ...: sizes read at a glance */
		fprintf(gp, "set logscale x 2\nset format x '%%.0b%%B'\nset xtics 4\n");
	else
		fprintf(gp, "set logscale x 10\n");
	return 1;
}

const char *const plot_sizes[] = {"column", "text", "page", NULL};

/* One column of a two-column paper (3.35 in), a LaTeX article's text width (5.5 in), a
 * page's width inside one-inch margins (6.5 in). */
double plot_pdf_width_pt(const char *size)
{
	static const double widths[] = {241, 397, 468};
	for (int i = 0; plot_sizes[i]; i++)
		if (!strcmp(size ? size : "text", plot_sizes[i]))
			return widths[i];
	return -1;
}

/* What a chart's writer says of its size: the svg's (px) and what its pdf needs at the least
 * (its labels at PLOT_PDF_MIN_PT), with gnuplot commands for the pdf alone. */
typedef struct {
	int width, height;
	double pdf_min_height; /* pt; 0: the svg's shape is enough */
	char pdf_only[256];    /* e.g. sparser ticks for a short axis */
} Canvas;

/* The same chart as png (screens) and pdf (LaTeX: vector, fonts embedded). The pdf is drawn
 * at its preset's width, so it goes into the paper unscaled: every font size the script names
 * (11 px and up for the screen) times the scale lands at PLOT_PDF_MIN_PT or more. */
static void footer(FILE *gp, const PlotSpec *s, const Canvas *cv)
{
	int width = cv->width, height = cv->height;
	char *png = xasprintf("%s.png", s->out), *pdf = xasprintf("%s.pdf", s->out);
	fprintf(gp, "set terminal pngcairo size %d,%d noenhanced font 'Helvetica,11' background rgb 'white'\nset output ", width,
		height);
	gp_str(gp, png);
	double w = plot_pdf_width_pt(s->size), shape = (double)height / width;
	shape = shape < 0.62 ? 0.62 : shape > 1.1 ? 1.1 : shape; /* wide bar charts get room for their labels */
	double h = fmax(w * shape, cv->pdf_min_height);
	/* cairo draws gnuplot's "N pt" at N * 4/3 pdf points; a hair above the floor for rounding */
	double scale = (PLOT_PDF_MIN_PT + 0.05) * 0.75 / 11;
	fprintf(gp, "\nreplot\nset terminal pdfcairo size %.4fin,%.4fin noenhanced font 'Helvetica,11' fontscale %.4f "
		    "linewidth 0.7\n%sset output ", w / 72, h / 72, scale, cv->pdf_only);
	gp_str(gp, pdf);
	fprintf(gp, "\nreplot\nunset output\n");
	free(png);
	free(pdf);
}

static int write_bars(FILE *gp, FILE *dat, const char *dat_path, const PlotSpec *s, MView *v, Canvas *cv, Buf *err)
{
	Pivot p;
	pivot_build(v, s->x, s->series, s->y, &p);
	if (!p.nrows) {
		buf_printf(err, "no task selected by the plot has tag %s and metric %s", s->x, s->y);
		pivot_free(&p);
		return -1;
	}
	/* at most the report's width, so its text is never scaled below its size */
	cv->width = 240 + p.nrows * (s->series ? 14 * p.ncols + 12 : 90);
	cv->width = cv->width < 900 ? 900 : cv->width > PLOT_MAX_WIDTH ? PLOT_MAX_WIDTH : cv->width;
	int repeats = 0; /* a cell of repeats (seeds) draws its mean with a ± std error bar */
	for (int k = 0; k < p.nrows * p.ncols; k++)
		repeats |= p.counts[k] > 1;
	for (int r = 0; r < p.nrows; r++) {
		fprintf(dat, "\"%s\"", p.rows[r]);
		for (int c = 0; c < p.ncols; c++) {
			double mean = p.cells[r * p.ncols + c], std = p.stds[r * p.ncols + c];
			isnan(mean) ? fprintf(dat, " ?") : fprintf(dat, " %.6g", mean);
			if (repeats)
				fprintf(dat, " %.6g", isnan(std) ? 0.0 : std);
		}
		fputc('\n', dat);
	}
	size_t longest = 0;
	for (int r = 0; r < p.nrows; r++)
		longest = strlen(p.rows[r]) > longest ? strlen(p.rows[r]) : longest;
	double top = 0;
	for (int k = 0; k < p.nrows * p.ncols; k++)
		top = isnan(p.cells[k]) ? top : fmax(top, p.cells[k] + (isnan(p.stds[k]) ? 0 : p.stds[k]));
	cv->height = 560 + (p.nrows > 8 ? (int)longest * 6 : 0);
	/* the pdf: an axis of 150 pt, title and label, the names (rotated: up to their length) */
	cv->pdf_min_height = 200 + (p.nrows > 8 ? (double)longest * PLOT_PDF_MIN_PT * 0.55 : 0);
	header(gp, s, cv->width, cv->height);
	fprintf(gp, "set style data histograms\nset style histogram %s gap 1\nset style fill solid 0.9 border -1\n"
		    "set boxwidth 0.9\n", repeats ? "errorbars lw 1.5" : "clustered");
	/* fractions (accuracies) get a 0..1 axis with room for the legend above the bars, or,
	 * when every bar is well below 1, an axis to a round value above the tallest */
	double ymax = top * 1.15;
	if (top <= 1 && ymax > 0.7) {
		fprintf(gp, "set yrange [0:1.12]\nset ytics 0,0.1,1\n");
		snprintf(cv->pdf_only, sizeof cv->pdf_only, "set ytics 0,0.2,1\n"); /* 8 pt ticks need the room */
	} else if (top <= 1 && top > 0) {
		double step = ymax > 0.35 ? 0.1 : ymax > 0.15 ? 0.05 : ymax > 0.06 ? 0.02 : ymax / 4;
		double end = ceil(ymax / step - 1e-9) * step;
		fprintf(gp, "set yrange [0:%g]\nset ytics 0,%g,%g\n", end, step, end);
	} else {
		fprintf(gp, "set yrange [0:*]\n");
	}
	if (s->series) {
		fprintf(gp, top <= 1 ? "set key inside top center horizontal\n" : "set key outside top center horizontal\n");
		/* a narrow page wraps the key: above the axis it covers no bar */
		size_t used = strlen(cv->pdf_only);
		snprintf(cv->pdf_only + used, sizeof cv->pdf_only - used, "set key outside bottom center horizontal samplen 1.5 spacing 0.9\n%s",
			 top <= 1 && ymax > 0.7 ? "set yrange [0:1]\n" : "");
	}
	else
		fprintf(gp, "unset key\n");
	if (p.nrows > 8) { /* rotated names: gnuplot fits the bottom margin to them */
		fprintf(gp, "set xtics rotate by 40 right scale 0 font ',12'\n");
		/* on a narrow page, upright names would overlap: a 40 degree slant needs 13 pt apart */
		size_t used = strlen(cv->pdf_only);
		if ((plot_pdf_width_pt(s->size) - 70) / p.nrows < 13)
			snprintf(cv->pdf_only + used, sizeof cv->pdf_only - used, "set xtics rotate by 90 right\n");
	}
	else
		fprintf(gp, "set xtics scale 0\n");
	fprintf(gp, "plot ");
	int per = repeats ? 2 : 1; /* data columns per series: mean (and std) */
	for (int c = 0; c < p.ncols; c++) {
		fprintf(gp, "%s", c ? ", '' " : "");
		if (!c)
			gp_str(gp, dat_path);
		if (repeats)
			fprintf(gp, " using %d:%d%s title ", 2 + per * c, 3 + per * c, c ? "" : ":xtic(1)");
		else
			fprintf(gp, " using %d%s title ", c + 2, c ? "" : ":xtic(1)");
		gp_str(gp, s->series ? p.cols[c] : s->y);
	}
	if (!s->series) { /* one bar per x: print each value on its bar (above its error bar) */
		fprintf(gp, ", '' using 0:(%s):(sprintf('%%.%df', $2)) with labels offset 0,0.8 notitle", repeats ? "$2+$3" : "$2",
			plot_label_decimals(p.cells, p.nrows * p.ncols));
	}
	fputc('\n', gp);
	pivot_free(&p);
	return 0;
}

static int write_heatmap(FILE *gp, FILE *dat, const char *dat_path, const PlotSpec *s, MView *v, Canvas *cv, Buf *err)
{
	Pivot p; /* rows: the series tag (e.g. dataset), columns: the x tag (e.g. model) */
	pivot_build(v, s->series, s->x, s->y, &p);
	if (!p.nrows) {
		buf_printf(err, "no task selected by the plot has tags %s, %s and metric %s", s->series, s->x, s->y);
		pivot_free(&p);
		return -1;
	}
	double lo = INFINITY, hi = -INFINITY;
	for (int r = 0; r < p.nrows; r++)
		for (int c = 0; c < p.ncols; c++) {
			double val = p.cells[r * p.ncols + c];
			if (isnan(val)) {
				fprintf(dat, "%d %d ?\n", c, r);
			} else {
				fprintf(dat, "%d %d %.6g\n", c, r, val);
				lo = fmin(lo, val), hi = fmax(hi, val);
			}
		}
	cv->width = 360 + 110 * p.ncols;
	cv->height = 160 + 30 * p.nrows;
	cv->width = cv->width < 700 ? 700 : cv->width > PLOT_MAX_WIDTH ? PLOT_MAX_WIDTH : cv->width;
	cv->height = cv->height < 500 ? 500 : cv->height;
	cv->pdf_min_height = 80 + 12.0 * p.nrows; /* a row holds its 8 pt name and value */
	header(gp, s, cv->width, cv->height);
	fprintf(gp, "set view map\nunset key\nset border 0\nunset grid\nset tics scale 0\n");
	fprintf(gp, "set xrange [-0.5:%f]\nset yrange [%f:-0.5]\n", p.ncols - 0.5, p.nrows - 0.5);
	/* the lightest value is tinted: a white cell is one without a value (its task failed) */
	fprintf(gp, "set palette defined (0 '#deebf7', 0.5 '#6baed6', 1 '#08306b')\n");
	/* the colours span the data (0.68 and 0.81 must not look alike on a 0..1 scale) */
	if (lo <= hi) {
		double pad = hi > lo ? (hi - lo) * 0.05 : fmax(fabs(hi) * 0.05, 0.01);
		fprintf(gp, "set cbrange [%.6g:%.6g]\n", lo - pad, hi + pad);
	}
	fprintf(gp, "set xtics (");
	for (int c = 0; c < p.ncols; c++) {
		fprintf(gp, "%s", c ? ", " : "");
		gp_str(gp, p.cols[c]);
		fprintf(gp, " %d", c);
	}
	fprintf(gp, ")\nset ytics (");
	for (int r = 0; r < p.nrows; r++) {
		fprintf(gp, "%s", r ? ", " : "");
		gp_str(gp, p.rows[r]);
		fprintf(gp, " %d", r);
	}
	fprintf(gp, ")\nset xlabel ");
	gp_str(gp, s->xlabel ? s->xlabel : s->x);
	fprintf(gp, "\nset ylabel ");
	gp_str(gp, s->series);
	fprintf(gp, "\nset cblabel ");
	gp_str(gp, s->unit ? s->unit : s->y);
	/* one filled rectangle per cell (vector: no bitmap for a viewer to blur) */
	fprintf(gp, "\nset style fill solid 1.0 noborder\nplot ");
	gp_str(gp, dat_path);
	fprintf(gp, " using 1:2:(0.5):(0.5):3 with boxxyerror fc palette notitle, '' using 1:2:(sprintf('%%.%df', $3)):"
		    "($3 > %g ? 0xffffff : 0x222222) with labels tc rgb variable font ',11' notitle\n",
		plot_label_decimals(p.cells, p.nrows * p.ncols), lo + (hi - lo) * 0.6);
	pivot_free(&p);
	return 0;
}

/* A line's title: its series tag (the task's name without one). Where tasks share it (a
 * series of "image" over a grid of image x text), each of them adds the tags that tell it
 * from the others ("starnet_s1, text=bert"), or its name where none does: no two lines
 * look alike in the key. Appended to titles, a line. */
static void line_title(Buf *titles, const PlotSpec *s, const MTask *const *drawn, int n, int b)
{
	const MTask *t = drawn[b];
	const char *mine = s->series ? mtask_tag(t, s->series) : NULL;
	if (!mine) {
		buf_printf(titles, "%s\n", t->task);
		return;
	}
	buf_puts(titles, mine);
	int shared = 0, told = 0;
	for (int k = 0; k < t->ntags; k++) {
		if (!strcmp(t->tags[k].key, s->series))
			continue;
		int differs = 0;
		for (int o = 0; o < n && !differs; o++) {
			const char *theirs = o == b ? NULL : mtask_tag(drawn[o], s->series);
			if (theirs && !strcmp(theirs, mine)) {
				const char *v = mtask_tag(drawn[o], t->tags[k].key);
				shared = 1;
				differs = !v || strcmp(v, t->tags[k].value);
			}
		}
		if (differs)
			buf_printf(titles, ", %s=%s", t->tags[k].key, t->tags[k].value), told = 1;
	}
	for (int o = 0; o < n && !shared; o++) {
		const char *theirs = o == b ? NULL : mtask_tag(drawn[o], s->series);
		shared = theirs && !strcmp(theirs, mine);
	}
	if (shared && !told)
		buf_printf(titles, " (%s)", t->task);
	buf_putc(titles, '\n');
}

static int write_lines(FILE *gp, FILE *dat, const char *dat_path, const PlotSpec *s, MView *v, Buf *err)
{
	int blocks = 0, integral = 1;
	double lo = INFINITY, hi = -INFINITY;
	const MTask **drawn = xcalloc((size_t)mview_count(v) + 1, sizeof *drawn);
	for (int i = 0; i < mview_count(v); i++) {
		const MTask *t = mview_task(v, i);
		double *steps, *vals;
		int n = t->stale ? 0 : mview_series(v, t, s->y, &steps, &vals); /* a failed task: a gap */
		if (n == 0)
			continue;
		for (int k = 0; k < n; k++) {
			fprintf(dat, "%.9g %.9g\n", steps[k], vals[k]);
			integral &= steps[k] == floor(steps[k]);
			lo = fmin(lo, steps[k]), hi = fmax(hi, steps[k]);
		}
		fprintf(dat, "\n\n");
		free(steps);
		free(vals);
		drawn[blocks++] = t;
	}
	if (!blocks) {
		buf_printf(err, "no task selected by the plot recorded a series %s", s->y);
		free(drawn);
		return -1;
	}
	Buf titles = {0};
	for (int b = 0; b < blocks; b++)
		line_title(&titles, s, drawn, blocks, b);
	free(drawn);
	header(gp, s, 1000, 600);
	/* epochs and steps are whole numbers: ticks on whole numbers, about ten of them */
	if (!x_scale(gp, s) && integral && hi > lo)
		fprintf(gp, "set xtics %g\nset mxtics 1\n", fmax(1, ceil((hi - lo) / 10)));
	fprintf(gp, "set key outside right top\nplot ");
	const char *t = buf_str(&titles);
	for (int b = 0; b < blocks; b++) {
		const char *nl = strchr(t, '\n');
		char *title = strndup(t, (size_t)(nl - t));
		fprintf(gp, "%s", b ? ", " : "");
		gp_str(gp, dat_path);
		/* a marker and a dash pattern per series: curves that coincide stay told apart */
		fprintf(gp, " index %d using 1:2 with linespoints lw 2 pt %d ps 1.3 dt %d title ", b, b % 13 + 1, b % 5 + 1);
		gp_str(gp, title);
		free(title);
		t = nl + 1;
	}
	fputc('\n', gp);
	buf_free(&titles);
	return 0;
}

static int write_scatter(FILE *gp, FILE *dat, const char *dat_path, const PlotSpec *s, MView *v, Buf *err)
{
	char **groups = NULL;
	int ngroups = 0, points = 0;
	for (int i = 0; i < mview_count(v); i++) {
		const char *g = mtask_tag(mview_task(v, i), s->series);
		int seen = 0;
		for (int k = 0; g && k < ngroups; k++)
			seen |= !strcmp(groups[k], g);
		if (g && !seen) {
			groups = xrealloc(groups, (size_t)(ngroups + 1) * sizeof *groups);
			groups[ngroups++] = (char *)g;
		}
	}
	for (int k = 0; k < ngroups; k++) {
		for (int i = 0; i < mview_count(v); i++) {
			const MTask *t = mview_task(v, i);
			const char *g = mtask_tag(t, s->series);
			double x, y;
			if (!t->stale && g && !strcmp(g, groups[k]) && mtask_number(t, s->x, &x) && mtask_number(t, s->y, &y)) {
				fprintf(dat, "%.9g %.9g\n", x, y);
				points++;
			}
		}
		fprintf(dat, "\n\n");
	}
	if (!points) {
		buf_printf(err, "no task selected by the plot has numbers for %s and %s", s->x, s->y);
		free(groups);
		return -1;
	}
	header(gp, s, 1000, 600);
	x_scale(gp, s);
	fprintf(gp, "set key outside right top\nplot ");
	for (int k = 0; k < ngroups; k++) {
		fprintf(gp, "%s", k ? ", " : "");
		gp_str(gp, dat_path);
		fprintf(gp, " index %d using 1:2 with linespoints pt 7 ps 1.3 lw 1.5 title ", k);
		gp_str(gp, groups[k]);
	}
	fputc('\n', gp);
	free(groups);
	return 0;
}

static int run_gnuplot(const char *script, int log_fd, Buf *err)
{
	pid_t pid;
	char *argv[] = {"gnuplot", (char *)script, NULL};
	OsSpawn spawn = {.argv = argv, .stdin_null = 1, .out_fd = log_fd, .err_fd = log_fd};
	int rc = os_spawn(&spawn, &pid);
	if (rc != 0) {
		buf_puts(err, "gnuplot is not installed: plots need it (Debian: apt-get install gnuplot-nox)");
		return -1;
	}
	int st;
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		buf_printf(err, "gnuplot failed on %s (its message is above)", script);
		return -1;
	}
	return 0;
}

/* cairo stamps each pdf with the time it was drawn; the same chart must be the same bytes
 * (a `kiln plot` followed by a run would otherwise "restore" every pdf), so the stamp is
 * overwritten in place, same length, with the epoch. */
static void pdf_unstamp(const char *path)
{
	size_t len;
	char *pdf = read_file(path, &len);
	static const char mark[] = "/CreationDate (D:";
	char *at = pdf ? memmem(pdf, len, mark, sizeof mark - 1) : NULL;
	if (at && (size_t)(at - pdf) + sizeof mark - 1 + 14 <= len) {
		FILE *f = fopen(path, "r+");
		if (f && fseek(f, (long)(at - pdf + sizeof mark - 1), SEEK_SET) == 0)
			fwrite("19700101000000", 1, 14, f);
		if (f)
			fclose(f);
	}
	free(pdf);
}

int plot_has_table(const PlotSpec *spec) { return !strcmp(spec->type, "bars") || !strcmp(spec->type, "heatmap"); }

MetricsQuery plot_table_query(const PlotSpec *s, const char *db_path)
{
	int heat = !strcmp(s->type, "heatmap");
	return (MetricsQuery){.db_path = db_path, .tasks = (char **)s->from, /* read only */ .ntasks = s->nfrom,
			      .value = s->y, .rows = heat ? s->series : s->x, .cols = heat ? s->x : s->series,
			      .mean_row = !s->baseline, .baseline = s->baseline, .unit = s->unit, .best = s->best};
}

/* out.tex: the chart's table as a LaTeX tabular (plots/table_write.c), written whole or
 * not at all. */
static int write_table_tex(const PlotSpec *s, const char *db_path, Buf *err)
{
	MetricsQuery q = plot_table_query(s, db_path);
	Table t;
	if (metrics_table(&q, &t, err) != 0)
		return -1;
	char *text = NULL, *path = xasprintf("%s.tex", s->out);
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	int rc = -1;
	if (mem) {
		table_write(mem, &t, "latex");
		rc = fclose(mem) == 0 ? write_file_atomic(path, text, len) : -1;
	}
	if (rc != 0)
		buf_printf(err, "cannot write %s: %s", path, strerror(errno));
	free(text);
	free(path);
	table_free(&t);
	return rc;
}

int plot_render(const PlotSpec *s, const char *db_path, int log_fd, Buf *err)
{
	MView *v = mview_open(db_path, 0, (char **)s->from, s->nfrom, err);
	if (!v)
		return -1;
	for (int i = 0; i < mview_count(v) && log_fd >= 0; i++) /* the gaps, by name */
		if (mview_task(v, i)->stale)
			dprintf(log_fd, "kiln: %s is left out (a gap): its latest attempt failed, so its last value is stale\n",
				mview_task(v, i)->task);
	char *dat_path = xasprintf("%s.kiln-plot.dat", s->out), *gp_path = xasprintf("%s.kiln-plot.gp", s->out);
	mkdirs_parent(s->out);
	FILE *dat = fopen(dat_path, "w"), *gp = fopen(gp_path, "w");
	int rc = -1;
	Canvas cv = {.width = 1000, .height = 600};
	if (!dat || !gp) {
		buf_printf(err, "cannot write beside %s", s->out);
	} else if (!strcmp(s->type, "bars")) {
		rc = write_bars(gp, dat, dat_path, s, v, &cv, err);
	} else if (!strcmp(s->type, "heatmap")) {
		rc = write_heatmap(gp, dat, dat_path, s, v, &cv, err);
	} else if (!strcmp(s->type, "lines")) {
		rc = write_lines(gp, dat, dat_path, s, v, err);
	} else {
		rc = write_scatter(gp, dat, dat_path, s, v, err);
	}
	if (rc == 0)
		footer(gp, s, &cv);
	if (dat)
		fclose(dat);
	if (gp)
		fclose(gp);
	if (rc == 0)
		rc = run_gnuplot(gp_path, log_fd, err);
	if (rc == 0) {
		char *pdf = xasprintf("%s.pdf", s->out);
		pdf_unstamp(pdf);
		free(pdf);
	}
	if (rc == 0 && plot_has_table(s))
		rc = write_table_tex(s, db_path, err);
	unlink(dat_path);
	unlink(gp_path);
	free(dat_path);
	free(gp_path);
	mview_close(v);
	return rc;
}
