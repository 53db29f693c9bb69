/* lsandbox.h — what of a recipe's sandbox is written in C (lsandbox.c): a recipe can
 * redefine anything written in Lua, including the string methods a Lua guard would call. */
#ifndef KILN_LSANDBOX_H
#define KILN_LSANDBOX_H

#include <lua.h>

/* How long a recipe may load before it is stopped, unless --load-timeout says otherwise. */
#define SANDBOX_DEFAULT_LOAD_SEC 120.0

/* Replaces io.open by one that refuses every mode but reading ("r", "rb"). */
void sandbox_guard_io_open(lua_State *L);
/* Replaces the global tostring by one that writes integers without printf (the same text). */
void sandbox_quick_tostring(lua_State *L);
/* Pushes loadfile(path [, env]) for recipes: text chunks only; a parser overflow names its line. */
void sandbox_push_loadfile(lua_State *L);
/* Whether msg holds a "name:line:" position. */
int sandbox_has_position(const char *msg);
/* When the error message on top of L is Lua's "C stack overflow" from parsing path,
 * replaces it by one that names path and the line where the nesting ran out. */
void sandbox_name_overflow_line(lua_State *L, const char *path);

/* The watch over one load: once limit_sec (<= 0: the default) have passed, or a stop is
 * requested (SIGINT, SIGTERM, SIGHUP pending: see os_stop_requested), the next Lua
 * instruction raises an error naming the recipe's line. A load stuck inside one library
 * call reaches no next instruction: 5 s later the process exits (2, or 130 for a stop)
 * saying so, unless wait_when_stuck. Call from the loading thread. */
typedef struct LoadWatch LoadWatch;
LoadWatch *sandbox_watch_start(lua_State *L, double limit_sec, int wait_when_stuck);
/* 0 while quiet; 1 the load ran out of time; 2 a stop was requested. */
int sandbox_watch_fired(const LoadWatch *w);
void sandbox_watch_stop(LoadWatch *w);

#endif
