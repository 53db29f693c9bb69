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
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "../base/os.h"
#include "cache.h"
#include "../base/hash.h"
#include "state/history.h"
#include "internal.h"
#include "state/state.h"
#include "store.h"


int64_t cache_attempt_started(Cache *c, const AttemptRecord *a)
{
	c->recorded = 1;
	return state_attempt_started(cache_state(c), cache_run_id(c), a);
}

void cache_each_open_job(Cache *c, void (*fn)(void *ctx, const OpenAttempt *a), void *ctx)
{
	state_each_open_job(cache_state(c), fn, ctx);
}

void cache_each_lost_job(Cache *c, void (*fn)(void *ctx, const OpenAttempt *a), void *ctx)
{
	state_each_lost_job(cache_state(c), cache_run_id(c), fn, ctx);
}

static const char *const forget_successes = "DELETE FROM successes WHERE task = ?1";
static const char *const forget_last = "DELETE FROM last_success WHERE task = ?1";

int cache_attempt_job_id(Cache *c, int64_t attempt_id, const char *job_id)
{
	return state_attempt_job_id(cache_state(c), attempt_id, job_id);
}

int cache_attempt_ports(Cache *c, int64_t attempt_id, const char *ports)
{
	return state_attempt_ports(cache_state(c), attempt_id, ports);
}

void cache_attempt_waited(Cache *c, int64_t attempt_id, double seconds)
{
	state_attempt_waited(cache_state(c), attempt_id, seconds);
}

void cache_each_duration(Cache *c, void (*fn)(void *ctx, const char *task, double sec), void *ctx)
{
	cache_ready(c);
	history_each_duration(cache_state(c), fn, ctx);
}

int cache_forget(Cache *c, const Task *t)
{
	cache_ready(c);
	c->recorded = 1;
	const char *const *sqls[] = {&forget_successes, &forget_last};
	for (int i = 0; i < 2; i++) {
		sqlite3_stmt *st = state_statement_writer(cache_state(c), sqls[i]);
		if (!st)
			return -1;
		sqlite3_bind_text(st, 1, t->name, -1, SQLITE_TRANSIENT);
		if (state_write(cache_state(c), st) != 0)
			return -1;
	}
	return 0;
}

/* A row for what a run settled without running a command (outcome "restored", "accepted"). */
static void note_settled(Cache *c, const Task *t, const char *outcome)
{
	AttemptRecord rec = {.task = t->name, .executor = "local", .host = os_hostname()};
	int64_t id = state_attempt_started(cache_state(c), cache_run_id(c), &rec);
	if (id > 0)
		state_attempt_ended(cache_state(c), id, 0, outcome, NULL);
}

void cache_note_restored(Cache *c, const Task *t) { note_settled(c, t, "restored"); }
void cache_note_accepted(Cache *c, const Task *t) { note_settled(c, t, "accepted"); }

void cache_attempt_ended(Cache *c, int64_t attempt_id, int exit_code, const char *outcome, const char *failure)
{
	state_attempt_ended(cache_state(c), attempt_id, exit_code, outcome, failure);
}

int cache_unclean(Cache *c) { return c->unclean; }

int cache_last_attempt_number(Cache *c, const char *task) { return c ? history_max_attempt(cache_state(c), task) : 0; }

int cache_attempt_open(Cache *c, const char *task)
{
	char key[33];
	int ok = 0, open = 0;
	int64_t id;
	return c && history_last_attempt_row(cache_state(c), task, key, &ok, &id, &open) && open;
}

int cache_accepted(Cache *c, const char *task, double *when, int64_t *run_id)
{
	return c && history_accepted(cache_state(c), task, when, run_id);
}

int cache_last_attempt_failed(Cache *c, const char *task)
{
	char key[33];
	int ok = 0;
	return c && history_last_attempt(cache_state(c), task, key, &ok) && !ok;
}

void cache_each_failed_latest(Cache *c, void (*fn)(void *ctx, const char *task, const char *outcome), void *ctx)
{
	history_each_failed_latest(cache_state(c), fn, ctx);
}

int cache_last_log(Cache *c, const char *task, Buf *out, int *stands)
{
	return state_last_log(cache_state(c), task, out, stands) ? 0 : -1;
}

/* Fills out with live (not zombie) processes other than this one whose environment holds
 * marker, and task[i] with whether process i is a task's (KILN_TASK set: not one of kiln's
 * own ssh and rsync helpers); returns the count (at most max). */
static int find_marked_processes(const char *marker, pid_t *out, unsigned char *task, int max)
{
	DIR *proc = opendir("/proc");
	if (!proc)
		return 0;
	size_t mlen = strlen(marker);
	int n = 0;
	for (struct dirent *e; n < max && (e = readdir(proc));) {
		int pid = atoi(e->d_name);
		if (pid <= 0 || pid == (int)getpid())
			continue;
		char path[64];
		snprintf(path, sizeof path, "/proc/%d/stat", pid);
		size_t len;
		char *stat = read_file(path, &len);
		const char *paren = stat ? strrchr(stat, ')') : NULL; /* the command name may hold spaces */
		int zombie = !paren || paren[1] != ' ' || paren[2] == 'Z' || paren[2] == 'X';
		free(stat);
		if (zombie)
			continue;
		snprintf(path, sizeof path, "/proc/%d/environ", pid);
		char *env = read_file(path, &len); /* NULL for other users' processes */
		int found = 0, of_task = 0;
		for (size_t off = 0; env && off < len; off += strlen(env + off) + 1) {
			found |= !strncmp(env + off, marker, mlen) && env[off + mlen] == 0;
			of_task |= !strncmp(env + off, "KILN_TASK=", 10);
		}
		free(env);
		if (found) {
			task[n] = (unsigned char)of_task;
			out[n++] = pid;
		}
	}
	closedir(proc);
	return n;
}

typedef struct {
	int64_t *ids;
	int nids;
} OpenAttempts;

static void note_open_attempt(void *ctx, int64_t id, const char *task, int pgid)
{
	(void)task, (void)pgid;
	OpenAttempts *open = ctx;
	open->ids = xrealloc(open->ids, (size_t)(open->nids + 1) * sizeof *open->ids);
	open->ids[open->nids++] = id;
}

/* Whether pid belongs to one of the spared sessions (and so to a re-attached attempt). */
static int spared(pid_t pid, const pid_t *spare, int nspare)
{
	pid_t sid = getsid(pid);
	for (int i = 0; i < nspare; i++)
		if (sid == spare[i])
			return 1;
	return 0;
}

int cache_reap_orphans(Cache *c, const char *marker, const pid_t *spare, int nspare, int scan)
{
	OpenAttempts open = {0};
	state_each_open_attempt(cache_state(c), os_hostname(), note_open_attempt, &open);
	int groups = 0;
	/* Every task process carries the marker, so this finds them whether or not the
	 * killed kiln got to record the attempt (it may die right after a spawn). Each is
	 * killed with its group, and kiln waits until all are gone before anything runs. */
	if (c->unclean || open.nids || scan) {
		enum { MAX = 4096 };
		pid_t *pids = xmalloc(MAX * sizeof *pids), *groups_of = xmalloc(MAX * sizeof *groups_of),
		      *sessions_of = xmalloc(MAX * sizeof *sessions_of);
		unsigned char *task = xmalloc(MAX);
		for (int round = 0; round < 500; round++) { /* 10 s at most */
			int found = find_marked_processes(marker, pids, task, MAX), n = 0;
			for (int i = 0; i < found; i++)
				if (!spared(pids[i], spare, nspare)) {
					task[n] = task[i];
					pids[n++] = pids[i];
				}
			if (n == 0)
				break;
			for (int i = 0; i < n; i++) {
				groups_of[i] = getpgid(pids[i]); /* before any is killed */
				sessions_of[i] = getsid(pids[i]);
			}
			for (int i = 0; i < n; i++) {
				pid_t pg = groups_of[i];
				/* an attempt (its keeper's session) is counted by its first process; kiln's own
				 * helpers (an ssh follower: its job there runs on) are not attempts */
				int seen = !task[i];
				for (int j = 0; j < i && !seen; j++)
					seen = sessions_of[j] == sessions_of[i];
				if (pg > 0 && pg != getpgrp() && kill(-pg, SIGKILL) == 0 && round == 0 && !seen)
					groups++;
				kill(pids[i], SIGKILL);
			}
			struct timespec pause = {0, 20000000};
			nanosleep(&pause, NULL);
			if (round == 499)
				warn("%d process%s of a killed kiln would not die (uninterruptible?); check `ps` before trusting "
				     "this run", n, n == 1 ? "" : "es");
		}
		free(pids);
		free(task);
		free(groups_of);
		free(sessions_of);
	}
	for (int i = 0; i < open.nids; i++)
		state_attempt_ended(cache_state(c), open.ids[i], -1, "abandoned: kiln stopped before the attempt ended", NULL);
	free(open.ids);
	return state_commit(cache_state(c)) == 0 ? groups : -1;
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
	Store *store;
	StrMap keep;
} GcScan;

/* Keeps an output's object and, for a directory output, everything its tree names. */
static void keep_output(void *ctx, Hash h)
{
	GcScan *scan = ctx;
	keep_hash(&scan->keep, h);
	store_tree_walk(scan->store, h, keep_hash, &scan->keep);
}

int cache_gc(Cache *c, long long *bytes_freed)
{
	GcScan scan = {cache_store(c), {0}};
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
	removed += store_gc_pack(cache_store(c), is_kept, &keep, bytes_freed);
	const char *key;
	for (size_t i = 0; strmap_next(&keep, &i, &key, NULL);)
		free((char *)key);
	strmap_free(&keep);
	return removed;
}
