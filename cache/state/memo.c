/* memo.c — the file-hash memo's rows: `memo (path, rec)`, rec being a file's size, mtime,
 * inode, ctime and when it was hashed, then its hash, packed in 56 bytes. A no-op run reads
 * every row (two million for a million-item map), and SQLite decodes a column at a time: six
 * columns a row took twice as long to read as the path and one blob. */
#define _GNU_SOURCE
#include "memo.h"

#include <string.h>

#include "state.h"

#define MEMO_REC 56

static const char *const memo_all = "SELECT path, rec FROM memo";
static const char *const memo_put = "INSERT OR REPLACE INTO memo VALUES (?1, ?2)";
static const char *const memo_count = "SELECT count(*) FROM memo";

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

int64_t state_memo_count(State *s)
{
	sqlite3_stmt *st = state_statement(s, &memo_count);
	int64_t n = st && sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	if (st)
		sqlite3_reset(st);
	return n;
}

static int migrate_failed(sqlite3 *db, Buf *err)
{
	buf_printf(err, "state database: migrating the memo: %s", sqlite3_errmsg(db));
	return -1;
}

int memo_migrate(sqlite3 *db, Buf *err)
{
	sqlite3_stmt *from = NULL, *to = NULL;
	/* `files` made if absent (a hand-made database): then nothing is copied */
	if (sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER,"
			     "  ino INTEGER, ctime_ns INTEGER, hashed_ns INTEGER, hash BLOB) WITHOUT ROWID;"
			     "CREATE TABLE IF NOT EXISTS memo (path TEXT PRIMARY KEY, rec BLOB) WITHOUT ROWID;",
			 NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT path, size, mtime_ns, ino, ctime_ns, hashed_ns, hash FROM files", -1, &from,
			       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, memo_put, -1, &to, NULL) != SQLITE_OK) {
		sqlite3_finalize(from);
		return migrate_failed(db, err);
	}
	int step;
	while ((step = sqlite3_step(from)) == SQLITE_ROW) {
		FileMemo m = {NULL, sqlite3_column_int64(from, 1), sqlite3_column_int64(from, 2), sqlite3_column_int64(from, 3),
			      sqlite3_column_int64(from, 4), sqlite3_column_int64(from, 5), {0, 0}};
		if (sqlite3_column_bytes(from, 6) == 16) {
			memcpy(&m.hash.hi, sqlite3_column_blob(from, 6), 8);
			memcpy(&m.hash.lo, (const unsigned char *)sqlite3_column_blob(from, 6) + 8, 8);
		}
		unsigned char rec[MEMO_REC];
		sqlite3_bind_text(to, 1, (const char *)sqlite3_column_text(from, 0), -1, SQLITE_TRANSIENT);
		sqlite3_bind_blob(to, 2, memo_pack(&m, rec), MEMO_REC, SQLITE_STATIC);
		int put = sqlite3_step(to);
		sqlite3_reset(to);
		if (put != SQLITE_DONE) {
			step = put;
			break;
		}
	}
	sqlite3_finalize(from);
	sqlite3_finalize(to);
	if (step != SQLITE_DONE || sqlite3_exec(db, "DROP TABLE files;", NULL, NULL, NULL) != SQLITE_OK)
		return migrate_failed(db, err);
	return 0;
}
