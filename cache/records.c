/* records.c — the cache's bookkeeping beside the keys: attempts (with the process group
 * each ran in), cleaning up after a killed kiln, log look-up, and garbage collection of
 * the object store. */
#define _GNU_SOURCE
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../runner/os.h"
#include "cache.h"
#include "hash.h"
#include "internal.h"
#include "state.h"
#include "store.h"


int64_t cache_attempt_started(Cache *c, const Task *t, int attempt, int pgid, const char *gpus, const char *log,
			      const char *job_id, const char *key)
{
	return state_attempt_started(cache_state(c), cache_run_id(c), t->name, attempt, os_hostname(), pgid, gpus, log,
				     job_id, key);
}

void cache_each_open_job(Cache *c, void (*fn)(void *ctx, int64_t id, const char *task, int attempt, const char *job_id,
					      const char *key, const char *log),
			 void *ctx)
{
	state_each_open_job(cache_state(c), fn, ctx);
}

void cache_attempt_ended(Cache *c, int64_t attempt_id, int exit_code, const char *outcome)
{
	state_attempt_ended(cache_state(c), attempt_id, exit_code, outcome);
}

int cache_last_log(Cache *c, const char *task, Buf *out) { return state_last_log(cache_state(c), task, out) ? 0 : -1; }

/* Whether process pid belongs to group pgid and was started by kiln for task. */
static int is_task_process(int pid, int pgid, const char *task)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	size_t len;
	char *stat = read_file(path, &len);
	if (!stat)
		return 0;
	const char *paren = strrchr(stat, ')'); /* the command name may hold spaces */
	int group = -1;
	if (paren)
		sscanf(paren + 2, "%*c %*d %d", &group);
	free(stat);
	if (group != pgid)
		return 0;
	snprintf(path, sizeof path, "/proc/%d/environ", pid);
	char *env = read_file(path, &len);
	if (!env)
		return 0;
	char *want = xasprintf("KILN_TASK=%s", task);
	int found = 0;
	for (size_t off = 0; off < len && !found; off += strlen(env + off) + 1)
		found = !strcmp(env + off, want);
	free(want);
	free(env);
	return found;
}

typedef struct {
	Cache *c;
	int killed;
	int64_t *ids;
	int nids;
} OrphanScan;

static void kill_orphans(void *ctx, int64_t id, const char *task, int pgid)
{
	OrphanScan *scan = ctx;
	scan->ids = xrealloc(scan->ids, (size_t)(scan->nids + 1) * sizeof *scan->ids);
	scan->ids[scan->nids++] = id;
	if (pgid <= 0)
		return;
	DIR *proc = opendir("/proc");
	if (!proc)
		return;
	int any = 0;
	for (struct dirent *e; (e = readdir(proc));) {
		int pid = atoi(e->d_name);
		if (pid > 0 && is_task_process(pid, pgid, task))
			any = 1;
	}
	closedir(proc);
	if (any) {
		kill(-pgid, SIGKILL);
		scan->killed++;
	}
}

int cache_reap_orphans(Cache *c)
{
	OrphanScan scan = {.c = c};
	state_each_open_attempt(cache_state(c), os_hostname(), kill_orphans, &scan);
	for (int i = 0; i < scan.nids; i++)
		state_attempt_ended(cache_state(c), scan.ids[i], -1, "abandoned: kiln stopped before the attempt ended");
	state_commit(cache_state(c));
	free(scan.ids);
	return scan.killed;
}

static void keep_hash(void *ctx, Hash h)
{
	StrMap *keep = ctx;
	char hex[33];
	hash_hex(h, hex);
	if (!strmap_get(keep, hex))
		strmap_put(keep, xstrdup(hex), (void *)1);
}

static int is_kept(void *ctx, const char *hex) { return strmap_get(ctx, hex) != NULL; }

typedef struct {
	const char *objects;
	StrMap keep;
} GcScan;

/* Keeps an output's object and, for a directory output, everything its tree names. */
static void keep_output(void *ctx, Hash h)
{
	GcScan *scan = ctx;
	keep_hash(&scan->keep, h);
	store_tree_walk(scan->objects, h, keep_hash, &scan->keep);
}

int cache_gc(Cache *c, long long *bytes_freed)
{
	GcScan scan = {cache_objects_dir(c), {0}};
	state_each_output_hash(cache_state(c), keep_output, &scan);
	StrMap keep = scan.keep;
	int removed = 0;
	*bytes_freed = 0;
	const char *objects = cache_objects_dir(c);
	DIR *top = opendir(objects);
	for (struct dirent *d; top && (d = readdir(top));) {
		if (strlen(d->d_name) != 2 || strspn(d->d_name, "0123456789abcdef") != 2)
			continue; /* also skips ".." */
		char *sub = xasprintf("%s/%s", objects, d->d_name);
		DIR *dir = opendir(sub);
		for (struct dirent *e; dir && (e = readdir(dir));) {
			if (e->d_name[0] == '.')
				continue;
			char hex[2 * sizeof e->d_name + 1];
			snprintf(hex, sizeof hex, "%s%s", d->d_name, e->d_name);
			int stale_tmp = strstr(e->d_name, ".kiln-tmp.") != NULL;
			if (!stale_tmp && strmap_get(&keep, hex))
				continue;
			char *path = xasprintf("%s/%s", sub, e->d_name);
			struct stat st;
			if (stat(path, &st) == 0 && unlink(path) == 0) {
				removed++;
				*bytes_freed += st.st_size;
			}
			free(path);
		}
		if (dir)
			closedir(dir);
		rmdir(sub); /* only succeeds when empty */
		free(sub);
	}
	if (top)
		closedir(top);
	removed += store_gc_pack(objects, is_kept, &keep, bytes_freed);
	const char *key;
	for (size_t i = 0; strmap_next(&keep, &i, &key, NULL);)
		free((char *)key);
	strmap_free(&keep);
	return removed;
}
