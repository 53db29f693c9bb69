/* dirs.c — whether a plan's inputs exist, by directory listings instead of a stat each.
 *
 * A plan (kiln run -n, status) of tasks the state never recorded asks, per input, only
 * whether the file is there. Inputs come from a few directories over and over: one that
 * holds many of them is read once (its names as a set) and asked in memory. Listing a
 * million-entry directory takes a third of a second or more, so it starts while the recipe
 * still loads: the graph tells the cache of each task as it is declared (dirs_note_task),
 * and a directory that has gathered LIST_AFTER inputs is listed on a thread of its own
 * while the recipe's Lua goes on. A question about a directory still being listed waits
 * for it. Once the recipe is loaded, dirs_settle answers every input's question at once and
 * frees the listings (a million names take 17 MiB) before the graph's indexes are made.
 * Everything here but the listing itself runs on the caller's thread. */
#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../base/keytable.h"
#include "../base/thread.h"
#include "internal.h"

#define LIST_AFTER 64 /* inputs seen in one directory before it is listed */

struct DirInfo {
	char *name;         /* the directory ("" for the workspace's top), malloc'd */
	size_t name_len;
	int seen;           /* inputs in it: declared (hints) or asked about */
	int queued;         /* handed to the lister thread (caller's thread only) */
	int ready;          /* the caller has seen the listing finished (caller's thread only) */
	int listed;         /* the listing is finished: under Dirs.lock while a lister runs */
	char *text;         /* its entries' names, each NUL-terminated, one after another */
	uint32_t *names;    /* open addressing over offsets into text + 1; 0 slots free */
	uint8_t *tags;      /* per slot, 8 bits of its name's hash: most probes of a name not
			       in the slot then skip the strcmp (and its cache miss in text) */
	size_t cap;         /* slots, at most three quarters full (keytable.h's probing) */
	struct DirInfo *next_queued;
};

static void drop_listings(Dirs *dirs);

static int dir_has(const DirInfo *d, const char *name)
{
	uint64_t h = hash_str(name);
	for (size_t i = slots_home((uint32_t)h, d->cap); d->names[i]; i = slots_next(i, d->cap))
		if (d->tags[i] == (uint8_t)(h >> 56) && !strcmp(d->text + d->names[i] - 1, name))
			return 1;
	return 0;
}

/* Lists d: its plain files and directories (a link or an entry of unknown type is left to
 * stat). A directory whose names pass 4 GiB is left to stat as well. Touches only d's
 * text, names and cap, so the lister thread may run it while the caller goes on. */
static void list_dir(DirInfo *d)
{
	DIR *dh = opendir(*d->name ? d->name : ".");
	if (!dh)
		return;
	size_t count = 0;
	Buf text = {0};
	for (struct dirent *e; (e = readdir(dh));)
		if (e->d_type == DT_REG || e->d_type == DT_DIR) {
			buf_put(&text, e->d_name, strlen(e->d_name) + 1);
			count++;
		}
	closedir(dh);
	if (text.len >= UINT32_MAX) {
		buf_free(&text);
		return;
	}
	size_t cap = slots_capacity(0, count);
	uint32_t *names = big_alloc(cap * sizeof *names);
	memset(names, 0, cap * sizeof *names);
	uint8_t *tags = big_alloc(cap);
	for (size_t at = 0; at < text.len; at += strlen(text.data + at) + 1) {
		uint64_t h = hash_str(text.data + at);
		size_t i = slots_home((uint32_t)h, cap);
		while (names[i])
			i = slots_next(i, cap);
		names[i] = (uint32_t)at + 1;
		tags[i] = (uint8_t)(h >> 56);
	}
	d->text = text.data;
	d->names = names;
	d->tags = tags;
	d->cap = cap;
}

static void *lister_main(void *arg)
{
	Dirs *dirs = arg;
	pthread_mutex_lock(&dirs->lock);
	for (;;) {
		while (!dirs->queue && !dirs->stop)
			pthread_cond_wait(&dirs->changed, &dirs->lock);
		if (dirs->stop)
			break; /* what is still queued is nobody's question any more */
		DirInfo *d = dirs->queue;
		dirs->queue = d->next_queued;
		pthread_mutex_unlock(&dirs->lock);
		list_dir(d);
		pthread_mutex_lock(&dirs->lock);
		d->listed = 1;
		pthread_cond_broadcast(&dirs->changed);
	}
	pthread_mutex_unlock(&dirs->lock);
	return NULL;
}

/* Hands d to the lister thread, started on first use; lists it here when no thread starts. */
static void list_later(Dirs *dirs, DirInfo *d)
{
	if (!dirs->started) {
		pthread_mutex_init(&dirs->lock, NULL);
		pthread_cond_init(&dirs->changed, NULL);
		dirs->started = thread_start(&dirs->lister, lister_main, dirs) == 0 ? 1 : -1;
	}
	d->queued = 1;
	if (dirs->started < 0) {
		list_dir(d);
		d->listed = d->ready = 1;
		return;
	}
	pthread_mutex_lock(&dirs->lock);
	DirInfo **tail = &dirs->queue;
	while (*tail)
		tail = &(*tail)->next_queued;
	*tail = d;
	pthread_cond_signal(&dirs->changed);
	pthread_mutex_unlock(&dirs->lock);
}

/* The record of the directory part of path (the first dlen bytes), made when new. The
 * directories asked about lately are kept at hand by a hash of the name. */
static DirInfo *dir_of(Dirs *dirs, const char *path, size_t dlen)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a of the directory part */
	for (size_t i = 0; i < dlen; i++)
		h = (h ^ (unsigned char)path[i]) * 1099511628211ULL;
	DirInfo **slot = &dirs->recent[h % DIRS_RECENT], *d = *slot;
	if (d && d->name_len == dlen && !memcmp(d->name, path, dlen))
		return d;
	char *name = strndup(path, dlen);
	d = strmap_get(&dirs->map, name);
	if (d) {
		free(name);
	} else {
		d = xcalloc(1, sizeof *d);
		d->name = name;
		d->name_len = dlen;
		strmap_put(&dirs->map, d->name, d);
	}
	return *slot = d;
}

static size_t dir_len(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? (size_t)(slash - path) : 0;
}

void dirs_note_task(void *cache, const Task *t)
{
	Dirs *dirs = &((Cache *)cache)->dirs;
	if (dirs->settled) /* a task after the settled ones: stat answers from now on */
		drop_listings(dirs);
	for (int i = 0; i < t->ninputs; i++) {
		DirInfo *d = dir_of(dirs, t->inputs[i], dir_len(t->inputs[i]));
		if (!d->queued && ++d->seen >= LIST_AFTER)
			list_later(dirs, d);
	}
}

/* Waits for the lister thread to finish d, when d is its. */
static void wait_listed(Dirs *dirs, DirInfo *d)
{
	if (!d->queued || d->ready)
		return;
	pthread_mutex_lock(&dirs->lock);
	while (!d->listed)
		pthread_cond_wait(&dirs->changed, &dirs->lock);
	pthread_mutex_unlock(&dirs->lock);
	d->ready = 1;
}

static int stat_says_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* The settled answer of input j of t: its bit, found from the last input asked about. */
static int settled_exists(Dirs *dirs, const Task *t, int j)
{
	if (dirs->cursor_task > t->index) /* asked out of order: count from the start */
		dirs->cursor_task = 0, dirs->cursor_bit = 0;
	while (dirs->cursor_task < t->index)
		dirs->cursor_bit += (size_t)dirs->settled->tasks[dirs->cursor_task++]->ninputs;
	size_t bit = dirs->cursor_bit + (size_t)j;
	return !(dirs->ask_stat[bit / 64] >> (bit % 64) & 1) || stat_says_exists(t->inputs[j]);
}

int dirs_input_exists(Dirs *dirs, const Task *t, int j)
{
	if (dirs->settled)
		return settled_exists(dirs, t, j);
	const char *path = t->inputs[j];
	size_t dlen = dir_len(path);
	DirInfo *d = dir_of(dirs, path, dlen);
	if (!d->queued && ++d->seen >= LIST_AFTER) {
		d->queued = d->listed = d->ready = 1;
		list_dir(d);
	}
	wait_listed(dirs, d);
	return (d->names && dir_has(d, dlen ? path + dlen + 1 : path)) || stat_says_exists(path);
}

/* Stops the lister thread and frees every listing and directory record. */
static void drop_listings(Dirs *dirs)
{
	if (dirs->started > 0) {
		pthread_mutex_lock(&dirs->lock);
		dirs->stop = 1;
		pthread_cond_signal(&dirs->changed);
		pthread_mutex_unlock(&dirs->lock);
		pthread_join(dirs->lister, NULL);
		pthread_mutex_destroy(&dirs->lock);
		pthread_cond_destroy(&dirs->changed);
	}
	const char *key;
	void *value;
	for (size_t i = 0; strmap_next(&dirs->map, &i, &key, &value);) {
		DirInfo *d = value;
		if (d->names) {
			big_free(d->names, d->cap * sizeof *d->names);
			big_free(d->tags, d->cap);
		}
		free(d->text);
		free(d->name);
		free(d);
	}
	strmap_free(&dirs->map);
	free(dirs->ask_stat);
	memset(dirs, 0, sizeof *dirs);
}

/* One input on its way through dirs_settle's pipeline. */
typedef struct {
	const DirInfo *d;
	const char *path;
	size_t name_at;   /* where its name starts in path */
	uint32_t slot;    /* the name's first slot in d's listing */
	uint8_t tag;
	size_t bit;
} Asked;

/* Whether a's name is in its listing (its first slot loaded by now). */
static int listed_has(const Asked *a)
{
	const DirInfo *d = a->d;
	for (size_t i = a->slot; d->names[i]; i = slots_next(i, d->cap))
		if (d->tags[i] == a->tag && !strcmp(d->text + d->names[i] - 1, a->path + a->name_at))
			return 1;
	return 0;
}

void dirs_settle(Dirs *dirs, const Graph *g)
{
	const char *key;
	void *value;
	for (size_t i = 0; strmap_next(&dirs->map, &i, &key, &value);)
		wait_listed(dirs, value);
	size_t ninputs = 0;
	for (int i = 0; i < g->ntasks; i++)
		ninputs += (size_t)g->tasks[i]->ninputs;
	uint64_t *ask_stat = xcalloc(ninputs / 64 + 1, sizeof *ask_stat);
	/* a pipeline: an input's slot is loaded AHEAD inputs before it is looked at, the name
	 * in that slot AHEAD / 2 before, so each answer finds its two cache lines there. An
	 * input many tasks share (one string: a dataset, a model) is looked up once. */
	enum { AHEAD = 16, KNOWN = 256 };
	Asked ring[AHEAD];
	size_t queued = 0, done = 0, bit = 0;
	struct {
		const char *path;
		int absent;
	} known[KNOWN] = {{0}};
	for (int i = 0, j = 0;; j++, bit++) {
		while (i < g->ntasks && j >= g->tasks[i]->ninputs)
			i++, j = 0;
		int absent = 0;
		if (i < g->ntasks) {
			const char *path = g->tasks[i]->inputs[j];
			size_t seen = ((uintptr_t)path >> 3) % KNOWN, dlen = dir_len(path);
			const DirInfo *d = dir_of(dirs, path, dlen);
			if (known[seen].path == path) {
				absent = known[seen].absent;
			} else if (!d->ready || !d->names) {
				absent = 1;
			} else {
				Asked *a = &ring[queued++ % AHEAD];
				a->d = d, a->path = path, a->name_at = dlen ? dlen + 1 : 0, a->bit = bit;
				uint64_t h = hash_str(path + a->name_at);
				a->slot = (uint32_t)slots_home((uint32_t)h, d->cap);
				a->tag = (uint8_t)(h >> 56);
				__builtin_prefetch(&d->names[a->slot]);
				__builtin_prefetch(&d->tags[a->slot]);
			}
			if (absent)
				ask_stat[bit / 64] |= 1ull << (bit % 64);
		}
		int more = i < g->ntasks;
		if (queued - done > AHEAD / 2) { /* the name of the one half way through */
			const Asked *mid = &ring[(queued - AHEAD / 2 - 1) % AHEAD];
			if (mid->d->names[mid->slot])
				__builtin_prefetch(mid->d->text + mid->d->names[mid->slot] - 1);
		}
		while (queued > done && (queued - done >= AHEAD || !more)) {
			const Asked *a = &ring[done++ % AHEAD];
			absent = !listed_has(a);
			if (absent)
				ask_stat[a->bit / 64] |= 1ull << (a->bit % 64);
			size_t seen = ((uintptr_t)a->path >> 3) % KNOWN;
			known[seen].path = a->path, known[seen].absent = absent;
		}
		if (!more)
			break;
	}
	drop_listings(dirs);
	dirs->settled = g;
	dirs->ask_stat = ask_stat;
	trace_mark("inputs found in their directories' listings");
}

void dirs_free(Dirs *dirs) { drop_listings(dirs); }
