/* lchunk.c — see lchunk.h. A kept file: a header (what made it, the hash of the text it
 * was compiled from, a seal over the bytecode after it), then lua_dump's bytecode, with
 * its debug information (lines and names stay in messages). Lua does not check bytecode:
 * a damaged or crafted chunk could crash it or step outside the recipe's sandbox. So a
 * kept file is loaded only when its seal matches: the hash of its bytecode together with
 * the identity (device, inode) of the folder it was written in and the user. A truncated
 * or damaged file fails it, and so does one made anywhere else: a workspace copied,
 * unpacked or cloned with its .kiln gets a new folder, and its recipes are parsed again. */
#include "lchunk.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../base/hash.h"
#include "../../base/util.h"

typedef struct {
	char magic[12];   /* "kiln-chunk1" */
	int32_t lua;      /* LUA_VERSION_RELEASE_NUM: another Lua's bytecode is not read */
	Hash text, seal;  /* the recipe text compiled; the seal of the bytecode that follows */
} ChunkHeader;

/* The bytecode's hash, bound to the folder it is kept in and to this user. */
static int seal_of(const char *dir, const char *body, size_t len, Hash *seal)
{
	struct stat st;
	if (stat(dir, &st) != 0)
		return -1;
	struct {
		Hash body;
		uint64_t dev, ino, uid;
	} sealed = {hash_bytes(body, len), (uint64_t)st.st_dev, (uint64_t)st.st_ino, (uint64_t)getuid()};
	*seal = hash_bytes(&sealed, sizeof sealed);
	return 0;
}

static const char chunk_magic[12] = "kiln-chunk1";

/* dir/<hash of the chunk's name>.luac: one file per recipe path, replaced as its text changes */
static char *kept_path(const char *dir, const char *chunkname)
{
	char hex[33];
	hash_hex(hash_bytes(chunkname, strlen(chunkname)), hex);
	return xasprintf("%s/%.16s.luac", dir, hex);
}

/* Loads the kept bytecode for text: LUA_OK with the chunk pushed, or -1 (nothing pushed). */
static int load_kept(lua_State *L, const char *dir, const char *file, Hash text, const char *chunkname)
{
	size_t len;
	char *data = read_file(file, &len);
	int rc = -1;
	ChunkHeader h;
	if (data && len > sizeof h) {
		memcpy(&h, data, sizeof h);
		const char *body = data + sizeof h;
		size_t body_len = len - sizeof h;
		Hash seal;
		if (!memcmp(h.magic, chunk_magic, sizeof h.magic) && h.lua == LUA_VERSION_RELEASE_NUM &&
		    hash_equal(h.text, text) && seal_of(dir, body, body_len, &seal) == 0 && hash_equal(h.seal, seal)) {
			rc = luaL_loadbufferx(L, body, body_len, chunkname, "b");
			if (rc != LUA_OK) {
				lua_pop(L, 1);
				rc = -1;
			}
		}
	}
	free(data);
	return rc;
}

static int dump_to_buf(lua_State *L, const void *p, size_t n, void *ud)
{
	(void)L;
	buf_put(ud, p, n);
	return 0;
}

/* Writes the chunk on top of the stack to file, for text (best effort). */
static void keep(lua_State *L, const char *dir, const char *file, Hash text)
{
	ChunkHeader h = {.lua = LUA_VERSION_RELEASE_NUM, .text = text};
	memcpy(h.magic, chunk_magic, sizeof h.magic);
	Buf out = {0};
	buf_put(&out, &h, sizeof h);
	if (lua_dump(L, dump_to_buf, &out, 0) == 0 && out.len > sizeof h && (mkdir(dir, 0755) == 0 || errno == EEXIST) &&
	    seal_of(dir, out.data + sizeof h, out.len - sizeof h, &h.seal) == 0) {
		memcpy(out.data, &h, sizeof h);
		write_file_atomic(file, out.data, out.len); /* a failure leaves the text to parse next time */
	}
	buf_free(&out);
}

int chunk_load_text(lua_State *L, const char *text, size_t len, const char *chunkname, const char *dir)
{
	Hash h = hash_bytes(text, len);
	char *file = dir ? kept_path(dir, chunkname) : NULL;
	int status = file ? load_kept(L, dir, file, h, chunkname) : -1;
	if (status != LUA_OK) {
		status = luaL_loadbufferx(L, text, len, chunkname, "t");
		if (status == LUA_OK && file)
			keep(L, dir, file, h);
	}
	free(file);
	return status;
}

int chunk_load(lua_State *L, const char *path, const char *dir)
{
	size_t len;
	char *text = read_file(path, &len);
	/* a '#' first line, a byte-order mark or a binary file: Lua's own reader says and does
	 * what it always did with them */
	if (!text || (len && (text[0] == '#' || text[0] == '\xef' || text[0] == LUA_SIGNATURE[0]))) {
		free(text);
		return luaL_loadfilex(L, path, "t");
	}
	char *chunkname = xasprintf("@%s", path);
	int status = chunk_load_text(L, text, len, chunkname, dir);
	free(chunkname);
	free(text);
	return status;
}
