/* packed.c — the rows every no-op run reads whole (two million memo rows and a million
 * last successes for a million-item map), each kept as one blob: SQLite decodes a column at
 * a time, and six columns a row took twice as long to read as a path and one blob. The
 * memo: `memo (path, rec)`, rec being a file's size, mtime, inode, ctime and when it was
 * hashed, then its hash, in 56 bytes. A last success: `last_success (task, key, outputs)`,
 * outputs being its declared outputs' hashes (state.h: state_each_last), where the text
 * recorded with each success ("<hex> <path>" a line) had to be parsed on every no-op. */
#define _GNU_SOURCE
#include "packed.h"

#include <stdint.h>
#include <string.h>

#include "state.h"

#define MEMO_REC 56

static const char *const memo_all = "SELECT path, rec FROM memo";
static const char *const memo_put = "INSERT OR REPLACE INTO memo VALUES (?1, ?2)";
static const char *const last_all = "SELECT task, key, outputs FROM last_success";
static const char *const last_put = "INSERT OR REPLACE INTO last_success VALUES (?1, ?2, ?3)";

/* The five numbers 8 bytes each, little endian, then the hash (hi, lo) as state.c keeps
 * hashes in blobs. */
static const unsigned char *memo_pack(const FileMemo *m, unsigned char rec[MEMO_REC])
{
	int64_t v[5] = {m->size, m->mtime_ns, m->ino, m->ctime_ns, m->hashed_ns};
	for (int i = 0; i < 5; i++)
		for (int b = 0; b < 8; b++)
			rec[8 * i + b] = (unsigned char)((uint64_t)v[i] >> (8 * b));
	memcpy(rec + 40, &m->hash.hi, 8);
	memcpy(rec + 48, &m->hash.lo, 8);
	return rec;
}

static const FileMemo *memo_unpack(const unsigned char *rec, FileMemo *m)
{
	uint64_t v[5] = {0};
	for (int i = 0; i < 5; i++)
		for (int b = 7; b >= 0; b--)
			v[i] = v[i] << 8 | rec[8 * i + b];
	m->size = (int64_t)v[0], m->mtime_ns = (int64_t)v[1], m->ino = (int64_t)v[2];
	m->ctime_ns = (int64_t)v[3], m->hashed_ns = (int64_t)v[4];
	memcpy(&m->hash.hi, rec + 40, 8);
	memcpy(&m->hash.lo, rec + 48, 8);
	return m;
}

int state_each_memo(State *s, void (*fn)(void *ctx, const FileMemo *m), void *ctx)
{
	sqlite3_stmt *st = state_statement(s, &memo_all);
	int rc;
	if (!st)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *path = (const char *)sqlite3_column_text(st, 0);
		FileMemo m = {.path = path ? path : ""};
		if (sqlite3_column_bytes(st, 1) == MEMO_REC) /* else damaged: left out, so hashed afresh */
			fn(ctx, memo_unpack(sqlite3_column_blob(st, 1), &m));
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int state_put_memo(State *s, const FileMemo *m)
{
	sqlite3_stmt *st = state_statement_writer(s, &memo_put);
	unsigned char rec[MEMO_REC];
	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, m->path, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, memo_pack(m, rec), MEMO_REC, SQLITE_STATIC);
	return state_write(s, st);
}



static Hash blob_hash(sqlite3_stmt *st, int i)
{
	Hash h = {0, 0};
	if (sqlite3_column_bytes(st, i) == 16) {
		const unsigned char *b = sqlite3_column_blob(st, i);
		memcpy(&h.hi, b, 8);
		memcpy(&h.lo, b + 8, 8);
	}
	return h;
}

/* The outputs text recorded with a success, packed into out; -1 when it does not parse. */
static int pack_outputs(const char *text, Buf *out)
{
	uint32_t n = 0;
	Hash h;
	const char *path;
	size_t len;
	int rc;
	buf_reset(out);
	buf_put(out, "\0\0\0\0\0\0\0\0", 8);
	for (const char *p = text; (rc = state_outputs_next(&p, &h, &path, &len)) > 0 && n < UINT32_MAX / 16; n++)
		buf_put(out, &h, sizeof h);
	if (rc != 0)
		return -1;
	memcpy(out->data, &n, 4);
	return 0;
}

/* Binds the packed form of outputs text at i: NULL when it does not parse (no check then
 * matches it; the success's own row still can). */
static void bind_packed(sqlite3_stmt *st, int i, const char *text, Buf *packed)
{
	if (text && pack_outputs(text, packed) == 0)
		sqlite3_bind_blob(st, i, packed->data, (int)packed->len, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

int state_each_last(State *s, void (*fn)(void *ctx, const char *task, Hash key, const unsigned char *outputs),
		    void *ctx)
{
	sqlite3_stmt *st = state_statement(s, &last_all);
	int rc;
	if (!st)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *task = (const char *)sqlite3_column_text(st, 0);
		const unsigned char *packed = sqlite3_column_blob(st, 2);
		uint32_t n;
		size_t len = (size_t)sqlite3_column_bytes(st, 2);
		if (!packed || len < 8 || (memcpy(&n, packed, 4), len != STATE_PACKED_SIZE(n)))
			packed = NULL;
		fn(ctx, task ? task : "", blob_hash(st, 1), packed);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int state_set_last(State *s, const char *task, Hash key, const char *outputs)
{
	sqlite3_stmt *st = state_statement_writer(s, &last_put);
	unsigned char k[16];
	Buf packed = {0};
	if (!st)
		return -1;
	memcpy(k, &key.hi, 8);
	memcpy(k + 8, &key.lo, 8);
	sqlite3_bind_text(st, 1, task, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, k, 16, SQLITE_STATIC);
	bind_packed(st, 3, outputs, &packed);
	int rc = state_write(s, st);
	buf_free(&packed);
	return rc;
}

/* Rewrites a table's rows in another form, inside the caller's transaction: runs before,
 * inserts each row select gives through insert (convert binds it), then runs after. */
static int rewrite_rows(sqlite3 *db, const char *what, const char *before, const char *select, const char *insert,
			void (*convert)(sqlite3_stmt *from, sqlite3_stmt *to, Buf *scratch), const char *after, Buf *err)
{
	sqlite3_stmt *from = NULL, *to = NULL;
	Buf scratch = {0};
	int step = SQLITE_ERROR;
	if (sqlite3_exec(db, before, NULL, NULL, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, select, -1, &from, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, insert, -1, &to, NULL) == SQLITE_OK)
		while ((step = sqlite3_step(from)) == SQLITE_ROW) {
			convert(from, to, &scratch);
			int put = sqlite3_step(to);
			sqlite3_reset(to);
			if (put != SQLITE_DONE) {
				step = put;
				break;
			}
		}
	buf_free(&scratch);
	sqlite3_finalize(from);
	sqlite3_finalize(to);
	if (step != SQLITE_DONE || sqlite3_exec(db, after, NULL, NULL, NULL) != SQLITE_OK) {
		buf_printf(err, "state database: migrating %s: %s", what, sqlite3_errmsg(db));
		return -1;
	}
	return 0;
}

/* A row of version 10's `files` (path, size, mtime_ns, ino, ctime_ns, hashed_ns, hash), packed. */
static void memo_row(sqlite3_stmt *from, sqlite3_stmt *to, Buf *scratch)
{
	(void)scratch;
	FileMemo m = {NULL, sqlite3_column_int64(from, 1), sqlite3_column_int64(from, 2), sqlite3_column_int64(from, 3),
		      sqlite3_column_int64(from, 4), sqlite3_column_int64(from, 5), blob_hash(from, 6)};
	unsigned char rec[MEMO_REC];
	sqlite3_bind_text(to, 1, (const char *)sqlite3_column_text(from, 0), -1, SQLITE_TRANSIENT);
	sqlite3_bind_blob(to, 2, memo_pack(&m, rec), MEMO_REC, SQLITE_TRANSIENT);
}

int memo_migrate(sqlite3 *db, Buf *err)
{
	/* `files` made if absent (a hand-made database): then nothing is copied */
	return rewrite_rows(db, "the memo",
			    "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER,"
			    "  ino INTEGER, ctime_ns INTEGER, hashed_ns INTEGER, hash BLOB) WITHOUT ROWID;"
			    "CREATE TABLE IF NOT EXISTS memo (path TEXT PRIMARY KEY, rec BLOB) WITHOUT ROWID;",
			    "SELECT path, size, mtime_ns, ino, ctime_ns, hashed_ns, hash FROM files", memo_put, memo_row,
			    "DROP TABLE files;", err);
}

/* A last success (task, key, outputs text), its outputs packed. */
static void last_row(sqlite3_stmt *from, sqlite3_stmt *to, Buf *scratch)
{
	sqlite3_bind_value(to, 1, sqlite3_column_value(from, 0));
	sqlite3_bind_value(to, 2, sqlite3_column_value(from, 1));
	bind_packed(to, 3, (const char *)sqlite3_column_text(from, 2), scratch);
}

int last_migrate(sqlite3 *db, Buf *err)
{
	return rewrite_rows(db, "the last successes",
			    "CREATE TABLE IF NOT EXISTS last_success (task TEXT PRIMARY KEY, key BLOB, outputs TEXT) WITHOUT ROWID;"
			    "CREATE TABLE last_packed (task TEXT PRIMARY KEY, key BLOB, outputs BLOB) WITHOUT ROWID;",
			    "SELECT task, key, outputs FROM last_success", "INSERT INTO last_packed VALUES (?1, ?2, ?3)", last_row,
			    "DROP TABLE last_success; ALTER TABLE last_packed RENAME TO last_success;", err);
}
