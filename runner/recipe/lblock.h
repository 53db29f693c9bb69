/* lblock.h — what an executor's recipe block (slurm{}, hosts{}: runner/exec/ reads them,
 * recipe.h's RecipeBlock) reads its table with: the graph being declared, and the field
 * checks and values every declaration uses. Errors raise through Lua, so they carry the
 * recipe's file:line. */
#ifndef KILN_LBLOCK_H
#define KILN_LBLOCK_H

#include <lua.h>
#include <stdint.h>

#include "../../base/graph.h"

/* The graph the recipe declares into; a block ends any task{} being declared. */
Graph *lk_block_graph(lua_State *L);
/* Raises "task "NAME": FIELD MESSAGE" (without the task name outside task{}). */
int lk_field_error(lua_State *L, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The value at idx as an arena string: strings and numbers (booleans when allow_bool). */
const char *lk_value_string(lua_State *L, Graph *g, int idx, const char *what, int allow_bool);
/* A list field (one value or an array); deps and plot{}'s from also take task values. */
const char **lk_string_list(lua_State *L, Graph *g, int idx, const char *field, int *count, int allow_tasks);
/* Raises on a key of the table at 1 not in fields (64 at most); returns the bit mask of
 * those present. */
uint64_t lk_check_fields(lua_State *L, const char *what, const char *const *fields);
/* An integer in [0, max] at idx; anything else (a fraction, NaN, 2^32) is a recipe error. */
long long lk_integer_field(lua_State *L, int idx, const char *field, long long max);

#endif
