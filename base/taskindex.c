/* taskindex.c — open addressing with linear probing over the graph's own keys, and the
 * graph's name and output indexes built from them (graph_index). */
#include "taskindex.h"

#include <string.h>

#include "graph.h"
#include "thread.h"

/* An output index keeps which output of its task a slot's key is in the low byte of the
 * slot's hash (ITEM_BITS; ITEM_MORE: that one or a later one), not in an array beside the
 * slots: its keys are told apart by the hash's other 24 bits, and their first slot is
 * found from those alone. */
#define ITEM_BITS 0xffu
#define ITEM_MORE ITEM_BITS

static uint32_t hash_part(const TaskIndex *ix, uint32_t h) { return ix->outputs ? h & ~ITEM_BITS : h; }

/* Whether slot i holds key (its hash part h matched already). */
static int slot_holds(const TaskIndex *ix, Task *const *tasks, size_t i, const char *key)
{
	const Task *t = tasks[ix->slots[i].id - 1];
	if (!ix->outputs)
		return !strcmp(t->name, key);
	unsigned item = ix->slots[i].hash & ITEM_BITS;
	if (item < ITEM_MORE)
		return !strcmp(t->outputs[item], key);
	for (int k = ITEM_MORE; k < t->noutputs; k++) /* a task with hundreds of outputs */
		if (!strcmp(t->outputs[k], key))
			return 1;
	return 0;
}

static size_t find(const TaskIndex *ix, Task *const *tasks, const char *key, uint32_t h)
{
	h = hash_part(ix, h);
	size_t i = slots_home(h, ix->cap);
	while (ix->slots[i].id && (hash_part(ix, ix->slots[i].hash) != h || !slot_holds(ix, tasks, i, key)))
		i = slots_next(i, ix->cap);
	return i;
}

static void grow(TaskIndex *ix, size_t cap)
{
	TaskIndexSlot *old = ix->slots;
	size_t old_cap = ix->cap;
	ix->slots = big_alloc(cap * sizeof *ix->slots);
	memset(ix->slots, 0, cap * sizeof *ix->slots);
	ix->cap = cap;
	for (size_t i = 0; i < old_cap; i++) /* keys are distinct: the first empty slot is theirs */
		if (old[i].id)
			ix->slots[slots_free_at(ix->slots, cap, hash_part(ix, old[i].hash))] = old[i];
	big_free(old, old_cap * sizeof *old);
}

void tindex_reserve(TaskIndex *ix, size_t n)
{
	size_t cap = slots_capacity(ix->cap, n);
	if (cap != ix->cap)
		grow(ix, cap);
}

Task *tindex_put(TaskIndex *ix, Task *const *tasks, const char *key, uint64_t h, Task *t, int item)
{
	if (slots_full(ix->count, ix->cap))
		grow(ix, slots_capacity(0, ix->count * 2));
	size_t i = find(ix, tasks, key, (uint32_t)h);
	if (ix->slots[i].id)
		return tasks[ix->slots[i].id - 1];
	uint32_t stored = ix->outputs ? hash_part(ix, (uint32_t)h) | (item < (int)ITEM_MORE ? (uint32_t)item : ITEM_MORE)
				      : (uint32_t)h;
	ix->slots[i] = (TaskIndexSlot){stored, (uint32_t)t->index + 1};
	ix->count++;
	return NULL;
}

Task *tindex_get(const TaskIndex *ix, Task *const *tasks, const char *key)
{
	if (!ix->count)
		return NULL;
	size_t i = find(ix, tasks, key, (uint32_t)hash_str(key));
	return ix->slots[i].id ? tasks[ix->slots[i].id - 1] : NULL;
}

void tindex_prefetch(const TaskIndex *ix, uint64_t h)
{
	if (ix->cap)
		__builtin_prefetch(&ix->slots[slots_home(hash_part(ix, (uint32_t)h), ix->cap)]);
}

void tindex_free(TaskIndex *ix)
{
	big_free(ix->slots, ix->cap * sizeof *ix->slots);
	int outputs = ix->outputs;
	memset(ix, 0, sizeof *ix);
	ix->outputs = outputs;
}

/* Inserts the keys of one index (task names, or every output of every task) in a
 * pipeline that hashes and prefetches a few keys ahead; on a key already present returns
 * -1 with the task that declared it in *other and this key's task and item in *t, *item. */
static int index_all(Graph *g, TaskIndex *ix, size_t n, Task **t_out, int *item_out, Task **other)
{
	enum { AHEAD = 8 };
	struct {
		Task *t;
		int item;
		uint64_t h;
	} ring[AHEAD];
	tindex_reserve(ix, n);
	int ti = 0, item = -1; /* the walk over keys, AHEAD in front of the inserts */
	size_t queued = 0, done = 0;
	for (;;) {
		while (queued - done < AHEAD) { /* advance to the next key */
			Task *t = NULL;
			if (ix->outputs) {
				while (ti < g->ntasks && ++item >= g->tasks[ti]->noutputs)
					ti++, item = -1;
				if (ti < g->ntasks)
					t = g->tasks[ti];
			} else if (ti < g->ntasks) {
				t = g->tasks[ti++];
				item = 0;
			}
			if (!t)
				break;
			uint64_t h = hash_str(ix->outputs ? t->outputs[item] : t->name);
			tindex_prefetch(ix, h);
			ring[queued % AHEAD].t = t, ring[queued % AHEAD].item = item, ring[queued % AHEAD].h = h;
			queued++;
		}
		if (done == queued)
			return 0;
		Task *t = ring[done % AHEAD].t;
		int k = ring[done % AHEAD].item;
		Task *present = tindex_put(ix, g->tasks, ix->outputs ? t->outputs[k] : t->name, ring[done % AHEAD].h, t, k);
		done++;
		if (present && present != t) { /* the same output twice in one task is harmless */
			*t_out = t, *item_out = k, *other = present;
			return -1;
		}
	}
}

/* graph_index's two halves, run on two threads for a big graph: the name index and the
 * outputs' roots (job 0), and the output index with its check that no output lies inside
 * another (job 1). They share nothing but the read-only task list; only job 0 takes from
 * the arena. Each keeps its own error, so what is said does not depend on which ran first. */
typedef struct {
	Graph *g;
	Buf err[2];
	int rc[2];
} IndexJob;

static int index_names(Graph *g, Buf *err)
{
	Task *t, *other;
	int k;
	if (index_all(g, &g->by_name, (size_t)g->ntasks, &t, &k, &other) == 0)
		return 0;
	buf_printf(err, "%s:%d: task \"%s\" is declared twice (first at %s:%d)", t->opts->file, t->line, t->name, other->opts->file,
		   other->line);
	return -1;
}

/* The first component of every output (see graph_producer): job 0's, beside the names,
 * as the output index is the longer half. */
static void index_output_roots(Graph *g)
{
	const char *last_root = NULL; /* the root kept last: most outputs share it */
	for (int i = 0; i < g->ntasks; i++) {
		Task *t = g->tasks[i];
		for (int j = 0; j < t->noutputs; j++) {
			size_t root_len = strcspn(t->outputs[j], "/");
			char root[256];
			if (root_len >= sizeof root)
				root_len = 0; /* too long to be worth a key: "" disables the shortcut */
			if (last_root && !strncmp(last_root, t->outputs[j], root_len) && !last_root[root_len])
				continue;
			memcpy(root, t->outputs[j], root_len);
			root[root_len] = 0;
			g->output_root_any |= root_len == 0;
			if (!(last_root = strmap_get(&g->output_roots, root))) {
				last_root = arena_strdup(&g->arena, root);
				strmap_put(&g->output_roots, last_root, (void *)last_root);
				if (g->nfew_roots >= 0)
					g->nfew_roots = g->nfew_roots < FEW_ROOTS ? g->nfew_roots + 1 : -1;
				if (g->nfew_roots > 0)
					g->few_roots[g->nfew_roots - 1] = last_root;
			}
		}
	}
}

static int index_outputs(Graph *g, Buf *err)
{
	Task *t, *other;
	int k;
	size_t nout = 0;
	for (int i = 0; i < g->ntasks; i++)
		nout += (size_t)g->tasks[i]->noutputs;
	if (index_all(g, &g->by_output, nout, &t, &k, &other) != 0) {
		buf_printf(err, "%s:%d: tasks \"%s\" and \"%s\" (%s:%d) both declare output \"%s\"", t->opts->file, t->line,
			   t->name, other->name, other->opts->file, other->line, t->outputs[k]);
		return -1;
	}
	/* An output inside another output (a file in a task's directory output) would never
	 * settle: restoring or re-running the directory deletes the inner one. Refused. The
	 * directory of the output before is no output (it was checked): most outputs lie in a
	 * directory the one before lay in, and a million of them look it up once. */
	Buf parent = {0};
	const char *before = "";
	size_t before_dir = 0; /* the length of before's directory (up to its last slash) */
	for (int i = 0; i < g->ntasks; i++) {
		t = g->tasks[i];
		for (int j = 0; j < t->noutputs; j++) {
			const char *path = t->outputs[j], *last = strrchr(path, '/');
			size_t dir = last ? (size_t)(last - path) : 0;
			int same_dir = dir == before_dir && !strncmp(path, before, dir);
			before = path, before_dir = dir;
			for (const char *slash = same_dir ? NULL : strchr(path, '/'); slash; slash = strchr(slash + 1, '/')) {
				buf_reset(&parent);
				buf_put(&parent, path, (size_t)(slash - path));
				Task *outer = tindex_get(&g->by_output, g->tasks, buf_str(&parent));
				if (outer) {
					buf_printf(err, "%s:%d: output \"%s\" of task \"%s\" lies inside output \"%s\" of task \"%s\" "
							"(%s:%d): outputs may not nest; let one task declare the directory, or move the file",
						   t->opts->file, t->line, path, t->name, buf_str(&parent), outer->name, outer->opts->file,
						   outer->line);
					buf_free(&parent);
					return -1;
				}
			}
		}
	}
	buf_free(&parent);
	return 0;
}

static void index_job(void *ctx, size_t i)
{
	IndexJob *job = ctx;
	if (i == 0) {
		job->rc[0] = index_names(job->g, &job->err[0]);
		index_output_roots(job->g);
	} else {
		job->rc[1] = index_outputs(job->g, &job->err[1]);
	}
}

enum { INDEX_ON_TWO_THREADS = 20000 }; /* tasks: below, a thread's start costs more than it saves */

int graph_index(Graph *g, Buf *err)
{
	if (g->indexed)
		return 0;
	tindex_free(&g->by_name);
	tindex_free(&g->by_output);
	strmap_free(&g->output_roots);
	g->output_root_any = 0;
	g->nfew_roots = 0;
	g->by_output.outputs = 1;
	g->outputs_forgotten = 0;
	IndexJob job = {.g = g};
	parallel_for(2, 1, g->ntasks >= INDEX_ON_TWO_THREADS ? 2 : 1, index_job, &job);
	int rc = 0;
	for (int i = 0; i < 2 && !rc; i++) /* a name declared twice is said first, as always */
		if (job.rc[i] != 0) {
			buf_puts(err, buf_str(&job.err[i]));
			rc = -1;
		}
	buf_free(&job.err[0]);
	buf_free(&job.err[1]);
	if (rc == 0)
		g->indexed = 1;
	return rc;
}
