/* state.c — SQLite access for the cache. Every statement is prepared once at open;
 * writes join one open transaction that state_commit() ends, so a run costs a handful
 * of commits, not one per task. */
#define _GNU_SOURCE
#include "state.h"
#include "packed.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
	Q_SUCCESS_FIND, Q_SUCCESS_PUT, Q_OUTPUTS_ALL,
	Q_RUN_BEGIN, Q_RUN_END, Q_ATTEMPT_START, Q_ATTEMPT_END, Q_ATTEMPT_OPEN, Q_LAST_LOG,
	Q_OPEN_JOBS, Q_LOST_JOBS, Q_ATTEMPT_WAITED, Q_ATTEMPT_JOB, Q_ATTEMPT_PORTS, Q_ATTEMPT_KEY, Q_COUNT
};

static const char *const sql[Q_COUNT] = {
	[Q_SUCCESS_FIND] = "SELECT outputs, components FROM successes WHERE task = ?1 AND key = ?2",
	[Q_SUCCESS_PUT] = "INSERT OR REPLACE INTO successes VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[Q_OUTPUTS_ALL] = "SELECT outputs FROM successes",
	[Q_RUN_BEGIN] = "INSERT INTO runs (started, host, pid, command) VALUES (?1, ?2, ?3, ?4)",
	[Q_RUN_END] = "UPDATE runs SET ended = ?2, outcome = ?3 WHERE id = ?1",
	[Q_ATTEMPT_START] = "INSERT INTO attempts (run_id, task, attempt, started, host, pgid, gpus, log, job_id, key, "
			    "executor, ports) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
	[Q_ATTEMPT_END] = "UPDATE attempts SET ended = ?2, exit_code = ?3, outcome = ?4, failure = ?5 WHERE id = ?1",
	[Q_ATTEMPT_WAITED] = "UPDATE attempts SET waited = ?2 WHERE id = ?1",
	[Q_ATTEMPT_JOB] = "UPDATE attempts SET job_id = ?2 WHERE id = ?1",
	[Q_ATTEMPT_PORTS] = "UPDATE attempts SET ports = ?2 WHERE id = ?1",
	[Q_ATTEMPT_KEY] = "UPDATE attempts SET key = ?2 WHERE id = ?1",
	[Q_ATTEMPT_OPEN] = "SELECT id, task, pgid FROM attempts WHERE ended IS NULL AND host = ?1 AND job_id IS NULL",
	[Q_OPEN_JOBS] = "SELECT id, task, attempt, job_id, key, log, executor, host, gpus, started FROM attempts "
			"WHERE ended IS NULL AND job_id IS NOT NULL",
	/* ssh jobs lost with their host in the runs a kill ended (their rows never ended) since
	 * the last clean end, and whether a later attempt of the task followed: the ended index
	 * finds them from the first such run's start */
	[Q_LOST_JOBS] = "SELECT id, task, attempt, job_id, key, log, executor, host, gpus, started, ended, "
			"id < (SELECT max(id) FROM attempts b WHERE b.task = a.task) FROM attempts a "
			/* the runs a kill ended since the last that ended cleanly (whose end stopped or
			 * took up what it could reach): a second kill forgets nothing the first left */
			"WHERE ended >= (SELECT min(started) FROM runs WHERE (?1 <= 0 OR id < ?1) AND ended IS NULL "
			"AND id > coalesce((SELECT max(id) FROM runs WHERE (?1 <= 0 OR id < ?1) AND ended IS NOT NULL), 0)) "
			"AND failure = 'host-lost' AND executor = 'ssh' AND job_id IS NOT NULL AND key IS NOT NULL",
	[Q_LAST_LOG] = "SELECT log, CASE WHEN ended IS NULL THEN 1 WHEN outcome = 'ok' THEN 2 ELSE 0 END FROM attempts "
			"WHERE task = ?1 AND log IS NOT NULL ORDER BY id DESC LIMIT 1",
};

static const char schema[] =
	/* version 11: a memo row's numbers and hash in one blob (memo_pack), not six columns */
	"CREATE TABLE IF NOT EXISTS memo (path TEXT PRIMARY KEY, rec BLOB) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS successes (task TEXT, key BLOB, components TEXT, outputs TEXT,"
	"  run_id INTEGER, finished REAL, PRIMARY KEY (task, key)) WITHOUT ROWID;"
	/* version 12: a last success's outputs as their hashes, packed (packed.c), not text */
	"CREATE TABLE IF NOT EXISTS last_success (task TEXT PRIMARY KEY, key BLOB, outputs BLOB) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY, started REAL, ended REAL, host TEXT,"
	"  pid INTEGER, command TEXT, outcome TEXT);"
	"CREATE TABLE IF NOT EXISTS attempts (id INTEGER PRIMARY KEY, run_id INTEGER, task TEXT,"
	"  attempt INTEGER, started REAL, ended REAL, exit_code INTEGER, outcome TEXT, host TEXT,"
	"  pgid INTEGER, gpus TEXT, log TEXT, job_id TEXT, key TEXT, failure TEXT, waited REAL, executor TEXT,"
	"  ports TEXT);"
	"CREATE INDEX IF NOT EXISTS attempts_by_task ON attempts (task, id);"
	"CREATE INDEX IF NOT EXISTS attempts_open ON attempts (ended, host);"
	/* version 2: metrics, kept for every run that ingested them */
	"CREATE TABLE IF NOT EXISTS ingests (task TEXT, run_id INTEGER, time REAL, position INTEGER,"
	"  PRIMARY KEY (task, run_id)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS metrics (task TEXT, run_id INTEGER, key TEXT, value REAL, text TEXT,"
	"  PRIMARY KEY (task, run_id, key)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS series (task TEXT, run_id INTEGER, key TEXT, step REAL, value REAL);"
	"CREATE INDEX IF NOT EXISTS series_by_task ON series (task, run_id, key, step);"
	"CREATE TABLE IF NOT EXISTS metric_tags (task TEXT, run_id INTEGER, key TEXT, value TEXT,"
	"  PRIMARY KEY (task, run_id, key)) WITHOUT ROWID;"
	/* version 8: inputs copied to ssh hosts (cache/placements.c) */
	"CREATE TABLE IF NOT EXISTS placements (host TEXT, path TEXT, hash TEXT, listing TEXT, placed REAL,"
	"  PRIMARY KEY (host, path)) WITHOUT ROWID;";

/* version 9: attempts name their executor; an ssh attempt's host leaves its job id */
static const char migrate_executor[] =
	"ALTER TABLE attempts ADD COLUMN executor TEXT;"
	"UPDATE attempts SET executor = CASE WHEN job_id IS NULL OR job_id LIKE 'local/%' THEN 'local' "
	"  WHEN instr(job_id, ':') > 0 THEN 'ssh' ELSE 'slurm' END;"
	"UPDATE attempts SET host = substr(job_id, 1, instr(job_id, ':') - 1), "
	"  job_id = substr(job_id, instr(job_id, ':') + 1) WHERE executor = 'ssh';"
	"UPDATE attempts SET job_id = substr(job_id, 1, instr(job_id, '/') - 1) "
	"  WHERE executor = 'ssh' AND instr(job_id, '/') > 0;"
	"UPDATE attempts SET host = NULL WHERE executor = 'slurm';";

#define STR_(x) #x
#define STR(x) STR_(x)

struct State {
	sqlite3 *db;
	sqlite3_stmt *q[Q_COUNT];
	struct {                  /* statements other cache modules own (results.c), prepared */
		const char *const *sql; /* on first use: the report and charts need them, a */
		sqlite3_stmt *st;       /* no-op run does not */
	} other[32];
	int nother;
	int readonly, in_tx;
	char *path;
	Buf error; /* the first failed write: sticky, since later writes depend on it */
};

/* Records the first write failure with the path and what to do about it. */
static int write_failed(State *s, const char *what)
{
	if (!s->error.len) {
		int code = sqlite3_errcode(s->db);
		buf_printf(&s->error, "cannot record results in %s: %s failed: %s", s->path, what, sqlite3_errmsg(s->db));
		if (code == SQLITE_FULL || code == SQLITE_IOERR)
			buf_puts(&s->error, " (free space on that file system, or check the disk, then run again: "
					    "tasks whose success was not recorded run again)");
		else
			buf_puts(&s->error, " (check that the workspace is writable, then run again)");
	}
	return -1;
}

const char *state_error(const State *s) { return s->error.len ? s->error.data : NULL; }

static void report(Buf *err, sqlite3 *db, const char *what)
{
	buf_printf(err, "state database: %s: %s", what, db ? sqlite3_errmsg(db) : "out of memory");
}

static int exec_sql(sqlite3 *db, const char *text, Buf *err)
{
	char *msg = NULL;
	if (sqlite3_exec(db, text, NULL, NULL, &msg) == SQLITE_OK)
		return 0;
	buf_printf(err, "state database: %s", msg ? msg : "error");
	sqlite3_free(msg);
	return -1;
}

static int user_version(sqlite3 *db)
{
	sqlite3_stmt *st;
	int v = -1;
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int is_damage(sqlite3 *db)
{
	int code = db ? sqlite3_errcode(db) & 0xff : SQLITE_OK;
	return code == SQLITE_CORRUPT || code == SQLITE_NOTADB;
}

/* Opens path once; *damaged is set when SQLite says the file is not a sound database. */
static State *open_once(const char *path, int readonly, Buf *err, int *damaged)
{
	State *s = xcalloc(1, sizeof *s);
	s->readonly = readonly;
	s->path = xstrdup(path);
	/* NOMUTEX: one thread at a time uses a State (the loader, then the caller after
	 * cache_ready), so SQLite need not lock around every call */
	int flags = SQLITE_OPEN_NOMUTEX | (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
	if (readonly && access(path, F_OK) != 0)
		flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_MEMORY;
	if (sqlite3_open_v2(flags & SQLITE_OPEN_MEMORY ? ":memory:" : path, &s->db, flags & ~SQLITE_OPEN_MEMORY, NULL) !=
	    SQLITE_OK) {
		report(err, s->db, path);
		goto fail;
	}
	if (readonly && !(flags & SQLITE_OPEN_MEMORY) && user_version(s->db) == 0) {
		/* a database whose first schema never committed (its kiln was killed while making
		 * it): nothing is recorded in it, as when there is none */
		sqlite3_close(s->db);
		flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_MEMORY;
		if (sqlite3_open_v2(":memory:", &s->db, flags & ~SQLITE_OPEN_MEMORY, NULL) != SQLITE_OK) {
			report(err, s->db, path);
			goto fail;
		}
	}
	sqlite3_busy_timeout(s->db, 10000);
	/* closing the last connection would checkpoint and fsync: 30+ ms on every no-op run.
	 * The WAL is still checkpointed as it grows (wal_autocheckpoint). */
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	if (!readonly || flags & SQLITE_OPEN_MEMORY) {
		if (exec_sql(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", err))
			goto fail;
		int v = user_version(s->db);
		/* a migration or a new schema happens whole or not at all */
		if (v != STATE_SCHEMA_VERSION && exec_sql(s->db, "BEGIN IMMEDIATE", err))
			goto fail;
		if (v >= 1 && v < STATE_SCHEMA_VERSION) {
			fprintf(stderr, "kiln: migrating %s from schema version %d to %d\n", path, v, STATE_SCHEMA_VERSION);
			/* 2 added tables (the CREATEs below), 3 two attempt columns, 4 the outputs of
			 * each last success beside its key, so a no-op run reads them without a join,
			 * 5 each ingest's position in the recipe, so metrics come in declaration order,
			 * 6 each failed attempt's class (runner/recipe/failure.h), 7 how long an attempt waited
			 * for its GPUs before it started, 8 what was placed on each ssh host (a table),
			 * 9 each attempt's executor, and its host as a column (an ssh attempt's host
			 * and devices were in its job id, "host:ID/gpus"; the id keeps ID alone),
			 * 10 the TCP ports an attempt had ({port}: reserved here, or found on its node),
			 * 11 the memo's rows packed (its six columns cost a no-op run half its reading),
			 * 12 a last success's outputs packed (their text was parsed on every no-op) */
			if ((v < 3 && exec_sql(s->db, "ALTER TABLE attempts ADD COLUMN job_id TEXT;"
						     "ALTER TABLE attempts ADD COLUMN key TEXT;", err)) ||
			    (v < 4 && exec_sql(s->db, "ALTER TABLE last_success ADD COLUMN outputs TEXT;"
						     "UPDATE last_success SET outputs = (SELECT s.outputs FROM successes s"
						     "  WHERE s.task = last_success.task AND s.key = last_success.key);", err)) ||
			    (v < 5 && v >= 2 && exec_sql(s->db, "ALTER TABLE ingests ADD COLUMN position INTEGER;", err)) ||
			    (v < 6 && exec_sql(s->db, "ALTER TABLE attempts ADD COLUMN failure TEXT;", err)) ||
			    (v < 7 && exec_sql(s->db, "ALTER TABLE attempts ADD COLUMN waited REAL;", err)) ||
			    (v < 9 && exec_sql(s->db, migrate_executor, err)) ||
			    (v < 10 && exec_sql(s->db, "ALTER TABLE attempts ADD COLUMN ports TEXT;", err)) ||
			    (v < 11 && memo_migrate(s->db, err)) || (v < 12 && last_migrate(s->db, err)))
				goto fail;
		} else if (v != 0 && v != STATE_SCHEMA_VERSION) {
			fprintf(stderr, "kiln: %s has schema version %d, this kiln uses %d: rebuilding it "
					"(earlier results are forgotten, so tasks run again)\n",
				path, v, STATE_SCHEMA_VERSION);
			if (exec_sql(s->db, "DROP TABLE IF EXISTS files; DROP TABLE IF EXISTS memo; DROP TABLE IF EXISTS successes;"
					    "DROP TABLE IF EXISTS last_success; DROP TABLE IF EXISTS runs;"
					    "DROP TABLE IF EXISTS attempts;", err))
				goto fail;
		}
		/* a current database needs no DDL: writing user_version on every open would make
		 * each command, a no-op run included, start with a write transaction */
		if (v != STATE_SCHEMA_VERSION &&
		    (exec_sql(s->db, schema, err) || exec_sql(s->db, "PRAGMA user_version = " STR(STATE_SCHEMA_VERSION), err) ||
		     exec_sql(s->db, "COMMIT", err)))
			goto fail;
		/* a migration rewrites tables whole: its log (hundreds of MiB for a million
		 * tasks) goes into the database now and the file is emptied (a reader may keep
		 * it: nothing is lost then) */
		if (v >= 1 && v != STATE_SCHEMA_VERSION)
			sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	} else if (user_version(s->db) != STATE_SCHEMA_VERSION) {
		int v = user_version(s->db);
		if (v >= 1 && v < STATE_SCHEMA_VERSION)
			buf_printf(err, "%s was written by an earlier kiln (schema version %d, this one uses %d): run `kiln run` "
					"once to migrate it in place, keeping every result", path, v, STATE_SCHEMA_VERSION);
		else
			buf_printf(err, "%s has schema version %d, this kiln uses %d: use the kiln that wrote it, or `kiln "
					"run` with this one rebuilds it (earlier results are forgotten, so tasks run again)",
				   path, v, STATE_SCHEMA_VERSION);
		goto fail;
	}
	return s; /* its statements are prepared on first use (query): a no-op run uses 2 of them */
fail:
	*damaged = is_damage(s->db);
	if (*damaged) { /* say what SQLite found, not what the step that tripped on it wanted */
		buf_reset(err);
		buf_puts(err, sqlite3_errmsg(s->db));
	}
	if (s->db && !sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	state_close(s);
	return NULL;
}

int state_move_aside(const char *path, const char *why)
{
	char when[32];
	time_t now = time(NULL);
	strftime(when, sizeof when, "%Y%m%d-%H%M%S", localtime(&now));
	char *dest = xasprintf("%s.damaged-%s", path, when);
	int rc = rename(path, dest);
	if (rc == 0) { /* the WAL belongs to the damaged file: keep it beside it */
		static const char *const side[] = {"-wal", "-shm"};
		for (int i = 0; i < 2; i++) {
			char *from = xasprintf("%s%s", path, side[i]), *to = xasprintf("%s%s", dest, side[i]);
			rename(from, to);
			free(from);
			free(to);
		}
		fprintf(stderr, "kiln: %s is damaged (%s); moved it to %s and started from an empty state: the record "
				"of earlier successes is lost, so tasks run again\n", path, why, dest);
	}
	free(dest);
	return rc;
}

State *state_open(const char *path, int readonly, Buf *err)
{
	int damaged = 0;
	State *s = open_once(path, readonly, err, &damaged);
	if (s || !damaged)
		return s;
	if (readonly) {
		char *why = xstrdup(buf_str(err));
		buf_reset(err);
		buf_printf(err, "%s is damaged (%s): `kiln run` moves it aside and starts from an empty state", path, why);
		free(why);
		return NULL;
	}
	if (state_move_aside(path, buf_str(err)) != 0) {
		buf_printf(err, " (%s is damaged and cannot be moved aside: move it away by hand and run again)", path);
		return NULL;
	}
	buf_reset(err);
	return open_once(path, readonly, err, &damaged);
}

int state_damaged(const State *s) { return is_damage(s->db); }

int state_close(State *s)
{
	if (!s)
		return 0;
	int rc = state_commit(s);
	for (int i = 0; i < Q_COUNT; i++)
		sqlite3_finalize(s->q[i]);
	for (int i = 0; i < s->nother; i++)
		sqlite3_finalize(s->other[i].st);
	sqlite3_close(s->db);
	buf_free(&s->error);
	free(s->path);
	free(s);
	return rc;
}

/* Statement q, prepared on its first use; NULL when it cannot be (SQLite then answers
 * every call on it with SQLITE_MISUSE, which the callers' step checks report). */
static sqlite3_stmt *query(State *s, int q)
{
	if (!s->q[q] && sqlite3_prepare_v3(s->db, sql[q], -1, SQLITE_PREPARE_PERSISTENT, &s->q[q], NULL) != SQLITE_OK)
		s->q[q] = NULL;
	return s->q[q];
}

/* Begins the batch transaction if none is open; statements then run inside it. */
static sqlite3_stmt *writer(State *s, int q)
{
	if (!s->in_tx && !s->readonly) {
		if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
			write_failed(s, "starting a transaction");
		s->in_tx = 1;
	}
	sqlite3_stmt *st = query(s, q);
	if (!st)
		write_failed(s, "preparing a statement");
	return st;
}

/* Runs a bound write statement; 0, or -1 (and the sticky error) when it failed. */
static int run_write(State *s, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st) == SQLITE_DONE || s->readonly ? 0 : write_failed(s, "a write");
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc || s->error.len ? -1 : 0;
}

int state_commit(State *s)
{
	if (s->in_tx) {
		s->in_tx = 0;
		if (s->error.len || sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
			if (!s->error.len)
				write_failed(s, "committing");
			/* nothing of a failed batch counts: SQLite may have rolled part of it back */
			if (!sqlite3_get_autocommit(s->db))
				sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		}
	}
	return s->error.len ? -1 : 0;
}

int state_pending(const State *s) { return s->in_tx; }

int state_checkpoint(State *s)
{
	return sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

sqlite3_stmt *state_statement(State *s, const char *const *text)
{
	for (int i = 0; i < s->nother; i++)
		if (s->other[i].sql == text)
			return s->other[i].st;
	sqlite3_stmt *st = NULL;
	if (s->nother == (int)(sizeof s->other / sizeof *s->other) ||
	    sqlite3_prepare_v3(s->db, *text, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
		return NULL; /* e.g. an old database without the table */
	s->other[s->nother].sql = text;
	s->other[s->nother++].st = st;
	return st;
}

sqlite3_stmt *state_statement_writer(State *s, const char *const *text)
{
	sqlite3_stmt *st = state_statement(s, text);
	if (!st) {
		write_failed(s, "preparing a write");
		return NULL;
	}
	writer(s, 0);
	return st;
}

int state_write(State *s, sqlite3_stmt *st) { return st ? run_write(s, st) : -1; }

static void bind_hash(sqlite3_stmt *st, int i, Hash h)
{
	unsigned char b[16];
	memcpy(b, &h.hi, 8);
	memcpy(b + 8, &h.lo, 8);
	sqlite3_bind_blob(st, i, b, 16, SQLITE_TRANSIENT);
}

static const char *column_text(sqlite3_stmt *st, int i)
{
	const char *t = (const char *)sqlite3_column_text(st, i);
	return t ? t : "";
}

int state_find_success(State *s, const char *task, Hash key, Buf *outputs, Buf *components)
{
	sqlite3_stmt *st = query(s, Q_SUCCESS_FIND);
	sqlite3_bind_text(st, 1, task, -1, SQLITE_STATIC);
	bind_hash(st, 2, key);
	int found = sqlite3_step(st) == SQLITE_ROW;
	if (found && outputs)
		buf_puts(outputs, column_text(st, 0));
	if (found && components)
		buf_puts(components, column_text(st, 1));
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return found;
}

int state_put_success(State *s, const char *task, Hash key, const char *components, const char *outputs,
		      int64_t run_id)
{
	sqlite3_stmt *st = writer(s, Q_SUCCESS_PUT);
	sqlite3_bind_text(st, 1, task, -1, SQLITE_STATIC);
	bind_hash(st, 2, key);
	sqlite3_bind_text(st, 3, components, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, outputs, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, run_id);
	sqlite3_bind_double(st, 6, now_wall());
	if (run_write(s, st) != 0)
		return -1;
	return state_set_last(s, task, key, outputs);
}

int state_outputs_next(const char **p, Hash *hash, const char **path, size_t *path_len)
{
	if (!**p)
		return 0;
	const char *nl = strchr(*p, '\n');
	size_t len = nl ? (size_t)(nl - *p) : strlen(*p);
	if (len < 34 || (*p)[32] != ' ' || hash_parse(*p, hash) != 0)
		return -1;
	*path = *p + 33;
	*path_len = len - 33;
	*p += len + (nl != NULL);
	return 1;
}

void state_each_output_hash(State *s, void (*fn)(void *ctx, Hash h), void *ctx)
{
	sqlite3_stmt *st = query(s, Q_OUTPUTS_ALL);
	while (sqlite3_step(st) == SQLITE_ROW) {
		Hash h;
		const char *path;
		size_t len;
		for (const char *p = column_text(st, 0); state_outputs_next(&p, &h, &path, &len) > 0;)
			fn(ctx, h);
	}
	sqlite3_reset(st);
}

int64_t state_begin_run(State *s, double started, const char *host, int pid, const char *command)
{
	sqlite3_stmt *st = writer(s, Q_RUN_BEGIN);
	sqlite3_bind_double(st, 1, started);
	sqlite3_bind_text(st, 2, host, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, pid);
	sqlite3_bind_text(st, 4, command, -1, SQLITE_STATIC);
	run_write(s, st);
	int64_t id = sqlite3_last_insert_rowid(s->db);
	return state_commit(s) == 0 ? id : -1;
}

int state_end_run(State *s, int64_t run_id, const char *outcome)
{
	sqlite3_stmt *st = writer(s, Q_RUN_END);
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_double(st, 2, now_wall());
	sqlite3_bind_text(st, 3, outcome, -1, SQLITE_STATIC);
	return run_write(s, st);
}

int64_t state_attempt_started(State *s, int64_t run_id, const AttemptRecord *a)
{
	sqlite3_stmt *st = writer(s, Q_ATTEMPT_START);
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_text(st, 2, a->task, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, a->attempt);
	sqlite3_bind_double(st, 4, a->started > 0 ? a->started : now_wall());
	const char *text[] = {a->host, a->gpus ? a->gpus : "", a->log, a->job_id, a->key, a->executor, a->ports};
	const int column[] = {5, 7, 8, 9, 10, 11, 12};
	for (int i = 0; i < 7; i++)
		if (text[i] && (*text[i] || column[i] == 7))
			sqlite3_bind_text(st, column[i], text[i], -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 6, a->pgid);
	if (run_write(s, st) != 0)
		return -1;
	return sqlite3_last_insert_rowid(s->db);
}

/* One text column of an attempt's row, set after its start. */
static int set_attempt_text(State *s, int query, int64_t id, const char *value)
{
	sqlite3_stmt *st = writer(s, query);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	return run_write(s, st);
}

int state_attempt_job_id(State *s, int64_t id, const char *job_id) { return set_attempt_text(s, Q_ATTEMPT_JOB, id, job_id); }
int state_attempt_ports(State *s, int64_t id, const char *ports) { return set_attempt_text(s, Q_ATTEMPT_PORTS, id, ports); }
int state_attempt_key(State *s, int64_t id, const char *key) { return set_attempt_text(s, Q_ATTEMPT_KEY, id, key); }

int state_attempt_waited(State *s, int64_t id, double seconds)
{
	sqlite3_stmt *st = writer(s, Q_ATTEMPT_WAITED);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_double(st, 2, seconds);
	return run_write(s, st);
}

int state_attempt_ended(State *s, int64_t id, int exit_code, const char *outcome, const char *failure)
{
	sqlite3_stmt *st = writer(s, Q_ATTEMPT_END);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_double(st, 2, now_wall());
	sqlite3_bind_int(st, 3, exit_code);
	sqlite3_bind_text(st, 4, outcome, -1, SQLITE_STATIC);
	if (failure)
		sqlite3_bind_text(st, 5, failure, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 5);
	return run_write(s, st);
}

void state_each_open_attempt(State *s, const char *host, void (*fn)(void *ctx, int64_t id, const char *task, int pgid),
			     void *ctx)
{
	sqlite3_stmt *st = query(s, Q_ATTEMPT_OPEN);
	sqlite3_bind_text(st, 1, host, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW)
		fn(ctx, sqlite3_column_int64(st, 0), column_text(st, 1), sqlite3_column_int(st, 2));
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

int state_last_log(State *s, const char *task, Buf *out, int *stands)
{
	sqlite3_stmt *st = query(s, Q_LAST_LOG);
	sqlite3_bind_text(st, 1, task, -1, SQLITE_STATIC);
	int found = sqlite3_step(st) == SQLITE_ROW;
	if (found)
		buf_puts(out, column_text(st, 0));
	if (found && stands)
		*stands = sqlite3_column_int(st, 1);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return found;
}

/* Calls fn with each row of st, a query of open or lost attempts (their columns alike). */
static void each_attempt_row(sqlite3_stmt *st, void (*fn)(void *ctx, const OpenAttempt *a), void *ctx)
{
	while (sqlite3_step(st) == SQLITE_ROW) {
		OpenAttempt a = {.row = sqlite3_column_int64(st, 0),
				 .rec = {.task = column_text(st, 1), .attempt = sqlite3_column_int(st, 2),
					 .job_id = column_text(st, 3), .key = column_text(st, 4), .log = column_text(st, 5),
					 .executor = column_text(st, 6), .host = column_text(st, 7), .gpus = column_text(st, 8),
					 .started = sqlite3_column_double(st, 9)},
				 .ended = sqlite3_column_count(st) > 10 ? sqlite3_column_double(st, 10) : 0,
				 .superseded = sqlite3_column_count(st) > 11 && sqlite3_column_int(st, 11)};
		fn(ctx, &a);
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

void state_each_open_job(State *s, void (*fn)(void *ctx, const OpenAttempt *a), void *ctx)
{
	each_attempt_row(query(s, Q_OPEN_JOBS), fn, ctx);
}

void state_each_lost_job(State *s, int64_t run_id, void (*fn)(void *ctx, const OpenAttempt *a), void *ctx)
{
	sqlite3_stmt *st = query(s, Q_LOST_JOBS);
	sqlite3_bind_int64(st, 1, run_id);
	each_attempt_row(st, fn, ctx);
}

