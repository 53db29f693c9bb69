/* files.c — the cache's view of files: the memo of content hashes by (path, size,
 * mtime, inode, ctime), the loader thread that reads it and the last successes from the
 * state while the recipe loads, binding tasks to their memo entries, and stat'ing and
 * hashing, on several threads where the work allows. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../base/os.h"
#include "../base/hash.h"
#include "internal.h"
#include "state/wal.h"
#include "state/state.h"
#include "store.h"

static int stat_once(Memo *m);
static int hash_dir(Cache *c, const char *path, Hash *out);
static void bind_tasks_now(Cache *c);
static void load_memo(void *ctx, const FileMemo *fm);
static void load_last(void *ctx, const char *task, Hash key, const unsigned char *outputs);

#define STATS_AT_ONCE 128

/* Claims the next STATS_AT_ONCE entries read to stat ([*from, *to)): 1, or 0 when none
 * is left to claim (or, while the loader still reads, fewer than STATS_AT_ONCE). */
static int claim_stats(Cache *c, size_t *from, size_t *to)
{
	for (;;) {
		size_t start = atomic_load(&c->next_stat);
		int all = atomic_load_explicit(&c->read_all, memory_order_acquire); /* before the count */
		size_t have = atomic_load_explicit(&c->nto_stat, memory_order_acquire);
		size_t end = start + STATS_AT_ONCE;
		if (end > have) {
			if (start >= have || !all)
				return 0;
			end = have;
		}
		if (atomic_compare_exchange_weak(&c->next_stat, &start, end)) {
			*from = start, *to = end;
			return 1;
		}
	}
}

/* Stats the next chunk of entries read: 1, or 0 when claim_stats had none to give. */
static int stat_a_chunk(Cache *c)
{
	atomic_fetch_add(&c->statting, 1); /* before the check: see forget_what_was_read */
	size_t from, to;
	int claimed = !atomic_load(&c->stats_stopped) && claim_stats(c, &from, &to);
	if (claimed)
		for (size_t i = from; i < to; i++)
			stat_once(ktable_at(&c->memo, i));
	atomic_fetch_sub(&c->statting, 1);
	return claimed;
}

/* Stats memo entries in chunks until none are left; run by both threads at once once
 * everything is read. */
static void share_stats(Cache *c)
{
	while (stat_a_chunk(c))
		;
}

/* Waits for the loader thread; every entry point calls this before touching state. Once
 * the loader has filled the maps and only stats are left, the caller binds tasks to memo
 * entries when asked to (that reads the maps, never the entries' stat fields, so it can
 * overlap the loader's stats), then takes a share of the stats. */
static void finish_loading(Cache *c, int bind)
{
	if (!c->loading) {
		if (bind)
			bind_tasks_now(c);
		return;
	}
	trace_mark("waiting for the loader");
	pthread_mutex_lock(&c->loaded_lock);
	while (!c->loaded)
		pthread_cond_wait(&c->loaded_cond, &c->loaded_lock);
	pthread_mutex_unlock(&c->loaded_lock);
	if (bind)
		bind_tasks_now(c);
	share_stats(c);
	pthread_join(c->loader, NULL);
	c->loading = 0;
	trace_mark("loader joined");
	if (!c->state) { /* a caller that skipped cache_loaded(): a bug in kiln, not in the recipe */
		fprintf(stderr, "kiln: internal error: the state is used though it did not open: %s\n",
			buf_str(&c->open_error));
		abort();
	}
}

void cache_ready(Cache *c) { finish_loading(c, 0); }

int cache_loaded(Cache *c, Buf *err)
{
	if (c->g && c->g->on_task_added == dirs_note_task) /* a plan: its listings answered, freed */
		dirs_settle(&c->dirs, c->g);
	/* while the loader still reads, stat what it has read: the stats need not wait */
	while (c->loading && !atomic_load_explicit(&c->read_all, memory_order_acquire))
		if (!stat_a_chunk(c)) {
			struct timespec pause = {0, 200000}; /* the next chunk is being read */
			nanosleep(&pause, NULL);
		}
	pthread_mutex_lock(&c->loaded_lock);
	while (!c->loaded)
		pthread_cond_wait(&c->loaded_cond, &c->loaded_lock);
	pthread_mutex_unlock(&c->loaded_lock);
	if (c->state)
		return 0;
	buf_puts(err, buf_str(&c->open_error));
	return -1;
}

/* A zeroed memo entry with its path stored right behind it: a look-up that compares the
 * path then finds the entry in the same cache line or the next. */
static Memo *new_memo(Cache *c, const char *path)
{
	size_t len = strlen(path);
	Memo *m = arena_alloc8(&c->arena, sizeof *m + len + 1);
	memset(m, 0, sizeof *m);
	memcpy(m + 1, path, len + 1);
	return m;
}

/* The maps are filled (or the state could not open): callers of cache_ready may go on. */
static void announce_loaded(Cache *c)
{
	atomic_store_explicit(&c->read_all, 1, memory_order_release);
	pthread_mutex_lock(&c->loaded_lock);
	c->loaded = 1;
	pthread_cond_broadcast(&c->loaded_cond);
	pthread_mutex_unlock(&c->loaded_lock);
}

/* The loader found damage part way: the entries read so far are dropped (their memory
 * stays in the arena). The caller may be stat'ing some of them (cache_loaded): no new
 * claim is made once stats_stopped is set, and the ones under way are waited for. */
static void forget_what_was_read(Cache *c)
{
	atomic_store(&c->stats_stopped, 1);
	while (atomic_load(&c->statting)) {
		struct timespec pause = {0, 100000};
		nanosleep(&pause, NULL);
	}
	ktable_free(&c->memo);
	ktable_free(&c->last);
	atomic_store(&c->nto_stat, 0);
	atomic_store(&c->next_stat, 0);
	atomic_store(&c->stats_stopped, 0);
}

void *cache_loader_main(void *arg)
{
	Cache *c = arg;
	trace_mark("loader: started");
	Buf losses = {0}; /* what SQLite would lose in silence: said before it opens the files */
	if (wal_inspect(c->db_path, c->unclean, &losses))
		for (char *line = losses.data, *end; line && *line; line = end + 1) {
			end = strchr(line, '\n');
			fprintf(stderr, "kiln: %.*s\n", (int)(end - line), line);
		}
	buf_free(&losses);
	c->state = state_open(c->db_path, c->opt.readonly, &c->open_error);
	trace_mark("loader: state database open");
	if (!c->state) {
		announce_loaded(c);
		return NULL;
	}
	c->hint = sizehint_read(c->sizes_path); /* sized once, not grown a million entries at a time */
	ktable_reserve(&c->memo, c->hint.memo);
	ktable_reserve(&c->last, c->hint.last);
	int rc = state_each_memo(c->state, load_memo, c);
	ktable_append_done(&c->memo);
	if (rc == 0) {
		rc = state_each_last(c->state, load_last, c);
		ktable_append_done(&c->last);
		c->nlast_read = c->last.count;
	}
	if (rc != 0) {
		/* damage found in the rows: forget what was read from them and start afresh */
		int damaged = state_damaged(c->state);
		state_close(c->state);
		c->state = NULL;
		forget_what_was_read(c);
		if (!damaged || c->opt.readonly || state_move_aside(c->db_path, "damage found reading it") != 0)
			buf_printf(&c->open_error, "cannot read %s%s", c->db_path,
				   damaged ? ": it is damaged; move it aside (`kiln run` does) and run again" : "");
		else
			c->state = state_open(c->db_path, c->opt.readonly, &c->open_error);
		if (!c->state) {
			announce_loaded(c);
			return NULL;
		}
	}
	trace_mark("loader: memo and last successes read");
	announce_loaded(c);
	/* stat every file earlier runs hashed while the recipe still loads on the other
	 * thread: validation and decisions then find the answers ready. A file rewritten
	 * during the run is forgotten (forget_path) and looked at again. */
	share_stats(c);
	trace_mark("loader: files stat'ed");
	return NULL;
}

static int64_t wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void load_memo(void *ctx, const FileMemo *fm)
{
	Cache *c = ctx;
	Memo *m = new_memo(c, fm->path);
	m->size = fm->size, m->stamp = stat_stamp(fm->mtime_ns, fm->ino, fm->ctime_ns);
	m->hash = fm->hash;
	m->settled = fm->hashed_ns - fm->mtime_ns > RACY_NS;
	ktable_append(&c->memo, m, hash_str(fm->path)); /* rows are distinct paths: always new */
	atomic_store_explicit(&c->nto_stat, c->memo.count, memory_order_release);
}

static void load_last(void *ctx, const char *task, Hash key, const unsigned char *outputs)
{
	Cache *c = ctx;
	LastSuccess *l = cache_new_last(c, task);
	l->key = key;
	if (outputs) { /* the state keeps them packed as the cache does */
		uint32_t n;
		memcpy(&n, outputs, 4);
		l->outputs = memcpy(arena_alloc8(&c->arena, STATE_PACKED_SIZE(n)), outputs, STATE_PACKED_SIZE(n));
	}
	ktable_append(&c->last, l, hash_str(task)); /* rows are distinct tasks */
}

/* What hashing a directory output collects for the store: its files (by path) and its
 * trees (listings as store.h describes them), each after everything it contains. */
typedef struct {
	struct {
		char *text; /* a file's path, or a tree's listing */
		Hash hash;
		int is_tree;
	} *items;
	size_t n, cap;
	long long bytes;
	int unstorable; /* an entry a tree cannot hold (a socket, a name with a newline...) */
} TreeCollector;

static void collect(TreeCollector *col, const char *text, Hash h, int is_tree)
{
	if (col->n == col->cap)
		col->items = xrealloc(col->items, (col->cap = col->cap ? col->cap * 2 : 16) * sizeof *col->items);
	col->items[col->n].text = xstrdup(text);
	col->items[col->n].hash = h;
	col->items[col->n++].is_tree = is_tree;
}

/* Directories hash as a Merkle tree: name and hash of each entry in name order. With a
 * collector, also gathers what the store needs to rebuild the directory. */
static int hash_dir_collect(Cache *c, const char *path, Hash *out, TreeCollector *col)
{
	struct dirent **list;
	int n = scandir(path, &list, NULL, alphasort);
	if (n < 0)
		return -1;
	Buf b = {0}, listing = {0};
	buf_puts(&b, "dir\n");
	for (int i = 0; i < n; i++) {
		const char *name = list[i]->d_name;
		if (strcmp(name, ".") && strcmp(name, "..")) {
			char *child = strcmp(path, ".") ? xasprintf("%s/%s", path, name) : xstrdup(name);
			Hash h;
			char hex[33] = "unreadable";
			if (!col && (i & 255) == 255 && os_stop_requested()) { /* a huge tree: heed Ctrl-C */
				free(child);
				for (int j = i; j < n; j++)
					free(list[j]);
				free(list);
				buf_free(&b);
				return -1;
			}
			if (list[i]->d_type == DT_LNK || list[i]->d_type == DT_UNKNOWN) {
				/* a link inside a directory is hashed as its target text, never followed:
				 * following could leave the tree or loop forever */
				char target[4096];
				ssize_t len = readlink(child, target, sizeof target);
				if (len >= 0) {
					Buf text = {0};
					buf_puts(&text, "link\n");
					buf_put(&text, target, (size_t)len);
					hash_hex(hash_bytes(text.data, text.len), hex);
					buf_free(&text);
					buf_printf(&b, "%s\tlink %s\n", name, hex);
					if (col)
						col->unstorable = 1; /* the store keeps files and directories only */
					free(child);
					free(list[i]);
					continue;
				}
			}
			/* stat the entries afresh: a task may have rewritten them since this command
			 * (or the loader) last looked, and nothing else forgets paths inside a directory */
			Memo *m = memo_entry(c, child);
			m->hashed = m->statted = 0;
			int isdir = stat_once(m) == 0 && S_ISDIR(m->s_mode);
			int rc = col && isdir ? hash_dir_collect(c, child, &h, col) : hash_memo(c, m, &h);
			if (rc == 0)
				hash_hex(h, hex);
			buf_printf(&b, "%s\t%s\n", name, hex);
			if (col && (rc != 0 || strpbrk(name, "\n\t") || strlen(name) >= 256 ||
				    (!isdir && !S_ISREG(m->s_mode)))) {
				col->unstorable = 1;
			} else if (col) {
				buf_printf(&listing, "%c %o %s %s\n", isdir ? 'd' : 'f', m->s_mode & 07777, hex, name);
				if (!isdir) {
					collect(col, child, h, 0);
					col->bytes += m->size; /* hash_memo's: matched, or hashed anew */
				}
			}
			free(child);
		}
		free(list[i]);
	}
	free(list);
	*out = hash_bytes(b.data, b.len);
	if (col)
		collect(col, buf_str(&listing), *out, 1);
	buf_free(&b);
	buf_free(&listing);
	return 0;
}

static int hash_dir(Cache *c, const char *path, Hash *out) { return hash_dir_collect(c, path, out, NULL); }

int cache_hash_output_dir(Cache *c, const char *path, Hash *out)
{
	TreeCollector col = {0};
	int rc = hash_dir_collect(c, path, out, &col);
	StoreQueue *q = NULL;
	if (rc == 0 && !col.unstorable && col.bytes <= c->opt.store_max_mib * 1024 * 1024 && (q = cache_store_queue(c)))
		for (size_t i = 0; i < col.n; i++) { /* in order: a tree is whole once it is stored */
			if (col.items[i].is_tree)
				store_queue_put_tree(q, col.items[i].hash, col.items[i].text);
			else
				store_queue_put(q, col.items[i].text, col.items[i].hash);
		}
	for (size_t i = 0; i < col.n; i++)
		free(col.items[i].text);
	free(col.items);
	return rc;
}

static int64_t ns_of(struct timespec ts) { return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec; }

Memo *memo_entry(Cache *c, const char *path)
{
	uint64_t h = hash_str(path);
	Memo *m = ktable_get_hashed(&c->memo, path, h);
	if (!m) {
		m = new_memo(c, path);
		m->size = -1; /* never matches a stat: no hash known yet */
		ktable_add(&c->memo, m, h);
	}
	return m;
}

/* Whether stat st matches memo entry m, which is settled: its hash is the file's. */
static int stat_matches(const Memo *m, const struct stat *st)
{
	return m->settled && m->size == (int64_t)st->st_size &&
	       m->stamp == stat_stamp(ns_of(st->st_mtim), (int64_t)st->st_ino, ns_of(st->st_ctim));
}

/* stat() once per command: what is asked again is kept on the memo entry. */
static int stat_once(Memo *m)
{
	if (m->statted)
		return m->present ? 0 : -1;
	struct stat st;
	m->statted = 1;
	if (stat(memo_path(m), &st) != 0) {
		m->present = 0;
		m->current = 0;
		return -1;
	}
	m->present = 1;
	m->s_mode = st.st_mode;
	m->current = stat_matches(m, &st);
	return 0;
}

/* Hashes the file at m's path into m as a new entry: stat'ed first, then read, so a file
 * rewritten meanwhile has a newer mtime than the one recorded. 0 with the row the state
 * keeps in *row (its path m's), or -1 when it cannot be read (nothing changes then). */
static int hash_into(Memo *m, FileMemo *row)
{
	struct stat st;
	Hash h;
	const char *path = memo_path(m);
	if (stat(path, &st) != 0 || hash_file(path, &h) != 0)
		return -1;
	*row = (FileMemo){path, st.st_size, ns_of(st.st_mtim), (int64_t)st.st_ino, ns_of(st.st_ctim), wall_ns(), h};
	m->size = row->size, m->stamp = stat_stamp(row->mtime_ns, row->ino, row->ctime_ns);
	m->hash = h;
	m->settled = row->hashed_ns - row->mtime_ns > RACY_NS;
	m->hashed = 1;
	return 0;
}

/* Finds, for every task of the graph, the memo entries of its inputs and outputs and its
 * last success: ~3 look-ups per task, each a few cache misses, issued in one pipelined
 * batch (see strmap_prefetch) instead of one at a time as tasks are checked. */
void bind_tasks(Cache *c) { finish_loading(c, 1); }

/* Memo entries worked on by parallel_for: stat_one and prehash_one touch only their own
 * entry, and read nothing in c. */
typedef struct {
	Cache *c;
	Memo **memo;
	FileMemo *rows; /* prehash_one's: the state's new row of each entry hashed */
} MemoJob;

static void stat_one(void *ctx, size_t i)
{
	MemoJob *job = ctx;
	stat_once(job->memo[i]);
}

/* A batch of memo look-ups: every path's hash is computed before the first look-up, so
 * each slot can be fetched AHEAD entries before it is read. */
typedef struct {
	const char *path;
	uint64_t hash;
	Memo **dst;
	int stat; /* stat it now if new */
} Want;

enum { AHEAD = 8, WINDOW = 4096 }; /* look-ups per batch: a window, not a million tasks' worth of
				       fresh memory at once */

/* Inputs many tasks share as one string (a map's items all point at the map's own
 * inputs): the memo entry each was last bound to, by the string's address, so a million
 * items cost one look-up of a shared input, not a million. Graph strings never move or
 * change while the cache lives, so an address seen again is the same path. */
enum { SEEN_SLOTS = 64 };
typedef struct {
	const char *path;
	Memo *m;
} Seen;

static Seen *seen_slot(Seen *seen, const char *path) { return &seen[((uintptr_t)path >> 3) % SEEN_SLOTS]; }

/* Points each want at its memo entry, made when new; the new ones to stat go on fresh.
 * Inputs bound are noted in seen. */
static void bind_wants(Cache *c, const Want *want, size_t n, Memo ***fresh, size_t *nfresh, size_t *cap, Seen *seen)
{
	for (size_t i = 0; i < n; i++) {
		if (i + 2 * AHEAD < n)
			ktable_prefetch(&c->memo, want[i + 2 * AHEAD].hash, 0);
		if (i + AHEAD < n)
			ktable_prefetch(&c->memo, want[i + AHEAD].hash, 1);
		Memo *m = ktable_get_hashed(&c->memo, want[i].path, want[i].hash);
		if (!m) {
			m = memo_entry(c, want[i].path);
			if (want[i].stat) {
				if (*nfresh == *cap) {
					*cap = *cap ? 2 * *cap : WINDOW;
					*fresh = xrealloc(*fresh, *cap * sizeof **fresh);
				}
				(*fresh)[(*nfresh)++] = m;
			}
		}
		*want[i].dst = m;
		if (want[i].stat)
			*seen_slot(seen, want[i].path) = (Seen){want[i].path, m};
	}
}

void set_record(Cache *c, const Task *t, TaskCache *tc)
{
	if (tc == &c->planned_run) { /* a bit, not a pointer: a first plan makes no record at all */
		if (t->index >= c->nplanned) {
			int n = c->g && c->g->ntasks > t->index ? c->g->ntasks : t->index + 1, words = n / 64 + 1;
			c->planned = xrealloc(c->planned, (size_t)words * sizeof *c->planned);
			memset(c->planned + c->nplanned / 64, 0, (size_t)(words - c->nplanned / 64) * sizeof *c->planned);
			c->nplanned = words * 64;
		}
		c->planned[t->index / 64] |= 1ull << (t->index % 64);
		return;
	}
	if (t->index >= c->nrecords) { /* room for the whole graph at once */
		int n = c->g && c->g->ntasks > t->index ? c->g->ntasks : t->index + 1;
		c->records = xrealloc(c->records, (size_t)n * sizeof *c->records);
		memset(c->records + c->nrecords, 0, (size_t)(n - c->nrecords) * sizeof *c->records);
		c->nrecords = n;
	}
	c->records[t->index] = tc;
}

static void bind_tasks_now(Cache *c)
{
	if (c->bound || !c->g)
		return;
	c->bound = 1;
	Graph *g = c->g;
	uint64_t hashes[WINDOW];
	int recorded = c->last.count > 0; /* none (a first run, a first plan): no name is looked up */
	for (int from = 0; from < g->ntasks && (recorded || !c->opt.readonly); from += WINDOW) {
		int n = g->ntasks - from < WINDOW ? g->ntasks - from : WINDOW;
		Task **tasks = g->tasks + from;
		if (!recorded) {
			for (int i = 0; i < n; i++)
				task_cache(c, tasks[i])->last = NULL;
			continue;
		}
		for (int i = 0; i < n; i++)
			hashes[i] = hash_str(tasks[i]->name);
		for (int i = 0; i < n; i++) {
			if (i + 2 * AHEAD < n)
				ktable_prefetch(&c->last, hashes[i + 2 * AHEAD], 0);
			if (i + AHEAD < n)
				ktable_prefetch(&c->last, hashes[i + AHEAD], 1);
			LastSuccess *last = ktable_get_hashed(&c->last, tasks[i]->name, hashes[i]);
			if (last || !c->opt.readonly) /* a plan's tasks never recorded get no record (planned_run) */
				task_cache(c, tasks[i])->last = last;
		}
	}
	ktable_free(&c->last); /* each task holds its own now (last_of): before the memo look-ups' allocations */
	/* A plan judges a task never recorded without its key (cache_check) and checks that its
	 * inputs exist by listing (cache_input_exists): it gets no memo entries at all, which is
	 * most of a first plan's memory. */
	size_t cap = WINDOW, k = 0, nfresh = 0, fresh_cap = 0;
	Want *want = xmalloc(cap * sizeof *want);
	Memo **fresh = NULL; /* paths no earlier run hashed */
	Seen seen[SEEN_SLOTS] = {{0}};
	for (int i = 0; i < g->ntasks && (recorded || !c->opt.readonly); i++) {
		Task *t = g->tasks[i];
		TaskCache *tc = record_of(c, t);
		if (c->opt.readonly && (!tc || !tc->last))
			continue;
		size_t need = (size_t)(t->ninputs + t->noutputs);
		if (k + need > cap && k) { /* the window is full: look its paths up */
			bind_wants(c, want, k, &fresh, &nfresh, &fresh_cap, seen);
			k = 0;
		}
		if (need > cap)
			want = xrealloc(want, (cap = need) * sizeof *want);
		tc->in_memo = arena_ptrs(&c->arena, need);
		Memo **out_memo = tc->in_memo + t->ninputs;
		for (int j = 0; j < t->ninputs; j++) {
			const Seen *s = seen_slot(seen, t->inputs[j]);
			if (s->path == t->inputs[j])
				tc->in_memo[j] = s->m;
			else
				want[k++] = (Want){t->inputs[j], hash_str(t->inputs[j]), &tc->in_memo[j], 1};
		}
		/* the outputs of a task never recorded are cleared before it runs: no stat */
		for (int j = 0; j < t->noutputs; j++)
			want[k++] = (Want){t->outputs[j], hash_str(t->outputs[j]), &out_memo[j], tc->last != NULL};
	}
	bind_wants(c, want, k, &fresh, &nfresh, &fresh_cap, seen);
	free(want);
	/* the loader stats the paths it read; the new ones are stat'ed here, on all cores (a
	 * first run has nothing else) */
	MemoJob job = {c, fresh, NULL};
	parallel_for(nfresh, 256, 0, stat_one, &job);
	free(fresh);
	trace_mark("cache bound to the graph's files");
}

void cache_resolved(Cache *c)
{
	if (c->g && c->g->on_task_added == dirs_note_task)
		c->g->on_task_added = NULL;
	dirs_free(&c->dirs);
}

int cache_input_exists(void *cache, Task *t, int input)
{
	Cache *c = cache;
	bind_tasks(c);
	TaskCache *tc = record_of(c, t);
	if (tc == &c->planned_run)
		tc = NULL; /* not made here: see planned_run */
	if ((!tc || (!tc->in_memo && !tc->last)) && c->opt.readonly) {
		return dirs_input_exists(&c->dirs, t, input);
	}
	return stat_once(tc && tc->in_memo ? tc->in_memo[input] : memo_entry(c, t->inputs[input])) == 0;
}

static void prehash_one(void *ctx, size_t i)
{
	MemoJob *job = ctx;
	Memo *m = job->memo[i];
	if (os_stop_requested())
		return; /* Ctrl-C: leave the rest; the scheduler stops before checking anything */
	if (hash_into(m, &job->rows[i]) == 0) /* else cache_check tries again and reports it */
		m->prehashed = 1;
}

/* Reading files mostly waits on the disk: more readers than cores keep it busy. */
#define PREHASH_THREADS 8

void cache_prepare(Cache *c)
{
	bind_tasks(c);
	if (!c->bound)
		return;
	Graph *g = c->g;
	size_t n = 0, cap = 0;
	Memo **list = NULL;
	for (int i = 0; i < g->ntasks; i++) {
		Task *t = g->tasks[i];
		TaskCache *tc = record_of(c, t);
		if (!t->needed || !tc || !tc->in_memo || (c->opt.readonly && !tc->last))
			continue; /* a plan reads no input of a task never recorded (cache_check) */
		for (int j = 0; j < t->ninputs; j++) {
			Memo *m = tc->in_memo[j];
			if (task_input_producer(t, j) || m->queued || m->hashed)
				continue;
			m->queued = 1;
			if (stat_once(m) != 0 || !S_ISREG(m->s_mode) || m->current)
				continue;
			if (n == cap)
				list = xrealloc(list, (cap = cap ? cap * 2 : 256) * sizeof *list);
			list[n++] = m;
		}
	}
	MemoJob job = {c, list, xmalloc((n ? n : 1) * sizeof *job.rows)};
	parallel_for(n, 16, PREHASH_THREADS, prehash_one, &job);
	for (size_t i = 0; i < n; i++)
		if (list[i]->prehashed && !c->opt.readonly)
			state_put_memo(c->state, &job.rows[i]);
	free(job.rows);
	free(list);
	trace_mark("source files hashed");
	cache_keys_ahead(c);
}

/* Content hash of a file or directory, through the (path, size, mtime, inode, ctime) memo. */
int hash_path(Cache *c, const char *path, Hash *out) { return hash_memo(c, memo_entry(c, path), out); }

int hash_memo(Cache *c, Memo *m, Hash *out)
{
	const char *path = memo_path(m);
	if (m->hashed) {
		*out = m->hash;
		return 0;
	}
	if (stat_once(m) != 0)
		return -1;
	if (S_ISDIR(m->s_mode))
		return hash_dir(c, path, out);
	if (!S_ISREG(m->s_mode))
		return -1; /* a fifo or a device has no content to hash (and opening a fifo waits) */
	if (m->current) {
		m->hashed = 1;
		*out = m->hash;
		return 0;
	}
	FileMemo row;
	if (hash_into(m, &row) != 0)
		return -1;
	*out = m->hash;
	if (!c->opt.readonly)
		state_put_memo(c->state, &row);
	return 0;
}

/* Forgets this command's view of path (it is about to be rewritten). */
void forget_path(Cache *c, const char *path)
{
	Memo *m = ktable_get(&c->memo, path);
	if (m)
		m->hashed = m->statted = 0;
}
