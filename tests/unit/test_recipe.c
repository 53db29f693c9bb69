/* test_recipe.c — loading Lua recipes: fields, grid{} expansion order, params{} with
 * typed overrides, placeholders, and error messages with file:line. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../runner/recipe/logmetrics.h"
#include "../../runner/recipe/recipe.h"
#include "check.h"

/* log_progress: the last match whose captures are whole numbers counts; a bar redrawn with \r
 * is matched like lines are; no total known is no reading. */
static void log_progress_readings(void)
{
	long long done = -1, total = -1;
	const char *bar = "\r 10%|#  | 1/10 [00:01<00:09]\r 20%|## | 2/10 [00:02<00:08]\r 30%|###| 3/10 [00:03";
	CHECK(log_progress_last(bar, strlen(bar), "(%d+)/(%d+) %[", 0, &done, &total) == 1 && done == 3 && total == 10);
	const char *epochs = "Epoch: [0] Loss 0.9\nEpoch: [1] Loss 0.7\nEpoch: [x] Loss\nTest: Acc@1 3.5\n";
	CHECK(log_progress_last(epochs, strlen(epochs), "Epoch: %[(%w+)%]", 90, &done, &total) == 1 && done == 1 &&
	      total == 90);
	CHECK(log_progress_last("a/3 b/4", 7, "(%a+)/(%d+)", 0, &done, &total) == 0); /* no count */
	CHECK(log_progress_last("3/0 5/-1", 8, "(%d+)/(%-?%d+)", 0, &done, &total) == 0);
	CHECK(log_progress_last("", 0, "(%d+)/(%d+)", 0, &done, &total) == 0);
	Buf err = {0};
	CHECK(log_progress_check("(%d+)/(%d+)", 0, &err) == 0 && log_progress_check("Epoch (%d+)", 30, &err) == 0);
	CHECK(log_progress_check("Epoch (%d+)", 0, &err) == -1);
	CHECK_CONTAINS(buf_str(&err), "needs two captures");
	buf_free(&err);
}

static int load(const char *text, char **words, int nwords, Graph **out, Buf *err)
{
	char path[] = "/tmp/kiln-test-recipe-XXXXXX.lua";
	int fd = mkstemps(path, 4);
	if (write(fd, text, strlen(text)) < 0)
		return -1;
	close(fd);
	ParamOverrides ov = {0};
	char *rest[8];
	params_split(words, nwords, &ov, rest);
	*out = graph_new("/tmp");
	buf_reset(err);
	RecipeLoad lo = {.params = &ov};
	int rc = recipe_load(*out, path, &lo, err);
	params_free(&ov);
	unlink(path);
	return rc;
}

int main(void)
{
	Buf err = {0};
	Graph *g;
	log_progress_readings();
	CHECK(load("local P = params { batch = 64, name = 'base', fast = false }\n"
		   "for c in grid { model = {'m1', 'm2'}, dataset = {'d1', 'd2', 'd3'} } do\n"
		   "  task { name = 'e/' .. c.dataset .. '/' .. c.model, outputs = {'o/' .. c.dataset .. c.model},\n"
		   "         run = {'prog', '--batch', P.batch, '--out', '{out}', tostring(P.fast), P.name}, tags = c,\n"
		   "         gpus = 1, mem = '2G', timeout = '1h', retries = 2, env = {A = 1} }\n"
		   "end\n",
		   (char *[]){"batch=32", "fast=true", "name=x y"}, 3, &g, &err) == 0);
	CHECK(g->ntasks == 6);
	/* axes in name order, the last varying fastest: dataset d1 with m1, m2, then d2 ... */
	CHECK_STR(g->tasks[0]->name, "e/d1/m1");
	CHECK_STR(g->tasks[1]->name, "e/d1/m2");
	CHECK_STR(g->tasks[5]->name, "e/d3/m2");
	Task *t = g->tasks[0];
	CHECK(task_argc(t) == 7);
	CHECK_STR(task_argv(t)[2], "32");
	CHECK_STR(task_argv(t)[4], "o/d1m1");
	CHECK_STR(task_argv(t)[5], "true");
	CHECK_STR(task_argv(t)[6], "x y");
	CHECK(t->opts->gpus == 1 && t->opts->mem_mib == 2048 && t->opts->timeout_sec == 3600 && t->opts->retries == 2);
	CHECK(t->ntags == 2);
	CHECK_STR(t->tags[0].key, "dataset");
	CHECK_STR(t->more->env[0].value, "1");
	/* tasks declared alike share their options; one declared otherwise has its own, and a
	 * task whose options change afterwards takes a copy without touching the others' */
	CHECK(g->tasks[5]->opts == t->opts);
	TaskOpts *own = graph_task_opts(g, g->tasks[1]);
	own->timeout_sec = 7;
	CHECK(t->opts->timeout_sec == 3600 && g->tasks[1]->opts->timeout_sec == 7 && g->tasks[2]->opts == t->opts);
	graph_free(g);
	CHECK(load("task { name = 'a', run = 'true', timeout = 5 }\ntask { name = 'b', run = 'true', timeout = 6 }\n"
		   "task { name = 'c', run = 'true', timeout = 5, executor = 'local' }\n"
		   "task { name = 'd', run = 'true', timeout = 5 }\ntask { name = 'e', run = 'true' }\n"
		   "task { name = 'f', run = 'true' }\n", NULL, 0, &g, &err) == 0);
	CHECK(g->tasks[0]->opts != g->tasks[1]->opts && g->tasks[0]->opts != g->tasks[2]->opts);
	CHECK(g->tasks[3]->opts == g->tasks[0]->opts && g->tasks[1]->opts->timeout_sec == 6);
	CHECK(g->tasks[4]->opts == g->tasks[5]->opts && g->tasks[4]->opts->timeout_sec == 0 && g->tasks[4]->opts->cpus == 1);
	CHECK(g->tasks[4]->line == 5 && g->tasks[5]->line == 6 && !strcmp(g->tasks[5]->opts->file, g->tasks[0]->opts->file));
	CHECK_STR(g->tasks[2]->opts->executor, "local");
	graph_free(g);

	/* tostring writes integers itself: the same text as Lua's own (a concatenation), and
	 * what has a __tostring (numbers too, given a metatable) still goes through it */
	CHECK(load("for _, v in ipairs({0, 7, -7, 10, 99, 100, -100, 123456789, math.maxinteger, math.mininteger,\n"
		   "                     1.5, -0.0, 1e100, 2^53, 3.0}) do\n"
		   "  assert(tostring(v) == v .. '', tostring(v) .. ' vs ' .. v)\n"
		   "end\n"
		   "assert(tostring(nil) == 'nil' and tostring(true) == 'true' and tostring('s') == 's')\n"
		   "assert(tostring(setmetatable({}, {__tostring = function() return 'meta' end})) == 'meta')\n"
		   "assert(not pcall(tostring))\n"
		   "if debug and debug.setmetatable then\n"
		   "  debug.setmetatable(0, {__tostring = function(n) return 'n' .. string.format('%d', n) end})\n"
		   "  assert(tostring(5) == 'n5', tostring(5))\n"
		   "  debug.setmetatable(0, nil)\n"
		   "end\n"
		   "task { name = 't' .. tostring(42), run = 'true' }\n", NULL, 0, &g, &err) == 0);
	CHECK_STR(g->tasks[0]->name, "t42");
	graph_free(g);

	CHECK(load("params { batch = 64 }\n", (char *[]){"batch=many"}, 1, &g, &err) == -1);
	CHECK_CONTAINS(buf_str(&err), "param batch=many: expected a number");
	graph_free(g);
	CHECK(load("params { batch = 64 }\n", (char *[]){"bacth=1"}, 1, &g, &err) == -1);
	CHECK_CONTAINS(buf_str(&err), "unknown param \"bacth\"");
	CHECK_CONTAINS(buf_str(&err), "declares: batch");
	graph_free(g);
	CHECK(load("\n\ntask { name = 'x', memory = 1 }\n", NULL, 0, &g, &err) == -1);
	CHECK_CONTAINS(buf_str(&err), ".lua:3: task{}: unknown field 'memory'");
	graph_free(g);
	CHECK(load("task { name = 'x', run = 'echo {out}' }\n", NULL, 0, &g, &err) == -1);
	CHECK_CONTAINS(buf_str(&err), "uses {out} but declares no outputs");
	graph_free(g);
	CHECK(load("task { name = 'bad name' }\n", NULL, 0, &g, &err) == -1);
	CHECK_CONTAINS(buf_str(&err), "invalid name");
	graph_free(g);
	CHECK(load("task { name = 'a', deps = {{}} }\n", NULL, 0, &g, &err) == -1);
	CHECK_CONTAINS(buf_str(&err), "entries must be task names or task values");
	graph_free(g);
	/* shell strings get quoted placeholders; awk braces stay as written */
	CHECK(load("task { name = 's', outputs = {'my file.txt'}, run = \"awk '{print}' x > {out}\" }\n", NULL, 0, &g,
		   &err) == 0);
	CHECK_STR(task_shell(g->tasks[0]), "awk '{print}' x > 'my file.txt'");
	graph_free(g);

	/* map{}: the first item goes through task{}, the others are copies of it; every item
	 * must come out as task{} would make it */
	CHECK(load("map { name = 'm', items = {'a', 'b', 'c'}, shards = 2, inputs = {'shared.txt'}, input = 'in/{item}.x',\n"
		   "      output = 'out/./{item}.y', run = {'prog', '--items', '{items}', '--name', '{name}'}, env = {E = 'v'},\n"
		   "      tags = {model = 'm1'} }\n", NULL, 0, &g, &err) == 0);
	if (err.len)
		fprintf(stderr, "%s\n", buf_str(&err));
	for (int i = 0; i < 3; i++) {
		const char *item = (const char *[]){"a", "b", "c"}[i];
		Task *it = NULL;
		for (int k = 0; k < g->ntasks; k++)
			if (g->tasks[k]->more->shard && !task_is_runner(g->tasks[k]) && !strcmp(task_tag(g->tasks[k], "item"), item))
				it = g->tasks[k];
		CHECK(it != NULL);
		if (!it)
			continue;
		char want[64];
		snprintf(want, sizeof want, "m/%s", item);
		CHECK_STR(it->name, want);
		CHECK(it->ninputs == 2 && !strcmp(it->inputs[0], "shared.txt"));
		snprintf(want, sizeof want, "in/%s.x", item);
		CHECK_STR(it->inputs[1], want);
		snprintf(want, sizeof want, "out/%s.y", item); /* normalised */
		CHECK(it->noutputs == 1 && !strcmp(it->outputs[0], want));
		CHECK(task_argc(it) == 5);
		CHECK_STR(task_argv(it)[2], "{items}");
		snprintf(want, sizeof want, "m/%s", item);
		CHECK_STR(task_argv(it)[4], want);
		CHECK(it->ntags == 2 && !strcmp(task_tag(it, "model"), "m1"));
		CHECK(it->more->nenv == 1 && !strcmp(it->more->env[0].key, "E"));
		CHECK(it->opts->cpus == 0 && it->opts->gpus == 0 && it->opts->retries == 0);
	}
	Task *group = graph_find(g, "m");
	CHECK(group == NULL); /* not indexed yet: find it by hand */
	for (int k = 0; k < g->ntasks; k++)
		if (!strcmp(g->tasks[k]->name, "m"))
			group = g->tasks[k];
	CHECK(group && group->more->ndep_tasks == 3 && !strcmp(group->more->dep_tasks[2]->name, "m/c"));
	graph_free(g);
	CHECK(load("map { name = 'm', items = {'a', 'b/../../x'}, output = 'o/{item}', run = 'true' }\n", NULL, 0, &g, &err) == -1);
	CHECK_CONTAINS(buf_str(&err), "item \"b/../../x\" cannot name its task");
	graph_free(g);
	/* items read from the list one by one: numbers are text, each item's shard is its own
	 * (round-robin), and anything else is an error naming the field */
	buf_reset(&err);
	CHECK(load("map { name = 'n', items = {7, 'x', 9}, shards = 2, output = 'o/{item}', run = 'true' }\n", NULL, 0, &g,
		   &err) == 0);
	int nums = 0;
	for (int k = 0; k < g->ntasks; k++) {
		Task *it = g->tasks[k];
		if (it->more->shard && !task_is_runner(it)) {
			const char *item = task_tag(it, "item");
			int want = !strcmp(item, "7") || !strcmp(item, "9") ? 1 : 2;
			nums += it->more->shard->index == want && !strcmp(it->name + 2, item);
		}
	}
	CHECK(nums == 3);
	graph_free(g);
	buf_reset(&err);
	CHECK(load("map { name = 'n', items = {'a', {}}, output = 'o/{item}', run = 'true' }\n", NULL, 0, &g, &err) == -1);
	CHECK_CONTAINS(buf_str(&err), "items");
	graph_free(g);
	buf_free(&err);
	return check_exit();
}
