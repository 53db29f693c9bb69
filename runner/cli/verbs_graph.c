/* verbs_graph.c — the verbs that show the recipe's graph without running it: kiln list
 * (tasks with dependencies, resources and tags) and kiln graph (Graphviz dot, filled by
 * what run would do; --patterns: a grid drawn as its name pattern). */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int verb_list(Options *o, int argc, char **argv)
{
	(void)argc, (void)argv;
	Graph *g = load_graph(o, new_graph());
	for (int i = 0; i < g->ntasks; i++) {
		Task *t = g->tasks[i];
		if (!t->needed)
			continue;
		printf("%s", t->name);
		if (t->ndeps) {
			printf("  deps:");
			for (int j = 0; j < t->ndeps; j++)
				printf("%s%s", j ? "," : " ", t->deps[j]->name);
		}
		printf("  cpus: %d", t->opts->cpus);
		if (t->opts->mem_mib)
			printf("  mem: %lldM", t->opts->mem_mib);
		if (t->opts->gpus)
			printf("  gpus: %d", t->opts->gpus);
		if (t->opts->timeout_sec > 0)
			printf("  timeout: %gs", t->opts->timeout_sec);
		if (t->opts->retries)
			printf("  retries: %d", t->opts->retries);
		if (t->ntags) {
			printf("  tags:");
			for (int j = 0; j < t->ntags; j++)
				printf(" %s=%s", t->tags[j].key, task_tag_value(t, j));
		}
		printf("\n");
	}
	graph_free(g);
	return 0;
}

static void dot_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '\n') { /* dot's own line break */
			fputs("\\n", stdout);
			continue;
		}
		if (*s == '"' || *s == '\\')
			putchar('\\');
		putchar(*s);
	}
	putchar('"');
}

/* What run would do with a task, as a node's fill. */
enum NodeState { NODE_UP_TO_DATE, NODE_RESTORE, NODE_RUN, NODE_FAILED, NODE_STATES };
static const char *const node_fill[NODE_STATES] = {"#c7e9c0", "#c6dbef", "#fdd0a2", "#fcae91"};
static const char *const node_word[NODE_STATES] = {"up to date", "restore", "run", "failed"};

typedef struct {
	Cache *c;
	unsigned char *state; /* per task index */
} Verdicts;

static int note_state(void *ctx, const Task *t, enum Verdict v, const char *reason)
{
	(void)reason;
	Verdicts *vs = ctx;
	vs->state[t->index] = v == VERDICT_UP_TO_DATE ? NODE_UP_TO_DATE
			      : v == VERDICT_RESTORED ? NODE_RESTORE
			      : cache_last_attempt_failed(vs->c, t->name) ? NODE_FAILED : NODE_RUN;
	return 0;
}

/* Where t was declared: the tasks of one task{} (a grid's loop body), map{} or plot{} line
 * are one pattern, as a Snakemake rule is one node of its --rulegraph. malloc'd. */
static char *site_of(const Task *t)
{
	if (t->more->shard && !task_is_runner(t))
		return xasprintf("map %s", t->more->shard->map);
	return t->opts->file ? xasprintf("%s:%d", t->opts->file, t->line) : xasprintf("task %s", t->name);
}

/* The part of path that starts at component k (0-based), its length in *n; NULL if none. */
static const char *component(const char *path, int k, size_t *n)
{
	for (; k > 0 && path; k--)
		path = strchr(path, '/') ? strchr(path, '/') + 1 : NULL;
	if (!path)
		return NULL;
	*n = strcspn(path, "/");
	return path;
}

/* label gets a pattern's name: the components its tasks share, and where they differ the
 * tag whose values they are ({dataset}), or {item} for a map's, else *. */
static void merge_name(Buf *label, Task **tasks, int n)
{
	const Task *first = tasks[0];
	for (int k = 0;; k++) {
		size_t len;
		const char *part = component(first->name, k, &len);
		if (!part)
			break;
		int same = 1;
		for (int i = 1; i < n && same; i++) {
			size_t m;
			const char *other = component(tasks[i]->name, k, &m);
			same = other && m == len && !strncmp(other, part, len);
		}
		buf_puts(label, k ? "/" : "");
		if (same) {
			buf_printf(label, "%.*s", (int)len, part);
			continue;
		}
		const char *tag = first->more->shard && !task_is_runner(first) ? "item" : NULL;
		for (int j = 0; j < first->ntags && !tag; j++)
			if (strlen(task_tag_value(first, j)) == len && !strncmp(task_tag_value(first, j), part, len))
				tag = first->tags[j].key;
		buf_printf(label, tag ? "{%s}" : "*", tag);
	}
}

int verb_graph(Options *o, int argc, char **argv)
{
	(void)argc, (void)argv;
	Graph *g = new_graph();
	Cache *c = open_cache(o, g, 1);
	load_graph_with(o, g, c);
	Verdicts vs = {c, xcalloc((size_t)g->ntasks + 1, 1)};
	cache_plan(c, g, note_state, &vs);
	/* a node per task, or per pattern: node[i] is task i's node, named names[node[i]] */
	int *node = xcalloc((size_t)g->ntasks + 1, sizeof *node), nnodes = 0;
	char **names = xcalloc((size_t)g->ntasks + 1, sizeof *names);
	int(*counts)[NODE_STATES] = xcalloc((size_t)g->ntasks + 1, sizeof *counts);
	int *gpus = xcalloc((size_t)g->ntasks + 1, sizeof *gpus);
	StrMap index = {0};
	for (int i = 0; i < g->ntasks; i++) {
		Task *t = g->tasks[i];
		if (!t->needed || task_is_runner(t))
			continue;
		char *name = o->patterns ? site_of(t) : xstrdup(t->name);
		intptr_t found = (intptr_t)strmap_get(&index, name); /* a node's number + 1 */
		if (found) {
			node[i] = (int)found - 1;
			free(name);
		} else {
			node[i] = nnodes;
			names[nnodes++] = name;
			strmap_put(&index, name, (void *)(intptr_t)nnodes);
		}
		counts[node[i]][vs.state[i]]++;
		gpus[node[i]] |= t->opts->gpus > 0;
	}
	/* each node's tasks, in order, for its label */
	int *start = xcalloc((size_t)nnodes + 2, sizeof *start), *fill = xcalloc((size_t)nnodes + 1, sizeof *fill);
	Task **members = xcalloc((size_t)g->ntasks + 1, sizeof *members);
	for (int i = 0; i < g->ntasks; i++)
		if (g->tasks[i]->needed && !task_is_runner(g->tasks[i]))
			start[node[i] + 1]++;
	for (int k = 0; k < nnodes; k++)
		start[k + 1] += start[k];
	for (int i = 0; i < g->ntasks; i++)
		if (g->tasks[i]->needed && !task_is_runner(g->tasks[i]))
			members[start[node[i]] + fill[node[i]]++] = g->tasks[i];
	printf("digraph kiln {\n  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];\n");
	for (int k = 0; k < nnodes; k++) {
		int total = 0, worst = NODE_UP_TO_DATE;
		for (int s = 0; s < NODE_STATES; s++)
			if (counts[k][s])
				total += counts[k][s], worst = s;
		Buf label = {0};
		merge_name(&label, members + start[k], total);
		if (total > 1) { /* a pattern: how many, and how many in each state */
			buf_printf(&label, " ×%d\n", total);
			for (int s = 0, first = 1; s < NODE_STATES; s++)
				if (counts[k][s]) {
					buf_printf(&label, "%s%d %s", first ? "" : ", ", counts[k][s], node_word[s]);
					first = 0;
				}
		}
		printf("  ");
		dot_string(names[k]); /* the task's name; a pattern's declaration site */
		printf(" [label=");
		dot_string(buf_str(&label));
		printf(", fillcolor=\"%s\"%s];\n", node_fill[worst], gpus[k] ? ", color=darkgreen, penwidth=2" : "");
		buf_free(&label);
	}
	StrMap edges = {0}; /* a pattern's edges drawn once */
	for (int i = 0; i < g->ntasks; i++) {
		Task *t = g->tasks[i];
		if (!t->needed || task_is_runner(t))
			continue;
		for (int j = 0; j < t->ndeps; j++) {
			if (task_is_runner(t->deps[j]) || !t->deps[j]->needed)
				continue;
			char edge[48];
			snprintf(edge, sizeof edge, "%d>%d", node[t->deps[j]->index], node[i]);
			if (node[t->deps[j]->index] == node[i] || strmap_get(&edges, edge))
				continue;
			strmap_put(&edges, xstrdup(edge), xstrdup("")); /* the map keeps its keys */
			printf("  ");
			dot_string(names[node[t->deps[j]->index]]);
			printf(" -> ");
			dot_string(names[node[i]]);
			printf(";\n");
		}
	}
	printf("  subgraph cluster_legend { label=\"\"; style=invis;\n");
	for (int s = 0; s < NODE_STATES; s++)
		printf("    legend%d [label=\"%s\", fillcolor=\"%s\", fontsize=10];\n", s, node_word[s], node_fill[s]);
	printf("  }\n}\n");
	strmap_free(&index);
	strmap_free_owned(&edges);
	for (int k = 0; k < nnodes; k++)
		free(names[k]);
	free(names);
	free(start);
	free(fill);
	free(members);
	free(node);
	free(counts);
	free(gpus);
	free(vs.state);
	cache_close(c);
	graph_free(g);
	return 0;
}
