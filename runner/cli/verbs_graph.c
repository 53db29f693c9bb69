/* verbs_graph.c — the verbs that show the recipe's graph without running it: kiln list
 * (tasks with dependencies, resources and tags) and kiln graph (Graphviz dot). */
#define _GNU_SOURCE
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
		printf("  cpus: %d", t->cpus);
		if (t->mem_mib)
			printf("  mem: %lldM", t->mem_mib);
		if (t->gpus)
			printf("  gpus: %d", t->gpus);
		if (t->opts->timeout_sec > 0)
			printf("  timeout: %gs", t->opts->timeout_sec);
		if (t->retries)
			printf("  retries: %d", t->retries);
		if (t->ntags) {
			printf("  tags:");
			for (int j = 0; j < t->ntags; j++)
				printf(" %s=%s", t->tags[j].key, t->tags[j].value);
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
		if (*s == '"' || *s == '\\')
			putchar('\\');
		putchar(*s);
	}
	putchar('"');
}

int verb_graph(Options *o, int argc, char **argv)
{
	(void)argc, (void)argv;
	Graph *g = load_graph(o, new_graph());
	printf("digraph kiln {\n  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n");
	for (int i = 0; i < g->ntasks; i++) {
		Task *t = g->tasks[i];
		if (!t->needed)
			continue;
		printf("  ");
		dot_string(t->name);
		printf("%s;\n", t->gpus ? " [color=darkgreen, penwidth=2]" : "");
		for (int j = 0; j < t->ndeps; j++) {
			printf("  ");
			dot_string(t->deps[j]->name);
			printf(" -> ");
			dot_string(t->name);
			printf(";\n");
		}
	}
	printf("}\n");
	graph_free(g);
	return 0;
}
