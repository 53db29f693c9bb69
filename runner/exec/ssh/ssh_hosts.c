/* ssh_hosts.c — the ssh executor's row of the table (exec.h's ExecutorKind) and its part of
 * the recipe: the hosts{} block (read into the graph as RecipeHosts), the tasks it claims
 * (those naming hosts) or refuses, and the check that every host a task names is declared. */
#define _GNU_SOURCE
#include <ctype.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../../base/hash.h"
#include "../../recipe/launch.h"
#include "../../recipe/lblock.h"
#include "../exec.h"
#include "ssh_internal.h"

/* "0-3,6" as "0,1,2,3,6" in the arena; NULL when it is not such a list. */
static const char *device_list(Graph *g, const char *s)
{
	Buf b = {0};
	while (*s) {
		char *end;
		long lo = strtol(s, &end, 10), hi = lo;
		if (end == s || lo < 0)
			goto bad;
		if (*end == '-') {
			const char *h = end + 1;
			hi = strtol(h, &end, 10);
			if (end == h || hi < lo || hi - lo > 1024)
				goto bad;
		}
		if (*end && *end != ',')
			goto bad;
		for (long i = lo; i <= hi; i++)
			buf_printf(&b, "%s%ld", b.len ? "," : "", i);
		s = *end ? end + 1 : end;
	}
	const char *out = b.len ? arena_strdup(&g->arena, buf_str(&b)) : NULL;
	buf_free(&b);
	return out;
bad:
	buf_free(&b);
	return NULL;
}

/* The workspace (kiln's working directory: -C went there first) as a host's workdir's owner,
 * and its name there, FOLDER-HASH: FOLDER its last part (characters a shell or a reader would
 * trip on as '_'), HASH 8 hex digits of its absolute path. The default workdir is
 * kiln-work/NAME, and "{workspace}" in a workdir hosts{} gives is NAME: each workspace has a
 * copy of its own on a host, as a host's first contact stops the jobs in its workdir that no
 * attempt of this workspace names, and a task of the same name in another workspace's copy
 * would be taken for a stale attempt of its own. */
static void workspace_identity(Graph *g, const char **owner, const char **tag, const char **name_there)
{
	char *cwd = getcwd(NULL, 0);
	const char *path = cwd ? cwd : ".";
	const char *folder = strrchr(path, '/') && strrchr(path, '/')[1] ? strrchr(path, '/') + 1 : "root";
	char name[64];
	snprintf(name, sizeof name, "%s", folder);
	for (char *c = name; *c; c++)
		if (!(isalnum((unsigned char)*c) || *c == '-' || *c == '_' || *c == '.'))
			*c = '_';
	char hex[33];
	hash_hex(hash_bytes(path, strlen(path)), hex);
	Buf b = {0};
	buf_printf(&b, "%s-%.8s", name, hex);
	*name_there = arena_strdup(&g->arena, buf_str(&b));
	*owner = arena_strdup(&g->arena, path);
	hex[8] = 0;
	*tag = arena_strdup(&g->arena, hex);
	buf_free(&b);
	free(cwd);
}

/* path with each "{workspace}" replaced by name, in the graph's arena. */
static const char *with_workspace(Graph *g, const char *path, const char *name)
{
	static const char mark[] = "{workspace}";
	if (!strstr(path, mark))
		return path;
	Buf b = {0};
	for (const char *p = path, *at; *p; p = at + sizeof mark - 1) {
		if (!(at = strstr(p, mark))) {
			buf_puts(&b, p);
			break;
		}
		buf_printf(&b, "%.*s%s", (int)(at - p), p, name);
	}
	const char *out = arena_strdup(&g->arena, buf_str(&b));
	buf_free(&b);
	return out;
}

static int compare_hosts(const void *a, const void *b)
{
	return strcmp(((const RecipeHost *)a)->name, ((const RecipeHost *)b)->name);
}

/* hosts{ v800 = { address = "user@v800", gpus = "0-3", cpus = 32, jobs = 8, mem = "256G",
 * workdir = "/data/kiln/{workspace}", ssh = {"-p", "2222"}, prelude = "..." }, ..., prelude = "..." }:
 * the servers the ssh executor uses; a prelude (shell text run before every job there) is
 * the host's own or the block's. A later hosts{} (or --hosts FILE) replaces an earlier one. */
static int hosts_read_block(lua_State *L)
{
	Graph *g = lk_block_graph(L);
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	lua_pushvalue(L, 1); /* 2: the block; 1 becomes each host's table in turn (lk_check_fields reads 1) */
	static const char *const fields[] = {"address", "workdir", "gpus", "cpus", "jobs", "mem", "ssh", "prelude", "reach", NULL};
	/* prelude = "...": every host's, unless a host says its own */
	const char *prelude = NULL;
	if (lua_getfield(L, 1, "prelude") != LUA_TNIL) {
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "hosts{}: prelude must be shell text like \"source ~/miniconda3/bin/activate training\", got %s",
				   luaL_typename(L, -1));
		prelude = lk_value_string(L, g, -1, "hosts{}: prelude", 0);
	}
	lua_pop(L, 1);
	const char *owner, *owner_tag, *workspace_name;
	workspace_identity(g, &owner, &owner_tag, &workspace_name);
	const char *default_workdir = with_workspace(g, "kiln-work/{workspace}", workspace_name);
	int n = 0, cap = 0;
	RecipeHost *hosts = NULL;
	lua_Debug ar;
	int line = lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) ? ar.currentline : 0;
	const char *file = lua_getstack(L, 1, &ar) && lua_getinfo(L, "S", &ar) ? arena_strdup(&g->arena, ar.short_src) : "";
	lua_pushnil(L);
	while (lua_next(L, 2)) {
		if (lua_type(L, -2) != LUA_TSTRING)
			luaL_error(L, "hosts{}: give each host a name: hosts { v800 = { address = \"user@v800\" } }");
		const char *name = lua_tostring(L, -2);
		if (!strcmp(name, "prelude")) { /* the block's default, read above */
			lua_pop(L, 1);
			continue;
		}
		if (!*name || strpbrk(name, " \t\n/:@,'\"\\$`"))
			luaL_error(L, "hosts{}: \"%s\" is not a usable host name (letters, digits, '-', '_' and '.')", name);
		if (!lua_istable(L, -1))
			luaL_error(L, "hosts{}: %s must be a table like { address = \"user@%s\" }, got %s", name, name,
				   luaL_typename(L, -1));
		lua_copy(L, -1, 1);
		char what[160];
		snprintf(what, sizeof what, "hosts{}: %s", name);
		unsigned has = lk_check_fields(L, what, fields);
		if (n == cap) { /* in the graph's arena: a recipe error below (a longjmp) leaks nothing */
			RecipeHost *more = arena_alloc(&g->arena, (size_t)(cap = cap ? 2 * cap : 4) * sizeof *hosts);
			if (n)
				memcpy(more, hosts, (size_t)n * sizeof *hosts);
			hosts = more;
		}
		RecipeHost *h = &hosts[n++];
		*h = (RecipeHost){.name = arena_strdup(&g->arena, name), .file = file, .line = line, .prelude = prelude};
		char field[200];
#define FIELD(f) (snprintf(field, sizeof field, "hosts{}: %s.%s", name, f), field)
		h->address = h->name;
		if (has & 1) {
			lua_getfield(L, 1, "address");
			h->address = lk_value_string(L, g, -1, FIELD("address"), 0);
			lua_pop(L, 1);
		}
		h->workdir = default_workdir;
		h->owner = owner;
		h->owner_tag = owner_tag;
		if (has & 2) {
			lua_getfield(L, 1, "workdir");
			h->workdir = with_workspace(g, lk_value_string(L, g, -1, FIELD("workdir"), 0), workspace_name);
			if (!*h->workdir || strchr(h->workdir, '\'') || strchr(h->workdir, '\n'))
				lk_field_error(L, FIELD("workdir"), "must be a directory path without quotes or newlines");
			lua_pop(L, 1);
		}
		if (has & 4) {
			lua_getfield(L, 1, "gpus");
			const char *list = lk_value_string(L, g, -1, FIELD("gpus"), 0);
			if (!(h->gpus = device_list(g, list)))
				lk_field_error(L, FIELD("gpus"), "must list device ids like \"0-3\" or \"0,1,3\", got \"%s\"", list);
			lua_pop(L, 1);
		}
		if (has & 8) {
			lua_getfield(L, 1, "cpus");
			h->cpus = (int)lk_integer_field(L, -1, FIELD("cpus"), 65536);
			lua_pop(L, 1);
		}
		if (has & 16) {
			lua_getfield(L, 1, "jobs");
			h->jobs = (int)lk_integer_field(L, -1, FIELD("jobs"), 65536);
			lua_pop(L, 1);
		}
		if (has & 32) {
			lua_getfield(L, 1, "mem");
			const char *m = lk_value_string(L, g, -1, FIELD("mem"), 0);
			if ((h->mem_mib = parse_size_mib(m)) <= 0)
				lk_field_error(L, FIELD("mem"), "must be a size like \"256G\", got \"%s\"", m);
			lua_pop(L, 1);
		}
		if (has & 64) {
			lua_getfield(L, 1, "ssh");
			h->ssh = lk_string_list(L, g, -1, FIELD("ssh"), &h->nssh, 0);
			lua_pop(L, 1);
		}
		if (has & 128) {
			lua_getfield(L, 1, "prelude");
			h->prelude = lk_value_string(L, g, -1, FIELD("prelude"), 0);
			lua_pop(L, 1);
		}
		if (has & 256) {
			lua_getfield(L, 1, "reach");
			h->reach = lk_string_list(L, g, -1, FIELD("reach"), &h->nreach, 0);
			lua_pop(L, 1);
		}
#undef FIELD
		lua_pop(L, 1);
	}
	if (n == 0)
		luaL_error(L, "hosts{}: no hosts: give one or more, like hosts { v800 = { address = \"user@v800\" } }");
	qsort(hosts, (size_t)n, sizeof *hosts, compare_hosts);
	RecipeHosts *block = arena_alloc(&g->arena, sizeof *block);
	block->hosts = hosts;
	block->n = n;
	graph_set_block(g, "hosts", block);
	for (int i = 0; i < n; i++) /* every host a reach list names is one of the block's */
		for (int k = 0; k < block->hosts[i].nreach; k++) {
			int known = 0;
			for (int j = 0; j < n && !known; j++)
				known = j != i && !strcmp(block->hosts[j].name, block->hosts[i].reach[k]);
			if (!known)
				luaL_error(L, "hosts{}: %s.reach names \"%s\", which is not another host of the block (it lists the "
					      "hosts %s copies to directly)", block->hosts[i].name, block->hosts[i].reach[k],
					   block->hosts[i].name);
		}
	return 0;
}

static int names_hosts(const Task *t) { return t->opts->nhosts > 0; }

static int hosts_declared(const Graph *g, Buf *err)
{
	const RecipeHosts *hosts = graph_block(g, "hosts");
	for (int i = 0; g->hosts_named && i < g->ntasks; i++) { /* every host a task names must be declared */
		const Task *t = g->tasks[i];
		for (int k = 0; k < t->opts->nhosts; k++) {
			int known = 0;
			for (int h = 0; hosts && h < hosts->n && !known; h++)
				known = !strcmp(hosts->hosts[h].name, t->opts->hosts[k]);
			if (!known) {
				buf_printf(err, "%s:%d: task \"%s\" names host \"%s\", but %s", t->opts->file, t->line, t->name,
					   t->opts->hosts[k],
					   hosts ? "hosts{} does not declare it" : "there is no hosts{} block (or --hosts FILE)");
				return -1;
			}
		}
	}
	return 0;
}

static int ssh_refuses(const Task *t, Buf *why)
{
	const char *what = exec_runs_kiln(t) && !launch_wraps(t) ? "runs kiln itself (@kiln), which reads the state here"
								   : NULL;
	if (what)
		buf_printf(why, "%s: give it executor = \"local\" (or \"slurm\")", what);
	else if (ssh_nodes(t) > SSH_MAX_NODES)
		buf_printf(why, "asks torchrun for %d nodes; a job spans at most %d ssh hosts", ssh_nodes(t), SSH_MAX_NODES);
	return why->len > 0;
}

static int hosts_capacity(const Graph *g, int *slots, int *gpus)
{
	const RecipeHosts *hosts = graph_block(g, "hosts");
	*slots = *gpus = 0;
	int known = 1;
	for (int i = 0; hosts && i < hosts->n; i++) {
		const RecipeHost *h = &hosts->hosts[i];
		int n = 0;
		for (const char *p = h->gpus; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
			n++;
		*gpus += n;
		int jobs = h->jobs ? h->jobs : h->cpus && h->gpus ? h->cpus + n : 0;
		known &= jobs > 0;
		*slots += jobs;
	}
	if (!known) /* one host's count is learned only on connecting: no bound from slots */
		*slots = 0;
	return hosts ? hosts->n : 0;
}

extern const ExecutorKind exec_ssh_kind;
const ExecutorKind exec_ssh_kind = {.name = "ssh", .about = "the servers of hosts{} (or --hosts FILE), reached by ssh",
				    .block = "hosts", .read_block = hosts_read_block, .claims = names_hosts,
				    .refuses = ssh_refuses, .check = hosts_declared, .plan_capacity = hosts_capacity,
				    .follow_log = ssh_follow_log, .make = exec_ssh_new};
