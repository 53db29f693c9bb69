/* results.c — metrics rows in state.db, written once per ingested task and read back by
 * kiln metrics, plot and report. Statements are prepared on first use, once. */
#define _GNU_SOURCE
#include "results.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

static const char *const put_ingest =
	"INSERT OR REPLACE INTO ingests (task, run_id, time, position) VALUES (?1, ?2, ?3, ?4)";
static const char *const put_metric =
	"INSERT OR REPLACE INTO metrics (task, run_id, key, value, text) VALUES (?1, ?2, ?3, ?4, ?5)";
static const char *const put_series = "INSERT INTO series (task, run_id, key, step, value) VALUES (?1, ?2, ?3, ?4, ?5)";
static const char *const put_tag =
	"INSERT OR REPLACE INTO metric_tags (task, run_id, key, value) VALUES (?1, ?2, ?3, ?4)";
/* each task's latest ingest (SQLite takes position from that row), in recipe order */
/* with each task's latest ingestion, whether an attempt that failed (or was stopped) came
 * after it: its value is no longer what its outputs say (the failure deleted them) */
static const char *const latest_ingests =
	"SELECT i.task, max(i.run_id), i.position, "
	"  coalesce((SELECT a.outcome NOT IN ('ok', 'restored') FROM attempts a WHERE a.task = i.task AND a.attempt > 0 "
	"            AND a.outcome IS NOT NULL AND (?1 = 0 OR a.run_id <= ?1) ORDER BY a.id DESC LIMIT 1), 0) "
	"FROM ingests i WHERE ?1 = 0 OR i.run_id <= ?1 GROUP BY i.task ORDER BY i.position IS NULL, i.position, i.task";
static const char *const tags_of = "SELECT key, value FROM metric_tags WHERE task = ?1 AND run_id = ?2 ORDER BY key";
static const char *const scalars_of = "SELECT key, value, text FROM metrics WHERE task = ?1 AND run_id = ?2 ORDER BY key";
static const char *const series_of =
	"SELECT step, value FROM series WHERE task = ?1 AND run_id = ?2 AND key = ?3 ORDER BY step";

static char *column_dup(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	return xstrdup(t ? (const char *)t : "");
}

int results_put(State *s, int64_t run_id, const char *task, int position, const KeyValue *tags, int ntags,
		const Metrics *m)
{
	sqlite3_stmt *st = state_statement_writer(s, &put_ingest);
	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, task, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, run_id);
	sqlite3_bind_double(st, 3, now_wall());
	sqlite3_bind_int(st, 4, position);
	state_write(s, st);
	for (int i = 0; i < ntags; i++) {
		if (!(st = state_statement_writer(s, &put_tag)))
			return -1;
		sqlite3_bind_text(st, 1, task, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, run_id);
		sqlite3_bind_text(st, 3, tags[i].key, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, tags[i].value, -1, SQLITE_STATIC);
		state_write(s, st);
	}
	for (int i = 0; i < m->count; i++) {
		const MetricRow *r = &m->rows[i];
		if (!(st = state_statement_writer(s, r->series ? &put_series : &put_metric)))
			return -1;
		sqlite3_bind_text(st, 1, task, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, run_id);
		sqlite3_bind_text(st, 3, r->key, -1, SQLITE_STATIC);
		if (r->series) {
			sqlite3_bind_double(st, 4, r->step);
			sqlite3_bind_double(st, 5, r->value);
		} else if (r->text) {
			sqlite3_bind_null(st, 4);
			sqlite3_bind_text(st, 5, r->text, -1, SQLITE_STATIC);
		} else {
			sqlite3_bind_double(st, 4, r->value);
			sqlite3_bind_null(st, 5);
		}
		state_write(s, st);
	}
	return state_error(s) ? -1 : 0;
}

int results_each_ingest(State *s, int64_t as_of_run,
			void (*fn)(void *ctx, const char *task, int64_t run_id, int stale), void *ctx)
{
	sqlite3_stmt *st = state_statement(s, &latest_ingests);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, as_of_run);
	while (sqlite3_step(st) == SQLITE_ROW)
		fn(ctx, (const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1), sqlite3_column_int(st, 3));
	sqlite3_reset(st);
	return 0;
}

static const char *copy(Arena *a, sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	return t ? arena_strdup(a, (const char *)t) : NULL;
}

void results_read(State *s, const char *task, int64_t run_id, Arena *arena, KeyValue **tags, int *ntags, Metrics *m)
{
	sqlite3_stmt *st = state_statement(s, &tags_of);
	for (int pass = 0; st && pass < 2; pass++, st = state_statement(s, &scalars_of)) {
		sqlite3_bind_text(st, 1, task, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, run_id);
		while (sqlite3_step(st) == SQLITE_ROW) {
			if (pass == 0) {
				*tags = xrealloc(*tags, (size_t)(*ntags + 1) * sizeof **tags);
				(*tags)[(*ntags)++] = (KeyValue){copy(arena, st, 0), copy(arena, st, 1)};
				continue;
			}
			if (m->count == m->cap)
				m->rows = xrealloc(m->rows, (size_t)(m->cap = m->cap ? m->cap * 2 : 16) * sizeof *m->rows);
			int is_text = sqlite3_column_type(st, 1) == SQLITE_NULL;
			/* rows read back own their strings as metrics_free expects */
			m->rows[m->count++] = (MetricRow){column_dup(st, 0), 0, 0, sqlite3_column_double(st, 1),
							  is_text ? column_dup(st, 2) : NULL};
		}
		sqlite3_reset(st);
	}
}

int results_series(State *s, const char *task, int64_t run_id, const char *key, double **steps, double **values)
{
	*steps = *values = NULL;
	sqlite3_stmt *st = state_statement(s, &series_of);
	if (!st)
		return 0;
	sqlite3_bind_text(st, 1, task, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, run_id);
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
	sqlite3_reset(st);
	return n;
}
