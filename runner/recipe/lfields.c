/* lfields.c — reading a declaration's table, for every recipe API function: field
 * errors that name the task being declared, the check that every key is a known field,
 * and a field's value as a string or a bounded integer. Errors raise through Lua, so they
 * carry the recipe's file:line. */
#define _GNU_SOURCE
#include <lauxlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lkiln_internal.h"

/* Raises "task "NAME": FIELD MESSAGE" at the recipe's file:line (without a task name
 * outside task{}). The name comes from ctx->declaring, so no label is formatted for every
 * field of every task up front (that alone cost a third of loading). */
int lk_field_error(lua_State *L, const char *field, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	const char *declaring = lk_context(L)->declaring;
	if (declaring)
		return luaL_error(L, "task \"%s\": %s %s", declaring, field, msg);
	return luaL_error(L, "%s %s", field, msg);
}

/* Converts the value at idx to a string in the graph's arena: strings and numbers are
 * accepted; booleans only when allow_bool. */
const char *lk_value_string(lua_State *L, Graph *g, int idx, const char *what, int allow_bool)
{
	int type = lua_type(L, idx);
	if (type == LUA_TSTRING) { /* the common case, without luaL_tolstring's metamethod look-up */
		size_t len;
		const char *s = lua_tolstring(L, idx, &len);
		RecipeContext *ctx = lk_context(L);
		size_t slot = ((uintptr_t)s >> 4) % INTERNED;
		if (ctx->interned[slot].lua == s && ctx->interned[slot].len == len && !memcmp(ctx->interned[slot].copy, s, len))
			return ctx->interned[slot].copy;
		if (memchr(s, 0, len))
			lk_field_error(L, what, "holds a NUL byte (\"%s...\"): no command, path or name can carry one", s);
		const char *copy = arena_strndup(&g->arena, s, len);
		ctx->interned[slot].lua = s, ctx->interned[slot].copy = copy, ctx->interned[slot].len = len;
		return copy;
	}
	if (type == LUA_TNUMBER || (allow_bool && type == LUA_TBOOLEAN)) {
		const char *s = luaL_tolstring(L, idx, NULL);
		const char *copy = arena_strdup(&g->arena, s);
		lua_pop(L, 1);
		return copy;
	}
	lk_field_error(L, what, "must be a string%s, got %s", allow_bool ? ", number or boolean" : " or number",
		    luaL_typename(L, idx));
	return NULL;
}

/* An integer in [0, max]; anything else (a fraction, NaN, 2^32) is a recipe error. */
long long lk_integer_field(lua_State *L, int idx, const char *field, long long max)
{
	int ok;
	lua_Integer v = lua_tointegerx(L, idx, &ok);
	if (!ok)
		lk_field_error(L, field, "must be an integer, got %s",
			    lua_type(L, idx) == LUA_TNUMBER ? "a fraction" : luaL_typename(L, idx));
	if (v < 0)
		lk_field_error(L, field, "must not be negative");
	if (v > max) {
		char limit[32];
		snprintf(limit, sizeof limit, "%lld", max);
		lk_field_error(L, field, "must be at most %s", limit);
	}
	return v;
}

/* Raises "what: unknown field 'x' (fields: ...)" for any key of the table at 1 not in
 * fields; returns a mask with bit i set when fields[i] is present, so callers look up only
 * the fields a table has. */
/* fields as Lua strings, interned once (anchored in the registry for the state's life),
 * or NULL when more lists than FIELD_LISTS (or longer ones than FIELDS_MAX) are in use. */
static const char *const *lua_field_names(lua_State *L, RecipeContext *ctx, const char *const *fields, int *n)
{
	for (int i = 0; i < FIELD_LISTS; i++) {
		if (ctx->field_lists[i].fields == fields) {
			*n = ctx->field_lists[i].n;
			return ctx->field_lists[i].lua;
		}
		if (ctx->field_lists[i].fields)
			continue;
		int count = 0;
		while (fields[count])
			count++;
		if (count > FIELDS_MAX)
			return NULL;
		for (int k = 0; k < count; k++) {
			ctx->field_lists[i].lua[k] = lua_pushstring(L, fields[k]);
			luaL_ref(L, LUA_REGISTRYINDEX); /* keeps the string, so its address stays its own */
		}
		ctx->field_lists[i].fields = fields;
		ctx->field_lists[i].n = *n = count;
		return ctx->field_lists[i].lua;
	}
	return NULL;
}

uint64_t lk_check_fields(lua_State *L, const char *what, const char *const *fields)
{
	int nlua = 0;
	const char *const *lua = lua_field_names(L, lk_context(L), fields, &nlua);
	uint64_t present = 0;
	lua_pushnil(L);
	while (lua_next(L, 1)) {
		lua_pop(L, 1);
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "%s: field names must be strings (did you mean deps = {...}?)", what);
		const char *k = lua_tostring(L, -1);
		int known = 0;
		for (int i = 0; i < nlua && !known; i++) /* names this short are interned: equal is identical */
			if (k == lua[i]) {
				known = 1;
				present |= (uint64_t)1 << i;
			}
		for (int i = 0; fields[i] && !known; i++)
			if (!strcmp(k, fields[i])) {
				known = 1;
				present |= (uint64_t)1 << i;
			}
		if (!known) {
			luaL_Buffer b;
			luaL_buffinit(L, &b);
			for (int i = 0; fields[i]; i++) {
				luaL_addstring(&b, i ? ", " : "");
				luaL_addstring(&b, fields[i]);
			}
			luaL_pushresult(&b);
			luaL_error(L, "%s: unknown field '%s' (fields: %s)", what, k, lua_tostring(L, -1));
		}
	}
	return present;
}
