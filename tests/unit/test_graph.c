/* test_graph.c — graph building and validation without Lua: duplicate names and
 * outputs, unknown deps, cycles as paths, implicit edges from inputs, selection, order. */
#include <stdlib.h>

#include "../../base/graph.h"
#include "check.h"

static Task *add(Graph *g, const char *name, const char *deps, const char *inputs, const char *outputs, int line)
{
	Task *t = graph_new_task(g);
	t->name = name;
	graph_task_opts(g, t)->file = "r.lua";
	t->line = line;
	const char **lists[3] = {NULL, NULL, NULL};
	int *counts[3] = {&graph_task_more(g, t)->ndep_names, &t->ninputs, &t->noutputs};
	const char *src[3] = {deps, inputs, outputs};
	for (int k = 0; k < 3; k++) {
		lists[k] = arena_alloc(&g->arena, 16 * sizeof(char *));
		for (const char *p = src[k]; p && *p;) {
			const char *end = strchr(p, ' ');
			size_t n = end ? (size_t)(end - p) : strlen(p);
			lists[k][(*counts[k])++] = arena_strndup(&g->arena, p, n);
			p += n + (end != NULL);
		}
	}
	t->more->dep_names = lists[0];
	t->inputs = lists[1];
	t->outputs = lists[2];
	graph_add_task(g, t);
	return t;
}

int main(void)
{
	Buf err = {0};
	Graph *g = graph_new("/nonexistent-workspace");
	Task *a = add(g, "a", NULL, NULL, "a.out", 1);
	add(g, "b", "a", NULL, "b.out", 2);
	add(g, "c", NULL, "a.out b.out", "c.out", 3);
	CHECK(graph_resolve(g, NULL, NULL, &err) == 0);
	Task *c = graph_find(g, "c");
	CHECK(c->ndeps == 2); /* edges from inputs to producers */
	CHECK(a->ndependents == 2);
	Task *order[8];
	CHECK(graph_select(g, NULL, 0, &err) == 3);
	CHECK(graph_topo_order(g, order) == 3);
	CHECK_STR(order[0]->name, "a");
	CHECK_STR(order[1]->name, "b");
	CHECK_STR(order[2]->name, "c");
	int n = 0;
	Task **same = graph_topo_tasks(g, &n); /* declared in order, all needed: no copy */
	CHECK(same == g->tasks && n == 3);
	graph_topo_free(g, same);
	char *targets[] = {"b"};
	CHECK(graph_select(g, targets, 1, &err) == 2);
	CHECK(!c->needed);
	Task **some = graph_topo_tasks(g, &n); /* c is not needed: a list of a and b */
	CHECK(some != g->tasks && n == 2);
	CHECK_STR(some[0]->name, "a");
	CHECK_STR(some[1]->name, "b");
	graph_topo_free(g, some);
	char *globbed[] = {"[bc]"};
	CHECK(graph_select(g, globbed, 1, &err) == 3);
	char *by_output[] = {"./b.out"};
	CHECK(graph_select(g, by_output, 1, &err) == 2);
	char *nothing[] = {"zzz"};
	CHECK(graph_select(g, nothing, 1, &err) == -1);
	CHECK_CONTAINS(buf_str(&err), "no task or output matches \"zzz\"");
	graph_free(g);

	/* a dependency declared after its dependent: the order is walked, not the declaration */
	g = graph_new("/nonexistent-workspace");
	add(g, "late", NULL, "first.out", "late.out", 1);
	add(g, "first", NULL, NULL, "first.out", 2);
	CHECK(graph_resolve(g, NULL, NULL, &err) == 0);
	CHECK(graph_select(g, NULL, 0, &err) == 2);
	Task **walked = graph_topo_tasks(g, &n);
	CHECK(walked != g->tasks && n == 2);
	CHECK_STR(walked[0]->name, "first");
	CHECK_STR(walked[1]->name, "late");
	graph_topo_free(g, walked);
	graph_free(g);

	/* duplicate names and outputs are refused when the graph is indexed, naming both sites */
	g = graph_new("/nonexistent-workspace");
	add(g, "x", NULL, NULL, "o", 1);
	add(g, "x", NULL, NULL, NULL, 2);
	buf_reset(&err);
	CHECK(graph_resolve(g, NULL, NULL, &err) == -1);
	CHECK_STR(buf_str(&err), "r.lua:2: task \"x\" is declared twice (first at r.lua:1)");
	graph_free(g);
	g = graph_new("/nonexistent-workspace");
	add(g, "x", NULL, NULL, "o p", 1);
	add(g, "y", NULL, NULL, "q o", 3);
	buf_reset(&err);
	CHECK(graph_resolve(g, NULL, NULL, &err) == -1);
	CHECK_STR(buf_str(&err), "r.lua:3: tasks \"y\" and \"x\" (r.lua:1) both declare output \"o\"");
	graph_free(g);
	g = graph_new("/nonexistent-workspace");
	add(g, "x", NULL, NULL, "o o", 1); /* one task naming an output twice is harmless */
	buf_reset(&err);
	CHECK(graph_resolve(g, NULL, NULL, &err) == 0);
	graph_free(g);

	/* a task with hundreds of outputs: the output index tells which one past the 255th
	 * by looking, so its readers still find it as their producer, and a clash is still one */
	for (int clash = 0; clash < 2; clash++) {
		g = graph_new("/nonexistent-workspace");
		Task *many = add(g, "many", NULL, NULL, NULL, 1);
		many->outputs = arena_ptrs(&g->arena, 300);
		for (many->noutputs = 0; many->noutputs < 300; many->noutputs++) {
			char path[16];
			snprintf(path, sizeof path, "out/%d", many->noutputs);
			many->outputs[many->noutputs] = arena_strdup(&g->arena, path);
		}
		Task *reader = add(g, "reader", NULL, "out/280 out/3 out/299", NULL, 2);
		if (clash)
			add(g, "other", NULL, NULL, "out/290", 3);
		buf_reset(&err);
		CHECK(graph_resolve(g, NULL, NULL, &err) == (clash ? -1 : 0));
		if (clash)
			CHECK_STR(buf_str(&err), "r.lua:3: tasks \"other\" and \"many\" (r.lua:1) both declare output \"out/290\"");
		else
			CHECK(reader->ndeps == 1 && task_input_producer(reader, 0) == many &&
			      task_input_producer(reader, 1) == many && task_input_producer(reader, 2) == many);
		graph_free(g);
	}

	/* a graph big enough to be indexed on two threads says the same: a name declared twice
	 * before an output declared twice (both are there), then the output alone, then an
	 * output inside another */
	static char big[25000][16], outs[25000][16];
	for (int pass = 0; pass < 3; pass++) {
		g = graph_new("/nonexistent-workspace");
		for (int i = 0; i < 25000; i++) {
			snprintf(big[i], sizeof big[i], "n%d", i);
			snprintf(outs[i], sizeof outs[i], "out/%d", i);
			add(g, big[i], NULL, NULL, outs[i], i + 1);
		}
		if (pass == 0)
			add(g, "n24999", NULL, NULL, "out/7", 30001);
		else if (pass == 1)
			add(g, "late", NULL, NULL, "out/7", 30002);
		else
			add(g, "nest", NULL, NULL, "out/8/inner", 30003);
		buf_reset(&err);
		CHECK(graph_resolve(g, NULL, NULL, &err) == -1);
		CHECK_STR(buf_str(&err), pass == 0 ? "r.lua:30001: task \"n24999\" is declared twice (first at r.lua:25000)"
				       : pass == 1 ? "r.lua:30002: tasks \"late\" and \"n7\" (r.lua:8) both declare output \"out/7\""
						   : "r.lua:30003: output \"out/8/inner\" of task \"nest\" lies inside output \"out/8\" of "
						     "task \"n8\" (r.lua:9): outputs may not nest; let one task declare the directory, or "
						     "move the file");
		graph_free(g);
	}

	/* unknown dependency, with file:line */
	g = graph_new("/nonexistent-workspace");
	add(g, "x", "ghost", NULL, NULL, 7);
	buf_reset(&err);
	CHECK(graph_resolve(g, NULL, NULL, &err) == -1);
	CHECK_STR(buf_str(&err), "r.lua:7: task \"x\" depends on unknown task \"ghost\"");
	graph_free(g);

	/* cycle printed as a path */
	g = graph_new("/nonexistent-workspace");
	add(g, "p", "r", NULL, NULL, 1);
	add(g, "q", "p", NULL, NULL, 2);
	add(g, "r", "q", NULL, NULL, 3);
	buf_reset(&err);
	CHECK(graph_resolve(g, NULL, NULL, &err) == -1);
	CHECK_STR(buf_str(&err), "r.lua:1: dependency cycle: p -> r -> q -> p");
	graph_free(g);

	/* missing input that nobody produces */
	g = graph_new("/nonexistent-workspace");
	add(g, "m", NULL, "definitely/not/here.csv", NULL, 4);
	buf_reset(&err);
	CHECK(graph_resolve(g, NULL, NULL, &err) == -1);
	CHECK_CONTAINS(buf_str(&err), "r.lua:4: task \"m\": input \"definitely/not/here.csv\" does not exist");
	graph_free(g);

	/* a long chain resolves and orders without deep recursion */
	g = graph_new("/nonexistent-workspace");
	static char names[20000][12];
	for (int i = 0; i < 20000; i++) {
		snprintf(names[i], sizeof names[i], "t%d", i);
		add(g, names[i], i ? names[i - 1] : NULL, NULL, NULL, i + 1);
	}
	buf_reset(&err);
	CHECK(graph_resolve(g, NULL, NULL, &err) == 0);
	graph_select(g, NULL, 0, &err);
	Task **all = malloc(20000 * sizeof *all);
	CHECK(graph_topo_order(g, all) == 20000);
	CHECK_STR(all[0]->name, "t0");
	CHECK_STR(all[19999]->name, "t19999");
	free(all);
	graph_free(g);
	buf_free(&err);
	return check_exit();
}
