/* table.c — building and printing metric tables. Numbers print with 4 significant
 * decimals; a delta against an earlier run prints as "0.8123 (+0.0150)". */
#define _GNU_SOURCE
#include "table.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mview.h"

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
}

void table_free(Table *t)
{
	for (int i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof *t);
}

static char *number(double v, int has_old, double old)
{
	if (isnan(v))
		return xstrdup("");
	if (!has_old || isnan(old))
		return xasprintf("%.4f", v);
	return xasprintf("%.4f (%+.4f)", v, v - old);
}

static int build_pivot(const MetricsQuery *q, MView *v, MView *old, Table *t)
{
	Pivot p, po = {0};
	pivot_build(v, q->rows, q->cols, q->value, &p);
	if (old)
		pivot_build(old, q->rows, q->cols, q->value, &po);
	table_init(t, p.nrows + 1 + (q->mean_row && p.nrows), p.ncols + 1);
	set(t, 0, 0, xstrdup(q->rows));
	for (int c = 0; c < p.ncols; c++) /* without --cols the one column is the metric */
		set(t, 0, c + 1, xstrdup(p.cols[c]));
	for (int r = 0; r < p.nrows; r++) {
		set(t, r + 1, 0, xstrdup(p.rows[r]));
		for (int c = 0; c < p.ncols; c++) {
			double was = NAN;
			for (int orow = 0; old && orow < po.nrows; orow++)
				for (int ocol = 0; ocol < po.ncols; ocol++)
					if (!strcmp(po.rows[orow], p.rows[r]) && !strcmp(po.cols[ocol], p.cols[c]))
						was = po.cells[orow * po.ncols + ocol];
			set(t, r + 1, c + 1, number(p.cells[r * p.ncols + c], old != NULL, was));
		}
	}
	if (q->mean_row && p.nrows) {
		set(t, p.nrows + 1, 0, xstrdup("mean"));
		for (int c = 0; c < p.ncols; c++) {
			double sum = 0;
			int n = 0;
			for (int r = 0; r < p.nrows; r++)
				if (!isnan(p.cells[r * p.ncols + c])) {
					sum += p.cells[r * p.ncols + c];
					n++;
				}
			set(t, p.nrows + 1, c + 1, number(n ? sum / n : NAN, 0, 0));
		}
	}
	pivot_free(&p);
	if (old)
		pivot_free(&po);
	return 0;
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

static int build_list(const MetricsQuery *q, MView *v, MView *old, Table *t)
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
	table_init(t, mview_count(v) + 1, 1 + ntags + nkeys);
	set(t, 0, 0, xstrdup("task"));
	for (int j = 0; j < ntags; j++)
		set(t, 0, 1 + j, xstrdup(tags[j]));
	for (int j = 0; j < nkeys; j++)
		set(t, 0, 1 + ntags + j, xstrdup(keys[j]));
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
			set(t, i + 1, 1 + ntags + j,
			    text ? xstrdup(text) : mtask_number(m, keys[j], &val) ? number(val, old != NULL, was) : xstrdup(""));
		}
	}
	free(tags);
	free(keys);
	return 0;
}

int metrics_table(const MetricsQuery *q, Table *t, Buf *err)
{
	memset(t, 0, sizeof *t);
	if ((q->rows || q->cols) && (!q->rows || !q->value)) {
		buf_puts(err, "a pivot needs --rows TAG and --value METRIC (and --cols TAG for more than one column)");
		return -1;
	}
	MView *v = mview_open(q->db_path, 0, q->tasks, q->ntasks, err);
	if (!v)
		return -1;
	MView *old = NULL;
	if (q->vs_run && !(old = mview_open(q->db_path, q->vs_run, q->tasks, q->ntasks, err))) {
		mview_close(v);
		return -1;
	}
	int rc = q->rows ? build_pivot(q, v, old, t) : build_list(q, v, old, t);
	mview_close(v);
	mview_close(old);
	return rc;
}

static void json_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', out);
		fputc(*s, out);
	}
	fputc('"', out);
}

void table_write(FILE *out, const Table *t, const char *format)
{
	if (!format || !strcmp(format, "text") || !strcmp(format, "md")) {
		int md = format && !strcmp(format, "md");
		int *w = xcalloc((size_t)t->ncols + 1, sizeof *w);
		for (int r = 0; r < t->nrows; r++)
			for (int c = 0; c < t->ncols; c++) {
				int len = (int)strlen(table_cell(t, r, c));
				w[c] = len > w[c] ? len : w[c];
			}
		for (int r = 0; r < t->nrows; r++) {
			for (int c = 0; c < t->ncols; c++) {
				const char *s = table_cell(t, r, c);
				int pad = w[c] - (int)strlen(s), left = c == 0 || r == 0; /* names left, numbers right */
				fputs(md ? "| " : c ? "  " : "", out);
				if (!left)
					fprintf(out, "%*s", pad, "");
				fputs(s, out);
				if (left && (md || c + 1 < t->ncols))
					fprintf(out, "%*s", pad, "");
				if (md)
					fputc(' ', out);
			}
			fputs(md ? "|\n" : "\n", out);
			if (md && r == 0) {
				for (int c = 0; c < t->ncols; c++) {
					fputs(c == 0 ? "|:" : "|-", out);
					for (int k = 0; k < w[c]; k++)
						fputc('-', out);
					fputs(c == 0 ? "-" : ":", out);
				}
				fputs("|\n", out);
			}
		}
		free(w);
	} else if (!strcmp(format, "tsv")) {
		for (int r = 0; r < t->nrows; r++)
			for (int c = 0; c < t->ncols; c++)
				fprintf(out, "%s%c", table_cell(t, r, c), c + 1 < t->ncols ? '\t' : '\n');
	} else { /* json: one object per row, keyed by the header */
		fputs("[", out);
		for (int r = 1; r < t->nrows; r++) {
			fputs(r > 1 ? ",\n  {" : "\n  {", out);
			for (int c = 0; c < t->ncols; c++) {
				fputs(c ? ", " : "", out);
				json_str(out, table_cell(t, 0, c));
				const char *v = table_cell(t, r, c);
				char *end;
				double d = strtod(v, &end);
				fputs(": ", out);
				if (*v && !*end && isfinite(d))
					fputs(v, out);
				else
					json_str(out, v);
			}
			fputs("}", out);
		}
		fputs("\n]\n", out);
	}
}

int metrics_print(const MetricsQuery *q, FILE *out, Buf *err)
{
	Table t;
	if (metrics_table(q, &t, err) != 0)
		return -1;
	if (t.nrows <= 1) {
		buf_puts(err, "no metrics recorded for these tasks yet (a task's `metrics` file is read after it succeeds)");
		table_free(&t);
		return -1;
	}
	table_write(out, &t, q->format);
	table_free(&t);
	return 0;
}
