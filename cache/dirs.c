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
 * frees the listings before the graph's indexes are made.
 *
 * A listing keeps its names' 64-bit hashes, not the names (a million names: 10.7 MiB, not
 * 17.6, and an answer without a look at the text): two names of one directory with the
 * same hash would let a missing input pass for present, with a chance near 2^-64 per pair.
 * Only a plan asks here, and only whether to say "does not exist" before the run; a run
 * stats every input it reads.
 *
 * Everything here but the listing itself runs on the caller's thread. */
#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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
	uint64_t *hashes;   /* open addressing over its entries' name_hash; 0 slots free */
	size_t cap;         /* slots, at most three quarters full (keytable.h's probing) */
	struct DirInfo *next_queued;
};

static void drop_listings(Dirs *dirs);

/* A name's hash in a listing: never 0 (a free slot). */
static uint64_t name_hash(const char *name)
{
	uint64_t h = hash_str(name);
	return h ? h : 1;
}

/* The slot a name with hash h probes first in d's listing. */
static size_t name_home(const DirInfo *d, uint64_t h) { return slots_home((uint32_t)(h >> 32), d->cap); }

static int dir_has_hash(const DirInfo *d, uint64_t h, size_t home)
{
	for (size_t i = home; d->hashes[i]; i = slots_next(i, d->cap))
		if (d->hashes[i] == h)
			return 1;
	return 0;
}

static int dir_has(const DirInfo *d, const char *name)
{
	uint64_t h = name_hash(name);
	return dir_has_hash(d, h, name_home(d, h));
}

/* Lists d: its plain files and directories (a link or an entry of unknown type is left to
 * stat). Touches only d's hashes and cap, so the lister thread may run it while the caller
 * goes on. */
static void list_dir(DirInfo *d)
{
	DIR *dh = opendir(*d->name ? d->name : ".");
	if (!dh)
		return;
	/* the names' hashes as they come, in a mapping of their own: from malloc, a few MiB
	 * given back would raise glibc's mmap threshold, and what the graph allocates after it
	 * would stay resident in the heap */
	size_t count = 0, room = 1 << 16;
	uint64_t *read = mmap(NULL, room * sizeof *read, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (struct dirent *e; read != MAP_FAILED && (e = readdir(dh));)
		if (e->d_type == DT_REG || e->d_type == DT_DIR) {
			if (count == room) {
				read = mremap(read, room * sizeof *read, 2 * room * sizeof *read, MREMAP_MAYMOVE);
				room *= 2;
			}
			if (read != MAP_FAILED)
				read[count++] = name_hash(e->d_name);
		}
	closedir(dh);
	if (read == MAP_FAILED)
		return; /* left to stat */
	d->cap = slots_capacity(0, count);
	uint64_t *hashes = big_alloc(d->cap * sizeof *hashes);
	memset(hashes, 0, d->cap * sizeof *hashes);
	for (size_t k = 0; k < count; k++) {
		size_t i = name_home(d, read[k]);
		while (hashes[i] && hashes[i] != read[k]) /* names in one directory differ */
			i = slots_next(i, d->cap);
		hashes[i] = read[k];
	}
	munmap(read, room * sizeof *read);
	d->hashes = hashes;
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
	return (d->hashes && dir_has(d, dlen ? path + dlen + 1 : path)) || stat_says_exists(path);
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
		if (d->hashes)
			big_free(d->hashes, d->cap * sizeof *d->hashes);
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
	uint64_t hash;    /* of its name */
	size_t slot;      /* the first slot it probes in d's listing */
	size_t bit;
} Asked;

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
	/* a pipeline: an input's slot is loaded AHEAD inputs before it is looked at, so each
	 * answer finds its cache line there. An input many tasks share (one string: a dataset,
	 * a model) is looked up once. */
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
			} else if (!d->ready || !d->hashes) {
				absent = 1;
			} else {
				Asked *a = &ring[queued++ % AHEAD];
				a->d = d, a->path = path, a->bit = bit;
				a->hash = name_hash(dlen ? path + dlen + 1 : path);
				a->slot = name_home(d, a->hash);
				__builtin_prefetch(&d->hashes[a->slot]);
			}
			if (absent)
				ask_stat[bit / 64] |= 1ull << (bit % 64);
		}
		int more = i < g->ntasks;
		while (queued > done && (queued - done >= AHEAD || !more)) {
			const Asked *a = &ring[done++ % AHEAD];
			absent = !dir_has_hash(a->d, a->hash, a->slot);
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
