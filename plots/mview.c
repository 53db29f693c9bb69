/* mview.c — loading recorded metrics from state.db into memory for tables and charts. */
#define _GNU_SOURCE
#include "mview.h"

#include <fnmatch.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

struct MView {
	sqlite3 *db;
	Arena arena;
	MTask *tasks;
	int ntasks;
};

static const char *keep(MView *v, const unsigned char *s) { return s ? arena_strdup(&v->arena, (const char *)s) : NULL; }

static int selected(const char *task, char **patterns, int n)
{
	if (n == 0)
		return 1;
	for (int i = 0; i < n; i++)
		if (!strcmp(patterns[i], task) || fnmatch(patterns[i], task, 0) == 0)
			return 1;
	return 0;
}

MView *mview_open(const char *db_path, int64_t as_of_run, char **patterns, int npatterns, Buf *err)
{
	MView *v = xcalloc(1, sizeof *v);
	if (sqlite3_open_v2(db_path, &v->db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		buf_printf(err, "cannot read %s (has `kiln run` run here?)", db_path);
		mview_close(v);
		return NULL;
	}
	sqlite3_busy_timeout(v->db, 10000);
	sqlite3_stmt *q, *tags, *vals;
	if (sqlite3_prepare_v2(v->db, /* each task's latest ingest (SQLite takes position from that row), in recipe order */
			       "SELECT task, max(run_id), position FROM ingests WHERE ?1 = 0 OR run_id <= ?1 GROUP BY task "
			       "ORDER BY position IS NULL, position, task",
			       -1, &q, NULL) != SQLITE_OK) {
		buf_printf(err, "%s holds no metrics tables (run `kiln run` with this kiln first)", db_path);
		mview_close(v);
		return NULL;
	}
	sqlite3_prepare_v2(v->db, "SELECT key, value FROM metric_tags WHERE task = ?1 AND run_id = ?2 ORDER BY key", -1, &tags, NULL);
	sqlite3_prepare_v2(v->db, "SELECT key, value, text FROM metrics WHERE task = ?1 AND run_id = ?2 ORDER BY key", -1, &vals, NULL);
	sqlite3_bind_int64(q, 1, as_of_run);
	int cap = 0;
	while (sqlite3_step(q) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(q, 0);
		if (!selected(name, patterns, npatterns))
			continue;
		if (v->ntasks == cap)
			v->tasks = xrealloc(v->tasks, (size_t)(cap = cap ? cap * 2 : 64) * sizeof *v->tasks);
		MTask *t = &v->tasks[v->ntasks++];
		memset(t, 0, sizeof *t);
		t->task = keep(v, sqlite3_column_text(q, 0));
		t->run_id = sqlite3_column_int64(q, 1);
		for (int pass = 0; pass < 2; pass++) {
			sqlite3_stmt *st = pass ? vals : tags;
			sqlite3_bind_text(st, 1, t->task, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, t->run_id);
			while (sqlite3_step(st) == SQLITE_ROW) {
				if (!pass) {
					t->tag_keys = xrealloc(t->tag_keys, (size_t)(t->ntags + 1) * sizeof(char *));
					t->tag_values = xrealloc(t->tag_values, (size_t)(t->ntags + 1) * sizeof(char *));
					t->tag_keys[t->ntags] = keep(v, sqlite3_column_text(st, 0));
					t->tag_values[t->ntags++] = keep(v, sqlite3_column_text(st, 1));
				} else {
					t->scalars = xrealloc(t->scalars, (size_t)(t->nscalars + 1) * sizeof *t->scalars);
					MScalar *m = &t->scalars[t->nscalars++];
					m->key = keep(v, sqlite3_column_text(st, 0));
					m->value = sqlite3_column_double(st, 1);
					m->text = sqlite3_column_type(st, 1) == SQLITE_NULL ? keep(v, sqlite3_column_text(st, 2)) : NULL;
				}
			}
			sqlite3_reset(st);
		}
	}
	sqlite3_finalize(q);
	sqlite3_finalize(tags);
	sqlite3_finalize(vals);
	return v;
}

void mview_close(MView *v)
{
	if (!v)
		return;
	for (int i = 0; i < v->ntasks; i++) {
		free(v->tasks[i].tag_keys);
		free(v->tasks[i].tag_values);
		free(v->tasks[i].scalars);
	}
	free(v->tasks);
	sqlite3_close(v->db);
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
		if (!strcmp(t->tag_keys[i], key))
			return t->tag_values[i];
	return NULL;
}

int mtask_number(const MTask *t, const char *key, double *out)
{
	for (int i = 0; i < t->nscalars; i++)
		if (!strcmp(t->scalars[i].key, key) && !t->scalars[i].text) {
			*out = t->scalars[i].value;
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
	sqlite3_stmt *st;
	*steps = *values = NULL;
	if (sqlite3_prepare_v2(v->db, "SELECT step, value FROM series WHERE task = ?1 AND run_id = ?2 AND key = ?3 ORDER BY step",
			       -1, &st, NULL) != SQLITE_OK)
		return 0;
	sqlite3_bind_text(st, 1, t->task, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, t->run_id);
	sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
	int n = 0, cap = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			*steps = xrealloc(*steps, (size_t)cap * sizeof(double));
			*values = xrealloc(*values, (size_t)cap * sizeof(double));
		}
		(*steps)[n] = sqlite3_column_double(st, 0);
		(*values)[n++] = sqlite3_column_double(st, 1);
	}
	sqlite3_finalize(st);
	return n;
}

int64_t mview_latest_run(MView *v)
{
	sqlite3_stmt *st;
	int64_t id = 0;
	if (sqlite3_prepare_v2(v->db, "SELECT max(id) FROM runs", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return id;
}

static int index_of(char ***list, int *n, const char *value)
{
	for (int i = 0; i < *n; i++)
		if (!strcmp((*list)[i], value))
			return i;
	*list = xrealloc(*list, (size_t)(*n + 1) * sizeof **list);
	(*list)[*n] = xstrdup(value);
	return (*n)++;
}

void pivot_build(const MView *v, const char *row_tag, const char *col_tag, const char *value_key, Pivot *p)
{
	memset(p, 0, sizeof *p);
	for (int pass = 0; pass < 2; pass++) {
		double *sum = NULL;
		int *count = NULL;
		if (pass) {
			sum = xcalloc((size_t)(p->nrows * p->ncols + 1), sizeof *sum);
			count = xcalloc((size_t)(p->nrows * p->ncols + 1), sizeof *count);
		}
		for (int i = 0; i < v->ntasks; i++) {
			const MTask *t = &v->tasks[i];
			double value;
			const char *r = row_tag ? mtask_tag(t, row_tag) : t->task, *c = col_tag ? mtask_tag(t, col_tag) : value_key;
			if (!r || !c || !mtask_number(t, value_key, &value))
				continue;
			int ri = index_of(&p->rows, &p->nrows, r), ci = index_of(&p->cols, &p->ncols, c);
			if (pass) {
				sum[ri * p->ncols + ci] += value;
				count[ri * p->ncols + ci]++;
			}
		}
		if (pass) {
			p->cells = xmalloc((size_t)(p->nrows * p->ncols + 1) * sizeof *p->cells);
			for (int k = 0; k < p->nrows * p->ncols; k++)
				p->cells[k] = count[k] ? sum[k] / count[k] : NAN;
			free(sum);
			free(count);
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
	memset(p, 0, sizeof *p);
}
