/* ltaskvalue.c — the value task{}, map{} and plot{} return: a userdata holding the Task,
 * with .name, .outputs and .inputs read on demand (cheaper than building tables that a
 * recipe rarely reads: a 10k-task recipe would otherwise build 20k tables), read-only. */
#include "lkiln_internal.h"

#include <lauxlib.h>
#include <string.h>

#define TASK_METATABLE "kiln.task"

void lk_push_task_value(lua_State *L, const Task *t)
{
	const Task **slot = lua_newuserdatauv(L, sizeof *slot, 0);
	*slot = t;
	lua_rawgeti(L, LUA_REGISTRYINDEX, lk_context(L)->task_metatable);
	lua_setmetatable(L, -2);
}

Task *lk_task_of(lua_State *L, int idx)
{
	const Task **slot = luaL_testudata(L, idx, TASK_METATABLE);
	return slot ? (Task *)*slot : NULL;
}

static void push_string_list(lua_State *L, const char *const *items, int n)
{
	lua_createtable(L, n, 0);
	for (int i = 0; i < n; i++) {
		lua_pushstring(L, items[i]);
		lua_rawseti(L, -2, i + 1);
	}
}

/* The task value a metamethod was called on; a recipe may call one on anything
 * (getmetatable(t).__tostring({})), which is an argument error, not a crash. */
static const Task *checked_task_value(lua_State *L)
{
	return *(const Task **)luaL_checkudata(L, 1, TASK_METATABLE);
}

static int task_value_index(lua_State *L)
{
	const Task *t = checked_task_value(L);
	const char *key = luaL_checkstring(L, 2);
	if (!strcmp(key, "name"))
		lua_pushstring(L, t->name);
	else if (!strcmp(key, "outputs"))
		push_string_list(L, t->outputs, t->noutputs);
	else if (!strcmp(key, "inputs"))
		push_string_list(L, t->inputs, t->ninputs);
	else
		return luaL_error(L, "a task value has name, outputs and inputs, not '%s'", key);
	return 1;
}

/* A task is what its task{} declared: a field set on its value afterwards would change nothing. */
static int task_value_newindex(lua_State *L)
{
	const Task *t = checked_task_value(L);
	return luaL_error(L, "task %s cannot be changed after task{} declared it ('%s' set on its value): give the "
			  "field in its task{ }", t->name, lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : luaL_typename(L, 2));
}

static int task_value_tostring(lua_State *L)
{
	lua_pushfstring(L, "task %s", checked_task_value(L)->name);
	return 1;
}

int lk_task_value_metatable(lua_State *L)
{
	luaL_newmetatable(L, TASK_METATABLE); /* sets __name */
	lua_pushcfunction(L, task_value_index);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, task_value_newindex);
	lua_setfield(L, -2, "__newindex");
	lua_pushcfunction(L, task_value_tostring);
	lua_setfield(L, -2, "__tostring");
	return luaL_ref(L, LUA_REGISTRYINDEX);
}
