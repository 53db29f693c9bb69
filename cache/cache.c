/* cache.c — deciding whether a task must run. A task's key is XXH3-128 over a canonical
 * text of its components (command, env, tags, declared outputs, input content hashes,
 * dependencies' output hashes, key version); the same text is stored with each success
 * so a changed key can be explained field by field. */
#define _GNU_SOURCE
#include "cache.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../base/os.h"
#include "../base/thread.h"
#include "explain.h"
#include "../base/hash.h"
#include "state/history.h"
#include "internal.h"
#include "state/results.h"
#include "state/state.h"
#include "resume.h"
#include "store.h"


Cache *cache_open(const char *kiln_dir, Graph *g, const CacheOptions *opt, Buf *err)
{
	Cache *c = xcalloc(1, sizeof *c);
	c->memo.key_at = sizeof(Memo); /* a memo entry's path lies right behind it */
	c->last.key_at = sizeof(LastSuccess); /* and a last success's task name */
	c->g = g;
	c->opt = *opt;
	c->lock_fd = -1;
	c->objects_dir = xasprintf("%s/objects", kiln_dir);
	c->resume_dir = xasprintf("%s/resume", kiln_dir);
	c->store = store_open(c->objects_dir);
	if (!opt->readonly) {
		if (mkdirs(kiln_dir, 0777) != 0) {
			buf_printf(err, "cannot create %s: %s", kiln_dir, strerror(errno));
			goto fail;
		}
		if (cache_take_lock(c, kiln_dir, err) != 0)
			goto fail;
	}
	if (opt->readonly) {
		/* SQLite's write-ahead log works through memory shared by the processes of one host:
		 * read from a second host while the holder writes, state.db may read wrong or be
		 * damaged (sqlite.org/wal.html), so only the holder's host may look now */
		char host[256];
		int holder = cache_lock_holder_at(kiln_dir, host, sizeof host);
		if (holder && host[0]) {
			buf_printf(err, "a kiln on %s (pid %d) is running in this workspace, and its state cannot be read "
					"from a second host while it writes: look on %s, or wait for it to finish",
				   host, holder, host);
			goto fail;
		}
	}
	if (opt->readonly && g) { /* a plan: list the inputs' directories while the recipe loads */
		g->on_task_added = dirs_note_task;
		g->on_task_added_ctx = c;
	}
	c->db_path = xasprintf("%s/state.db", kiln_dir);
	c->sizes_path = xasprintf("%s/sizes", kiln_dir);
	/* the loader opens the database and owns c's state, maps and arena until
	 * cache_ready(); signals stay with the caller */
	pthread_mutex_init(&c->loaded_lock, NULL);
	pthread_cond_init(&c->loaded_cond, NULL);
	c->loading = thread_start(&c->loader, cache_loader_main, c) == 0;
	if (!c->loading) {
		cache_loader_main(c);
		if (!c->state) {
			buf_puts(err, buf_str(&c->open_error));
			goto fail;
		}
	}
	return c;
fail:
	cache_close(c);
	return NULL;
}

void cache_close(Cache *c)
{
	if (!c)
		return;
	cache_ready(c);
	for (int i = 0; i < c->nrecords; i++)
		if (c->records[i])
			free(c->records[i]->components);
	free(c->records);
	free(c->planned);
	c->planned = NULL;
	c->nplanned = 0;
	c->records = NULL;
	c->nrecords = 0;
	if (c->store_queue && store_queue_finish(c->store_queue) > 0)
		warn("some outputs could not be kept in the store (%s): they cannot be restored later", c->objects_dir);
	store_free(c->store);
	buf_free(&c->key_text);
	/* what this command recorded, or a killed kiln left in the log, goes from the write-ahead
	 * log into state.db before the lock says "exited cleanly": the database alone then holds
	 * every success, whatever becomes of the log. A no-op run records nothing worth the fsync. */
	if ((c->recorded || c->unclean) && !c->opt.readonly && c->state && state_commit(c->state) == 0)
		state_checkpoint(c->state);
	int opened = c->state != NULL, clean = state_close(c->state) == 0;
	if (clean && opened && !c->opt.readonly && c->sizes_path) { /* the next loader's table sizes */
		size_t tasks = c->g ? (size_t)c->g->ntasks : 0;
		SizeHint now = {c->memo.count, c->nlast_read > tasks ? c->nlast_read : tasks};
		if (now.memo != c->hint.memo || now.last != c->hint.last)
			sizehint_write(c->sizes_path, now);
	}
	if (c->lock_fd >= 0) {
		if (clean && ftruncate(c->lock_fd, 0) != 0) /* "this kiln exited cleanly" */
			warn("cannot empty the workspace lock file: the next kiln will look for orphaned tasks");
		close(c->lock_fd);
	}
	ktable_free(&c->memo);
	cache_resolved(c);
	ktable_free(&c->last);
	free(c->db_path);
	free(c->sizes_path);
	free(c->lock_path);
	free(c->run_command);
	buf_free(&c->open_error);
	arena_free(&c->arena);
	free(c->objects_dir);
	free(c->resume_dir);
	free(c);
}

/* The run's row is written with its first record (an attempt, a restore, a success), not
 * at its start: a no-op run writes nothing at all, so its WAL stays empty and the next
 * command's open has no log to read back (each no-op used to add two frames, read and
 * checksummed whole by every later open until a checkpoint). */
int cache_begin_run(Cache *c, const char *command_line)
{
	cache_ready(c);
	free(c->run_command);
	c->run_command = xstrdup(command_line);
	c->run_started = now_wall();
	return cache_write_error(c) ? -1 : 0;
}

int64_t cache_run_id(Cache *c)
{
	if (!c->run_id && c->run_command) {
		cache_ready(c);
		c->run_id = state_begin_run(c->state, c->run_started, os_hostname(), (int)getpid(), c->run_command);
	}
	return c->run_id;
}

int cache_end_run(Cache *c, const char *outcome)
{
	cache_ready(c);
	if (c->run_id > 0)
		state_end_run(c->state, c->run_id, outcome);
	return state_commit(c->state);
}

const char *cache_write_error(Cache *c)
{
	cache_ready(c);
	return state_error(c->state);
}

int cache_commit(Cache *c, int force)
{
	cache_ready(c);
	/* a commit per wake-up would cost more than the tasks; a crash loses at most the
	 * last 50 ms of records, and those tasks simply run again */
	if (!state_pending(c->state))
		return -1;
	int64_t now = now_mono_ns(), due = c->committed_ns + 50000000;
	if (force || now >= due) {
		state_commit(c->state); /* a failure is sticky: see cache_write_error */
		c->committed_ns = now;
		return -1;
	}
	return (int)((due - now) / 1000000) + 1;
}

TaskCache *task_cache(Cache *c, Task *t)
{
	TaskCache *tc = record_of(c, t);
	if (!tc || tc == &c->planned_run) {
		TaskCache *own = arena_alloc8(&c->arena, sizeof *own);
		memset(own, 0, sizeof *own);
		own->will_run = tc == &c->planned_run;
		set_record(c, t, tc = own); /* out_hashes come once its outputs are known (out_hashes_of) */
	}
	return tc;
}

/* t's last success, or NULL: once the tasks are bound, its record's (the table is gone). */
static LastSuccess *last_of(Cache *c, const Task *t)
{
	if (!c->bound)
		return ktable_get(&c->last, t->name);
	TaskCache *tc = record_of(c, t);
	return tc && tc != &c->planned_run ? tc->last : NULL;
}

/* t's last success is now tc->key with outputs (the recorded text): its entry is made the
 * first time (in the last-success table while there is one). */
static void set_last(Cache *c, const Task *t, TaskCache *tc, const char *outputs)
{
	LastSuccess *l = last_of(c, t);
	if (!l) {
		l = cache_new_last(c, t->name);
		if (!c->bound)
			ktable_add(&c->last, l, hash_str(t->name));
	}
	l->key = tc->key;
	l->outputs = cache_pack_outputs(&c->arena, outputs);
	tc->last = l;
}

/* tc's output hashes to write, made on first use (a plan of a task that will run needs
 * none) or when they were its last success's. */
static Hash *out_hashes_of(Cache *c, const Task *t, TaskCache *tc)
{
	if (!tc->out_hashes || tc->out_shared)
		tc->out_hashes = arena_alloc8(&c->arena, (size_t)(t->noutputs ? t->noutputs : 1) * sizeof(Hash));
	tc->out_shared = 0;
	return tc->out_hashes;
}

/* The recorded outputs text as hashes by declared output; -1 if it names other outputs. */
static int parse_outputs(const Task *t, const char *text, Hash *hashes)
{
	int i = 0, rc;
	const char *path;
	size_t len;
	for (const char *p = text; (rc = state_outputs_next(&p, &hashes[i < t->noutputs ? i : 0], &path, &len)) > 0; i++)
		if (i >= t->noutputs || strlen(t->outputs[i]) != len || strncmp(path, t->outputs[i], len) != 0)
			return -1;
	return rc == 0 && i == t->noutputs ? 0 : -1;
}

LastSuccess *cache_new_last(Cache *c, const char *task)
{
	size_t len = strlen(task);
	LastSuccess *l = arena_alloc8(&c->arena, sizeof *l + len + 1);
	*l = (LastSuccess){{0, 0}, NULL}; /* the arena's memory is not zeroed: no outputs until given */
	memcpy((char *)(l + 1), task, len + 1);
	return l;
}

const unsigned char *cache_pack_outputs(Arena *a, const char *text)
{
	size_t lines = 0, len = strlen(text); /* each output takes a line: sized without reading hex */
	for (const char *p = text; (p = strchr(p, '\n')); p++)
		lines++;
	lines += len && text[len - 1] != '\n'; /* the last line's newline may be missing */
	if (lines > UINT32_MAX / sizeof(Hash))
		return NULL;
	unsigned char *packed = arena_alloc8(a, 8 + lines * sizeof(Hash)), *at = packed + 8;
	const char *path;
	Hash h;
	int rc;
	uint32_t count = 0;
	for (const char *p = text; (rc = state_outputs_next(&p, &h, &path, &len)) > 0; count++, at += sizeof h)
		memcpy(at, &h, sizeof h);
	if (rc < 0)
		return NULL; /* a damaged text: its bytes stay in the arena, unused */
	memcpy(packed, &count, 4);
	return packed;
}

/* The packed last outputs as hashes by declared output; -1 if their count is not the
 * task's (the key, which names the outputs, matched: their paths are the declared ones). */
static int unpack_outputs(const Task *t, const unsigned char *packed, Hash *hashes)
{
	uint32_t n;
	if (!packed || (memcpy(&n, packed, 4), n != (uint32_t)t->noutputs))
		return -1;
	memcpy(hashes, packed_hashes(packed), (size_t)n * sizeof *hashes);
	return 0;
}

/* Queues output file path (stat'ed as st), whose content hashes to h, for the store
 * unless it is larger than the store takes. */
static void keep_in_store(Cache *c, const char *path, const struct stat *st, Hash h)
{
	if (st->st_size > c->opt.store_max_mib * 1024 * 1024)
		return;
	StoreQueue *q = cache_store_queue(c);
	if (q)
		store_queue_put(q, path, h);
	else if (store_put(c->store, path, h) != 0)
		warn("could not keep %s in the store: %s", path, strerror(errno));
}

/* After a kill -9 the success of a task may be recorded while its outputs never reached
 * the store (the copies run behind the records): an output in place that the store lacks
 * is stored now, so deleting it later restores it instead of running the task again. */
static void store_if_missing(Cache *c, const char *path, Hash h)
{
	struct stat st;
	if (store_has(c->store, h) || stat(path, &st) != 0)
		return;
	Hash again;
	if (S_ISDIR(st.st_mode))
		cache_hash_output_dir(c, path, &again); /* queues the tree and its files */
	else if (S_ISREG(st.st_mode))
		keep_in_store(c, path, &st, h);
}

/* Compares outputs on disk with recorded hashes; puts back the differing ones from the
 * store when every one of them is there (and !dry). Returns the number restored (or that
 * would be), or -1 when some differing output cannot be restored; reason says which. An
 * optional output recorded as not made is not looked at. */
static int settle_outputs(Cache *c, Task *t, const Hash *want, int dry, Buf *reason)
{
	int bad = 0, missing_in_store = 0;
	char *state = xcalloc((size_t)t->noutputs + 1, 1); /* 0 ok, 'd' deleted, 'm' modified */
	for (int i = 0; i < t->noutputs; i++) {
		Hash h;
		if (hash_is_absent(want[i]))
			continue;
		TaskCache *tc = record_of(c, t);
		if ((tc && tc->in_memo ? hash_memo(c, tc->in_memo[t->ninputs + i], &h) : hash_path(c, t->outputs[i], &h)) != 0)
			state[i] = 'd';
		else if (!hash_equal(h, want[i]))
			state[i] = 'm';
		else if (c->unclean && !dry)
			store_if_missing(c, t->outputs[i], want[i]);
		if (state[i]) {
			bad++;
			if (!store_has(c->store, want[i]))
				missing_in_store++;
			if (!reason->len)
				buf_printf(reason, "output %s was %s", t->outputs[i], state[i] == 'd' ? "deleted" : "modified");
		}
	}
	if (bad && missing_in_store) {
		buf_puts(reason, ", and the store does not hold the recorded version");
		free(state);
		return -1;
	}
	for (int i = 0; i < t->noutputs && !dry; i++)
		if (state[i]) {
			task_cache(c, t)->rewrote = 1;
			forget_path(c, t->outputs[i]);
			if (store_restore(c->store, want[i], t->outputs[i]) != 0) {
				if (errno == EBADMSG)
					buf_printf(reason, "; the stored copy of %s is damaged (its content no longer matches "
							   "its hash) and was dropped from the store", t->outputs[i]);
				else
					buf_printf(reason, "; restoring %s failed: %s", t->outputs[i], strerror(errno));
				free(state);
				return -1;
			}
		}
	free(state);
	return bad;
}

/* The task's key for this command into tc, its text into c->key_text (reused: a no-op of
 * a million tasks would otherwise make and free a million texts); tc keeps no text. */
static const char *key_now(Cache *c, Task *t, TaskCache *tc)
{
	free(tc->components);
	tc->components = NULL;
	size_t key_len;
	cache_key_text(c, t, &c->key_text, &key_len);
	tc->key = hash_bytes(c->key_text.data, key_len);
	tc->key_known = 1;
	return c->key_text.data;
}

/* Gives tc the text key_now made last (recorded or explained later). */
static void keep_key_text(Cache *c, TaskCache *tc)
{
	tc->components = c->key_text.data;
	c->key_text = (Buf){0};
}

/* The task's key (and its components) for this command, computed once. */
static void ensure_key(Cache *c, Task *t, TaskCache *tc)
{
	if (tc->key_known && tc->components)
		return;
	free(tc->components);
	size_t key_len;
	tc->components = cache_key_components(c, t, &key_len);
	tc->key = hash_bytes(tc->components, key_len);
	tc->key_known = 1;
}

enum Verdict cache_check(Cache *c, Task *t, int dry, Buf *reason)
{
	bind_tasks(c);
	TaskCache *had = record_of(c, t);
	if (dry && c->opt.readonly && (!had || had == &c->planned_run)) {
		/* bound without a record of its own: no success recorded. It runs, whatever its
		 * key, so no input is read for it and no record made (see planned_run). */
		c->planned_run.will_run = 1;
		set_record(c, t, &c->planned_run);
		buf_puts(reason, CACHE_NO_SUCCESS);
		return VERDICT_RUN;
	}
	TaskCache *tc = task_cache(c, t);
	tc->outputs_known = tc->will_run = 0;
	LastSuccess *last = last_of(c, t);
	if (!last && dry) {
		/* a plan of a task never recorded: it runs, whatever its key, so no input is read
		 * for it (a first plan of a million-task grid hashes nothing). A run computes the
		 * key here all the same: it must be the inputs' before the command starts. */
		free(tc->components);
		tc->components = NULL;
		tc->key_known = 0;
		buf_puts(reason, CACHE_NO_SUCCESS);
		return VERDICT_RUN;
	}
	/* a key computed ahead is this command's: its text is made only if it is needed */
	int ahead = tc->key_ahead;
	tc->key_ahead = 0;
	if (ahead) {
		free(tc->components);
		tc->components = NULL;
		tc->key_known = 1;
	}
	if (ahead == 2 && !dry && !c->unclean) { /* up to date, as settle_outputs would find */
		tc->out_hashes = (Hash *)packed_hashes(last->outputs);
		tc->out_shared = 1;
		tc->outputs_known = 1;
		return VERDICT_UP_TO_DATE;
	}
	const char *components = ahead ? NULL : key_now(c, t, tc);
	Hash *want = xmalloc((size_t)(t->noutputs + 1) * sizeof *want);
	enum Verdict verdict = VERDICT_RUN;
	Buf found = {0}, why = {0};
	int from_last = last && hash_equal(last->key, tc->key) && unpack_outputs(t, last->outputs, want) == 0;
	if (from_last) {
		int n = settle_outputs(c, t, want, dry, &why);
		if (n >= 0)
			verdict = n == 0 ? VERDICT_UP_TO_DATE : VERDICT_RESTORED;
		if (n > 0)
			buf_printf(reason, "%s; %s from the store", buf_str(&why), dry ? "would restore" : "restored");
		else if (n < 0)
			buf_printf(reason, "%s", buf_str(&why));
	} else if (state_find_success(c->state, t->name, tc->key, &found, NULL) && parse_outputs(t, found.data ? found.data : "", want) == 0) {
		int n = settle_outputs(c, t, want, dry, &why);
		if (n >= 0) {
			verdict = VERDICT_RESTORED;
			buf_puts(reason, "same key as an earlier success");
			buf_puts(reason, n ? (dry ? "; would restore its outputs" : "; outputs restored") : "; outputs already in place");
			if (!dry) {
				state_set_last(c->state, t->name, tc->key, found.data ? found.data : "");
				set_last(c, t, tc, found.data ? found.data : "");
			}
		}
	}
	if ((verdict == VERDICT_RUN || dry) && !components)
		components = key_now(c, t, tc); /* the same key, now with its text */
	if (verdict == VERDICT_RUN && !reason->len) {
		if (!last) {
			buf_puts(reason, CACHE_NO_SUCCESS);
		} else {
			Buf old = {0};
			state_find_success(c->state, t->name, last->key, NULL, &old);
			explain_diff(buf_str(&old), components, reason, 0);
			buf_free(&old);
		}
	}
	if (verdict != VERDICT_RUN && from_last) {
		tc->out_hashes = (Hash *)packed_hashes(last->outputs); /* want came from there */
		tc->out_shared = 1;
		tc->outputs_known = 1;
	} else if (verdict != VERDICT_RUN) {
		memcpy(out_hashes_of(c, t, tc), want, (size_t)t->noutputs * sizeof *want);
		tc->outputs_known = 1;
	}
	if (verdict == VERDICT_RUN || dry) /* recorded when it succeeds; a plan explains it */
		keep_key_text(c, tc);
	buf_free(&found);
	buf_free(&why);
	free(want);
	return verdict;
}

void cache_assume_will_run(Cache *c, Task *t)
{
	if (record_of(c, t) != &c->planned_run) /* which will run already */
		task_cache(c, t)->will_run = 1;
}

int cache_will_run(Cache *c, const Task *t)
{
	const TaskCache *tc = record_of(c, t);
	return tc && tc->will_run;
}

int cache_runner_items(Cache *c, const Task *runner)
{
	const MapShard *s = runner->more->shard;
	int items = 0;
	for (int j = 0; j < s->nitems; j++)
		items += cache_will_run(c, shard_item(c->g, s, j));
	return items;
}

int cache_plan(Cache *c, Graph *g, PlanFn fn, void *ctx)
{
	int n, count = 0;
	Task **order = graph_topo_tasks(g, &n);
	Buf reason = {0};
	cache_prepare(c);
	for (int i = 0; i < n; i++) {
		Task *t = order[i];
		if (task_is_runner(t))
			continue; /* decided below, from its items */
		buf_reset(&reason);
		enum Verdict v = VERDICT_RUN;
		for (int j = 0; j < t->ndeps && !reason.len; j++) {
			const TaskCache *dc = record_of(c, t->deps[j]);
			if (dc && dc->will_run)
				buf_printf(&reason, "dependency %s will run", t->deps[j]->name);
		}
		if (!reason.len)
			v = cache_check(c, t, 1, &reason);
		int settled = fn ? fn(ctx, t, v, buf_str(&reason)) : 0;
		if (v == VERDICT_RUN && !settled) {
			cache_assume_will_run(c, t);
			count++;
		}
	}
	/* a shard's runner has no record of its own: a run starts it for its items that run
	 * (counted above), so it is told as running (its duration goes into the estimate) only
	 * then, and counted never */
	for (int i = 0; i < n; i++) {
		Task *t = order[i];
		if (!task_is_runner(t))
			continue;
		int items = cache_runner_items(c, t);
		buf_reset(&reason);
		if (items) {
			buf_printf(&reason, "%d of its %d items would run", items, t->more->shard->nitems);
			cache_assume_will_run(c, t);
		}
		if (fn)
			fn(ctx, t, items ? VERDICT_RUN : VERDICT_UP_TO_DATE, buf_str(&reason));
	}
	buf_free(&reason);
	graph_topo_free(g, order);
	return count;
}

StoreQueue *cache_store_queue(Cache *c)
{
	if (!c->store_queue)
		c->store_queue = store_queue_start(c->objects_dir);
	return c->store_queue;
}

/* Whether t's inputs still hold what its key was computed from: each is looked at afresh
 * (one stat; a file whose stat moved is hashed again, a directory walked), as Bazel
 * re-checks an action's inputs before it caches the result. */
static int inputs_unchanged(Cache *c, Task *t, TaskCache *tc, Buf *err)
{
	if (!tc->key_known || !tc->components || !t->ninputs)
		return 1;
	for (int i = 0; i < t->ninputs; i++) {
		Memo *m = tc->in_memo ? tc->in_memo[i] : ktable_get(&c->memo, t->inputs[i]);
		if (m)
			m->hashed = m->statted = 0;
	}
	size_t len;
	char *now = cache_key_components(c, t, &len);
	int same = hash_equal(hash_bytes(now, len), tc->key);
	if (!same) {
		Buf what = {0};
		explain_diff(tc->components, now, &what, 0);
		buf_printf(err, "%s while it ran: its result is not recorded, since it may come from either content "
				"(run again to run it on what is there now)", buf_str(&what));
		buf_free(&what);
	}
	free(now);
	return same;
}

int cache_record_success(Cache *c, Task *t, Buf *err)
{
	cache_ready(c);
	TaskCache *tc = task_cache(c, t);
	if (!inputs_unchanged(c, t, tc, err))
		return CACHE_INPUT_CHANGED;
	out_hashes_of(c, t, tc);
	Buf outputs = {0};
	char hex[33];
	for (int i = 0; i < t->noutputs; i++) {
		forget_path(c, t->outputs[i]);
		struct stat st;
		if (t->opts->optional && t->opts->optional[i] && lstat(t->outputs[i], &st) != 0 && errno == ENOENT) {
			tc->out_hashes[i] = HASH_ABSENT; /* not made this time: recorded so */
			hash_hex(HASH_ABSENT, hex);
			buf_printf(&outputs, "%s %s\n", hex, t->outputs[i]);
			continue;
		}
		int isdir = stat(t->outputs[i], &st) == 0 && S_ISDIR(st.st_mode);
		/* a directory is hashed and queued for the store in one walk */
		if ((isdir ? cache_hash_output_dir(c, t->outputs[i], &tc->out_hashes[i])
			   : hash_path(c, t->outputs[i], &tc->out_hashes[i])) != 0) {
			buf_printf(err, "exited 0 but did not write its declared output %s", t->outputs[i]);
			buf_free(&outputs);
			return -1;
		}
		if (S_ISREG(st.st_mode))
			keep_in_store(c, t->outputs[i], &st, tc->out_hashes[i]);
		hash_hex(tc->out_hashes[i], hex);
		buf_printf(&outputs, "%s %s\n", hex, t->outputs[i]);
	}
	tc->outputs_known = 1;
	tc->rewrote = 1;
	c->recorded = 1;
	ensure_key(c, t, tc);
	if (state_put_success(c->state, t->name, tc->key, tc->components, buf_str(&outputs), cache_run_id(c)) != 0) {
		buf_puts(err, state_error(c->state));
		buf_free(&outputs);
		return -1;
	}
	set_last(c, t, tc, buf_str(&outputs));
	resume_forget(c, t); /* its checkpoints' copies are done with */
	free(tc->components);
	tc->components = NULL;
	buf_free(&outputs);
	return 0;
}

void cache_explain(Cache *c, Task *t, Buf *out)
{
	cache_ready(c);
	TaskCache *tc = task_cache(c, t);
	size_t key_len;
	char *now = tc->components ? xstrdup(tc->components) : cache_key_components(c, t, &key_len);
	Hash key = tc->components ? tc->key : hash_bytes(now, key_len);
	LastSuccess *last = last_of(c, t);
	if (!last) {
		buf_puts(out, "no successful run of this task is recorded: it runs\n");
	} else {
		Buf old = {0};
		state_find_success(c->state, t->name, last->key, NULL, &old);
		if (hash_equal(last->key, key))
			buf_puts(out, "the key equals the last success's key: nothing changed in its inputs\n");
		else
			explain_diff(buf_str(&old), now, out, 1);
		buf_free(&old);
	}
	free(now);
}

State *cache_state(Cache *c)
{
	cache_ready(c);
	return c->state;
}
const char *cache_objects_dir(Cache *c) { return c->objects_dir; }
Store *cache_store(Cache *c) { return c->store; }

void cache_put_metrics(Cache *c, const Task *t, const Metrics *m)
{
	cache_ready(c);
	KeyValue *tags = xmalloc((size_t)(t->ntags ? t->ntags : 1) * sizeof *tags); /* values filled in */
	for (int i = 0; i < t->ntags; i++)
		tags[i] = (KeyValue){t->tags[i].key, task_tag_value(t, i)};
	results_put(c->state, cache_run_id(c), t->name, t->index, tags, t->ntags, m); /* errors are sticky */
	free(tags);
}

int cache_succeeded_with(Cache *c, const Task *t, const char *key_hex)
{
	const LastSuccess *last = last_of(c, t);
	char recorded[33];
	if (!last)
		return 0;
	hash_hex(last->key, recorded);
	return !strcmp(recorded, key_hex);
}

void cache_key_hex(Cache *c, const Task *t, char out[33])
{
	TaskCache *tc = record_of(c, t) ? task_cache(c, (Task *)t) : NULL; /* planned_run: a record of its own */
	if (tc) {
		ensure_key(c, (Task *)t, tc);
		hash_hex(tc->key, out);
	} else {
		out[0] = 0;
	}
}
