/* recipe.c — the Lua state a recipe runs in: standard libraries minus what would make
 * loading non-deterministic or effectful, require() beside the recipe, grid{}, and the
 * check that every command-line param names a declared one. */
#define _GNU_SOURCE
#include "recipe.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../base/pool.h"
#include "failure.h"
#include "lchunk.h"
#include "lkiln.h"
#include "lsandbox.h"

/* Lua-side part of the API and the sandbox. */
static const char prelude[] =
	/* the C message handler, so errors inside require()d files keep file:line, and the C
	 * loadfile (text only; lsandbox.c); io.open is guarded in C before this runs */
	"local msgh, real_loadfile = ...\n"
	/* what the wrappers below call, kept before a recipe can redefine the globals */
	"local type, error, ipairs, xpcall, concat = type, error, ipairs, xpcall, table.concat\n"
	"local function denied(what) return function() error('recipes only declare tasks: ' .. what .. ' is not available while loading', 2) end end\n"
	"os.execute, io.popen, os.exit = denied('os.execute'), denied('io.popen'), denied('os.exit')\n"
	"os.remove, os.rename, os.tmpname = denied('os.remove'), denied('os.rename'), denied('os.tmpname')\n"
	"io.output, io.tmpfile = denied('io.output'), denied('io.tmpfile')\n"
	/* no standard input: a load must not wait for a person, nor depend on what they type */
	"io.read, io.input, io.stdin = denied('io.read (standard input)'), denied('io.input'), nil\n"
	"local lines = io.lines\n"
	"io.lines = function(file, ...)\n"
	"  if type(file) ~= 'string' then error('io.lines: expected a file name (standard input is not available while loading)', 2) end\n"
	"  return lines(file, ...)\n"
	"end\n"
	"os.time, os.clock, os.date = denied('os.time'), denied('os.clock'), denied('os.date')\n"
	"os.setlocale = denied('os.setlocale')\n"
	/* no way around the wrappers above (debug.getupvalue), no native code, no bytecode:
	 * a crafted binary chunk can crash the interpreter */
	"debug, package.loaded.debug, package.loadlib = nil, nil, nil\n"
	"package.searchers = { package.searchers[1] }\n"
	"local real_load, searchpath, loaded = load, package.searchpath, package.loaded\n"
	"load = function(chunk, name, mode, env) return real_load(chunk, name, 't', env) end\n"
	"local function named(file, what)\n"
	"  if type(file) ~= 'string' then error(what .. ': expected a file name, got ' .. type(file), 3) end\n"
	"end\n"
	"loadfile = function(file, mode, env)\n"
	"  named(file, 'loadfile')\n"
	"  if env == nil then return real_loadfile(file) end\n"
	"  return real_loadfile(file, env)\n"
	"end\n"
	"dofile = function(file) named(file, 'dofile'); local f, e = real_loadfile(file); if not f then error(e, 2) end; return f() end\n"
	"local loading = {}\n"
	"function require(name)\n"
	"  if type(name) ~= 'string' then error('require: expected a module name, got ' .. type(name), 2) end\n"
	"  if loaded[name] ~= nil then return loaded[name] end\n"
	"  for i, n in ipairs(loading) do\n"
	"    if n == name then\n"
	"      local cycle = {}\n"
	"      for j = i, #loading do cycle[#cycle + 1] = loading[j] end\n"
	"      cycle[#cycle + 1] = name\n"
	"      error('require cycle: ' .. concat(cycle, ' -> '), 2)\n"
	"    end\n"
	"  end\n"
	"  local file, err = searchpath(name, package.path)\n"
	"  if not file then error(\"module '\" .. name .. \"' not found:\" .. err, 2) end\n"
	"  local chunk, lerr = real_loadfile(file)\n"
	"  if not chunk then error(lerr, 0) end\n"
	"  loading[#loading + 1] = name\n"
	"  local ok, result = xpcall(chunk, msgh, name, file)\n"
	"  loading[#loading] = nil\n"
	"  if not ok then error(result, 0) end\n"
	"  if result == nil then result = true end\n"
	"  if loaded[name] == nil then loaded[name] = result end\n"
	"  return loaded[name]\n"
	"end\n"
"math.randomseed(0)\n"
	"function grid(axes)\n"
	"  if type(axes) ~= 'table' then error('grid{}: expected a table like {dataset = {...}, model = {...}}', 2) end\n"
	"  local names = {}\n"
	"  for k, v in pairs(axes) do\n"
	"    if type(k) ~= 'string' then error('grid{}: axis names must be strings', 2) end\n"
	"    if type(v) ~= 'table' then error('grid{}: axis ' .. k .. ' must be a list of values', 2) end\n"
	"    names[#names + 1] = k\n"
	"  end\n"
	"  table.sort(names)\n"
	"  local combos = {{}}\n"
	"  for _, n in ipairs(names) do\n"
	"    local grown = {}\n"
	"    for _, c in ipairs(combos) do\n"
	"      for _, v in ipairs(axes[n]) do\n"
	"        local d = {}\n"
	"        for k2, v2 in pairs(c) do d[k2] = v2 end\n"
	"        d[n] = v\n"
	"        grown[#grown + 1] = d\n"
	"      end\n"
	"    end\n"
	"    combos = grown\n"
	"  end\n"
	"  local i = 0\n"
	"  return function() i = i + 1; return combos[i] end\n"
	"end\n";

int params_split(char **words, int n, ParamOverrides *ov, char **rest)
{
	int nrest = 0;
	for (int i = 0; i < n; i++) {
		const char *eq = strchr(words[i], '=');
		if (eq && eq != words[i] && strspn(words[i], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") ==
						(size_t)(eq - words[i])) {
			ov->names = xrealloc(ov->names, (size_t)(ov->count + 1) * sizeof(char *));
			ov->values = xrealloc(ov->values, (size_t)(ov->count + 1) * sizeof(char *));
			ov->names[ov->count] = strndup(words[i], (size_t)(eq - words[i]));
			ov->values[ov->count] = xstrdup(eq + 1);
			ov->count++;
		} else {
			rest[nrest++] = words[i];
		}
	}
	return nrest;
}

void params_free(ParamOverrides *ov)
{
	for (int i = 0; i < ov->count; i++) {
		free(ov->names[i]);
		free(ov->values[i]);
	}
	free(ov->names);
	free(ov->values);
	memset(ov, 0, sizeof *ov);
}

static void set_search_path(lua_State *L, const char *recipe_path)
{
	char *dir = xstrdup(recipe_path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	else
		strcpy(dir, ".");
	lua_getglobal(L, "package");
	lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", dir, dir);
	lua_setfield(L, -2, "path");
	lua_pushliteral(L, "");
	lua_setfield(L, -2, "cpath"); /* no native modules: a recipe is plain Lua */
	lua_pop(L, 1);
	char *abs = realpath(dir, NULL);
	lua_pushstring(L, abs ? abs : dir);
	lua_setglobal(L, "RECIPE_DIR");
	free(abs);
	free(dir);
}

/* The message handler: an error raised with a non-string value (error({}), error(nil))
 * still says where it was raised, from the innermost Lua frame. */
static int message_handler(lua_State *L)
{
	if (lua_type(L, 1) == LUA_TSTRING) {
		/* Lua names no line for some errors ("C stack overflow" raised in a C function):
		 * the innermost line of a recipe file says where */
		if (sandbox_has_position(lua_tostring(L, 1)))
			return 1;
		lua_Debug ar;
		for (int level = 1; lua_getstack(L, level, &ar); level++)
			if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0 && ar.source[0] == '@') {
				lua_pushfstring(L, "%s:%d: %s", ar.short_src, ar.currentline, lua_tostring(L, 1));
				return 1;
			}
		return 1;
	}
	const char *shown = luaL_getmetafield(L, 1, "__tostring") != LUA_TNIL ? (lua_pop(L, 1), luaL_tolstring(L, 1, NULL))
									       : NULL;
	lua_Debug ar;
	for (int level = 1; lua_getstack(L, level, &ar); level++)
		if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
			lua_pushfstring(L, "%s:%d: error raised with a %s value%s%s", ar.short_src, ar.currentline,
					luaL_typename(L, 1), shown ? ": " : " (raise a string to say what is wrong)",
					shown ? shown : "");
			return 1;
		}
	lua_pushfstring(L, "error raised with a %s value", luaL_typename(L, 1));
	return 1;
}

/* Lua's allocations, from a pool: a million task{} calls make and drop a dozen small
 * tables and strings each, which malloc and free serve at several times the cost. */
typedef struct {
	Pool pool;
	size_t used, limit; /* bytes Lua holds; past limit (0: none) an allocation fails */
} LuaHeap;

static void *pool_alloc(void *ud, void *ptr, size_t old_size, size_t new_size)
{
	return pool_realloc(ud, ptr, old_size, new_size);
}

/* pool_alloc with a bound (RecipeLoad.max_bytes): Lua's allocations counted. */
static void *bounded_alloc(void *ud, void *ptr, size_t old_size, size_t new_size)
{
	LuaHeap *heap = ud;
	size_t old = ptr ? old_size : 0; /* without ptr, old_size names the kind of object */
	if (new_size > old && heap->limit && heap->used - old + new_size > heap->limit)
		return NULL; /* Lua raises "not enough memory" */
	void *p = pool_realloc(&heap->pool, ptr, old_size, new_size);
	if (p || new_size == 0)
		heap->used = heap->used - old + new_size;
	return p;
}

/* What luaL_newstate's state does on an error outside any protected call. */
static int panic(lua_State *L)
{
	const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "error object is not a string";
	fprintf(stderr, "kiln: internal error: unprotected error in a call to Lua (%s)\n", msg);
	return 0; /* Lua aborts */
}

/* Lua's warn(): off until a recipe says warn("@on"), as in the stand-alone interpreter. */
static void warning(void *ud, const char *msg, int tocont)
{
	int *state = ud; /* 0 off, 1 on, 2 on in the middle of a message */
	if (*state != 2 && msg[0] == '@') {
		if (!strcmp(msg, "@on"))
			*state = 1;
		else if (!strcmp(msg, "@off"))
			*state = 0;
		return;
	}
	if (!*state)
		return;
	fprintf(stderr, "%s%s%s", *state == 2 ? "" : "kiln: Lua warning: ", msg, tocont ? "" : "\n");
	*state = tocont ? 2 : 1;
}

int recipe_load(Graph *g, const char *path, const RecipeLoad *lo, Buf *err)
{
	static const ParamOverrides no_params;
	const ParamOverrides *ov = lo->params ? lo->params : &no_params;
	LuaHeap heap = {.limit = lo->max_bytes};
	int warnings = 0;
	/* kiln's own loads: no bound, no bookkeeping (a million task{} calls allocate) */
	lua_State *L = heap.limit ? lua_newstate(bounded_alloc, &heap) : lua_newstate(pool_alloc, &heap.pool);
	if (L) {
		lua_atpanic(L, panic);
		lua_setwarnf(L, warning, &warnings);
	}
	if (!L) {
		buf_puts(err, "cannot create a Lua state (out of memory)");
		return -1;
	}
	/* a recipe makes short-lived tables and strings by the million (one task{} each):
	 * generational collection frees them young, for less work than incremental sweeps */
	lua_gc(L, LUA_GCGEN, 0, 0);
	RecipeContext ctx = {.g = g, .ov = ov, .count_gpus = lo->count_gpus, .count_gpus_ctx = lo->count_gpus_ctx,
			     .gpus_known = -1, .executors = lo->executors,
			     .blocks = lo->blocks};
	g->default_opts.retry_on = FC_DEFAULT_RETRY; /* what task{} gives a task that names none */
	ctx.ov_used = xcalloc((size_t)ov->count + 1, 1);
	char *recipe_abs = realpath(path, NULL);
	ctx.recipe = graph_norm_path(g, recipe_abs ? recipe_abs : path);
	free(recipe_abs);
	int rc = -1, stopped = 0;
	luaL_openlibs(L);
	sandbox_quick_tostring(L);
	lkiln_open(L, &ctx);
	sandbox_guard_io_open(L);
	lua_pushcfunction(L, message_handler);
	if (chunk_load_text(L, prelude, sizeof prelude - 1, "=kiln", lo->chunk_dir) ||
	    (lua_pushcfunction(L, message_handler), sandbox_push_loadfile(L), lua_pcall(L, 2, 0, -4))) {
		buf_printf(err, "internal error in the recipe prelude: %s", lua_tostring(L, -1));
		goto out;
	}
	lua_pop(L, 1);
	set_search_path(L, path);
	lua_pushcfunction(L, message_handler);
	int status = chunk_load(L, path, lo->chunk_dir);
	if (status == LUA_ERRFILE) {
		buf_printf(err, "cannot read recipe %s (give a recipe file, or run where kiln.lua is)", path);
		goto out;
	}
	if (status != LUA_OK)
		sandbox_name_overflow_line(L, path);
	if (status == LUA_OK) {
		LoadWatch *watch = sandbox_watch_start(L, lo->timeout_sec, lo->wait_when_stuck);
		status = lua_pcall(L, 0, 0, -2);
		stopped = sandbox_watch_fired(watch) == 2;
		sandbox_watch_stop(watch);
	}
	if (status == LUA_ERRMEM)
		buf_printf(err, "%s: out of memory while loading the recipe", path);
	else if (status != LUA_OK)
		buf_puts(err, lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "error object is not a string");
	if (status != LUA_OK)
		goto out;
	for (int i = 0; i < ov->count; i++)
		if (!ctx.ov_used[i]) {
			buf_printf(err, "unknown param \"%s\" on the command line", ov->names[i]);
			if (ctx.declared_params.len)
				buf_printf(err, " (%s declares: %s)", path, buf_str(&ctx.declared_params));
			else
				buf_printf(err, " (%s declares no params{})", path);
			goto out;
		}
	rc = 0;
out:
	if (rc != 0 && stopped)
		rc = -2;
	if (getenv("KILN_TRACE")) {
		char what[64];
		snprintf(what, sizeof what, "recipe run (Lua holds %d KiB)", lua_gc(L, LUA_GCCOUNT, 0));
		trace_mark(what);
	}
	lua_close(L);
	pool_free(&heap.pool);
	free(ctx.ov_used);
	buf_free(&ctx.declared_params);
	strmap_free(&ctx.confined_dirs);
	return rc;
}
