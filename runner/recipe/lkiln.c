/* lkiln.c — the Lua API of recipes: task{} turns a table into a graph Task, checking
 * every field, with the helpers every declaration uses (reading a table's fields is
 * lfields.c's, the values task{} returns ltaskvalue.c's); plot{}, external{}, slurm{}, glob() and params{} are in ldecl.c, map{} in
 * lmap.c, grid{} in recipe.c's prelude.
 * Errors go through luaL_error so they carry the recipe's file:line. */
#define _GNU_SOURCE
#include "lkiln.h"
#include "lkiln_internal.h"
#include "launch.h"
#include "logmetrics.h"
#include "torchrun.h"
#include "failure.h"

#include <glob.h>
#include <lauxlib.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static const char *const task_fields[] = {"name",    "deps",    "inputs",  "outputs", "run",
					  "env",     "cpus",    "mem",     "gpus",    "gpu_mem",
					  "timeout", "retries", "tags",    "metrics", "executor", "ports",
					  "torchrun", "retry_on", "gpu_wait", "gpu_wait_then", "host", "hosts", "stay", "resume", "cwd", "log_metrics", "ranks", "optional_outputs", "nnodes", "slurm", "log_progress", "kill_grace", "stop_signal", "shell", NULL};
enum { /* bits of check_fields' mask, in task_fields' order */
	F_NAME = 1 << 0, F_DEPS = 1 << 1, F_INPUTS = 1 << 2, F_OUTPUTS = 1 << 3, F_RUN = 1 << 4,
	F_ENV = 1 << 5, F_CPUS = 1 << 6, F_MEM = 1 << 7, F_GPUS = 1 << 8, F_GPU_MEM = 1 << 9,
	F_TIMEOUT = 1 << 10, F_RETRIES = 1 << 11, F_TAGS = 1 << 12, F_METRICS = 1 << 13, F_EXECUTOR = 1 << 14, F_PORTS = 1 << 15,
	F_TORCHRUN = 1 << 16, F_RETRY_ON = 1 << 17, F_GPU_WAIT = 1 << 18, F_GPU_WAIT_THEN = 1 << 19,
	F_HOST = 1 << 20, F_HOSTS = 1 << 21, F_STAY = 1 << 22, F_RESUME = 1 << 23, F_CWD = 1 << 24, F_LOG_METRICS = 1 << 25, F_RANKS = 1 << 26,
	F_OPTIONAL = 1 << 27, F_NNODES = 1 << 28, F_SLURM = 1 << 29, F_LOG_PROGRESS = 1 << 30,
};
/* beyond an int enum's bits: the mask is 64 bits wide */
#define F_KILL_GRACE ((uint64_t)1 << 31)
#define F_STOP_SIGNAL ((uint64_t)1 << 32)
#define F_SHELL ((uint64_t)1 << 33)

/* The state's extra space (lkiln_open; a coroutine starts with a copy): a pointer read,
 * where the closures' upvalue took 29 instructions, asked a dozen times a task{}. */
RecipeContext *lk_context(lua_State *L) { return *(RecipeContext **)lua_getextraspace(L); }

int lk_gpus_known(RecipeContext *ctx)
{
	if (ctx->gpus_known < 0)
		ctx->gpus_known = ctx->count_gpus ? ctx->count_gpus(ctx->count_gpus_ctx) : 0;
	return ctx->gpus_known;
}

Graph *lk_block_graph(lua_State *L)
{
	RecipeContext *ctx = lk_context(L);
	ctx->declaring = NULL;
	return ctx->g;
}

/* Raises unless name is one of the executors the load knows ("local" when none is given). */
static void check_executor_name(lua_State *L, const char *name)
{
	static const char *const local_only[] = {"local", NULL};
	const char *const *known = lk_context(L)->executors ? lk_context(L)->executors : local_only;
	Buf list = {0};
	for (int i = 0; known[i]; i++) {
		if (!strcmp(known[i], name)) {
			buf_free(&list);
			return;
		}
		buf_printf(&list, "%s\"%s\"", i == 0 ? "" : known[i + 1] ? ", " : " or ", known[i]);
	}
	char msg[256];
	snprintf(msg, sizeof msg, "%s", buf_str(&list));
	buf_free(&list);
	lk_field_error(L, "executor", "must be %s, got \"%s\"", msg, name);
}


/* A list field: one value or an array of values. deps also take task values. */
const char **lk_string_list(lua_State *L, Graph *g, int idx, const char *field, int *count, int allow_tasks)
{
	idx = lua_absindex(L, idx);
	if (lua_type(L, idx) != LUA_TTABLE) {
		const char **one = arena_ptrs(&g->arena, 1);
		const Task *t = allow_tasks ? lk_task_of(L, idx) : NULL;
		one[0] = t ? t->name : lk_value_string(L, g, idx, field, 0);
		*count = 1;
		return one;
	}
	/* the raw length: a list is read with raw gets, and a __len of 2^40 would ask the
	 * arena for terabytes */
	lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
	const char **list = arena_ptrs(&g->arena, (size_t)n); /* not NULL-terminated: *count says */
	for (lua_Integer i = 1; i <= n; i++) {
		lua_rawgeti(L, idx, i);
		const Task *t = allow_tasks ? lk_task_of(L, -1) : NULL;
		if (allow_tasks && !t && lua_type(L, -1) == LUA_TTABLE)
			lk_field_error(L, field, "entries must be task names or task values, got a table");
		list[i - 1] = t ? t->name : lk_value_string(L, g, -1, field, 0);
		lua_pop(L, 1);
	}
	*count = (int)n;
	return list;
}

/* A string->scalar table (env, tags) as KeyValue pairs sorted by key. */
static int compare_kv(const void *a, const void *b)
{
	return strcmp(((const KeyValue *)a)->key, ((const KeyValue *)b)->key);
}

static KeyValue *key_values(lua_State *L, Graph *g, int idx, const char *field, int *count)
{
	luaL_checktype(L, idx, LUA_TTABLE);
	int n = 0;
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		n++;
		lua_pop(L, 1);
	}
	KeyValue *kv = arena_alloc8(&g->arena, (size_t)(n + 1) * sizeof *kv);
	int i = 0;
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		if (lua_type(L, -2) != LUA_TSTRING)
			lk_field_error(L, field, "keys must be strings");
		kv[i].key = lk_value_string(L, g, -2, field, 0);
		kv[i].value = lk_value_string(L, g, -1, field, 1);
		i++;
		lua_pop(L, 1);
	}
	qsort(kv, (size_t)n, sizeof *kv, compare_kv);
	*count = n;
	return kv;
}

/* Upper bounds of numeric task fields: beyond them a value is a mistake, not a request. */
#define MAX_CPUS 65536
#define MAX_GPUS 64            /* a lease names at most this many devices */
#define MAX_RETRIES 1000
#define MAX_SIZE_MIB (1LL << 40) /* 1 EiB */
#define MAX_TIMEOUT_SEC (366.0 * 86400)
#define MAX_PORTS 16            /* ports.h's PORTS_MAX */

/* Field name of the table at 1 as seconds: a number, or a duration ("90s", "5m", "1h30m");
 * -1 for any other value (the caller says what it wants). */
static double field_seconds(lua_State *L, const char *name)
{
	int type = lua_getfield(L, 1, name);
	double sec = type == LUA_TNUMBER ? lua_tonumber(L, -1) : type == LUA_TSTRING ? parse_duration(lua_tostring(L, -1)) : -1;
	lua_pop(L, 1);
	return sec;
}

static long long size_field(lua_State *L, int idx, const char *field)
{
	if (lua_type(L, idx) == LUA_TNUMBER)
		return lk_integer_field(L, idx, field, MAX_SIZE_MIB);
	const char *s = luaL_tolstring(L, idx, NULL);
	long long v = lua_type(L, idx) == LUA_TSTRING ? parse_size_mib(s) : -1;
	if (v < 0 || v > MAX_SIZE_MIB)
		lk_field_error(L, field, "must be a size like \"512M\" or \"16G\" (or MiB as a number), got \"%s\"", s);
	lua_pop(L, 1);
	return v;
}

/* stop_signal of the table at 1: a signal's name, with or without "SIG". */
static int stop_signal_field(lua_State *L)
{
	static const struct {
		const char *name;
		int sig;
	} names[] = {{"TERM", SIGTERM}, {"INT", SIGINT}, {"HUP", SIGHUP}, {"QUIT", SIGQUIT}, {"USR1", SIGUSR1},
		     {"USR2", SIGUSR2}};
	lua_getfield(L, 1, "stop_signal");
	const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
	s += strncmp(s, "SIG", 3) ? 0 : 3;
	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		if (!strcmp(s, names[i].name)) {
			lua_pop(L, 1);
			return names[i].sig;
		}
	lk_field_error(L, "stop_signal", "must be one of \"TERM\" (the default), \"INT\", \"HUP\", \"QUIT\", \"USR1\" or "
					 "\"USR2\": the signal kiln stops the command with (a Ctrl-C, a timeout); \"INT\" for a "
					 "script that saves its state on KeyboardInterrupt");
	return 0;
}

/* The field of the table at 1 when present (an integer in [0, max], or with is_size a size
 * in MiB like "16G"), else dflt. */
static long long optional_number(lua_State *L, unsigned present, const char *field, int is_size, long long max,
				 long long dflt)
{
	if (!present)
		return dflt;
	lua_getfield(L, 1, field);
	long long v = is_size ? size_field(L, -1, field) : lk_integer_field(L, -1, field, max);
	lua_pop(L, 1);
	return v;
}

/* Records the recipe file and line of the call that declares t. */
void lk_declaration_site(lua_State *L, RecipeContext *ctx, Task *t)
{
	lua_Debug ar;
	int level = 1; /* the first Lua frame: map{} calls task{} from C */
	int found;
	while ((found = lua_getstack(L, level, &ar) && lua_getinfo(L, "Sl", &ar)) && ar.currentline < 0)
		level++;
	if (found) {
		if (!ctx->last_source || strcmp(ar.source, ctx->last_source)) {
			ctx->last_source = arena_strdup(&ctx->g->arena, ar.source);
			ctx->last_file = arena_strdup(&ctx->g->arena, ar.short_src);
		}
		t->opts->file = ctx->last_file;
		t->line = ar.currentline;
	} else {
		t->opts->file = "?";
	}
}

/* The bytes a task name may hold: 1 allowed, 2 allowed but part of a path's form ('/',
 * '.'; their placement is checked apart), 0 not. A table filled on first use (recipes load
 * on the main thread) and read-only after. */
static const unsigned char *name_bytes(void)
{
	static unsigned char ok[256];
	if (!ok['a'])
		for (const char *p = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:=+,"; *p; p++)
			ok[(unsigned char)*p] = *p == '/' || *p == '.' ? 2 : 1;
	return ok;
}

int lk_valid_task_name(const char *s)
{
	const unsigned char *ok = name_bytes();
	const char *p = s;
	unsigned seen = 0, k;
	while ((k = ok[(unsigned char)*p]))
		seen |= k, p++;
	if (*p || p == s)
		return 0;
	if (!(seen & 2)) /* no '/' and no '.': "t42" needs nothing more (a million tasks ask) */
		return 1;
	if (s[0] == '/' || p[-1] == '/' || strstr(s, "//"))
		return 0;
	return strcmp(s, ".") && strcmp(s, "..") && !strstr(s, "/../") && strncmp(s, "../", 3);
}

static int under(const char *path, const char *root)
{
	size_t n = strlen(root);
	return !strncmp(path, root, n) && (path[n] == '/' || !path[n] || (n && root[n - 1] == '/'));
}

/* Whether the existing part of workspace-relative path p resolves inside the workspace
 * (a symlinked parent could point anywhere). Parent directories are checked once. */
static int resolves_inside(RecipeContext *ctx, const char *p)
{
	const char *slash = strrchr(p, '/');
	if (!slash)
		return 1;
	size_t dlen = (size_t)(slash - p);
	const char *last = ctx->last_confined;
	if (last && !strncmp(last, p, dlen) && !last[dlen])
		return 1;
	char small[256];
	char *dir = dlen < sizeof small ? memcpy(small, p, dlen) : xstrdup(p); /* no allocation per output */
	dir[dlen] = 0;
	if ((ctx->last_confined = strmap_get(&ctx->confined_dirs, dir))) {
		if (dir != small)
			free(dir);
		return 1;
	}
	char *probe = xstrdup(dir), *real = NULL;
	while (!(real = realpath(probe, NULL))) { /* the deepest ancestor that exists */
		char *up = strrchr(probe, '/');
		if (!up)
			break;
		*up = 0;
	}
	int inside = !real || under(real, ctx->g->workspace);
	free(real);
	free(probe);
	if (inside) { /* the map's keys live in the graph's arena */
		char *key = arena_strdup(&ctx->g->arena, dir);
		strmap_put(&ctx->confined_dirs, key, key);
		ctx->last_confined = key;
	}
	if (dir != small)
		free(dir);
	return inside;
}

/* Refuses a declared path kiln must not touch: outputs (deleted before every attempt and
 * by `kiln clean`) lie inside the workspace, outside .kiln/, and are not the recipe;
 * inputs lie inside the workspace or under an external{} root, never in .kiln/. */
void lk_check_confined(lua_State *L, const char *p, const char *field, int output)
{
	RecipeContext *ctx = lk_context(L);
	/* most paths start with neither '.' nor '/': the checks below look no further then */
	int outside = p[0] == '/' || (p[0] == '.' && (!strcmp(p, "..") || !strncmp(p, "../", 3)));
	if (p[0] == '.' && under(p, ".kiln"))
		lk_field_error(L, field, "\"%s\" lies in .kiln/, kiln's own state", p);
	if (output && (outside || !strcmp(p, ".")))
		lk_field_error(L, field, "\"%s\" is not inside the workspace: kiln deletes %s, so they must lie inside it (%s)",
			       p, strcmp(field, "resume") ? "outputs before each attempt" : "resume state when an attempt starts afresh",
			       ctx->g->workspace);
	if (output && ctx->recipe && !strcmp(p, ctx->recipe))
		lk_field_error(L, field, "\"%s\" is the recipe itself", p);
	if (output && !resolves_inside(ctx, p))
		lk_field_error(L, field, "\"%s\" resolves outside the workspace through a symbolic link (%s)", p,
			    ctx->g->workspace);
	if (!output && outside) {
		for (int i = 0; i < ctx->nexternal; i++)
			if (p[0] == '/' && under(p, ctx->external[i]))
				return;
		lk_field_error(L, field, "\"%s\" is outside the workspace: declare the place it lives in with "
				      "external { \"/path/to/data\" } before the task, and name it by absolute path", p);
	}
}

/* Expands paths; entries with glob characters expand against the file system now. */
static const char **expand_paths(lua_State *L, Graph *g, const char **in, int n, int *count, int allow_glob,
				 const char *field)
{
	int cap = n + 1, k = 0, globs = 0;
	for (int i = 0; i < n && allow_glob && !globs; i++)
		globs = strpbrk(in[i], "*?[") != NULL;
	/* in is this task's own (lk_string_list's, in the arena): without globs the paths are
	 * normalised in place, and a path already normal keeps its copy */
	const char **out = globs ? arena_alloc(&g->arena, (size_t)cap * sizeof *out) : in;
	for (int i = 0; i < n; i++) {
		if (!allow_glob || !strpbrk(in[i], "*?[")) {
			out[k] = graph_path_is_normal(g, in[i]) ? in[i] : graph_norm_path(g, in[i]);
			lk_check_confined(L, out[k++], field, !allow_glob);
			continue;
		}
		glob_t gl;
		int rc = lk_glob(L, in[i], field, &gl);
		if (rc == GLOB_NOMATCH)
			lk_field_error(L, field, "pattern \"%s\" matches no file (use glob() for a list that may be empty)", in[i]);
		if (rc != 0)
			lk_field_error(L, field, "cannot expand \"%s\"", in[i]);
		const char **bigger = arena_alloc(&g->arena, (size_t)(cap + (int)gl.gl_pathc) * sizeof *out);
		memcpy(bigger, out, (size_t)k * sizeof *out);
		out = bigger;
		cap += (int)gl.gl_pathc;
		int first = k;
		for (size_t j = 0; j < gl.gl_pathc; j++) {
			out[k] = graph_norm_path(g, gl.gl_pathv[j]);
			if (!under(out[k], ".kiln")) /* a glob like ".*" does not mean kiln's own state */
				k++;
		}
		globfree(&gl); /* before a check can raise an error past it */
		for (int j = first; j < k; j++)
			lk_check_confined(L, out[j], field, 0);
	}
	*count = k;
	return out;
}

/* log_progress = "(%d+)/(%d+)" or { "Epoch (%d+)", total = 90 }: checked now, as log_metrics. */
static void read_log_progress(lua_State *L, Graph *g, Task *t)
{
	static const char *const usage = "must be a Lua pattern with two captures, the count done and the total "
					 "(\"(%d+)/(%d+)\"), or { pattern, total = N } with one";
	int type = lua_getfield(L, 1, "log_progress");
	long long total = 0;
	if (type == LUA_TTABLE) {
		lua_pushnil(L);
		while (lua_next(L, -2)) { /* only [1] and total */
			lua_pop(L, 1);
			if (!(lua_type(L, -1) == LUA_TSTRING && !strcmp(lua_tostring(L, -1), "total")) &&
			    !(lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) == 1))
				lk_field_error(L, "log_progress", "%s", usage);
		}
		lua_getfield(L, -1, "total");
		total = lua_isnil(L, -1) ? 0 : lk_integer_field(L, lua_gettop(L), "log_progress total", 1LL << 53);
		if (!lua_isnil(L, -1) && total == 0)
			lk_field_error(L, "log_progress", "total must be a count above 0");
		lua_pop(L, 1);
		lua_rawgeti(L, -1, 1);
		lua_remove(L, -2);
	}
	if (lua_type(L, -1) != LUA_TSTRING)
		lk_field_error(L, "log_progress", "%s", usage);
	const char *pattern = lk_value_string(L, g, -1, "log_progress", 0);
	Buf why = {0};
	if (log_progress_check(pattern, total, &why) != 0) {
		lua_pushstring(L, buf_str(&why)); /* the message outlives the Buf */
		buf_free(&why);
		lk_field_error(L, "log_progress", "\"%s\" %s", pattern, lua_tostring(L, -1));
	}
	t->opts->log_progress = pattern;
	t->opts->log_progress_total = total;
	lua_pop(L, 1);
}

static int l_task(lua_State *L)
{
	RecipeContext *ctx = lk_context(L);
	Graph *g = ctx->g;
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	uint64_t has = lk_check_fields(L, "task{}", task_fields);
	lk_context(L)->declaring = NULL;
	Task *t = graph_new_task(g);
	TaskOpts opts = *t->opts; /* written here, then shared with the tasks declared alike */
	t->opts = &opts;
	lk_declaration_site(L, ctx, t);
	if (!(has & F_NAME) || lua_getfield(L, 1, "name") != LUA_TSTRING)
		luaL_error(L, "task{}: field 'name' is required and must be a string");
	t->name = lk_value_string(L, g, -1, "name", 0);
	if (!lk_valid_task_name(t->name))
		luaL_error(L, "task{}: invalid name \"%s\" (use letters, digits and _-./:=+, with '/' between parts)",
			   t->name);
	lua_pop(L, 1);
	lk_context(L)->declaring = t->name;
	int n;
	/* only the fields present are looked up; outputs and inputs come before run, whose
	 * placeholders expand to them */
	if (has & F_OUTPUTS) {
		lua_getfield(L, 1, "outputs");
		const char **raw = lk_string_list(L, g, -1, "outputs", &n, 0);
		t->outputs = expand_paths(L, g, raw, n, &t->noutputs, 0, "outputs");
		lua_pop(L, 1);
	}
	if (has & F_OPTIONAL) { /* outputs the command may leave unmade (a best model, say) */
		lua_getfield(L, 1, "optional_outputs");
		const char **raw = lk_string_list(L, g, -1, "optional_outputs", &n, 0);
		int nopt;
		const char **opt = expand_paths(L, g, raw, n, &nopt, 0, "optional_outputs");
		const char **all = arena_ptrs(&g->arena, (size_t)(t->noutputs + nopt));
		if (t->noutputs)
			memcpy(all, t->outputs, (size_t)t->noutputs * sizeof *all);
		memcpy(all + t->noutputs, opt, (size_t)nopt * sizeof *all);
		t->opts->optional = arena_alloc(&g->arena, (size_t)(t->noutputs + nopt) + 1);
		memset(t->opts->optional, 0, (size_t)t->noutputs);
		memset(t->opts->optional + t->noutputs, 1, (size_t)nopt + 1);
		t->outputs = all;
		t->noutputs += nopt;
		lua_pop(L, 1);
	}
	if (has & F_STAY) { /* ssh: outputs left on the host that made them (cache: a pointer file here) */
		lua_getfield(L, 1, "stay");
		t->opts->stays = arena_alloc(&g->arena, (size_t)t->noutputs + 1);
		memset(t->opts->stays, lua_toboolean(L, -1) && lua_type(L, -1) == LUA_TBOOLEAN, (size_t)t->noutputs + 1);
		if (lua_type(L, -1) != LUA_TBOOLEAN) {
			const char **raw = lk_string_list(L, g, -1, "stay", &n, 0);
			int nstay;
			const char **stay = expand_paths(L, g, raw, n, &nstay, 0, "stay");
			for (int k = 0; k < nstay; k++) {
				int found = 0;
				for (int i = 0; i < t->noutputs; i++)
					if (!strcmp(t->outputs[i], stay[k]))
						t->opts->stays[i] = found = 1;
				if (!found)
					lk_field_error(L, "stay", "names \"%s\", which is not one of the task's outputs", stay[k]);
			}
		}
		lua_pop(L, 1);
	}
	if (has & F_RESUME) { /* state kept for the next attempt of the same key (sched.c) */
		lua_getfield(L, 1, "resume");
		const char **raw = lk_string_list(L, g, -1, "resume", &n, 0);
		t->opts->resume = expand_paths(L, g, raw, n, &t->opts->nresume, 0, "resume");
		lua_pop(L, 1);
	}
	if (has & F_INPUTS) {
		lua_getfield(L, 1, "inputs");
		const char **raw = lk_string_list(L, g, -1, "inputs", &n, 0);
		t->inputs = expand_paths(L, g, raw, n, &t->ninputs, 1, "inputs");
		lua_pop(L, 1);
	}
	if (has & F_CWD) { /* before run: its placeholders name paths from there */
		lua_getfield(L, 1, "cwd");
		const char *cwd = graph_norm_path(g, lk_expand_placeholders(L, g, t, lk_value_string(L, g, -1, "cwd", 0), 0, 0));
		char *probe = xasprintf("%s/.", cwd); /* kiln makes it: no link may lead it outside */
		int inside = cwd[0] != '/' && strcmp(cwd, "..") && strncmp(cwd, "../", 3) && resolves_inside(ctx, probe);
		free(probe);
		if (!inside)
			lk_field_error(L, "cwd", "\"%s\" is not inside the workspace (%s): give a folder in it, like "
					      "\"runs/{name}\"", cwd, g->workspace);
		if (under(cwd, ".kiln"))
			lk_field_error(L, "cwd", "\"%s\" lies in .kiln/, kiln's own state", cwd);
		t->opts->cwd = strcmp(cwd, ".") ? cwd : NULL;
		lua_pop(L, 1);
	}
	if (has & F_DEPS) {
		lua_getfield(L, 1, "deps");
		TaskMore *more = graph_task_more(g, t);
		more->dep_names = lk_string_list(L, g, -1, "deps", &more->ndep_names, 1);
		lua_pop(L, 1);
	}
	if (has & F_RUN) {
		lua_getfield(L, 1, "run");
		lk_parse_run(L, g, t, lua_gettop(L));
		lua_pop(L, 1);
	}
	if (has & F_ENV) {
		lua_getfield(L, 1, "env");
		TaskMore *more = graph_task_more(g, t);
		more->env = key_values(L, g, lua_gettop(L), "env", &more->nenv);
		for (int i = 0; i < t->more->nenv; i++) {
			const char *k = t->more->env[i].key;
			if (!*k || strspn(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != strlen(k) ||
			    (*k >= '0' && *k <= '9'))
				lk_field_error(L, "env", "key \"%s\" is not a variable name (letters, digits and _, not first a "
						      "digit)", k);
		}
		lua_pop(L, 1);
	}
	if (has & F_TAGS) {
		lua_getfield(L, 1, "tags");
		t->tags = key_values(L, g, lua_gettop(L), "tags", &t->ntags);
		lua_pop(L, 1);
	}
	t->opts->gpus = (int)optional_number(L, has & F_GPUS, "gpus", 0, MAX_GPUS, t->opts->gpus);
	/* a GPU task holds the CPUs it declares, none by default: four GPU tasks on a 2-core host */
	t->opts->cpus = (int)optional_number(L, has & F_CPUS, "cpus", 0, MAX_CPUS, t->opts->gpus > 0 ? 0 : t->opts->cpus);
	if (has & F_GPU_WAIT) {
		t->opts->gpu_wait_sec = field_seconds(L, "gpu_wait");
		if (!(t->opts->gpu_wait_sec >= 0) || t->opts->gpu_wait_sec > MAX_TIMEOUT_SEC)
			lk_field_error(L, "gpu_wait", "must be a duration like 300, \"90s\" or \"5m\" (0: wait as long as it takes)");
	}
	if (has & F_GPU_WAIT_THEN) {
		lua_getfield(L, 1, "gpu_wait_then");
		const char *then = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
		if (strcmp(then, "run") && strcmp(then, "fail"))
			lk_field_error(L, "gpu_wait_then", "must be \"run\" (take the least busy GPU) or \"fail\"");
		t->opts->gpu_wait_fail = !strcmp(then, "fail");
		lua_pop(L, 1);
	}
	t->opts->retries = (int)optional_number(L, has & F_RETRIES, "retries", 0, MAX_RETRIES, t->opts->retries);
	t->opts->ports = (int)optional_number(L, has & F_PORTS, "ports", 0, MAX_PORTS, t->opts->ports);
	lk_check_port_placeholders(L, t);
	lk_warn_placeholder_typos(L, t);
	if (has & F_RETRY_ON) {
		t->opts->retry_on = lk_parse_retry_on(L, g);
		if (!(has & F_RETRIES))
			t->opts->retries = 2; /* naming what to retry asks for retries */
	} else {
		t->opts->retry_on = FC_DEFAULT_RETRY;
	}
	if (has & F_SHELL) /* before torchrun and ranks: they run the string under it */
		lk_parse_shell(L, g, t);
	else if (g->default_shell && task_shell(t)) /* settings{}'s */
		t->opts->shell = g->default_shell;
	if (has & F_SLURM)
		lk_parse_task_slurm(L, g, t);
	if (has & F_TORCHRUN) {
		if (!(has & F_RUN))
			lk_field_error(L, "torchrun", "needs run: the command to launch on every process");
		lk_parse_torchrun(L, g, t, has & F_CPUS);
	}
	int procs = 1; /* the processes it starts on a node */
	if (t->opts->torchrun && (t->opts->torchrun->nproc || t->opts->gpus > 0))
		procs = t->opts->torchrun->nproc ? t->opts->torchrun->nproc : t->opts->gpus;
	if (has & F_RANKS) { /* N copies of the command under kiln's launcher (launch.c) */
		int ranks = (int)optional_number(L, 1, "ranks", 0, 1024, 1);
		int nodes = (int)optional_number(L, has & F_NNODES, "nnodes", 0, 1024, 1);
		if (ranks > 0 && nodes > 0)
			procs = (ranks + nodes - 1) / nodes;
		if (nodes < 1)
			lk_field_error(L, "nnodes", "must be at least 1");
		Buf why = {0};
		if (ranks < 1 || !(has & F_RUN) || launch_wrap(g, t, ranks, nodes, 5, &why) != 0) {
			lua_pushstring(L, ranks < 1 ? "must be at least 1" : (has & F_RUN) ? buf_str(&why) : "needs run: the "
												       "command each rank runs");
			buf_free(&why);
			lk_field_error(L, "ranks", "%s", lua_tostring(L, -1));
		}
		buf_free(&why);
	}
	/* a task that declares its cpus tells each process its share (OMP_NUM_THREADS, read by
	 * PyTorch's, OpenMP's and BLAS's thread pools), so tasks packed side by side do not each
	 * start a pool the size of the machine */
	if ((has & F_CPUS) && t->opts->cpus > 0)
		t->opts->threads = t->opts->cpus / procs > 1 ? t->opts->cpus / procs : 1;
	if ((has & F_NNODES) && !(has & F_RANKS))
		lk_field_error(L, "nnodes", "spreads ranks over nodes: give ranks = N too (torchrun has its own nnodes)");
	t->opts->mem_mib = optional_number(L, has & F_MEM, "mem", 1, 0, t->opts->mem_mib);
	t->opts->gpu_mem_mib = optional_number(L, has & F_GPU_MEM, "gpu_mem", 1, 0, t->opts->gpu_mem_mib);
	if (has & F_TIMEOUT) {
		t->opts->timeout_sec = field_seconds(L, "timeout");
		if (!(t->opts->timeout_sec > 0) || t->opts->timeout_sec > MAX_TIMEOUT_SEC) /* NaN fails too */
			lk_field_error(L, "timeout", "must be a positive duration up to a year, like 90, \"30s\", \"5m\" or "
						  "\"2h\"");
	}
	if (has & F_KILL_GRACE) { /* a trainer that saves its state on SIGTERM: time to finish the save */
		t->opts->kill_grace_sec = field_seconds(L, "kill_grace");
		if (!(t->opts->kill_grace_sec >= 0) || t->opts->kill_grace_sec > 86400)
			lk_field_error(L, "kill_grace", "must be a duration up to a day, like 30, \"30s\" or \"2m\": how long "
						     "the command may take to quit after SIGTERM before SIGKILL");
	}
	if (has & F_STOP_SIGNAL)
		t->opts->stop_signal = stop_signal_field(L);
	if (has & F_METRICS) {
		lua_getfield(L, 1, "metrics");
		graph_task_more(g, t)->metrics = graph_norm_path(g, lk_expand_placeholders(L, g, t, lk_value_string(L, g, -1, "metrics", 0), 0, 0));
		lk_check_confined(L, t->more->metrics, "metrics", 0);
		lua_pop(L, 1);
	}
	if (has & F_LOG_METRICS) { /* checked now: a typo must not cost the run it would parse */
		lua_getfield(L, 1, "log_metrics");
		if (!lua_istable(L, -1))
			lk_field_error(L, "log_metrics", "must be a table of metric name = Lua pattern, like { loss = "
							 "\"loss=([%%d.eE+-]+)\" }");
		KeyValue *kv = key_values(L, g, lua_gettop(L), "log_metrics", &t->opts->nlog_metrics);
		for (int i = 0; i < t->opts->nlog_metrics; i++) {
			Buf why = {0};
			if (log_metrics_check(kv[i].value, &why) != 0) {
				lua_pushstring(L, buf_str(&why)); /* the message outlives the Buf */
				buf_free(&why);
				lk_field_error(L, "log_metrics", "%s = \"%s\" %s", kv[i].key, kv[i].value, lua_tostring(L, -1));
			}
			buf_free(&why);
		}
		t->opts->log_metrics = kv;
		lua_pop(L, 1);
	}
	if (has & F_LOG_PROGRESS)
		read_log_progress(L, g, t);
	if (has & F_EXECUTOR) {
		lua_getfield(L, 1, "executor");
		t->opts->executor = lk_value_string(L, g, -1, "executor", 0);
		check_executor_name(L, t->opts->executor);
		lua_pop(L, 1);
	}
	if ((has & F_HOST) && (has & F_HOSTS))
		lk_field_error(L, "host", "and hosts both given: host = \"v802\" pins the task, hosts = {...} lists where it may go");
	if (has & (F_HOST | F_HOSTS)) { /* checked against the hosts once every declaration is in */
		const char *field = has & F_HOST ? "host" : "hosts";
		g->hosts_named = 1;
		lua_getfield(L, 1, field);
		if (has & F_HOST) {
			t->opts->hosts = arena_alloc(&g->arena, sizeof *t->opts->hosts);
			t->opts->hosts[0] = lk_value_string(L, g, -1, field, 0);
			t->opts->nhosts = 1;
		} else {
			t->opts->hosts = lk_string_list(L, g, -1, field, &t->opts->nhosts, 0);
		}
		lua_pop(L, 1);
	}
	lk_context(L)->declaring = NULL;

	graph_share_opts(g, t);
	graph_add_task(g, t); /* clashes are found when the graph is indexed */
	lk_push_task_value(L, t);
	return 1;
}

void lkiln_open(lua_State *L, RecipeContext *ctx)
{
	*(RecipeContext **)lua_getextraspace(L) = ctx;
	ctx->task_metatable = lk_task_value_metatable(L);
	static const luaL_Reg api[] = {{"task", l_task},     {"plot", l_plot}, {"glob", l_glob}, {"map", l_map},
				       {"params", l_params}, {"gpus_available", l_gpus_available},
				       {"external", l_external}, {"settings", l_settings},
				       {NULL, NULL}};
	lua_pushglobaltable(L);
	lua_pushlightuserdata(L, ctx);
	luaL_setfuncs(L, api, 1);
	for (const RecipeBlock *b = ctx->blocks; b && b->name; b++) {
		lua_pushlightuserdata(L, ctx);
		lua_pushcclosure(L, b->read, 1);
		lua_setfield(L, -2, b->name);
	}
	lua_getfield(L, -1, "task");
	lua_setfield(L, LUA_REGISTRYINDEX, LK_TASK_FUNCTION);
	lua_pop(L, 1);
}
