/* placements.c — what kiln copied to each ssh host: per (host, path) the content hash it
 * had here when it was copied and the host's size-and-mtime listing of the copy just after,
 * so a later run skips a copy whose content is unchanged here and whose listing there is
 * unchanged (a copy deleted or edited on the host lists differently and is copied again). */
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "cache.h"
#include "../base/hash.h"
#include "state/history.h"
#include "internal.h"
#include "state/state.h"

static const char *const get_sql = "SELECT hash, listing FROM placements WHERE host = ?1 AND path = ?2";
static const char *const put_sql =
	"INSERT OR REPLACE INTO placements (host, path, hash, listing, placed) VALUES (?1, ?2, ?3, ?4, ?5)";
static const char *const forget_sql = "DELETE FROM placements WHERE host = ?1 AND path = ?2";
static const char *const each_sql = "SELECT path, hash, listing FROM placements WHERE host = ?1 ORDER BY path";

int cache_content_hash(Cache *c, const char *path, char out[33])
{
	cache_ready(c);
	Hash h;
	if (hash_path(c, path, &h) != 0)
		return -1;
	hash_hex(h, out);
	return 0;
}

int cache_placement_get(Cache *c, const char *host, const char *path, Buf *hash, Buf *listing)
{
	cache_ready(c);
	sqlite3_stmt *st = state_statement(cache_state(c), &get_sql);
	if (!st)
		return 0;
	sqlite3_bind_text(st, 1, host, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
	int found = sqlite3_step(st) == SQLITE_ROW;
	if (found) {
		buf_puts(hash, (const char *)sqlite3_column_text(st, 0));
		buf_puts(listing, (const char *)sqlite3_column_text(st, 1));
	}
	sqlite3_reset(st);
	return found;
}

int cache_placement_put(Cache *c, const char *host, const char *path, const char *hash, const char *listing)
{
	cache_ready(c);
	sqlite3_stmt *st = state_statement_writer(cache_state(c), hash ? &put_sql : &forget_sql);
	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, host, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, path, -1, SQLITE_TRANSIENT);
	if (hash) {
		sqlite3_bind_text(st, 3, hash, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 4, listing, -1, SQLITE_TRANSIENT);
		sqlite3_bind_double(st, 5, (double)time(NULL));
	}
	return state_write(cache_state(c), st);
}

void cache_each_placement(Cache *c, const char *host, void (*fn)(void *ctx, const char *path, const char *hash),
			  void *ctx)
{
	cache_ready(c);
	sqlite3_stmt *st = state_statement(cache_state(c), &each_sql);
	if (!st)
		return;
	sqlite3_bind_text(st, 1, host, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW)
		fn(ctx, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1));
	sqlite3_reset(st);
}

void cache_each_host(Cache *c, int64_t run_id, void (*fn)(void *ctx, const HistoryHost *h), void *ctx)
{
	cache_ready(c);
	if (!run_id)
		run_id = history_last_host_run(cache_state(c));
	if (run_id > 0) /* the latest run that ran something on a host (a no-op run ran nothing) */
		history_each_host(cache_state(c), run_id, fn, ctx);
}
