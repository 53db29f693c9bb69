/* lmap.c — map{}: one task per item, run in batches by one process per shard.
 *
 *   map { name = "caption", items = names, shards = 8 | "gpus",
 *         input = "images/{item}.png", output = "captions/{item}.txt",
 *         run = { "python3", "caption.py", "--items", "{items}" }, gpus = 1, ... }
 *
 * Each item becomes the task "<name>/<item>" through task{} itself (so every field is
 * checked the same way): its inputs are the map's inputs and its own input, its output
 * its own, its command the map's (so an edited command re-runs every item) and its tags
 * the map's plus item = <item>. Items go to shards round-robin (sizes differ by at most
 * one). Each shard gets a runner task "<name>:shard-<k>" holding the command and the
 * resources (its GPU lease lasts for all of its items); the group task "<name>" depends
 * on every item and is what map{} returns. */
#define _GNU_SOURCE
#include <lauxlib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../base/os.h"
#include "lkiln_internal.h"

static const char *const map_fields[] = {"name", "items", "shards", "input", "output", "run", "inputs", "deps", "env",
					 "cpus", "mem", "gpus", "gpu_mem", "timeout", "retries", "retry_on", "tags",
					 "gpu_wait", "gpu_wait_then", "executor", "cwd", "host", "hosts", "slurm",
					 "atomic_outputs", "kill_grace", "stop_signal", "shell", NULL};
/* fields each runner takes from the map (the command, the resources, where it runs) */
static const char *const runner_fields[] = {"run", "env", "cpus", "mem", "gpus", "gpu_mem", "timeout", "retries",
					    "retry_on", "gpu_wait", "gpu_wait_then", "executor", "cwd", "host", "hosts", "slurm",
					    "kill_grace", "stop_signal", "shell", NULL};

/* pattern with every {item} replaced by item, into b (emptied first) */
static const char *expand_into(Buf *b, const char *pattern, const char *item)
{
	buf_reset(b);
	const char *p = pattern;
	for (const char *at; (at = strstr(p, "{item}")); p = at + 6) { /* the text between, whole */
		buf_put(b, p, (size_t)(at - p));
		buf_puts(b, item);
	}
	buf_puts(b, p);
	return buf_str(b);
}

/* the same, pushed on the Lua stack */
static void push_expanded(lua_State *L, const char *pattern, const char *item)
{
	Buf b = {0};
	lua_pushstring(L, expand_into(&b, pattern, item));
	buf_free(&b);
}

/* Calls task{} with the table on top of the stack; returns its Task. Its errors get the
 * map{} call's file:line (task{} called from C has none of its own). */
static Task *declare(lua_State *L)
{
	lua_getfield(L, LUA_REGISTRYINDEX, LK_TASK_FUNCTION); /* kiln's, whatever the global is now */
	lua_insert(L, -2);
	if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
		luaL_where(L, 1);
		lua_insert(L, -2);
		lua_pushliteral(L, "map{}: ");
		lua_insert(L, -2);
		lua_concat(L, 3);
		lua_error(L);
	}
	Task *t = lk_task_of(L, -1);
	lua_pop(L, 1);
	return t;
}

static void copy_field(lua_State *L, int from, const char *field)
{
	lua_getfield(L, from, field);
	lua_setfield(L, -2, field);
}

/* the same, written straight into the arena (a buffer each would cost a million items a
 * malloc and a free apiece) */
static const char *expand_item(Graph *g, const char *pattern, const char *item)
{
	size_t n = strlen(pattern), item_len = strlen(item);
	for (const char *at = pattern; (at = strstr(at, "{item}")); at += 6)
		n += item_len - 6;
	char *copy = arena_chars(&g->arena, n + 1), *to = copy;
	const char *p = pattern;
	for (const char *at; (at = strstr(p, "{item}")); p = at + 6) {
		memcpy(to, p, (size_t)(at - p));
		to += at - p;
		memcpy(to, item, item_len);
		to += item_len;
	}
	strcpy(to, p);
	return copy;
}

/* Whether the run value at idx has a placeholder ({out}, {in}, ...: anything in braces). */
static int run_has_placeholders(lua_State *L, int idx)
{
	if (lua_type(L, idx) == LUA_TSTRING)
		return strchr(lua_tostring(L, idx), '{') != NULL;
	if (lua_type(L, idx) != LUA_TTABLE)
		return 1; /* task{} reports it */
	int found = 0;
	for (lua_Integer j = 1, len = (lua_Integer)lua_rawlen(L, idx); j <= len && !found; j++) {
		lua_rawgeti(L, idx, j);
		found = lua_type(L, -1) == LUA_TSTRING && strchr(lua_tostring(L, -1), '{');
		lua_pop(L, 1);
	}
	return found;
}

/* The table task{} gets for one item (map table at index 1): the map's command, env and
 * deps, its inputs then the item's own, the item's output, the map's tags plus item. */
static void push_item_table(lua_State *L, const char *name, const char *input, const char *output, const char *item)
{
	lua_newtable(L);
	lua_pushfstring(L, "%s/%s", name, item);
	lua_setfield(L, -2, "name");
	copy_field(L, 1, "run");
	copy_field(L, 1, "env");
	copy_field(L, 1, "deps");
	copy_field(L, 1, "cwd");
	lua_newtable(L); /* inputs: the map's, then the item's own */
	int n = 0;
	if (lua_getfield(L, 1, "inputs") == LUA_TTABLE) {
		for (lua_Integer j = 1, len = (lua_Integer)lua_rawlen(L, -1); j <= len; j++) {
			lua_rawgeti(L, -1, j);
			lua_rawseti(L, -3, ++n);
		}
	} else if (!lua_isnil(L, -1)) {
		lua_pushvalue(L, -1);
		lua_rawseti(L, -3, ++n);
	}
	lua_pop(L, 1);
	if (input) {
		push_expanded(L, input, item);
		lua_rawseti(L, -2, ++n);
	}
	lua_setfield(L, -2, "inputs");
	lua_newtable(L);
	push_expanded(L, output, item);
	lua_rawseti(L, -2, 1);
	lua_setfield(L, -2, "outputs");
	lua_newtable(L); /* tags: the map's and the item */
	if (lua_getfield(L, 1, "tags") == LUA_TTABLE) {
		lua_pushnil(L);
		while (lua_next(L, -2)) {
			lua_pushvalue(L, -2);
			lua_insert(L, -2);
			lua_settable(L, -5);
		}
	}
	lua_pop(L, 1);
	lua_pushstring(L, item);
	lua_setfield(L, -2, "item");
	lua_setfield(L, -2, "tags");
}

/* Raises for an item whose task's name (MAP/ITEM) is no valid name, naming the item. */
static void bad_item_name(lua_State *L, const char *task_name)
{
	const char *slash = strchr(task_name, '/'); /* lua_pushfstring knows no precision: the map's name apart */
	const char *map = lua_pushlstring(L, task_name, (size_t)(slash - task_name));
	luaL_error(L, "map{} \"%s\": item \"%s\" cannot name its task (\"%s\"): items use letters, digits and "
		   "_-./:=+, with '/' between parts (map an index or a cleaned name, and find the file from it)",
		   map, slash + 1, task_name);
}

/* map{}'s items after the first: a copy of proto (the first item, declared through task{}
 * and so checked field by field) with its own name, output, own input (input, or NULL:
 * none), the tags every copy shares (proto's with the item left out: task_tag_value), and,
 * when run_idx is a stack index (the map's run, which names paths through placeholders),
 * its command expanded for its paths; 0 keeps proto's command. The arrays every item has
 * alike (env, deps, options) are proto's, shared. */
static Task *lk_task_like(lua_State *L, Graph *g, const Task *proto, const char *name, const char *output,
			  const char *input, KeyValue *tags, int run_idx)
{
	Task *t = graph_new_task(g);
	*t = *proto; /* shares what every item has alike: the map's inputs, env, deps, options */
	t->name = name;
	if (!lk_valid_task_name(name))
		bad_item_name(L, name);
	lk_context(L)->declaring = name;
	const char **out = arena_ptrs(&g->arena, 1);
	out[0] = graph_path_is_normal(g, output) ? output : graph_norm_path(g, output);
	lk_check_confined(L, out[0], "outputs", 1);
	t->outputs = out;
	t->noutputs = 1;
	if (input) { /* the map's inputs (proto's, expanded once), then its own */
		const char **in = arena_ptrs(&g->arena, (size_t)proto->ninputs);
		memcpy(in, proto->inputs, (size_t)(proto->ninputs - 1) * sizeof *in);
		in[proto->ninputs - 1] = graph_path_is_normal(g, input) ? input : graph_norm_path(g, input);
		lk_check_confined(L, in[proto->ninputs - 1], "inputs", 0);
		t->inputs = in;
	}
	t->tags = tags;
	if (run_idx) { /* the command names this item's paths: expanded for it */
		task_set_argv(t, NULL);
		lk_parse_run(L, g, t, run_idx);
	}
	lk_context(L)->declaring = NULL;
	graph_add_task(g, t);
	return t;
}

/* Item i (from 1) of the items list at idx as text: a Lua string in place (the list holds
 * it while map{} runs, and no Lua code runs meanwhile), anything else (a number; a string
 * with a NUL byte, for its error) through lk_value_string. Valid until map{} returns. */
static const char *item_at(lua_State *L, Graph *g, int idx, lua_Integer i)
{
	lua_rawgeti(L, idx, i);
	size_t len;
	const char *item = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
	if (!item || memchr(item, 0, len))
		item = lk_value_string(L, g, -1, "items", 0);
	lua_pop(L, 1);
	return item;
}

/* The runner holds the resources, for all of its items: an item's own opts ask for none
 * (shared by every item alike: a copy of the first is so already). */
static void asks_nothing(Graph *g, Task *t)
{
	if (!t->opts->cpus && !t->opts->gpus && !t->opts->retries)
		return;
	TaskOpts scratch = *t->opts;
	scratch.cpus = 0, scratch.gpus = 0, scratch.retries = 0;
	t->opts = &scratch;
	graph_share_opts(g, t); /* never left pointing at scratch: an arena copy when new */
}

int l_map(lua_State *L)
{
	RecipeContext *ctx = lk_context(L);
	Graph *g = ctx->g;
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	lk_check_fields(L, "map{}", map_fields);
	if (lua_getfield(L, 1, "name") != LUA_TSTRING)
		luaL_error(L, "map{}: field 'name' is required and must be a string");
	const char *name = lk_value_string(L, g, -1, "name", 0);
	lua_pop(L, 1);
	if (lua_getfield(L, 1, "items") != LUA_TTABLE)
		luaL_error(L, "map{} \"%s\": field 'items' (a list of strings, e.g. from glob()) is required", name);
	/* the list stays at index 2, read item by item below: a million items are not copied first */
	lua_Integer nlisted = (lua_Integer)lua_rawlen(L, 2);
	if (nlisted > INT_MAX / 2)
		luaL_error(L, "map{} \"%s\": %lld items is more than one map takes (split it)", name, (long long)nlisted);
	int nitems = (int)nlisted;
	if (lua_getfield(L, 1, "output") != LUA_TSTRING || !strstr(lua_tostring(L, -1), "{item}"))
		luaL_error(L, "map{} \"%s\": field 'output' (each item's output, with {item}: \"out/{item}.txt\") is required",
			   name);
	const char *output = lk_value_string(L, g, -1, "output", 0);
	lua_pop(L, 1);
	const char *input = NULL;
	if (lua_getfield(L, 1, "input") != LUA_TNIL) {
		input = lk_value_string(L, g, -1, "input", 0);
		if (!strstr(input, "{item}"))
			luaL_error(L, "map{} \"%s\": 'input' names each item's own input with {item}, got \"%s\"", name, input);
	}
	lua_pop(L, 1);
	if (lua_getfield(L, 1, "run") == LUA_TNIL)
		luaL_error(L, "map{} \"%s\": field 'run' (the command each shard runs on its items: {items}) is required", name);
	lua_pop(L, 1);
	int shards = 1;
	int type = lua_getfield(L, 1, "shards");
	if (type == LUA_TSTRING && !strcmp(lua_tostring(L, -1), "gpus"))
		shards = lk_gpus_known(ctx) > 0 ? lk_gpus_known(ctx) : os_cpu_count(); /* CPU workers without GPUs */
	else if (type != LUA_TNIL && (!lua_isinteger(L, -1) || (shards = (int)lua_tointeger(L, -1)) < 1 || shards > 4096))
		luaL_error(L, "map{} \"%s\": shards must be a count from 1 to 4096 or \"gpus\"", name);
	lua_pop(L, 1);
	if (shards > nitems)
		shards = nitems > 0 ? nitems : 1; /* no empty shards */
	type = lua_getfield(L, 1, "atomic_outputs");
	if (type != LUA_TNIL && type != LUA_TBOOLEAN)
		luaL_error(L, "map{} \"%s\": atomic_outputs is true (the command writes each output under another name, "
			   "then renames it into place) or false", name);
	int atomic_outputs = lua_toboolean(L, -1);
	lua_pop(L, 1);

	MapShard **made = arena_alloc(&g->arena, (size_t)shards * sizeof *made);
	for (int k = 0; k < shards; k++) {
		MapShard *s = arena_alloc(&g->arena, sizeof *s);
		memset(s, 0, sizeof *s);
		s->map = name;
		s->atomic_outputs = atomic_outputs;
		s->index = k + 1;
		s->count = shards;
		lua_newtable(L);
		lua_pushfstring(L, "%s:shard-%d", name, k + 1);
		lua_setfield(L, -2, "name");
		for (int f = 0; runner_fields[f]; f++)
			copy_field(L, 1, runner_fields[f]);
		s->runner = declare(L);
		graph_task_more(g, s->runner)->shard = s;
		s->id = g->nshards;
		g->shards = xrealloc(g->shards, (size_t)(g->nshards + 1) * sizeof *g->shards);
		g->shards[g->nshards++] = s;
		made[k] = s;
	}
	/* The first item is declared through task{} (every field checked as task{} checks it);
	 * the others are copies of it with their own name, paths, tag and command (lk_task_like):
	 * a million items cost a million small C copies, not a million Lua tables. Items whose
	 * paths would glob take task{} each. */
	int run_idx = 0;
	lua_getfield(L, 1, "run");
	if (run_has_placeholders(L, lua_gettop(L)))
		run_idx = lua_gettop(L);
	else
		lua_pop(L, 1);
	const Task *proto = NULL;
	KeyValue *copy_tags = NULL; /* proto's, the item's value left out: what its copies share */
	Task **group_deps = arena_ptrs(&g->arena, (size_t)nitems);
	/* per shard, what its items copied from proto share: proto's env and deps, the shard */
	TaskMore **shard_more = arena_ptrs(&g->arena, (size_t)shards);
	memset(shard_more, 0, (size_t)shards * sizeof *shard_more);
	size_t name_len = strlen(name);
	int first = g->ntasks; /* of the items: shard k's are first + k, first + k + shards, ... */
	for (int k = 0; k < shards; k++)
		made[k]->first = first + k;
	for (int i = 0; i < nitems; i++) {
		Task *t;
		const char *item = item_at(L, g, 2, i + 1);
		int plain = !strpbrk(item, "*?[") && (!input || !strpbrk(input, "*?["));
		if (proto && plain) {
			size_t item_len = strlen(item);
			char *tname = arena_chars(&g->arena, name_len + item_len + 2);
			memcpy(tname, name, name_len);
			tname[name_len] = '/';
			memcpy(tname + name_len + 1, item, item_len + 1);
			if (!copy_tags) { /* its tag item is the end of its name: the item's text is kept once */
				copy_tags = arena_alloc8(&g->arena, (size_t)proto->ntags * sizeof *copy_tags);
				for (int k = 0; k < proto->ntags; k++)
					copy_tags[k] = (KeyValue){proto->tags[k].key,
								  strcmp(proto->tags[k].key, "item") ? proto->tags[k].value : NULL};
			}
			t = lk_task_like(L, g, proto, tname, expand_item(g, output, item),
					 input ? expand_item(g, input, item) : NULL, copy_tags, run_idx);
		} else {
			char *tname = xasprintf("%s/%s", name, item);
			int valid = lk_valid_task_name(tname);
			if (!valid) {
				lua_pushstring(L, tname); /* the message's copy, freed with the state */
				free(tname);
				bad_item_name(L, lua_tostring(L, -1));
			}
			free(tname);
			push_item_table(L, name, input, output, item);
			t = declare(L);
			if (plain && !proto)
				proto = t;
		}
		MapShard *s = made[i % shards];
		if (proto && t != proto && t->more == proto->more) { /* a copy of proto: its shard's */
			if (!shard_more[i % shards]) {
				shard_more[i % shards] = arena_alloc8(&g->arena, sizeof **shard_more);
				*shard_more[i % shards] = *t->more;
				shard_more[i % shards]->shard = s;
				shard_more[i % shards]->shared = 1;
			}
			t->more = shard_more[i % shards];
		} else {
			graph_task_more(g, t)->shard = s;
		}
		asks_nothing(g, t);
		if (t->index != first + i)
			luaL_error(L, "map{}: internal: item %d is not where its shard looks for it", i + 1);
		s->nitems++;
		group_deps[i] = t;
	}
	if (run_idx)
		lua_pop(L, 1);
	lua_newtable(L);
	lua_pushstring(L, name);
	lua_setfield(L, -2, "name");
	Task *group = declare(L);
	TaskMore *more = graph_task_more(g, group);
	more->dep_tasks = group_deps; /* the items themselves: no million names to look up */
	more->ndep_tasks = nitems;
	lk_push_task_value(L, group); /* the group task's value is map{}'s */
	return 1;
}
