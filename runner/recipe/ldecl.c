/* ldecl.c — the recipe's declarations beside task{}: plot{} (a chart as a typed spec on
 * its task), external{} (places outside the workspace inputs may name), settings{}, glob() and
 * params{} (command-line overrides converted to each default's type); and the task fields
 * with a structure of their own, retry_on and torchrun. */
#define _GNU_SOURCE
#include <fnmatch.h>
#include <glob.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../plots/plot.h"
#include "failure.h"
#include "lkiln_internal.h"
#include "torchrun.h"

int l_gpus_available(lua_State *L)
{
	lua_pushinteger(L, lk_gpus_known(lk_context(L)));
	return 1;
}

static const char *const plot_fields[] = {"name", "type", "from", "x", "series", "y", "title",
					  "xlabel", "ylabel", "unit", "out", "baseline", "xscale", "size", "best", NULL};

/* plot{}: a task named plot/<name> that renders a chart from the metrics of the tasks
 * its `from` globs select. It carries its typed spec; the spec's text is its key, so a
 * style change re-renders. */
int l_plot(lua_State *L)
{
	RecipeContext *ctx = lk_context(L);
	Graph *g = ctx->g;
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	lk_check_fields(L, "plot{}", plot_fields);
	PlotSpec *spec = arena_alloc(&g->arena, sizeof *spec);
	memset(spec, 0, sizeof *spec);
	const char **slots[] = {&spec->name, &spec->type, NULL, &spec->x, &spec->series, &spec->y, &spec->title,
				&spec->xlabel, &spec->ylabel, &spec->unit, &spec->out, &spec->baseline,
				&spec->xscale, &spec->size, &spec->best}; /* in plot_fields' order */
	for (int i = 0; plot_fields[i]; i++) {
		int type = lua_getfield(L, 1, plot_fields[i]);
		if (!slots[i]) { /* from */
			if (type == LUA_TNIL)
				luaL_error(L, "plot{}: field 'from' (task names or globs, e.g. \"eval/*\") is required");
			spec->from = lk_string_list(L, g, -1, "from", &spec->nfrom, 1);
		} else if (type != LUA_TNIL) {
			*slots[i] = lk_value_string(L, g, -1, plot_fields[i], 0);
		}
		lua_pop(L, 1);
	}
	if (!spec->name || !spec->type)
		luaL_error(L, "plot{}: fields 'name' and 'type' are required");
	if (!spec->y)
		luaL_error(L, "plot{}: field 'y' (the metric to draw) is required");
	if (!spec->out) {
		char *o = arena_alloc(&g->arena, strlen(spec->name) + 7);
		sprintf(o, "plots/%s", spec->name);
		spec->out = o;
	}
	spec->out = graph_norm_path(g, spec->out);
	lk_check_confined(L, spec->out, "plot{}: out", 1);
	Buf err = {0};
	if (plot_spec_check(spec, &err) != 0) {
		lua_pushfstring(L, "plot{}: %s", buf_str(&err));
		buf_free(&err);
		luaL_where(L, 1);
		lua_insert(L, -2);
		lua_concat(L, 2);
		return lua_error(L);
	}
	Task *t = graph_new_task(g);
	graph_task_opts(g, t); /* a chart of its own (its file among them) */
	lk_declaration_site(L, ctx, t);
	char *tname = arena_alloc(&g->arena, strlen(spec->name) + 6);
	sprintf(tname, "plot/%s", spec->name);
	t->name = tname;
	t->opts->plot = spec;
	g->plots++;
	char *text = plot_spec_text(spec);
	t->opts->spec = arena_strdup(&g->arena, text);
	free(text);
	const char *out = spec->out;
	int nout = 3 + plot_has_table(spec); /* the table as LaTeX */
	t->outputs = arena_alloc(&g->arena, (size_t)nout * sizeof *t->outputs);
	static const char *const extensions[] = {"svg", "png", "pdf", "tex"};
	for (int i = 0; i < nout; i++) {
		char *path = arena_alloc(&g->arena, strlen(out) + 5);
		sprintf(path, "%s.%s", out, extensions[i]);
		t->outputs[i] = path;
	}
	t->noutputs = nout;
	t->opts->dep_patterns = spec->from;
	t->opts->ndep_patterns = spec->nfrom;
	graph_add_task(g, t);
	lk_push_task_value(L, t);
	return 1;
}

/* external { "/data/elevater", ... }: places outside the workspace that inputs may name
 * (read only: kiln never writes or deletes outside the workspace). */
int l_external(lua_State *L)
{
	RecipeContext *ctx = lk_context(L);
	Graph *g = ctx->g;
	int n;
	lk_context(L)->declaring = NULL;
	const char **roots = lk_string_list(L, g, 1, "external", &n, 0);
	const char **all = arena_alloc(&g->arena, (size_t)(ctx->nexternal + n + 1) * sizeof *all);
	if (ctx->nexternal)
		memcpy(all, ctx->external, (size_t)ctx->nexternal * sizeof *all);
	int k = 0;
	for (int i = 0; i < n; i++) {
		const char *r = graph_norm_path(g, roots[i]);
		if (roots[i][0] != '/')
			luaL_error(L, "external{}: \"%s\" is relative; give absolute paths of places outside the workspace",
				   roots[i]);
		if (r[0] == '/') /* a place inside the workspace needs no declaring (RECIPE_DIR may be either) */
			all[ctx->nexternal + k++] = r;
	}
	ctx->external = all;
	ctx->nexternal += k;
	return 0;
}

/* A program's name or absolute path: what shell = may say. */
static int shell_name_ok(const char *shell)
{
	size_t n = strlen(shell);
	return n && n <= 200 && strspn(shell, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./+-") == n &&
	       (!strchr(shell, '/') || shell[0] == '/');
}

/* settings{}: how the recipe's runs behave, said once in the recipe instead of on every
 * command line. keep_going = true: a failed task stops only what depends on it (as -k),
 * for grids of independent configs. */
int l_settings(lua_State *L)
{
	Graph *g = lk_context(L)->g;
	lk_context(L)->declaring = NULL;
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	static const char *const fields[] = {"keep_going", "shell", NULL};
	uint64_t has = lk_check_fields(L, "settings{}", fields);
	int type = lua_getfield(L, 1, "keep_going");
	if (type != LUA_TNIL && type != LUA_TBOOLEAN)
		luaL_error(L, "settings{}: keep_going must be true or false, got %s", lua_typename(L, type));
	if (type == LUA_TBOOLEAN)
		g->keep_going = lua_toboolean(L, -1);
	lua_pop(L, 1);
	if (has & 2) { /* shell = "bash": for the command strings of the tasks declared after it */
		lua_getfield(L, 1, "shell");
		const char *shell = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
		if (!shell_name_ok(shell))
			luaL_error(L, "settings{}: shell must name a program, like \"bash\" or \"/bin/bash\"");
		g->default_shell = strcmp(shell, "/bin/sh") ? arena_strdup(&g->arena, shell) : NULL;
		lua_pop(L, 1);
	}
	return 0;
}

/* Wildcard components, components and bytes a pattern may have: far past any real layout. */
#define GLOB_MAX_WILD_PARTS 64
#define GLOB_MAX_BYTES 4096
#define GLOB_MAX_PARTS 256

int lk_glob(lua_State *L, const char *pattern, const char *field, glob_t *gl)
{
	size_t len = strlen(pattern);
	int wild = 0, parts = 0;
	for (const char *part = pattern; part && *part; part = strchr(part, '/') ? strchr(part, '/') + 1 : NULL) {
		size_t n = strcspn(part, "/");
		wild += memchr(part, '*', n) || memchr(part, '?', n) || memchr(part, '[', n);
		parts++; /* glibc recurses on runs of slashes too ("////...") */
	}
	if (len > GLOB_MAX_BYTES || wild > GLOB_MAX_WILD_PARTS || parts > GLOB_MAX_PARTS) {
		const char *what = len > GLOB_MAX_BYTES ? "bytes" : wild > GLOB_MAX_WILD_PARTS ? "path components with wildcards"
													: "path components";
		int limit = len > GLOB_MAX_BYTES ? GLOB_MAX_BYTES : wild > GLOB_MAX_WILD_PARTS ? GLOB_MAX_WILD_PARTS : GLOB_MAX_PARTS;
		char shown[64]; /* Lua's formats have no precision */
		snprintf(shown, sizeof shown, "%.60s", pattern);
		if (field)
			lk_field_error(L, field, "pattern \"%s...\" has more than %d %s", shown, limit, what);
		luaL_error(L, "glob: pattern \"%s...\" has more than %d %s", shown, limit, what);
	}
	return glob(pattern, 0, NULL, gl);
}

int l_glob(lua_State *L)
{
	RecipeContext *ctx = lk_context(L);
	int nargs = lua_gettop(L);
	lua_newtable(L);
	int k = 0;
	for (int a = 1; a <= nargs; a++) {
		const char *pattern = luaL_checkstring(L, a);
		glob_t gl;
		int rc = lk_glob(L, pattern, NULL, &gl);
		if (rc != 0 && rc != GLOB_NOMATCH)
			luaL_error(L, "glob: cannot expand \"%s\"", pattern);
		/* into the arena first: a Lua push may raise (out of memory) past globfree */
		size_t n = rc == 0 ? gl.gl_pathc : 0;
		const char **found = n ? arena_ptrs(&ctx->g->arena, n) : NULL;
		for (size_t j = 0; j < n; j++)
			found[j] = graph_norm_path(ctx->g, gl.gl_pathv[j]);
		if (rc == 0)
			globfree(&gl);
		for (size_t j = 0; j < n; j++) {
			lua_pushstring(L, found[j]);
			lua_rawseti(L, -2, ++k);
		}
	}
	return 1;
}

/* Converts an override's text to the type of the param's default value. */
static void push_override(lua_State *L, const char *name, const char *text, int default_type)
{
	if (default_type == LUA_TNUMBER) {
		if (!lua_stringtonumber(L, text))
			luaL_error(L, "param %s=%s: expected a number (the default is a number)", name, text);
	} else if (default_type == LUA_TBOOLEAN) {
		if (!strcmp(text, "true") || !strcmp(text, "1") || !strcmp(text, "yes"))
			lua_pushboolean(L, 1);
		else if (!strcmp(text, "false") || !strcmp(text, "0") || !strcmp(text, "no"))
			lua_pushboolean(L, 0);
		else
			luaL_error(L, "param %s=%s: expected true or false", name, text);
	} else {
		lua_pushstring(L, text);
	}
}

int l_params(lua_State *L)
{
	RecipeContext *ctx = lk_context(L);
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	lua_newtable(L);
	lua_pushnil(L);
	while (lua_next(L, 1)) {
		if (lua_type(L, -2) != LUA_TSTRING)
			luaL_error(L, "params{}: names must be strings");
		const char *name = lua_tostring(L, -2);
		int type = lua_type(L, -1);
		if (type != LUA_TSTRING && type != LUA_TNUMBER && type != LUA_TBOOLEAN)
			luaL_error(L, "params{}: %s must default to a string, number or boolean, got %s", name,
				   luaL_typename(L, -1));
		lua_pushvalue(L, -2);
		lua_pushvalue(L, -2);
		for (int i = 0; i < ctx->ov->count; i++)
			if (!strcmp(ctx->ov->names[i], name)) {
				lua_pop(L, 1);
				push_override(L, name, ctx->ov->values[i], type);
				ctx->ov_used[i] = 1;
			}
		Graph *g = ctx->g;
		g->params = xrealloc(g->params, (size_t)(g->nparams + 1) * sizeof *g->params);
		g->params[g->nparams++] = (KeyValue){arena_strdup(&g->arena, name), lk_value_string(L, g, -1, name, 1)};
		lua_rawset(L, 2);
		buf_printf(&ctx->declared_params, "%s%s", ctx->declared_params.len ? ", " : "", name);
		lua_pop(L, 1);
	}
	return 1;
}

/* retry_on = { "oom", "port", ... }: the failure classes a retry is spent on. */
unsigned lk_parse_retry_on(lua_State *L, Graph *g)
{
	int n;
	lua_getfield(L, 1, "retry_on");
	const char **names = lk_string_list(L, g, -1, "retry_on", &n, 0);
	unsigned mask = 0;
	for (int i = 0; i < n; i++) {
		int c = failure_parse(names[i]);
		if (c < 0)
			lk_field_error(L, "retry_on", "names an unknown failure class \"%s\" (classes: %s)", names[i],
				       failure_names());
		mask |= FC_BIT(c);
	}
	lua_pop(L, 1);
	return mask;
}

/* shell = "bash": what runs the task's command string (a lab's lines use `source`, `[[`,
 * `conda activate`: bash's, where /bin/sh is dash). A program on PATH or an absolute path. */
void lk_parse_shell(lua_State *L, Graph *g, Task *t)
{
	lua_getfield(L, 1, "shell");
	const char *shell = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
	if (!shell_name_ok(shell))
		lk_field_error(L, "shell", "must name a program, like \"bash\" or \"/bin/bash\" (what runs `run` as "
					   "`bash -c \"...\"`)");
	if (!task_shell(t))
		lk_field_error(L, "shell", "runs a command string, and this task's run is a list of words: its first "
					   "word names its program already");
	t->opts->shell = strcmp(shell, "/bin/sh") ? arena_strdup(&g->arena, shell) : NULL;
	lua_pop(L, 1);
}

#define MAX_NODES 4096

/* The task's field that holds a table (pushed), and a zeroed struct of size bytes in the
 * arena for what it says; anything but a table is an error showing `like`. */
static void *table_field(lua_State *L, Graph *g, const char *field, const char *like, size_t size)
{
	lua_getfield(L, 1, field);
	if (!lua_istable(L, -1))
		lk_field_error(L, field, "must be a table like %s, got %s", like, luaL_typename(L, -1));
	void *p = arena_alloc(&g->arena, size);
	memset(p, 0, size);
	return p;
}

/* torchrun = { nproc = N | "gpus", nnodes = M }: wraps the command in the launcher. */
void lk_parse_torchrun(lua_State *L, Graph *g, Task *t, int cpus_declared)
{
	Torchrun *tr = table_field(L, g, "torchrun", "{ nproc = 2 } or { nproc = \"gpus\", nnodes = 2 }", sizeof *tr);
	tr->nnodes = 1;
	lua_pushnil(L);
	while (lua_next(L, -2)) {
		const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
		if (!strcmp(k, "nproc")) {
			if (lua_type(L, -1) == LUA_TSTRING && !strcmp(lua_tostring(L, -1), "gpus"))
				tr->nproc = 0;
			else if ((tr->nproc = (int)lk_integer_field(L, -1, "torchrun.nproc", 1024)) < 1)
				lk_field_error(L, "torchrun.nproc", "must be at least 1 (or \"gpus\": one per leased GPU)");
		} else if (!strcmp(k, "nnodes")) {
			if ((tr->nnodes = (int)lk_integer_field(L, -1, "torchrun.nnodes", MAX_NODES)) < 1)
				lk_field_error(L, "torchrun.nnodes", "must be at least 1");
		} else {
			lk_field_error(L, "torchrun", "has an unknown field '%s' (fields: nproc, nnodes)", k);
		}
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	lua_getfield(L, 1, "torchrun");
	int has_nproc = lua_getfield(L, -1, "nproc") != LUA_TNIL;
	lua_pop(L, 2);
	if (!has_nproc)
		lk_field_error(L, "torchrun", "needs nproc: a number of processes per node, or \"gpus\" for one per leased GPU");
	if (tr->nproc == 0 && t->opts->gpus == 0)
		lk_field_error(L, "torchrun", "has nproc = \"gpus\" but the task leases none: set gpus = N, or give nproc as "
					      "a number for CPU processes");
	if (!cpus_declared && tr->nproc > t->opts->cpus)
		t->opts->cpus = tr->nproc; /* each process is busy: they hold a CPU each unless told otherwise */
	Buf err = {0};
	if (torchrun_wrap(g, t, tr, &err) != 0) {
		char msg[256];
		snprintf(msg, sizeof msg, "%s", buf_str(&err));
		buf_free(&err);
		lk_field_error(L, "torchrun", "%s", msg);
	}
}

/* slurm = { partition, account, qos, constraint, gpu_type, extra = {...} }: where the task's
 * Slurm jobs go, over the recipe's slurm{} (the executor merges them: slurm_submit.c). */
void lk_parse_task_slurm(lua_State *L, Graph *g, Task *t)
{
	static const char *const fields[] = {"partition", "account", "qos", "constraint", "gpu_type", "extra", NULL};
	TaskSlurm *ts = table_field(L, g, "slurm", "{ partition = \"gpu\", constraint = \"a100\" }", sizeof *ts);
	const char **slots[] = {&ts->partition, &ts->account, &ts->qos, &ts->constraint, &ts->gpu_type};
	lua_pushnil(L);
	while (lua_next(L, -2)) {
		const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
		int i = 0;
		while (fields[i] && strcmp(k, fields[i]))
			i++;
		if (!fields[i])
			lk_field_error(L, "slurm", "has an unknown field '%s' (fields: partition, account, qos, constraint, "
						   "gpu_type, extra)", k);
		if (i < 5 && (!(*slots[i] = lk_value_string(L, g, -1, fields[i], 0))[0] || strpbrk(*slots[i], " \t\n=")))
			lk_field_error(L, "slurm", "%s must be one word, like \"gpu\", got \"%s\"", fields[i], *slots[i]);
		if (i == 5)
			ts->extra = lk_string_list(L, g, -1, "slurm.extra", &ts->nextra, 0);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	for (int i = 0; i < ts->nextra; i++)
		if (strncmp(ts->extra[i], "--", 2) != 0 && ts->extra[i][0] != '-')
			lk_field_error(L, "slurm", "extra takes sbatch flags like \"--exclusive\", got \"%s\"", ts->extra[i]);
	if (ts->gpu_type && t->opts->gpus == 0)
		lk_field_error(L, "slurm", "gpu_type = \"%s\" names the type of the task's GPUs (--gres=gpu:%s:N): give it "
					   "gpus = N too", ts->gpu_type, ts->gpu_type);
	t->opts->slurm = ts;
}

/* Whether some task from selects has tag key. */
static int tag_on_some(Task **sel, int n, const char *key)
{
	for (int i = 0; i < n; i++)
		for (int j = 0; j < sel[i]->ntags; j++)
			if (!strcmp(sel[i]->tags[j].key, key))
				return 1;
	return 0;
}

/* "file:line: plot{} "p": no task it draws from has tag "datset" (their tags: dataset, model;
 * did you mean dataset?)". */
static void missing_tag(const Task *plot, Task **sel, int n, const char *field, const char *key, Buf *err)
{
	char **keys = NULL;
	int nkeys = 0;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < sel[i]->ntags; j++)
			strlist_find_or_add(&keys, &nkeys, sel[i]->tags[j].key);
	buf_printf(err, "%s:%d: plot{} \"%s\": %s = \"%s\" is a tag no task it draws from has", plot->opts->file, plot->line,
		   plot->opts->plot->name, field, key);
	const char *best = NULL;
	int best_d = 3;
	for (int k = 0; k < nkeys; k++) {
		int d = lk_distance(key, strlen(key), keys[k]);
		if (d < best_d)
			best = keys[k], best_d = d;
	}
	if (best)
		buf_printf(err, " (did you mean %s?)", best);
	buf_puts(err, nkeys ? "; their tags: " : "; they have no tags (tags = {...} on task{} gives them some)");
	for (int k = 0; k < nkeys && k < 12; k++)
		buf_printf(err, "%s%s", k ? ", " : "", keys[k]);
	for (int k = 0; k < nkeys; k++)
		free(keys[k]);
	free(keys);
}

/* The tasks spec draws from into sel (its count); with want tags set, stops at the first
 * task that has them all (a load of a big grid checks a chart in a few steps). */
static int select_from(const Graph *g, const PlotSpec *spec, const char *const want[2], Task **sel)
{
	int n = 0;
	for (int k = 0; k < g->ntasks; k++) {
		Task *u = g->tasks[k];
		if (u->opts->plot || task_is_runner(u))
			continue;
		for (int f = 0; f < spec->nfrom; f++)
			if (!strcmp(spec->from[f], u->name) || !fnmatch(spec->from[f], u->name, 0)) {
				sel[n++] = u;
				if (want && (!want[0] || tag_on_some(&u, 1, want[0])) && (!want[1] || tag_on_some(&u, 1, want[1])))
					return n;
				break;
			}
	}
	return n;
}

int recipe_check_plots(const Graph *g, Buf *err)
{
	if (!g->plots)
		return 0;
	Task **sel = xmalloc(((size_t)g->ntasks + 1) * sizeof *sel);
	int rc = 0;
	for (int i = 0; i < g->ntasks && rc == 0; i++) {
		const Task *t = g->tasks[i];
		const PlotSpec *spec = t->opts->plot;
		if (!spec)
			continue;
		/* bars and heatmaps go by tags on both axes; scatter and lines by series only (x of a
		 * scatter is a metric; lines run over steps) */
		int tag_x = !strcmp(spec->type, "bars") || !strcmp(spec->type, "heatmap");
		const char *want[2] = {tag_x ? spec->x : NULL, spec->series};
		int n = select_from(g, spec, want, sel);
		if (n && (!want[0] || tag_on_some(sel + n - 1, 1, want[0])) && (!want[1] || tag_on_some(sel + n - 1, 1, want[1])))
			continue; /* a task with every tag: fine */
		if (!n) {
			buf_printf(err, "%s:%d: plot{} \"%s\": from = \"%s\"%s selects no task (see `kiln list`)", t->opts->file, t->line,
				   spec->name, spec->from[0], spec->nfrom > 1 ? " ..." : "");
			rc = -1;
			break;
		}
		n = select_from(g, spec, NULL, sel); /* all of them, to say which tags there are */
		if (want[0] && !tag_on_some(sel, n, want[0])) {
			missing_tag(t, sel, n, "x", want[0], err);
			rc = -1;
		} else if (want[1] && !tag_on_some(sel, n, want[1])) {
			missing_tag(t, sel, n, "series", want[1], err);
			rc = -1;
		}
	}
	free(sel);
	return rc;
}
