/* graph.c — building and validating the task graph: tasks and their shared options, edge
 * resolution (the indexes it looks names and outputs up in: taskindex.c), cycle detection
 * (printed as a path), target selection, topological order. */
#define _GNU_SOURCE
#include "graph.h"

#include <fnmatch.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

Graph *graph_new(const char *workspace)
{
	Graph *g = xcalloc(1, sizeof *g);
	g->workspace = arena_strdup(&g->arena, workspace);
	g->default_opts.gpu_wait_sec = -1;
	g->default_opts.kill_grace_sec = -1;
	g->default_opts.cpus = 1;
	return g;
}

const void *graph_block(const Graph *g, const char *name)
{
	for (int i = 0; i < g->nblocks; i++)
		if (!strcmp(g->blocks[i].name, name))
			return g->blocks[i].value;
	return NULL;
}

void graph_set_block(Graph *g, const char *name, const void *value)
{
	for (int i = 0; i < g->nblocks; i++)
		if (!strcmp(g->blocks[i].name, name)) {
			g->blocks[i].value = value;
			return;
		}
	if (g->nblocks == GRAPH_BLOCKS)
		fatal("more than %d executor blocks in one recipe", GRAPH_BLOCKS);
	g->blocks[g->nblocks].name = arena_strdup(&g->arena, name);
	g->blocks[g->nblocks++].value = value;
}

void graph_free(Graph *g)
{
	if (!g)
		return;
	free(g->tasks);
	free(g->params);
	free(g->shards);
	tindex_free(&g->by_name);
	tindex_free(&g->by_output);
	strmap_free(&g->output_roots);
	arena_free(&g->arena);
	free(g);
}

Task *graph_new_task(Graph *g)
{
	Task *t = arena_alloc8(&g->arena, sizeof *t); /* 8-aligned: 16 would waste 8 a task */
	memset(t, 0, sizeof *t);
	t->opts = &g->default_opts;
	t->more = &g->no_more;
	return t;
}

TaskMore *graph_task_more(Graph *g, Task *t)
{
	if (t->more != &g->no_more && !t->more->shared)
		return t->more;
	TaskMore *own = arena_alloc8(&g->arena, sizeof *own);
	*own = *t->more;
	own->shared = 0;
	t->more = own;
	return own;
}

TaskOpts *graph_task_opts(Graph *g, Task *t)
{
	TaskOpts *own = arena_alloc(&g->arena, sizeof *own);
	*own = *t->opts;
	t->opts = own;
	return own;
}

static int same_strings(const char **a, const char **b, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(a[i], b[i]) != 0)
			return 0;
	return 1;
}

static int same_key_values(const KeyValue *a, const KeyValue *b, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(a[i].key, b[i].key) || strcmp(a[i].value, b[i].value))
			return 0;
	return 1;
}

static int same_text(const char *a, const char *b) { return a == b || (a && b && !strcmp(a, b)); }

/* Equal by content: a grid's cells each declare their own table of the same flags. */
static int same_slurm(const TaskSlurm *a, const TaskSlurm *b)
{
	if (a == b)
		return 1;
	if (!a || !b || a->nextra != b->nextra)
		return 0;
	for (int i = 0; i < a->nextra; i++)
		if (strcmp(a->extra[i], b->extra[i]))
			return 0;
	return same_text(a->partition, b->partition) && same_text(a->account, b->account) && same_text(a->qos, b->qos) &&
	       same_text(a->constraint, b->constraint) && same_text(a->gpu_type, b->gpu_type);
}

static int same_opts(const TaskOpts *a, const TaskOpts *b)
{
	return a->file == b->file && a->mem_mib == b->mem_mib && a->cpus == b->cpus && a->gpus == b->gpus &&
	       a->retries == b->retries && a->plot == b->plot && a->spec == b->spec && a->dep_patterns == b->dep_patterns &&
	       a->ndep_patterns == b->ndep_patterns && a->ports == b->ports && a->threads == b->threads && a->stays == b->stays && a->optional == b->optional &&
	       a->nhosts == b->nhosts && same_strings(a->hosts, b->hosts, a->nhosts) && a->retry_on == b->retry_on &&
	       a->gpu_mem_mib == b->gpu_mem_mib && a->timeout_sec == b->timeout_sec && a->kill_grace_sec == b->kill_grace_sec && a->stop_signal == b->stop_signal && a->gpu_wait_sec == b->gpu_wait_sec &&
	       a->gpu_wait_fail == b->gpu_wait_fail && a->torchrun == b->torchrun && a->resume == b->resume &&
	       same_text(a->cwd, b->cwd) && same_text(a->shell, b->shell) && same_slurm(a->slurm, b->slurm) &&
	       a->rank_nodes == b->rank_nodes && a->nlog_metrics == b->nlog_metrics && same_key_values(a->log_metrics, b->log_metrics, a->nlog_metrics) &&
	       same_text(a->log_progress, b->log_progress) && a->log_progress_total == b->log_progress_total &&
	       same_text(a->executor, b->executor);
}

void graph_share_opts(Graph *g, Task *t)
{
	if (same_opts(t->opts, &g->default_opts)) {
		t->opts = &g->default_opts;
		return;
	}
	for (int i = 0; i < RECENT_OPTS && g->recent_opts[i]; i++)
		if (same_opts(t->opts, g->recent_opts[i])) {
			t->opts = g->recent_opts[i];
			return;
		}
	graph_task_opts(g, t);
	memmove(g->recent_opts + 1, g->recent_opts, (RECENT_OPTS - 1) * sizeof *g->recent_opts);
	g->recent_opts[0] = t->opts;
}

void graph_add_task(Graph *g, Task *t)
{
	if (g->ntasks == g->cap) {
		g->cap = g->cap ? g->cap * 2 : 256;
		g->tasks = xrealloc(g->tasks, (size_t)g->cap * sizeof *g->tasks);
	}
	t->index = g->ntasks;
	g->tasks[g->ntasks++] = t;
	g->indexed = 0;
	if (g->on_task_added)
		g->on_task_added(g->on_task_added_ctx, t);
}

Task *graph_find(const Graph *g, const char *name) { return tindex_get(&g->by_name, g->tasks, name); }

void graph_forget_outputs(Graph *g)
{
	tindex_free(&g->by_output);
	strmap_free(&g->output_roots);
	g->output_root_any = 0;
	g->nfew_roots = 0;
	g->outputs_forgotten = 1;
	g->indexed = 0; /* graph_index makes them again */
}

/* Whether the root_len bytes at path are the first component of some output. */
static int is_output_root(const Graph *g, const char *path, size_t root_len)
{
	if (g->output_root_any)
		return 1;
	if (g->nfew_roots >= 0) { /* a handful: compared in place */
		for (int i = 0; i < g->nfew_roots; i++)
			if (g->few_roots[i][0] == path[0] && !strncmp(g->few_roots[i], path, root_len) && !g->few_roots[i][root_len])
				return 1;
		return 0;
	}
	char root[256];
	if (root_len >= sizeof root) /* no root is this long ("" stands for them: output_root_any) */
		return 0;
	memcpy(root, path, root_len);
	root[root_len] = 0;
	return strmap_get(&g->output_roots, root) != NULL;
}

Task *graph_producer(const Graph *g, const char *path)
{
	const TaskIndex *ix = &g->by_output;
	if (g->outputs_forgotten)
		fatal("internal: a producer looked up after graph_forget_outputs");
	/* Every output's first component is a root: a path whose first component is not (most
	 * inputs: source files) is no output and lies in none, found without a probe of the
	 * big index. */
	const char *slash = strchr(path, '/');
	size_t root_len = slash ? (size_t)(slash - path) : strlen(path);
	if (!is_output_root(g, path, root_len))
		return NULL;
	Task *t = tindex_get(ix, g->tasks, path);
	if (t || !slash)
		return t;
	/* an input inside a directory another task outputs (work/data/x/f.npy under work/data/x) */
	char buf[4096];
	size_t n = strlen(path);
	if (n >= sizeof buf)
		return NULL;
	memcpy(buf, path, n + 1);
	for (char *cut = strrchr(buf, '/'); cut; cut = strrchr(buf, '/')) {
		*cut = 0;
		if ((t = tindex_get(ix, g->tasks, buf)))
			return t;
	}
	return NULL;
}

int graph_path_is_normal(const Graph *g, const char *p)
{
	size_t wl = strlen(g->workspace);
	if (!*p || (p[0] == '/' && strncmp(p, g->workspace, wl) == 0 && (p[wl] == '/' || !p[wl])))
		return 0;
	for (const char *c = p; *c;) { /* each component: not empty, ".", ".." */
		const char *end = strchr(c, '/');
		size_t n = end ? (size_t)(end - c) : strlen(c);
		if ((n == 0 && c != p) || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return 0;
		if (!end)
			return 1;
		if (!end[1])
			return 0; /* a trailing slash */
		c = end + 1;
	}
	return 1;
}

const char *graph_norm_path(Graph *g, const char *path)
{
	size_t wl = strlen(g->workspace);
	if (path[0] == '/' && strncmp(path, g->workspace, wl) == 0 && (path[wl] == '/' || !path[wl]))
		path += wl + (path[wl] == '/');
	int absolute = path[0] == '/';
	/* split into components, dropping "." and empty ones and folding ".." */
	size_t n = strlen(path);
	char *out = arena_chars(&g->arena, n + 2);
	size_t len = 0;
	if (absolute)
		out[len++] = '/';
	const char *p = path;
	while (*p) {
		while (*p == '/')
			p++;
		const char *start = p;
		while (*p && *p != '/')
			p++;
		size_t cl = (size_t)(p - start);
		if (cl == 0 || (cl == 1 && start[0] == '.'))
			continue;
		if (cl == 2 && start[0] == '.' && start[1] == '.') {
			size_t base = absolute ? 1 : 0;
			char *prev = len > base ? memrchr(out + base, '/', len - base) : NULL;
			int prev_is_dotdot = len >= base + 2 && !strncmp(out + len - 2, "..", 2) &&
					     (len == base + 2 || out[len - 3] == '/');
			if (len > base && !prev_is_dotdot) {
				len = prev ? (size_t)(prev - out) : base;
				continue;
			}
			if (absolute)
				continue; /* "/.." is "/" */
		}
		if (len > (absolute ? 1u : 0u))
			out[len++] = '/';
		memcpy(out + len, start, cl);
		len += cl;
	}
	if (len == 0)
		out[len++] = '.';
	out[len] = 0;
	return out;
}

/* One task's dependencies while graph_resolve finds them: in order, each once (mark holds,
 * per task index, the index + 1 of the task whose list it was last added to). */
typedef struct {
	Task **deps;
	int n, cap;
	int *mark;
	Task **producers; /* the task's inputs' producers, while they are found */
	int producers_cap;
} EdgeList;

static void add_edge(EdgeList *e, const Task *from_dependent, Task *dep)
{
	if (e->mark[dep->index] == from_dependent->index + 1)
		return;
	e->mark[dep->index] = from_dependent->index + 1;
	if (e->n == e->cap)
		e->deps = xrealloc(e->deps, (size_t)(e->cap = e->cap ? 2 * e->cap : 64) * sizeof *e->deps);
	e->deps[e->n++] = dep;
}

/* Gives every task its dependents, in task order: counted, then filled, one allocation
 * each, but for tasks with one dependent: those of one dependent (a map's items, their
 * group) share a one-entry list. */
static void link_dependents(Graph *g)
{
	for (int i = 0; i < g->ntasks; i++)
		for (int j = 0; j < g->tasks[i]->ndeps; j++)
			g->tasks[i]->deps[j]->ndependents++;
	for (int i = 0; i < g->ntasks; i++) {
		Task *t = g->tasks[i];
		t->dependents = t->ndependents > 1 ? arena_ptrs(&g->arena, (size_t)t->ndependents) : NULL;
		t->ndependents = 0;
	}
	Task **one = NULL; /* the one-entry list made last */
	for (int i = 0; i < g->ntasks; i++)
		for (int j = 0; j < g->tasks[i]->ndeps; j++) {
			Task *d = g->tasks[i]->deps[j];
			if (d->dependents) {
				d->dependents[d->ndependents++] = g->tasks[i];
				continue;
			}
			if (!one || one[0] != g->tasks[i]) /* no list: its one dependent is this */
				(one = arena_ptrs(&g->arena, 1))[0] = g->tasks[i];
			d->dependents = one;
			d->ndependents = 1;
		}
}

/* The one depth-first walk over dependency edges (iterative: chains of 100k tasks must not
 * overflow the C stack). Appends tasks to out (when given) in post-order, so dependencies
 * come first and declaration order is kept where it can be; with only_needed, starts only
 * from needed tasks. On a cycle writes "file:line: dependency cycle: a -> b -> a" into err
 * and returns -1; else the count. colour: 0 new, 1 on the stack, 2 finished. */
static int walk_deps(const Graph *g, int only_needed, Task **out, Buf *err)
{
	int n = g->ntasks, count = 0, found = 0;
	char *colour = xcalloc((size_t)n + 1, 1);
	Task **stack = xmalloc(((size_t)n + 1) * sizeof *stack);
	int *next_edge = xmalloc(((size_t)n + 1) * sizeof *next_edge);
	for (int root = 0; root < n && !found; root++) {
		if (colour[root] || (only_needed && !g->tasks[root]->needed))
			continue;
		int sp = 0;
		stack[sp] = g->tasks[root];
		next_edge[sp] = 0;
		colour[root] = 1;
		while (sp >= 0 && !found) {
			Task *t = stack[sp];
			if (next_edge[sp] == t->ndeps) {
				colour[t->index] = 2;
				if (out)
					out[count] = t;
				count++;
				sp--;
				continue;
			}
			Task *d = t->deps[next_edge[sp]++];
			if (colour[d->index] == 1) {
				int from = sp;
				while (stack[from] != d)
					from--;
				Task *first = stack[from];
				if (err) {
					buf_printf(err, "%s:%d: dependency cycle: ", first->opts->file, first->line);
					for (int i = from; i <= sp; i++)
						buf_printf(err, "%s -> ", stack[i]->name);
					buf_puts(err, d->name);
				}
				found = 1;
			} else if (colour[d->index] == 0) {
				colour[d->index] = 1;
				stack[++sp] = d;
				next_edge[sp] = 0;
			}
		}
	}
	free(colour);
	free(stack);
	free(next_edge);
	return found ? -1 : count;
}

static int find_cycle(Graph *g, Buf *err) { return walk_deps(g, 0, NULL, err) < 0 ? -1 : 0; }

void graph_reach(Task *root, int downstream, int (*visit)(void *ctx, Task *t), void *ctx)
{
	size_t cap = 64, sp = 0;
	Task **stack = xmalloc(cap * sizeof *stack);
	stack[sp++] = root;
	while (sp) {
		Task *t = stack[--sp];
		int n = downstream ? t->ndependents : t->ndeps;
		Task **next = downstream ? t->dependents : t->deps;
		for (int i = 0; i < n; i++) {
			if (!visit(ctx, next[i]))
				continue;
			if (sp == cap)
				stack = xrealloc(stack, (cap *= 2) * sizeof *stack);
			stack[sp++] = next[i];
		}
	}
	free(stack);
}

/* Checks that every input no task produces exists (through exists, or stat when NULL):
 * 0, or -1 with a message in err. */
static int check_sources(Graph *g, InputExists exists, void *exists_ctx, Buf *err)
{
	StrMap found = {0}; /* inputs already found on disk: a shared input is checked once */
	/* inputs found lately, by address: tasks that read one file (a dataset, a model) share
	 * its string, so a million of them ask about it once */
	enum { KNOWN = 256 };
	const char *known[KNOWN] = {0};
	int rc = 0;
	for (int i = 0; i < g->ntasks && !rc; i++) {
		Task *t = g->tasks[i];
		for (int j = 0; j < t->ninputs && !rc; j++) {
			struct stat st;
			const char **seen = &known[((uintptr_t)t->inputs[j] >> 3) % KNOWN];
			if (task_input_producer(t, j) || *seen == t->inputs[j] ||
			    (!exists && strmap_get(&found, t->inputs[j])))
				continue;
			if (exists ? !exists(exists_ctx, t, j) : stat(t->inputs[j], &st) != 0) {
				buf_printf(err, "%s:%d: task \"%s\": input \"%s\" does not exist and no task produces it",
					   t->opts->file, t->line, t->name, t->inputs[j]);
				rc = -1;
			}
			*seen = t->inputs[j];
			if (!exists) /* exists remembers its answers itself */
				strmap_put(&found, t->inputs[j], (void *)1);
		}
	}
	strmap_free(&found);
	return rc;
}

int graph_resolve(Graph *g, InputExists exists, void *exists_ctx, Buf *err)
{
	int rc = -1;
	if (graph_index(g, err) != 0)
		return -1;
	trace_mark("graph indexed");
	EdgeList e = {.mark = xcalloc((size_t)g->ntasks + 1, sizeof *e.mark)};
	for (int i = 0; i < g->ntasks; i++) { /* edges are made afresh (the old stay in the arena) */
		Task *t = g->tasks[i];
		t->deps = t->dependents = NULL;
		t->ndeps = t->ndependents = 0;
		t->has_producers = 0;
	}
	for (int i = 0; i < g->ntasks; i++) {
		Task *t = g->tasks[i];
		e.n = 0;
		for (int j = 0; j < t->more->ndep_names; j++) {
			Task *d = graph_find(g, t->more->dep_names[j]);
			if (!d) {
				buf_printf(err, "%s:%d: task \"%s\" depends on unknown task \"%s\"", t->opts->file, t->line,
					   t->name, t->more->dep_names[j]);
				goto out;
			}
			if (d == t) {
				buf_printf(err, "%s:%d: task \"%s\" depends on itself", t->opts->file, t->line, t->name);
				goto out;
			}
			add_edge(&e, t, d);
		}
		for (int j = 0; j < t->more->ndep_tasks; j++)
			add_edge(&e, t, t->more->dep_tasks[j]);
		for (int j = 0; j < t->opts->ndep_patterns; j++) {
			int matched = 0;
			for (int k = 0; k < g->ntasks; k++)
				if (g->tasks[k] != t && fnmatch(t->opts->dep_patterns[j], g->tasks[k]->name, 0) == 0) {
					add_edge(&e, t, g->tasks[k]);
					matched = 1;
				}
			if (!matched) {
				buf_printf(err, "%s:%d: task \"%s\": from = \"%s\" matches no task", t->opts->file, t->line, t->name,
					   t->opts->dep_patterns[j]);
				goto out;
			}
		}
		if (t->more->nexplicit_deps != e.n) /* most tasks have none, and share their TaskMore */
			graph_task_more(g, t)->nexplicit_deps = e.n;
		/* producers of inputs, per input, go after the deps (task_input_producer) */
		int produced = 0;
		if (t->ninputs > e.producers_cap)
			e.producers = xrealloc(e.producers, (size_t)(e.producers_cap = t->ninputs) * sizeof *e.producers);
		for (int j = 0; j < t->ninputs; j++) {
			Task *producer = graph_producer(g, t->inputs[j]);
			e.producers[j] = producer;
			produced |= producer != NULL;
			if (producer == t) {
				buf_printf(err, "%s:%d: task \"%s\" lists \"%s\" as both input and output", t->opts->file,
					   t->line, t->name, t->inputs[j]);
				goto out;
			}
			if (producer)
				add_edge(&e, t, producer);
		}
		t->ndeps = e.n;
		t->has_producers = (unsigned char)produced;
		if (produced) {
			t->deps = arena_ptrs(&g->arena, (size_t)(e.n + t->ninputs));
			memcpy(t->deps, e.deps, (size_t)e.n * sizeof *t->deps);
			memcpy(t->deps + e.n, e.producers, (size_t)t->ninputs * sizeof *t->deps);
		} else if (e.n && e.n == t->more->ndep_tasks && !memcmp(e.deps, t->more->dep_tasks, (size_t)e.n * sizeof *e.deps))
			t->deps = t->more->dep_tasks; /* those, no more: a million-item group's list is not copied */
		else if (e.n) {
			t->deps = arena_ptrs(&g->arena, (size_t)e.n);
			memcpy(t->deps, e.deps, (size_t)e.n * sizeof *t->deps);
		}
	}
	link_dependents(g);
	/* what asks for outputs now is rare (output-path targets index them again): a million
	 * outputs' index is not kept while the cache binds the tasks' files */
	graph_forget_outputs(g);
	rc = check_sources(g, exists, exists_ctx, err);
	trace_mark("edges and inputs found");
	if (rc == 0)
		rc = find_cycle(g, err);
out:
	free(e.deps);
	free(e.producers);
	free(e.mark);
	return rc;
}

static int newly_needed(void *ctx, Task *t)
{
	(void)ctx;
	if (t->needed)
		return 0;
	t->needed = 1;
	return 1;
}

static void mark_needed(Task *root)
{
	if (newly_needed(NULL, root))
		graph_reach(root, 0, newly_needed, NULL);
}

int graph_match(Graph *g, char **targets, int ntargets, void (*fn)(void *ctx, Task *t), void *ctx, Buf *err)
{
	for (int k = 0; k < ntargets; k++) {
		Task *exact = graph_find(g, targets[k]);
		if (exact) {
			fn(ctx, exact);
			continue;
		}
		int matched = 0;
		for (int i = 0; i < g->ntasks; i++)
			if (fnmatch(targets[k], g->tasks[i]->name, 0) == 0) {
				fn(ctx, g->tasks[i]);
				matched = 1;
			}
		if (!matched) {
			if (g->outputs_forgotten && graph_index(g, err) != 0) /* indexed again, for this */
				return -1;
			Task *producer = tindex_get(&g->by_output, g->tasks, graph_norm_path(g, targets[k]));
			if (producer) {
				fn(ctx, producer);
				continue;
			}
			buf_printf(err, "no task or output matches \"%s\" (see `kiln list`)", targets[k]);
			return -1;
		}
	}
	return 0;
}

static void select_one(void *ctx, Task *t)
{
	(void)ctx;
	mark_needed(t);
}

int graph_select(Graph *g, char **targets, int ntargets, Buf *err)
{
	for (int i = 0; i < g->ntasks; i++)
		g->tasks[i]->needed = ntargets == 0;
	if (graph_match(g, targets, ntargets, select_one, NULL, err) != 0)
		return -1;
	int count = 0;
	for (int i = 0; i < g->ntasks; i++)
		count += g->tasks[i]->needed;
	return count;
}

int graph_topo_order(const Graph *g, Task **out) { return walk_deps(g, 1, out, NULL); }

Task **graph_topo_tasks(const Graph *g, int *n)
{
	int in_order = 1;
	for (int i = 0; i < g->ntasks && in_order; i++) {
		const Task *t = g->tasks[i];
		in_order = t->needed;
		for (int j = 0; j < t->ndeps && in_order; j++)
			in_order = t->deps[j]->index < i;
	}
	if (in_order) { /* walk_deps would give just that */
		*n = g->ntasks;
		return g->tasks;
	}
	Task **order = xmalloc((size_t)g->ntasks * sizeof *order + 1);
	*n = graph_topo_order(g, order);
	return order;
}

void graph_topo_free(const Graph *g, Task **order)
{
	if (order != g->tasks)
		free(order);
}
