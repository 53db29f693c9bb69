/* logs.c — every attempt's log, read back and pruned: `kiln log TASK --all` lists a task's
 * attempts with their logs, and `kiln gc` deletes the logs no rule keeps (see cache.h). The
 * attempts table is state.c's; this reads it and removes files under the log directory. */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdint.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "internal.h"
#include "state/state.h"

static const char *const attempts_of_sql =
	"SELECT attempt, run_id, coalesce(outcome, 'unfinished'), log FROM attempts "
	"WHERE task = ?1 AND log IS NOT NULL ORDER BY id";

int cache_each_attempt_log(Cache *c, const char *task,
			   void (*fn)(void *ctx, int attempt, long long run_id, const char *outcome, const char *log), void *ctx)
{
	sqlite3_stmt *st = state_statement(cache_state(c), &attempts_of_sql);
	if (!st)
		return 0;
	int n = 0;
	sqlite3_bind_text(st, 1, task, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW && ++n)
		fn(ctx, sqlite3_column_int(st, 0), sqlite3_column_int64(st, 1), (const char *)sqlite3_column_text(st, 2),
		   (const char *)sqlite3_column_text(st, 3));
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return n;
}

/* Every log a row names, newest first per task, with whether a rule keeps it. */
static const char *const logs_kept_sql =
	"SELECT log, (row_number() OVER (PARTITION BY task ORDER BY id DESC) <= ?1 "
	"        OR run_id = (SELECT max(id) FROM runs) OR ended IS NULL "
	"        OR id IN (SELECT max(id) FROM attempts WHERE outcome = 'ok' GROUP BY task)), ended IS NULL "
	"FROM attempts WHERE log IS NOT NULL";

/* Removes the files under dir that no kept log accounts for: logs no row names (a kiln
 * killed before it recorded the attempt), and exit and progress files and torchrun folders
 * of pruned ones. */
static void sweep(const char *dir, StrMap *kept, long long *bytes, int *removed)
{
	DIR *d = opendir(dir);
	for (struct dirent *e; d && (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		char *path = xasprintf("%s/%s", dir, e->d_name);
		struct stat st;
		size_t plen = strlen(path);
		if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && plen > SUFFIX_LEN(ATTEMPT_TORCHRUN_SUFFIX) &&
		    !strcmp(path + plen - SUFFIX_LEN(ATTEMPT_TORCHRUN_SUFFIX), ATTEMPT_TORCHRUN_SUFFIX)) {
			path[plen - SUFFIX_LEN(ATTEMPT_TORCHRUN_SUFFIX)] = 0; /* X@N.log.torchrun: torchrun's folder of the attempt X@N.log */
			int running = strmap_get(kept, path) == (void *)2;
			path[plen - SUFFIX_LEN(ATTEMPT_TORCHRUN_SUFFIX)] = '.';
			if (!running) /* a running attempt's stays: its workers write their errors there */
				remove_tree(path);
		} else if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
			sweep(path, kept, bytes, removed);
			rmdir(path); /* only when empty */
		} else if (lstat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			/* the log this file belongs to: itself, or "X@N.log" for X@N.exit, X@N.items (a
			 * map shard's list) and X@N.log.progress */
			char *owner = xstrdup(path), *dot;
			size_t n = strlen(owner);
			if (n > SUFFIX_LEN(ATTEMPT_PROGRESS_SUFFIX) &&
			    !strcmp(owner + n - SUFFIX_LEN(ATTEMPT_PROGRESS_SUFFIX), ATTEMPT_PROGRESS_SUFFIX))
				owner[n - SUFFIX_LEN(ATTEMPT_PROGRESS_SUFFIX)] = 0;
			else if ((dot = strrchr(owner, '.')) && (!strcmp(dot, ".exit") || !strcmp(dot, ".items")))
				strcpy(dot, ".log"); /* shorter than either: it fits */
			if (!strmap_get(kept, owner) && unlink(path) == 0) {
				*bytes += st.st_size;
				*removed += n > 4 && !strcmp(path + n - 4, ".log"); /* attempts' logs, not their files */
			}
			free(owner);
		}
		free(path);
	}
	if (d)
		closedir(d);
}

int cache_gc_logs(Cache *c, const char *log_dir, int keep_per_task, long long *bytes_freed)
{
	sqlite3_stmt *st = state_statement(cache_state(c), &logs_kept_sql);
	int removed = 0;
	*bytes_freed = 0;
	if (!st)
		return 0;
	StrMap kept = {0};
	sqlite3_bind_int(st, 1, keep_per_task);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *log = (const char *)sqlite3_column_text(st, 0);
		if (!log)
			continue;
		if (sqlite3_column_int(st, 1)) {
			if (!strmap_get(&kept, log)) /* 2: its attempt may still run */
				strmap_put(&kept, xstrdup(log), (void *)(intptr_t)(1 + sqlite3_column_int(st, 2)));
		}
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	sweep(log_dir, &kept, bytes_freed, &removed);
	const char *key;
	void *value;
	for (size_t i = 0; strmap_next(&kept, &i, &key, &value);)
		free((char *)key);
	strmap_free(&kept);
	return removed;
}
