/* mview.c — loading recorded metrics (through cache/results.h) into memory for tables and
 * charts, and pivots over them. */
#define _GNU_SOURCE
#include "mview.h"

#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../cache/state/history.h"
#include "../cache/state/results.h"

struct MView {
	State *state;
	Arena arena;
	MTask *tasks;
	int ntasks, cap;
	char **patterns;
	int npatterns;
	unsigned char *matched; /* per pattern: it selected a task */
	const char *unmatched;  /* the first that selected none */
	char *some[4];          /* names of tasks with metrics, for the message that says so */
	int nall;
};

/* Whether task is one patterns select (each that does is marked in matched). */
static int selected(const char *task, char **patterns, int n, unsigned char *matched)
{
	int any = n == 0;
	for (int i = 0; i < n; i++)
		if (!strcmp(patterns[i], task) || fnmatch(patterns[i], task, 0) == 0)
			any = matched[i] = 1;
	return any;
}

static void add_task(void *ctx, const char *task, int64_t run_id, int stale)
{
	MView *v = ctx;
	if (v->nall < 4)
		v->some[v->nall] = arena_strdup(&v->arena, task);
	v->nall++;
	if (!selected(task, v->patterns, v->npatterns, v->matched))
		return;
	if (v->ntasks == v->cap)
		v->tasks = xrealloc(v->tasks, (size_t)(v->cap = v->cap ? v->cap * 2 : 64) * sizeof *v->tasks);
	MTask *t = &v->tasks[v->ntasks++];
	memset(t, 0, sizeof *t);
	t->task = arena_strdup(&v->arena, task);
	t->run_id = run_id;
	t->stale = stale;
}

MView *mview_open(const char *db_path, int64_t as_of_run, char **patterns, int npatterns, Buf *err)
{
	if (access(db_path, F_OK) != 0) {
		buf_printf(err, "cannot read %s (has `kiln run` run here?)", db_path);
		return NULL;
	}
	MView *v = xcalloc(1, sizeof *v);
	v->patterns = patterns;
	v->npatterns = npatterns;
	v->matched = xcalloc((size_t)npatterns + 1, 1);
	if (!(v->state = state_open(db_path, 1, err)) || results_each_ingest(v->state, as_of_run, add_task, v) != 0) {
		if (v->state)
			buf_printf(err, "%s holds no metrics tables (run `kiln run` with this kiln first)", db_path);
		mview_close(v);
		return NULL;
	}
	for (int i = 0; i < v->ntasks; i++) {
		MTask *t = &v->tasks[i];
		results_read(v->state, t->task, t->run_id, &v->arena, &t->tags, &t->ntags, &t->scalars);
	}
	for (int i = 0; i < npatterns && !v->unmatched; i++)
		if (!v->matched[i])
			v->unmatched = patterns[i];
	v->patterns = NULL;
	return v;
}

const char *mview_unmatched(const MView *v, Buf *others, int *nothers)
{
	for (int i = 0; i < v->nall && i < 4; i++)
		buf_printf(others, "%s%s", i ? ", " : "", v->some[i]);
	*nothers = v->nall;
	return v->unmatched;
}

void mview_close(MView *v)
{
	if (!v)
		return;
	free(v->matched);
	for (int i = 0; i < v->ntasks; i++) {
		free(v->tasks[i].tags);
		metrics_free(&v->tasks[i].scalars);
	}
	free(v->tasks);
	state_close(v->state);
	arena_free(&v->arena);
	free(v);
}

int mview_count(const MView *v) { return v->ntasks; }
const MTask *mview_task(const MView *v, int i) { return &v->tasks[i]; }

const MTask *mview_find(const MView *v, const char *task)
{
	for (int i = 0; i < v->ntasks; i++)
		if (!strcmp(v->tasks[i].task, task))
			return &v->tasks[i];
	return NULL;
}

const char *mtask_tag(const MTask *t, const char *key)
{
	for (int i = 0; i < t->ntags; i++)
		if (!strcmp(t->tags[i].key, key))
			return t->tags[i].value;
	return NULL;
}

int mtask_number(const MTask *t, const char *key, double *out)
{
	for (int i = 0; i < t->scalars.count; i++)
		if (!strcmp(t->scalars.rows[i].key, key) && !t->scalars.rows[i].text) {
			*out = t->scalars.rows[i].value;
			return 1;
		}
	const char *tag = mtask_tag(t, key);
	char *end;
	if (tag && (*out = strtod(tag, &end), end != tag && !*end))
		return 1;
	return 0;
}

int mview_series(MView *v, const MTask *t, const char *key, double **steps, double **values)
{
	return results_series(v->state, t->task, t->run_id, key, steps, values);
}

int64_t mview_latest_run(MView *v)
{
	StateRun run;
	Buf command = {0};
	int found = state_last_run(v->state, &run, &command);
	buf_free(&command);
	return found ? run.id : 0;
}

void pivot_build(const MView *v, const char *row_tag, const char *col_tag, const char *value_key, Pivot *p)
{
	memset(p, 0, sizeof *p);
	for (int pass = 0; pass < 2; pass++) {
		double *sum = NULL, *sq = NULL;
		int *count = NULL;
		if (pass) {
			sum = xcalloc((size_t)(p->nrows * p->ncols + 1), sizeof *sum);
			sq = xcalloc((size_t)(p->nrows * p->ncols + 1), sizeof *sq);
			count = xcalloc((size_t)(p->nrows * p->ncols + 1), sizeof *count);
		}
		for (int i = 0; i < v->ntasks; i++) {
			const MTask *t = &v->tasks[i];
			double value;
			if (t->stale) /* its task just failed: a gap, not an old value passed off as current */
				continue;
			const char *r = row_tag ? mtask_tag(t, row_tag) : t->task, *c = col_tag ? mtask_tag(t, col_tag) : value_key;
			if (!r || !c || !mtask_number(t, value_key, &value))
				continue;
			int ri = strlist_find_or_add(&p->rows, &p->nrows, r), ci = strlist_find_or_add(&p->cols, &p->ncols, c);
			if (pass) {
				sum[ri * p->ncols + ci] += value;
				sq[ri * p->ncols + ci] += value * value;
				count[ri * p->ncols + ci]++;
			}
		}
		if (pass) {
			size_t n = (size_t)(p->nrows * p->ncols + 1);
			p->cells = xmalloc(n * sizeof *p->cells);
			p->stds = xmalloc(n * sizeof *p->stds);
			for (int k = 0; k < p->nrows * p->ncols; k++) {
				int c = count[k];
				p->cells[k] = c ? sum[k] / c : NAN;
				/* sample standard deviation; the sums of squares lose nothing that matters
				 * at a handful of seeds */
				double var = c > 1 ? (sq[k] - sum[k] * sum[k] / c) / (c - 1) : 0;
				p->stds[k] = c > 1 ? sqrt(var > 0 ? var : 0) : NAN;
			}
			p->counts = count;
			free(sum);
			free(sq);
		}
	}
}

void pivot_free(Pivot *p)
{
	for (int i = 0; i < p->nrows; i++)
		free(p->rows[i]);
	for (int i = 0; i < p->ncols; i++)
		free(p->cols[i]);
	free(p->rows);
	free(p->cols);
	free(p->cells);
	free(p->stds);
	free(p->counts);
	memset(p, 0, sizeof *p);
}
