/* table.c — building and printing metric tables. A column's numbers print with the
 * decimals that give its largest four significant digits (1300, 102.5, 0.8123); a delta
 * against an earlier run prints as "0.8123 (+0.0150)"; headers carry units. */
#define _GNU_SOURCE
#include "table.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mview.h"
#include "units.h"

/* Marks a cell whose value moved by more than threshold (relative) since old. */
static void mark(Table *t, int r, int c, double threshold, double v, int has_old, double old)
{
	if (!has_old || isnan(v) || isnan(old) || threshold <= 0)
		return;
	double base = fabs(old) > 1e-12 ? fabs(old) : 1e-12, rel = (v - old) / base;
	t->marks[r * t->ncols + c] = rel > threshold ? 1 : rel < -threshold ? -1 : 0;
}

static void set(Table *t, int r, int c, char *s)
{
	free(t->cells[r * t->ncols + c]);
	t->cells[r * t->ncols + c] = s;
}

const char *table_cell(const Table *t, int r, int c)
{
	const char *s = t->cells[r * t->ncols + c];
	return s ? s : "";
}

static void table_init(Table *t, int nrows, int ncols)
{
	t->nrows = nrows;
	t->ncols = ncols;
	t->cells = xcalloc((size_t)(nrows * ncols + 1), sizeof(char *));
	t->marks = xcalloc((size_t)(nrows * ncols + 1), 1);
	t->best = xcalloc((size_t)(nrows * ncols + 1), 1);
}

void table_free(Table *t)
{
	for (int i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t->marks);
	free(t->best);
	memset(t, 0, sizeof *t);
}

static char *number(double v, int dec, int has_old, double old)
{
	if (isnan(v))
		return xstrdup("");
	if (!has_old || isnan(old))
		return xasprintf("%.*f", dec, v);
	return xasprintf("%.*f (%+.*f)", dec, v, dec, v - old);
}

/* A cell of repeats (seeds): "mean ± std", else as number(). */
static char *summary_cell(double mean, double std, int count, int dec, int has_old, double old)
{
	if (isnan(mean) || count < 2 || isnan(std))
		return number(mean, dec, has_old, old);
	if (!has_old || isnan(old))
		return xasprintf("%.*f ± %.*f", dec, mean, dec, std);
	return xasprintf("%.*f ± %.*f (%+.*f)", dec, mean, dec, std, dec, mean - old);
}

/* To the baseline: a speedup for a time (baseline / value) and a throughput (value /
 * baseline), both above 1 when faster; value / baseline for anything else. */
static char *ratio(double v, double base, MetricKind kind)
{
	double r = kind == METRIC_TIME ? base / v : v / base;
	if (isnan(r) || isinf(r))
		return xstrdup("");
	return xasprintf("%.2f×", r);
}

/* --best: which way is better, per metric or for every value column. */
typedef struct {
	char *metric; /* NULL: every metric not named on its own */
	int dir;      /* +1 the largest, -1 the smallest */
	int used;     /* a column of the table holds it */
} BestRule;

typedef struct {
	BestRule *rules;
	int n;
} BestSpec;

static void best_free(BestSpec *b)
{
	for (int i = 0; i < b->n; i++)
		free(b->rules[i].metric);
	free(b->rules);
	memset(b, 0, sizeof *b);
}

static int parse_best(const char *text, BestSpec *b, Buf *err)
{
	memset(b, 0, sizeof *b);
	for (const char *p = text; p && *p;) {
		size_t n = strcspn(p, ",");
		const char *eq = memchr(p, '=', n), *word = eq ? eq + 1 : p;
		size_t wlen = n - (size_t)(word - p);
		int dir = wlen == 3 && !strncmp(word, "max", 3) ? 1 : wlen == 3 && !strncmp(word, "min", 3) ? -1 : 0;
		if (!dir || eq == p) {
			buf_printf(err, "--best takes max, min or METRIC=max|min, comma-separated (e.g. top1=max,loss=min), "
					"got \"%s\"", text);
			best_free(b);
			return -1;
		}
		b->rules = xrealloc(b->rules, (size_t)(b->n + 1) * sizeof *b->rules);
		b->rules[b->n++] = (BestRule){eq ? strndup(p, (size_t)(eq - p)) : NULL, dir, 0};
		p += n + (p[n] == ',');
	}
	return 0;
}

/* The rule for metric: its own, else the one for every metric; NULL when neither. */
static BestRule *best_rule(BestSpec *b, const char *metric)
{
	BestRule *any = NULL;
	for (int i = 0; i < b->n; i++) {
		if (b->rules[i].metric && !strcmp(b->rules[i].metric, metric))
			return &b->rules[i];
		if (!b->rules[i].metric)
			any = &b->rules[i];
	}
	return any;
}

/* Marks the best cell of each line of value cells: along each row in a pivot (whose
 * columns all hold its one metric), else down each value column, leaving out the row of
 * means (mean_row, 0 when none). A cell's value is its printed number (the mean of repeats),
 * so cells that print alike tie; a stale one (its task failed since) is never the best. metric_of[c]: column c's metric, NULL when it is no value
 * column. -1 when a metric named in b is no column of the table. */
static int mark_best(Table *t, BestSpec *b, const char *const *metric_of, int along_rows, int mean_row, Buf *err)
{
	int lines = along_rows ? t->nrows - 1 : t->ncols, len = along_rows ? t->ncols : t->nrows - 1;
	for (int l = 0; l < lines; l++) {
		double best = NAN;
		for (int pass = 0; pass < 2; pass++) /* find the best, then mark what equals it */
			for (int i = 0; i < len; i++) {
				int r = along_rows ? l + 1 : i + 1, c = along_rows ? i : l;
				BestRule *rule = metric_of[c] ? best_rule(b, metric_of[c]) : NULL;
				if (!rule || (!along_rows && r == mean_row))
					continue;
				rule->used = 1;
				const char *cell = table_cell(t, r, c);
				char *end;
				double v = strtod(cell, &end);
				if (end == cell || isnan(v) || strstr(end, "(stale)")) /* a failed task's old value: no best */
					continue;
				if (pass == 0 && (isnan(best) || v * rule->dir > best * rule->dir))
					best = v;
				else if (pass == 1 && v == best)
					t->best[r * t->ncols + c] = 1;
			}
	}
	for (int i = 0; i < b->n && t->nrows > 1; i++)
		if (b->rules[i].metric && !b->rules[i].used) {
			buf_printf(err, "--best %s=...: no column of this table holds the metric %s", b->rules[i].metric,
				   b->rules[i].metric);
			return -1;
		}
	return 0;
}

/* "tp (samples/s)": the metric with the unit it is in, when known. malloc'd. */
static char *value_header(const char *metric, const char *declared)
{
	const char *unit = metric_unit(metric, declared);
	return unit ? xasprintf("%s (%s)", metric, unit) : xstrdup(metric);
}

/* "tp speedup vs ddp" (a time or throughput) or "acc vs ddp" (a ratio). malloc'd. */
static char *ratio_header(const char *what, const char *metric, const char *declared, const char *base)
{
	return metric_kind(metric, declared) == METRIC_PLAIN ? xasprintf("%s vs %s", what, base)
							     : xasprintf("%s speedup vs %s", what, base);
}

/* --baseline TAG=VALUE, split. */
typedef struct {
	char *tag;
	const char *value;
} Baseline;

static int parse_baseline(const char *text, Baseline *b, Buf *err)
{
	memset(b, 0, sizeof *b);
	if (!text)
		return 0;
	const char *eq = strchr(text, '=');
	if (!eq || eq == text || !eq[1]) {
		buf_printf(err, "--baseline takes TAG=VALUE (e.g. method=ddp), got \"%s\"", text);
		return -1;
	}
	b->tag = strndup(text, (size_t)(eq - text));
	b->value = eq + 1;
	return 0;
}

/* One value column of a grouped table: column col of pivot p (and of old, for deltas). */
typedef struct {
	const char *header, *metric;
	Pivot *p, *old;
	int col, old_col;
} ValueCol;

static int row_of(const Pivot *p, const char *name)
{
	for (int r = 0; p && r < p->nrows; r++)
		if (!strcmp(p->rows[r], name))
			return r;
	return -1;
}

static int col_of(const Pivot *p, const char *name)
{
	for (int c = 0; p && c < p->ncols; c++)
		if (!strcmp(p->cols[c], name))
			return c;
	return -1;
}

static double pivot_at(const Pivot *p, int r, int c, double *std, int *count)
{
	if (!p || r < 0 || c < 0) {
		*std = NAN, *count = 0;
		return NAN;
	}
	*std = p->stds[r * p->ncols + c];
	*count = p->counts[r * p->ncols + c];
	return p->cells[r * p->ncols + c];
}

/* Rows (names in order of first appearance over every column's pivot) by value columns,
 * each cell mean (± std over repeats), with a ratio column after each when a baseline row
 * is named, and a row of column means when asked. */
static int emit_grouped(const MetricsQuery *q, const Baseline *base, BestSpec *best, ValueCol *cols, int ncols, Table *t,
			Buf *err)
{
	char **rows = NULL;
	int nrows = 0;
	for (int k = 0; k < ncols; k++)
		for (int r = 0; r < cols[k].p->nrows; r++) {
			int seen = 0;
			for (int i = 0; i < nrows && !seen; i++)
				seen = !strcmp(rows[i], cols[k].p->rows[r]);
			if (!seen) {
				rows = xrealloc(rows, (size_t)(nrows + 1) * sizeof *rows);
				rows[nrows++] = cols[k].p->rows[r];
			}
		}
	int per = base->tag ? 2 : 1, mean_row = q->mean_row && nrows;
	table_init(t, nrows + 1 + mean_row, 1 + per * ncols);
	set(t, 0, 0, xstrdup(q->rows));
	int *decs = xcalloc((size_t)ncols + 1, sizeof *decs);
	for (int k = 0; k < ncols; k++) {
		/* a pivot's columns are tag values (its metric is one); otherwise each is a metric */
		set(t, 0, 1 + per * k, q->cols ? xstrdup(cols[k].header) : value_header(cols[k].header, q->unit));
		if (base->tag)
			set(t, 0, 2 + per * k, ratio_header(cols[k].header, cols[k].metric, q->unit, base->value));
		double most = 0, std;
		int n;
		for (int r = 0; r < cols[k].p->nrows; r++) {
			double v = pivot_at(cols[k].p, r, cols[k].col, &std, &n);
			most = isnan(v) ? most : fmax(most, fabs(v));
		}
		decs[k] = metric_decimals(most);
	}
	for (int r = 0; r < nrows; r++) {
		set(t, r + 1, 0, xstrdup(rows[r]));
		for (int k = 0; k < ncols; k++) {
			double std, ostd, bstd;
			int n, on, bn;
			double v = pivot_at(cols[k].p, row_of(cols[k].p, rows[r]), cols[k].col, &std, &n);
			double was = pivot_at(cols[k].old, row_of(cols[k].old, rows[r]), cols[k].old_col, &ostd, &on);
			set(t, r + 1, 1 + per * k, summary_cell(v, std, n, decs[k], cols[k].old != NULL, was));
			mark(t, r + 1, 1 + per * k, q->threshold, v, cols[k].old != NULL, was);
			if (base->tag) {
				double b = pivot_at(cols[k].p, row_of(cols[k].p, base->value), cols[k].col, &bstd, &bn);
				set(t, r + 1, 2 + per * k, ratio(v, b, metric_kind(cols[k].metric, q->unit)));
			}
		}
	}
	if (mean_row) {
		t->mean_row = nrows + 1;
		set(t, nrows + 1, 0, xstrdup("mean"));
		for (int k = 0; k < ncols; k++) {
			double sum = 0, std;
			int n = 0, cnt;
			for (int r = 0; r < nrows; r++) {
				double v = pivot_at(cols[k].p, row_of(cols[k].p, rows[r]), cols[k].col, &std, &cnt);
				if (!isnan(v))
					sum += v, n++;
			}
			set(t, nrows + 1, 1 + per * k, number(n ? sum / n : NAN, decs[k], 0, 0));
		}
	}
	const char **metric_of = xcalloc((size_t)t->ncols, sizeof *metric_of);
	for (int k = 0; k < ncols; k++)
		metric_of[1 + per * k] = cols[k].metric;
	int rc = mark_best(t, best, metric_of, q->cols != NULL, t->mean_row, err);
	free(metric_of);
	free(decs);
	free(rows);
	return rc;
}

/* --rows TAG --cols TAG --value METRIC: a pivot; --rows TAG alone: one row per value of the
 * tag with every metric (or those --value lists, comma-separated) as columns. */
static int build_grouped(const MetricsQuery *q, const Baseline *base, BestSpec *best, MView *v, MView *old, Table *t,
			 Buf *err)
{
	if (base->tag && strcmp(base->tag, q->rows)) {
		buf_printf(err, "--baseline %s=%s: with --rows the baseline is a row, so its tag is the row tag (--baseline "
				"%s=VALUE)", base->tag, base->value, q->rows);
		return -1;
	}
	char **keys = NULL;
	int nkeys = 0;
	if (q->cols || (q->value && !strchr(q->value, ','))) {
		keys = xmalloc(sizeof *keys);
		keys[nkeys++] = xstrdup(q->value);
	} else if (q->value) {
		for (const char *p = q->value; *p;) {
			size_t n = strcspn(p, ",");
			if (n) {
				keys = xrealloc(keys, (size_t)(nkeys + 1) * sizeof *keys);
				keys[nkeys++] = strndup(p, n);
			}
			p += n + (p[n] == ',');
		}
	} else { /* every scalar metric, in order of first appearance */
		for (int i = 0; i < mview_count(v); i++) {
			const MTask *m = mview_task(v, i);
			if (!mtask_tag(m, q->rows))
				continue;
			for (int j = 0; j < m->scalars.count; j++) {
				int seen = 0;
				for (int k = 0; k < nkeys && !seen; k++)
					seen = !strcmp(keys[k], m->scalars.rows[j].key);
				if (!seen && !m->scalars.rows[j].text) {
					keys = xrealloc(keys, (size_t)(nkeys + 1) * sizeof *keys);
					keys[nkeys++] = xstrdup(m->scalars.rows[j].key);
				}
			}
		}
	}
	Pivot *pivots = xcalloc((size_t)nkeys * 2 + 1, sizeof *pivots);
	ValueCol *cols = NULL;
	int ncols = 0;
	for (int k = 0; k < nkeys; k++) {
		Pivot *p = &pivots[2 * k], *po = old ? &pivots[2 * k + 1] : NULL;
		pivot_build(v, q->rows, q->cols, keys[k], p);
		if (po)
			pivot_build(old, q->rows, q->cols, keys[k], po);
		for (int c = 0; c < p->ncols; c++) {
			cols = xrealloc(cols, (size_t)(ncols + 1) * sizeof *cols);
			cols[ncols++] = (ValueCol){p->cols[c], keys[k], p, po, c, col_of(po, p->cols[c])};
		}
	}
	int rc = emit_grouped(q, base, best, cols, ncols, t, err);
	for (int k = 0; k < 2 * nkeys; k++)
		pivot_free(&pivots[k]);
	for (int k = 0; k < nkeys; k++)
		free(keys[k]);
	free(keys);
	free(pivots);
	free(cols);
	return rc;
}

static int add_unique(char ***list, int *n, const char *s)
{
	for (int i = 0; i < *n; i++)
		if (!strcmp((*list)[i], s))
			return i;
	*list = xrealloc(*list, (size_t)(*n + 1) * sizeof **list);
	(*list)[*n] = (char *)s;
	return (*n)++;
}

/* The mean of key over the tasks whose tag base->tag is base->value. */
static double baseline_mean(MView *v, const Baseline *base, const char *key)
{
	double sum = 0, x;
	int n = 0;
	for (int i = 0; i < mview_count(v); i++) {
		const MTask *m = mview_task(v, i);
		const char *tv = mtask_tag(m, base->tag);
		if (tv && !strcmp(tv, base->value) && mtask_number(m, key, &x))
			sum += x, n++;
	}
	return n ? sum / n : NAN;
}

static int build_list(const MetricsQuery *q, const Baseline *base, BestSpec *best, MView *v, MView *old, Table *t,
		      Buf *err)
{
	char **tags = NULL, **keys = NULL;
	int ntags = 0, nkeys = 0;
	for (int i = 0; i < mview_count(v); i++) {
		const MTask *m = mview_task(v, i);
		for (int j = 0; j < m->ntags; j++)
			add_unique(&tags, &ntags, m->tags[j].key);
		for (int j = 0; j < m->scalars.count && !q->value; j++)
			add_unique(&keys, &nkeys, m->scalars.rows[j].key);
	}
	if (q->value)
		add_unique(&keys, &nkeys, q->value);
	int per = base->tag ? 2 : 1;
	table_init(t, mview_count(v) + 1, 1 + ntags + per * nkeys);
	set(t, 0, 0, xstrdup("task"));
	for (int j = 0; j < ntags; j++) { /* a tag named as a metric is told apart: "acc (tag)" */
		int clash = 0;
		for (int k = 0; k < nkeys && !clash; k++)
			clash = !strcmp(tags[j], keys[k]);
		set(t, 0, 1 + j, clash ? xasprintf("%s (tag)", tags[j]) : xstrdup(tags[j]));
	}
	double *bases = xcalloc((size_t)nkeys + 1, sizeof *bases);
	int *decs = xcalloc((size_t)nkeys + 1, sizeof *decs);
	for (int j = 0; j < nkeys; j++) {
		set(t, 0, 1 + ntags + per * j, value_header(keys[j], q->unit));
		if (base->tag) {
			set(t, 0, 2 + ntags + per * j, ratio_header(keys[j], keys[j], q->unit, base->value));
			bases[j] = baseline_mean(v, base, keys[j]);
		}
		double most = 0, x;
		for (int i = 0; i < mview_count(v); i++)
			if (mtask_number(mview_task(v, i), keys[j], &x) && !isnan(x))
				most = fmax(most, fabs(x));
		decs[j] = metric_decimals(most);
	}
	for (int i = 0; i < mview_count(v); i++) {
		const MTask *m = mview_task(v, i), *o = old ? mview_find(old, m->task) : NULL;
		set(t, i + 1, 0, xstrdup(m->task));
		for (int j = 0; j < ntags; j++) {
			const char *tv = mtask_tag(m, tags[j]);
			set(t, i + 1, 1 + j, xstrdup(tv ? tv : ""));
		}
		for (int j = 0; j < nkeys; j++) {
			double val, was = NAN;
			const char *text = NULL;
			for (int k = 0; k < m->scalars.count; k++)
				if (!strcmp(m->scalars.rows[k].key, keys[j]) && m->scalars.rows[k].text)
					text = m->scalars.rows[k].text;
			if (o && !mtask_number(o, keys[j], &was))
				was = NAN;
			int has = mtask_number(m, keys[j], &val);
			char *cell = text ? xstrdup(text) : has ? number(val, decs[j], old != NULL, was) : xstrdup("");
			if (m->stale && *cell) { /* its task failed since: the last success's value, marked */
				char *marked = xasprintf("%s (stale)", cell);
				free(cell);
				cell = marked;
			}
			set(t, i + 1, 1 + ntags + per * j, cell);
			if (!text && has)
				mark(t, i + 1, 1 + ntags + per * j, q->threshold, val, old != NULL, was);
			if (base->tag)
				set(t, i + 1, 2 + ntags + per * j,
				    !text && has ? ratio(val, bases[j], metric_kind(keys[j], q->unit)) : xstrdup(""));
		}
	}
	const char **metric_of = xcalloc((size_t)t->ncols, sizeof *metric_of);
	for (int j = 0; j < nkeys; j++)
		metric_of[1 + ntags + per * j] = keys[j];
	int rc = mark_best(t, best, metric_of, 0, 0, err);
	free(metric_of);
	free(decs);
	free(bases);
	free(tags);
	free(keys);
	return rc;
}

int metrics_table(const MetricsQuery *q, Table *t, Buf *err)
{
	memset(t, 0, sizeof *t);
	if (q->cols && (!q->rows || !q->value || strchr(q->value, ','))) {
		buf_puts(err, "a pivot needs --rows TAG, --cols TAG and one --value METRIC (--rows TAG alone groups "
			      "the rows by the tag, with every metric, or those --value lists, as columns)");
		return -1;
	}
	Baseline base;
	BestSpec best;
	if (parse_best(q->best, &best, err) != 0)
		return -1;
	if (parse_baseline(q->baseline, &base, err) != 0) {
		best_free(&best);
		return -1;
	}
	MView *v = mview_open(q->db_path, 0, q->tasks, q->ntasks, err);
	if (!v) {
		free(base.tag);
		best_free(&best);
		return -1;
	}
	Buf some = {0};
	int nsome = 0;
	const char *missed = mview_unmatched(v, &some, &nsome);
	char unmatched[512] = "";
	if (missed)
		snprintf(unmatched, sizeof unmatched, "'%.100s' names no task with recorded metrics (%s%.300s%s%s)", missed,
			 nsome ? "those with them: " : "none has any yet", buf_str(&some), nsome > 4 ? ", ..." : "",
			 strchr(missed, '*') || strchr(missed, '?') || strchr(missed, '[') || strchr(missed, '/') || nsome == 0 ? ""
				: "; a metric's name goes after --value");
	buf_free(&some);
	MView *old = NULL;
	long long vs = q->vs_run;
	if (vs < 0) { /* the values before the latest run that recorded any of these tasks */
		long long latest = 0;
		for (int i = 0; i < mview_count(v); i++)
			latest = mview_task(v, i)->run_id > latest ? mview_task(v, i)->run_id : latest;
		vs = latest - 1;
	}
	if (vs > 0 && !(old = mview_open(q->db_path, vs, q->tasks, q->ntasks, err))) {
		mview_close(v);
		free(base.tag);
		best_free(&best);
		return -1;
	}
	if (old && mview_count(old) == 0) { /* nothing recorded then: no deltas */
		mview_close(old);
		old = NULL;
	}
	int rc = q->rows ? build_grouped(q, &base, &best, v, old, t, err) : build_list(q, &base, &best, v, old, t, err);
	t->vs_run = old ? vs : 0;
	if (rc == 0)
		snprintf(t->unmatched, sizeof t->unmatched, "%s", unmatched);
	if (rc != 0)
		table_free(t);
	mview_close(v);
	mview_close(old);
	free(base.tag);
	best_free(&best);
	return rc;
}

int metrics_print(const MetricsQuery *q, FILE *out, Buf *err)
{
	Table t;
	if (metrics_table(q, &t, err) != 0)
		return -1;
	if (t.nrows <= 1) {
		buf_puts(err, t.unmatched[0] ? t.unmatched : "no metrics recorded for these tasks yet (a task's `metrics` file "
							     "is read after it succeeds)");
		table_free(&t);
		return -1;
	}
	if (t.unmatched[0]) /* the others' table stands; this one is said */
		warn("%s", t.unmatched);
	table_write(out, &t, q->format);
	table_free(&t);
	return 0;
}
