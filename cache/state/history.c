/* history.c — reading runs and attempts back (the report's queries), through the
 * statements state.c prepares once per connection. */
#define _GNU_SOURCE
#include "history.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

static const char *text(sqlite3_stmt *st, int i)
{
	const char *t = (const char *)sqlite3_column_text(st, i);
	return t ? t : "";
}

static const char *maybe_text(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? NULL : (const char *)sqlite3_column_text(st, i);
}

static void read_run(sqlite3_stmt *st, StateRun *out)
{
	memset(out, 0, sizeof *out);
	out->id = sqlite3_column_int64(st, 0);
	out->started = sqlite3_column_double(st, 1);
	out->ended = sqlite3_column_double(st, 2);
	out->finished = sqlite3_column_type(st, 3) != SQLITE_NULL;
	snprintf(out->outcome, sizeof out->outcome, "%s", text(st, 3));
}

static const char *const last_run_sql = "SELECT id, started, ended, outcome, command FROM runs ORDER BY id DESC LIMIT 1";
static const char *const runs_sql = "SELECT id, started, ended, outcome, command FROM runs ORDER BY id DESC LIMIT ?1";
static const char *const outcomes_sql =
	"SELECT CASE WHEN outcome IN ('ok', 'restored', 'accepted', 'interrupted') THEN outcome WHEN outcome IS NULL THEN 'unfinished' "
	"WHEN failure IN ('lost', 'host-lost', 'node-lost', 'superseded') THEN 'lost' " /* given back, run again: no failure */
	"ELSE 'failed' END o, count(*), sum(ended - started) FROM attempts WHERE run_id = ?1 GROUP BY o ORDER BY o DESC";
static const char *const slowest_sql = "SELECT task, ended - started, outcome, log FROM attempts WHERE run_id = ?1 AND "
				       "ended IS NOT NULL AND outcome NOT IN ('restored', 'accepted') ORDER BY ended - started DESC LIMIT ?2";
static const char *const attempts_sql =
	"SELECT task, attempt, started, ended, gpus, outcome, failure, log, waited, "
	"  CASE WHEN executor = 'ssh' THEN host ELSE '' END "
	"FROM attempts WHERE run_id = ?1 ORDER BY started, id";

static const char *const durations_sql = "SELECT task, ended - started, max(id) FROM attempts WHERE outcome = 'ok' "
					 "AND attempt > 0 AND ended IS NOT NULL GROUP BY task";

void history_each_duration(State *s, void (*fn)(void *ctx, const char *task, double sec), void *ctx)
{
	sqlite3_stmt *st = state_statement(s, &durations_sql);
	if (!st)
		return;
	while (sqlite3_step(st) == SQLITE_ROW)
		fn(ctx, text(st, 0), sqlite3_column_double(st, 1));
	sqlite3_reset(st);
}

static const char *const unfinished_sql =
	"SELECT coalesce(sum(coalesce(ended, ?3) - started), 0) FROM attempts WHERE task = ?1 AND key = ?2 AND "
	"attempt > 0 AND id > coalesce((SELECT max(id) FROM attempts WHERE task = ?1 AND outcome = 'ok'), 0)";

double history_unfinished_seconds(State *s, const char *task, const char *key, double now)
{
	sqlite3_stmt *st = state_statement(s, &unfinished_sql);
	if (!st)
		return 0;
	sqlite3_bind_text(st, 1, task, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 3, now);
	double sec = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_double(st, 0) : 0;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return sec;
}

/* SQLite gives a bare column the values of the row max() picked */
static const char *const hosts_sql =
	"SELECT h, sum(outcome = 'ok'), sum(ended IS NOT NULL AND outcome <> 'ok' AND outcome <> 'interrupted' AND "
	"  coalesce(failure, '') NOT IN ('host-lost', 'superseded')), sum(coalesce(failure, '') = 'host-lost'), "
	"  sum(ended IS NULL OR outcome = 'interrupted' OR failure = 'superseded'), "
	"  sum(CASE WHEN coalesce(gpus, '') <> '' AND ended IS NOT NULL "
	"      THEN (ended - started) * (length(gpus) - length(replace(gpus, ',', '')) + 1) ELSE 0 END), "
	"  (SELECT count(*) FROM placements p WHERE p.host = h) "
	"FROM (SELECT host AS h, outcome, failure, ended, started, gpus "
	"      FROM attempts WHERE run_id = ?1 AND executor = 'ssh') GROUP BY h ORDER BY h";
static const char *const latest_sql = "SELECT task, attempt, run_id, outcome, failure, log, max(id) FROM attempts "
				      "GROUP BY task";

void history_each_latest(State *s, void (*fn)(void *ctx, int64_t run_id, const HistoryAttempt *a), void *ctx)
{
	sqlite3_stmt *st = state_statement(s, &latest_sql);
	if (!st)
		return;
	while (sqlite3_step(st) == SQLITE_ROW) {
		HistoryAttempt a = {text(st, 0), "", maybe_text(st, 3), maybe_text(st, 4), maybe_text(st, 5), "",
				    sqlite3_column_int(st, 1), 0, 0, 0};
		fn(ctx, sqlite3_column_int64(st, 2), &a);
	}
	sqlite3_reset(st);
}

int state_last_run(State *s, StateRun *out, Buf *command)
{
	sqlite3_stmt *st = state_statement(s, &last_run_sql);
	int found = st && sqlite3_step(st) == SQLITE_ROW;
	if (found) {
		read_run(st, out);
		buf_puts(command, text(st, 4));
	}
	if (st)
		sqlite3_reset(st);
	return found;
}

void history_each_run(State *s, int limit, void (*fn)(void *ctx, const StateRun *run, const char *command), void *ctx)
{
	sqlite3_stmt *st = state_statement(s, &runs_sql);
	if (!st)
		return;
	sqlite3_bind_int(st, 1, limit);
	while (sqlite3_step(st) == SQLITE_ROW) {
		StateRun run;
		read_run(st, &run);
		fn(ctx, &run, text(st, 4));
	}
	sqlite3_reset(st);
}

void state_each_outcome(State *s, int64_t run_id, void (*fn)(void *ctx, const char *outcome, int count, double sec),
			void *ctx)
{
	sqlite3_stmt *st = state_statement(s, &outcomes_sql);
	if (!st)
		return;
	sqlite3_bind_int64(st, 1, run_id);
	while (sqlite3_step(st) == SQLITE_ROW)
		fn(ctx, text(st, 0), sqlite3_column_int(st, 1), sqlite3_column_double(st, 2));
	sqlite3_reset(st);
}

void state_each_slowest(State *s, int64_t run_id, int limit,
			void (*fn)(void *ctx, const char *task, double sec, const char *outcome, const char *log), void *ctx)
{
	sqlite3_stmt *st = state_statement(s, &slowest_sql);
	if (!st)
		return;
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_int(st, 2, limit);
	while (sqlite3_step(st) == SQLITE_ROW)
		fn(ctx, text(st, 0), sqlite3_column_double(st, 1), text(st, 2), text(st, 3));
	sqlite3_reset(st);
}

void history_each_attempt(State *s, int64_t run_id, void (*fn)(void *ctx, const HistoryAttempt *a), void *ctx)
{
	sqlite3_stmt *st = state_statement(s, &attempts_sql);
	if (!st)
		return;
	sqlite3_bind_int64(st, 1, run_id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		HistoryAttempt a = {text(st, 0), text(st, 4), maybe_text(st, 5), maybe_text(st, 6), maybe_text(st, 7),
				    text(st, 9), sqlite3_column_int(st, 1), sqlite3_column_double(st, 2),
				    sqlite3_column_double(st, 3), sqlite3_column_double(st, 8)};
		fn(ctx, &a);
	}
	sqlite3_reset(st);
}

static const char *const last_host_run_sql =
	"SELECT max(run_id) FROM attempts WHERE executor = 'ssh'";

int64_t history_last_host_run(State *s)
{
	sqlite3_stmt *st = state_statement(s, &last_host_run_sql);
	if (!st)
		return 0;
	int64_t run_id = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	return run_id;
}

void history_each_host(State *s, int64_t run_id, void (*fn)(void *ctx, const HistoryHost *h), void *ctx)
{
	sqlite3_stmt *st = state_statement(s, &hosts_sql);
	if (!st)
		return;
	sqlite3_bind_int64(st, 1, run_id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		HistoryHost h = {text(st, 0), sqlite3_column_int(st, 1), sqlite3_column_int(st, 2), sqlite3_column_int(st, 3),
				 sqlite3_column_int(st, 4), sqlite3_column_double(st, 5), sqlite3_column_int(st, 6)};
		fn(ctx, &h);
	}
	sqlite3_reset(st);
}

/* an acceptance after the task's last success that its command made */
static const char *const accepted_sql =
	"SELECT started, run_id FROM attempts WHERE task = ?1 AND outcome = 'accepted' AND id > coalesce((SELECT "
	"max(id) FROM attempts WHERE task = ?1 AND outcome = 'ok'), 0) ORDER BY id DESC LIMIT 1";

int history_accepted(State *s, const char *task, double *when, int64_t *run_id)
{
	sqlite3_stmt *st = state_statement(s, &accepted_sql);
	if (!st)
		return 0;
	sqlite3_bind_text(st, 1, task, -1, SQLITE_STATIC);
	int found = sqlite3_step(st) == SQLITE_ROW;
	if (found) {
		*when = sqlite3_column_double(st, 0);
		*run_id = sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return found;
}

static const char *const last_attempt_sql = "SELECT key, outcome, id, ended IS NULL, executor, host, job_id FROM attempts "
					   "WHERE task = ?1 AND attempt > 0 ORDER BY id DESC LIMIT 1";

/* task's latest attempt that ran: 1 with its fields (executor and host where asked), or 0 */
static int last_attempt(State *s, const char *task, char key[33], int *finished_ok, int64_t *id, int *open,
			char executor[16], char host[128])
{
	sqlite3_stmt *st = state_statement(s, &last_attempt_sql);
	if (!st)
		return 0;
	sqlite3_bind_text(st, 1, task, -1, SQLITE_STATIC);
	int found = sqlite3_step(st) == SQLITE_ROW;
	if (found) {
		const char *k = (const char *)sqlite3_column_text(st, 0), *outcome = (const char *)sqlite3_column_text(st, 1),
			   *ex = (const char *)sqlite3_column_text(st, 4), *h = (const char *)sqlite3_column_text(st, 5);
		snprintf(key, 33, "%s", k ? k : "");
		*finished_ok = outcome && !strcmp(outcome, "ok");
		*id = sqlite3_column_int64(st, 2);
		*open = sqlite3_column_int(st, 3);
		if (executor)
			snprintf(executor, 16, "%s", ex ? ex : "");
		if (host)
			snprintf(host, 128, "%s", h ? h : "");
		const char *job = (const char *)sqlite3_column_text(st, 6);
		/* a multi-node ssh job's id "ID+HOST:GPUS+...": its later nodes' hosts, in order */
		for (const char *p = host && h && *h && job ? strchr(job, '+') : NULL; p; p = strchr(p + 1, '+')) {
			size_t len = strlen(host), n = strcspn(p + 1, ":+");
			if (len + 1 + n < 128)
				snprintf(host + len, 128 - len, "+%.*s", (int)n, p + 1);
		}
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return found;
}

int history_last_attempt(State *s, const char *task, char key[33], int *finished_ok)
{
	int64_t id;
	int open;
	return last_attempt(s, task, key, finished_ok, &id, &open, NULL, NULL);
}

int history_last_attempt_host(State *s, const char *task, char key[33], int *finished_ok, char executor[16],
			      char host[128])
{
	int64_t id;
	int open;
	return last_attempt(s, task, key, finished_ok, &id, &open, executor, host);
}

int history_last_attempt_row(State *s, const char *task, char key[33], int *finished_ok, int64_t *id, int *open)
{
	return last_attempt(s, task, key, finished_ok, id, open, NULL, NULL);
}

/* the outcome test first: the latest-attempt look-up (by the (task, id) index) is made for
 * failed rows only */
static const char *const failed_latest_sql =
	"SELECT a.task, a.outcome FROM attempts a WHERE a.outcome IS NOT NULL AND a.outcome NOT IN ('ok', 'restored') "
	"AND a.attempt > 0 AND a.id = (SELECT max(b.id) FROM attempts b WHERE b.task = a.task AND b.attempt > 0)";

void history_each_failed_latest(State *s, void (*fn)(void *ctx, const char *task, const char *outcome), void *ctx)
{
	sqlite3_stmt *st = state_statement(s, &failed_latest_sql);
	if (!st)
		return;
	while (sqlite3_step(st) == SQLITE_ROW)
		fn(ctx, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1));
	sqlite3_reset(st);
}

static const char *const max_attempt_sql = "SELECT max(attempt) FROM attempts WHERE task = ?1";

int history_max_attempt(State *s, const char *task)
{
	sqlite3_stmt *st = state_statement(s, &max_attempt_sql);
	if (!st)
		return 0;
	sqlite3_bind_text(st, 1, task, -1, SQLITE_STATIC);
	int n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return n;
}

/* a map's items are named "<map>/<item>": the rows from "<map>/" up to "<map>0" ('/' + 1) */
static const char *const items_recorded_sql =
	"SELECT l.task, s.run_id FROM last_success l LEFT JOIN successes s ON s.task = l.task AND s.key = l.key "
	"WHERE l.task >= ?1 || '/' AND l.task < ?1 || '0'";

void history_each_item_recorded(State *s, const char *map, void (*fn)(void *ctx, const char *task, int64_t run_id),
				void *ctx)
{
	sqlite3_stmt *st = state_statement(s, &items_recorded_sql);
	if (!st)
		return;
	sqlite3_bind_text(st, 1, map, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW)
		fn(ctx, text(st, 0), sqlite3_column_int64(st, 1));
	sqlite3_reset(st);
}
