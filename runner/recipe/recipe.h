/* recipe.h — loading a Lua 5.4 recipe into a Graph. Loading only declares tasks: no
 * process runs, no clock is read, nothing is written but the recipe's compiled chunk
 * (RecipeLoad.chunk_dir). */
#ifndef KILN_RECIPE_H
#define KILN_RECIPE_H

#include "../../base/graph.h"

/* Command-line parameter overrides "name=value". */
typedef struct {
	char **names, **values;
	int count;
} ParamOverrides;

/* Splits argv-style "name=value" words into overrides; other words go to rest
 * (caller-provided array of at least n entries). Returns the number of rest words. */
int params_split(char **words, int n, ParamOverrides *ov, char **rest);
void params_free(ParamOverrides *ov);

/* An executor's recipe block (slurm{}, hosts{}): the global function that reads it into
 * the graph (graph_set_block). The executors own them (runner/exec/); lblock.h has the
 * field tools they read with. */
struct lua_State;
typedef struct {
	const char *name;                 /* the global: "slurm" for slurm{} */
	int (*read)(struct lua_State *L); /* a lua_CFunction */
} RecipeBlock;

/* How a recipe loads. */
typedef struct {
	const ParamOverrides *params; /* name=value from the command line; NULL: none */
	/* what the recipe's gpus_available() returns, asked once and only when a recipe needs it
	 * (gpus_available(), map{} shards = "gpus"): finding the GPUs loads NVML, which a
	 * recipe of CPU tasks should not pay for; NULL: 0 */
	int (*count_gpus)(void *ctx);
	void *count_gpus_ctx;
	double timeout_sec;           /* a load still running after this is stopped; <= 0: two minutes */
	size_t max_bytes;             /* the most memory Lua may hold while it loads; 0: no limit */
	const char *const *executors; /* the names executor = "..." may give, NULL-ended; NULL: "local" */
	const RecipeBlock *blocks;    /* the executors' blocks, ended by a NULL name; NULL: none */
	const char *chunk_dir;        /* where the recipe's bytecode is kept between loads (lchunk.h);
	                               * NULL: parsed every time */
	int wait_when_stuck;          /* a load stuck in one library call past its time waits instead of
	                               * ending the process (lsandbox.h): for a fuzzer, whose own timeout
	                               * reports it */
} RecipeLoad;

/* Loads the recipe at `path` into g (tasks added, not yet resolved). Returns 0, or -1
 * with "file:line: message" in err (a load past its time names the line it was at), or -2
 * when a stop was requested (Ctrl-C) while it loaded. `path` is the chunk name in messages. */
int recipe_load(Graph *g, const char *path, const RecipeLoad *lo, Buf *err);
/* Once every task is declared: each plot{}'s `from` selects some task, and the tags it draws
 * by (bars' and heatmaps' x, series) are on some task it selects; else -1 with
 * "file:line: ..." naming the tags those tasks have (did you mean ...). */
int recipe_check_plots(const Graph *g, Buf *err);

#endif
