/* lkiln_internal.h — what the files of the recipe API share: lkiln.c (task{} and the
 * helpers every declaration uses), lfields.c (field errors, checks and values), ldecl.c
 * (plot{}, external{}, settings{}, glob(), params{}, gpus_available()) and lmap.c
 * (map{}). Errors raise through Lua, so they carry file:line. */
#ifndef KILN_LKILN_INTERNAL_H
#define KILN_LKILN_INTERNAL_H

#include <glob.h>
#include <lua.h>

#include "lblock.h"
#include "lkiln.h"

/* The RecipeContext of the API function that is running (its upvalue). */
RecipeContext *lk_context(lua_State *L);
/* The GPUs this machine has (gpus_available()), asked of ctx->count_gpus on first use. */
int lk_gpus_known(RecipeContext *ctx);
/* Records the recipe file and line of the call that declares t. */
void lk_declaration_site(lua_State *L, RecipeContext *ctx, Task *t);
/* Whether s is a task name: letters, digits and _-./:=+, with '/' between parts. */
int lk_valid_task_name(const char *s);
/* lcommand.c: sets t's command from the run value at idx (an argv table or a shell
 * string), its placeholders expanded for t's paths. */
void lk_parse_run(lua_State *L, Graph *g, Task *t, int idx);
/* Replaces {out} {in} {name} {outputs} {inputs} {resume} in s (a copy in g's arena);
 * anything else in braces stays. shell_quote: each path one shell word; run_words: s is
 * (part of) the command, so paths are given from t's cwd. */
const char *lk_expand_placeholders(lua_State *L, Graph *g, const Task *t, const char *s, int shell_quote,
				   int run_words);
/* {port}... in a command or env value: one port unless `ports` says more; a {portK}
 * beyond what `ports` declares is a recipe error. */
void lk_check_port_placeholders(lua_State *L, Task *t);
/* Warns (stderr, the recipe's file:line) of words in braces one letter or two off a
 * placeholder ({outt}: did you mean {out}?), which would reach the command as written. */
void lk_warn_placeholder_typos(lua_State *L, const Task *t);
/* Levenshtein distance of a (n bytes) and b, capped at 3: for "did you mean". */
int lk_distance(const char *a, size_t n, const char *b);
/* Pushes the task value task{} and plot{} return (ltaskvalue.c). */
void lk_push_task_value(lua_State *L, const Task *t);
/* Registers task values' metatable (read-only, .name/.outputs/.inputs): its registry reference. */
int lk_task_value_metatable(lua_State *L);
/* Raises unless workspace-relative path p may be declared (see lkiln.c). */
void lk_check_confined(lua_State *L, const char *p, const char *field, int output);

/* task{}'s retry_on (the classes, as failure.h bits) and torchrun (wraps t's command). */
unsigned lk_parse_retry_on(lua_State *L, Graph *g);
void lk_parse_torchrun(lua_State *L, Graph *g, Task *t, int cpus_declared);
/* shell = "bash" into t->opts->shell (t's run is a string: parsed before this). */
void lk_parse_shell(lua_State *L, Graph *g, Task *t);
/* The task's slurm = {...} field into t->opts->slurm. */
void lk_parse_task_slurm(lua_State *L, Graph *g, Task *t);
/* The Task of the task value at idx, or NULL (ltaskvalue.c). */
Task *lk_task_of(lua_State *L, int idx);

/* glob(3) of pattern into gl, bounded: glibc's glob recurses once per path component
 * with a wildcard, so a pattern of thousands ("*\/" * 3000) would exhaust the stack. Raises
 * a Lua error (naming field, or glob() when NULL) for a pattern past the bounds. */
int lk_glob(lua_State *L, const char *pattern, const char *field, glob_t *gl);
/* The registry key of kiln's task{} (map{} declares through it: a recipe may have
 * replaced the global). */
#define LK_TASK_FUNCTION "kiln.task{}"
int l_map(lua_State *L);
int l_plot(lua_State *L);
int l_external(lua_State *L);
int l_settings(lua_State *L);
int l_glob(lua_State *L);
int l_params(lua_State *L);
int l_gpus_available(lua_State *L);

#endif
