/* lchunk.h — a recipe's compiled chunk, kept between commands. Parsing is most of a small
 * recipe's load (a few hundred task{} lines: a third of a no-op run's instructions), and
 * the recipe seldom changes between runs: its bytecode is kept in a file under dir, named
 * after the recipe's path and valid for its exact text, and loaded instead of the text
 * while it matches. */
#ifndef KILN_LCHUNK_H
#define KILN_LCHUNK_H

#include <stddef.h>

struct lua_State;

/* Pushes the main chunk of the recipe at path, as luaL_loadfilex(L, path, "t") would (the
 * same chunk name, "@path", so messages say file:line; a first line starting with '#' is
 * skipped), and returns its status (LUA_ERRFILE when path cannot be read). With dir (NULL:
 * no keeping), bytecode kept there for this very text is loaded instead of parsing it; a
 * text parsed leaves its bytecode there (best effort: a write that fails changes nothing).
 * A kept file is checked whole before Lua reads it: the hash of its text, and a seal over
 * its bytecode that binds it to the folder it was written in (lchunk.c says why). */
int chunk_load(struct lua_State *L, const char *path, const char *dir);
/* The same for a chunk given as text (kiln's own prelude), kept under dir by its name. */
int chunk_load_text(struct lua_State *L, const char *text, size_t len, const char *chunkname, const char *dir);

#endif
