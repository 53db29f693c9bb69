/* test_plots.c — plots/ on its own: metrics ingestion (cache/metrics.c) and its errors,
 * recorded metrics read back through the view, pivots, and plot specs (checks, canonical
 * text). Runs in a temp dir it removes. */
#define _GNU_SOURCE
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../cache/state/metrics.h"
#include "../../cache/state/results.h"
#include "../../cache/state/state.h"
#include "../../plots/mview.h"
#include "../../plots/plot.h"
#include "../../plots/units.h"
#include "check.h"

static void test_ingest(void)
{
	Metrics m;
	Buf err = {0};
	const char *good = "{\"top1\": 0.5, \"name\": \"x\", \"nested\": {\"a\": 2}, \"curve\": [{\"epoch\": 1, \"loss\": 0.3}]}";
	CHECK(metrics_parse(good, strlen(good), "m.json", &m, &err) == 0);
	int scalars = 0, series = 0, nested = 0;
	for (int i = 0; i < m.count; i++) {
		scalars += !m.rows[i].series;
		series += m.rows[i].series;
		nested += !strcmp(m.rows[i].key, "nested.a");
	}
	CHECK(scalars >= 3 && series >= 1 && nested == 1);
	metrics_free(&m);
	const char *bad[] = {"[1, 2]", "{\"a\": NaN}", "{\"a\": ", "{\"a\": 1,}", ""};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		buf_reset(&err);
		CHECK(metrics_parse(bad[i], strlen(bad[i]), "m.json", &m, &err) == -1);
		CHECK_CONTAINS(buf_str(&err), "m.json");
	}
	buf_reset(&err);
	CHECK(metrics_read("missing.json", &m, &err) == -1);
	CHECK_CONTAINS(buf_str(&err), "cannot be read");
	buf_free(&err);
}

static void put(State *s, int64_t run, const char *task, int pos, const char *dataset, const char *model, double top1)
{
	KeyValue tags[] = {{"dataset", dataset}, {"model", model}};
	MetricRow rows[] = {{(char *)"top1", 0, 0, top1, NULL}, {(char *)"loss", 1, 1, top1 / 2, NULL},
			    {(char *)"loss", 1, 2, top1 / 4, NULL}};
	Metrics m = {rows, 3, 3};
	CHECK(results_put(s, run, task, pos, tags, 2, &m) == 0);
}

static void test_view_and_pivot(void)
{
	Buf err = {0};
	MView *none = mview_open("absent.db", 0, NULL, 0, &err);
	CHECK(none == NULL);
	CHECK_CONTAINS(buf_str(&err), "has `kiln run` run here?");
	State *s = state_open("state.db", 0, &err);
	CHECK(s != NULL);
	int64_t run = state_begin_run(s, now_wall(), "host", 1, "kiln run");
	put(s, run, "eval/b/m1", 0, "b", "m1", 0.5);
	put(s, run, "eval/a/m1", 1, "a", "m1", 0.7);
	put(s, run, "eval/a/m2", 2, "a", "m2", 0.9);
	CHECK(state_commit(s) == 0);
	state_close(s);
	char *pat[] = {"eval/*"};
	MView *v = mview_open("state.db", 0, pat, 1, &err);
	CHECK(v != NULL && mview_count(v) == 3);
	CHECK_STR(mview_task(v, 0)->task, "eval/b/m1"); /* recipe order, not name order */
	const MTask *t = mview_find(v, "eval/a/m2");
	double x;
	CHECK(t && mtask_number(t, "top1", &x) && fabs(x - 0.9) < 1e-12);
	CHECK(t && !mtask_number(t, "nope", &x));
	CHECK_STR(mtask_tag(t, "model"), "m2");
	double *steps, *values;
	CHECK(mview_series(v, t, "loss", &steps, &values) == 2 && steps[1] == 2 && fabs(values[1] - 0.225) < 1e-12);
	free(steps);
	free(values);
	Pivot p;
	pivot_build(v, "dataset", "model", "top1", &p);
	CHECK(p.nrows == 2 && p.ncols == 2);
	CHECK_STR(p.rows[0], "b");
	CHECK(isnan(p.cells[0 * p.ncols + 1])); /* b x m2: no task */
	pivot_free(&p);
	mview_close(v);
	buf_free(&err);
}

static void test_plot_spec(void)
{
	const char *from[] = {"eval/*"};
	PlotSpec ok = {.name = "acc", .type = "bars", .from = from, .nfrom = 1, .x = "dataset", .y = "top1", .out = "p"};
	Buf err = {0};
	CHECK(plot_spec_check(&ok, &err) == 0);
	char *text = plot_spec_text(&ok);
	CHECK_STR(text, "plot\tname=acc\ttype=bars\tfrom=eval/*\tx=dataset\ty=top1\tout=p\tdraw=" PLOT_DRAWING);
	free(text);
	PlotSpec tabbed = ok;
	tabbed.title = "a\tb\nc";
	text = plot_spec_text(&tabbed);
	CHECK(strchr(text, '\n') == NULL); /* one line, escaped */
	free(text);
	PlotSpec bad = ok;
	bad.type = "pie";
	CHECK(plot_spec_check(&bad, &err) == -1);
	CHECK_CONTAINS(buf_str(&err), "bars, lines, scatter or heatmap");
	buf_reset(&err);
	bad = ok;
	bad.x = NULL;
	CHECK(plot_spec_check(&bad, &err) == -1);
	CHECK_CONTAINS(buf_str(&err), "needs x");
	buf_reset(&err);
	bad = ok;
	bad.type = "heatmap";
	CHECK(plot_spec_check(&bad, &err) == -1);
	buf_free(&err);
}

/* Relative luminance of "#rrggbb" (sRGB), what a greyscale print keeps. */
static double luminance(const char *hex)
{
	double c[3];
	for (int i = 0; i < 3; i++) {
		char part[3] = {hex[1 + 2 * i], hex[2 + 2 * i], 0};
		double v = strtol(part, NULL, 16) / 255.0;
		c[i] = v <= 0.04045 ? v / 12.92 : pow((v + 0.055) / 1.055, 2.4);
	}
	return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
}

static void test_palette_and_labels(void)
{
	for (int i = 0; i < 5; i++) /* the first five series stay apart in greyscale */
		for (int j = i + 1; j < 5; j++)
			CHECK(fabs(luminance(plot_palette[i]) - luminance(plot_palette[j])) >= 0.1);
	for (int i = 0; i < PLOT_COLOURS; i++)
		CHECK(strlen(plot_palette[i]) == 7 && plot_palette[i][0] == '#');
	double big[] = {809.403, 12.0}, mid[] = {12.34, 3.2}, acc[] = {0.872, 0.5}, tiny[] = {0.0042}, none[] = {NAN};
	CHECK(plot_label_decimals(big, 2) == 0);
	CHECK(plot_label_decimals(mid, 2) == 1);
	CHECK(plot_label_decimals(acc, 2) == 3);
	CHECK(plot_label_decimals(tiny, 1) == 5);
	CHECK(plot_label_decimals(none, 1) == 0);
}

static void test_units(void)
{
	CHECK_STR(metric_unit_of_name("epoch_time_s"), "s");
	CHECK_STR(metric_unit_of_name("step_ms"), "ms");
	CHECK_STR(metric_unit_of_name("sizes.busbw_gbs"), "GB/s");
	CHECK_STR(metric_unit_of_name("images_per_s"), "images/s");
	CHECK_STR(metric_unit_of_name("samples_s"), "samples/s"); /* a count per second, not seconds */
	CHECK_STR(metric_unit_of_name("comm_pct"), "%");
	CHECK(metric_unit_of_name("top1") == NULL && metric_unit_of_name("_s") == NULL);
	CHECK_STR(metric_unit("throughput", "samples/s"), "samples/s");
	CHECK(metric_kind("throughput", NULL) == METRIC_RATE);
	CHECK(metric_kind("tp", "samples/s") == METRIC_RATE);
	CHECK(metric_kind("train_time", NULL) == METRIC_TIME);
	CHECK(metric_kind("epoch_s", NULL) == METRIC_TIME);
	CHECK(metric_kind("peak_algbw_gbs", NULL) == METRIC_RATE);
	CHECK(metric_kind("comm_share", NULL) == METRIC_PLAIN);
	CHECK(metric_kind("acc1", NULL) == METRIC_PLAIN);
	CHECK(metric_decimals(1300) == 0 && metric_decimals(102) == 1 && metric_decimals(10) == 2);
	CHECK(metric_decimals(0.7525) == 4 && metric_decimals(0.0042) == 6 && metric_decimals(0) == 4);
}

int main(void)
{
	char dir[] = "/tmp/kiln-plots-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	CHECK(chdir(dir) == 0);
	test_ingest();
	test_view_and_pivot();
	test_plot_spec();
	test_palette_and_labels();
	test_units();
	CHECK(chdir("/") == 0);
	remove_tree(dir);
	return check_exit();
}
