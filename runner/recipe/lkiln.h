/* lkiln.h — the recipe API that Lua code sees: task{}, plot{}, grid{}, params{}, glob(),
 * gpus_available(). */
#ifndef KILN_LKILN_H
#define KILN_LKILN_H

#include <lua.h>

#include "../../base/graph.h"
#include "recipe.h"

/* What the API functions share while one recipe loads. */
typedef struct {
	Graph *g;
	const ParamOverrides *ov;
	char *ov_used;          /* per override: 1 once a params{} call declared that name */
	Buf declared_params;    /* "a, b, c" for error messages */
	int (*count_gpus)(void *ctx); /* gpus_available(): RecipeLoad's, asked once (lk_gpus_known) */
	void *count_gpus_ctx;
	int gpus_known;         /* its answer, or -1 before it was asked */
	const char *const *executors; /* the names executor = "..." may give (RecipeLoad's) */
	const RecipeBlock *blocks;    /* the executors' blocks, registered as globals */
	const char *last_source; /* the chunk name of the last task{} call and its file name, */
	const char *last_file;   /* kept once in the graph's arena rather than once per task */
	const char *recipe;      /* the recipe's workspace-relative path (no task may write it) */
	const char **external;   /* external{} roots: absolute paths outside the workspace that */
	int nexternal;           /* inputs may name (arena strings) */
	StrMap confined_dirs;    /* output parent directories already found inside the workspace
				    (each its own key, in the graph's arena) */
	const char *last_confined; /* the one found last: a million outputs in one directory */
	const char *declaring;   /* the task{} being declared, for field errors; NULL outside */
	int task_metatable;      /* task values' metatable, a registry reference (luaL_setmetatable
				    would look it up by name for every task{}) */
	/* Lua interns short strings, so a value every task repeats ("shared.txt", a model's
	 * path) is one Lua string: its arena copy is kept by the Lua string's address and
	 * shared (checked by content: the address may be reused after a collection). */
#define INTERNED 256
	struct {
		const char *lua, *copy;
		size_t len;
	} interned[INTERNED];
	/* the field lists lk_check_fields has seen, as Lua's own (interned) strings: a key
	 * is a known field when it is the same string, a pointer compare per field */
#define FIELD_LISTS 8
#define FIELDS_MAX 64
	struct {
		const char *const *fields;
		const char *lua[FIELDS_MAX];
		int n;
	} field_lists[FIELD_LISTS];
} RecipeContext;

/* Registers the API as globals in L; ctx must outlive every call into L. */
void lkiln_open(lua_State *L, RecipeContext *ctx);

#endif
