/* logmetrics.c — metrics from log lines (logmetrics.h), with Lua's own pattern matching in a
 * state of kiln's that holds the string library only. */
#define _GNU_SOURCE
#include "logmetrics.h"

#include <errno.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A state with string.gmatch and tonumber, nothing a recipe touched. */
static lua_State *pattern_state(void)
{
	lua_State *L = luaL_newstate();
	if (!L)
		return NULL;
	luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
	luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
	lua_pop(L, 2);
	return L;
}

/* The end of the set that starts at p ('['), or NULL when it has none. */
static const char *set_end(const char *p)
{
	p++;
	if (*p == '^')
		p++;
	do { /* a ']' right after '[' or '[^' is the character */
		if (!*p)
			return NULL;
		if (*p == '%' && !*++p)
			return NULL;
		p++;
	} while (*p != ']');
	return p;
}

/* Checks pattern as Lua's matcher reads it (which complains only where a match reaches):
 * returns its number of captures, or -1 with why in err. */
static int captures(const char *p, Buf *err)
{
	int n = 0, open = 0;
	for (; *p; p++) {
		if (*p == '%') {
			if (!p[1])
				return buf_puts(err, "ends with '%'"), -1;
			if (p[1] == 'b' && (!p[2] || !p[3]))
				return buf_puts(err, "has %b without its two characters"), -1;
			if (p[1] == 'f' && p[2] != '[')
				return buf_puts(err, "has %f without a set [...]"), -1;
			p += p[1] == 'b' ? 3 : 1;
			if (p[0] == 'f' && !(p = set_end(p + 1)))
				return buf_puts(err, "misses a ']'"), -1;
		} else if (*p == '[') {
			if (!(p = set_end(p)))
				return buf_puts(err, "misses a ']'"), -1;
		} else if (*p == '(') {
			n++, open++;
		} else if (*p == ')' && --open < 0) {
			return buf_puts(err, "closes a capture it never opened"), -1;
		}
	}
	if (open)
		return buf_puts(err, "leaves a capture open"), -1;
	return n;
}

static int check(lua_State *L)
{
	/* a malformed pattern raises here: string.find("", pattern) */
	lua_getglobal(L, "string");
	lua_getfield(L, -1, "find");
	lua_pushliteral(L, "");
	lua_pushvalue(L, 1);
	lua_call(L, 2, 0);
	return 0;
}

/* Whether pattern is a Lua pattern with a number of captures that `wanted` accepts (it says
 * what it wants in err otherwise): 0, or -1 with why in err. */
static int check_pattern(const char *pattern, int (*wanted)(int n, Buf *err), Buf *err)
{
	Buf why = {0};
	int n = captures(pattern, &why);
	if (n < 0) {
		buf_printf(err, "is no Lua pattern: it %s", buf_str(&why));
		buf_free(&why);
		return -1;
	}
	if (wanted(n, err) != 0)
		return -1;
	lua_State *L = pattern_state();
	if (!L) {
		buf_puts(err, "out of memory");
		return -1;
	}
	lua_pushcfunction(L, check);
	lua_pushstring(L, pattern);
	int rc = lua_pcall(L, 1, 0, 0) == LUA_OK ? 0 : -1;
	if (rc)
		buf_printf(err, "is no Lua pattern: %s", lua_tostring(L, -1));
	lua_close(L);
	return rc;
}

static int metric_captures(int n, Buf *err)
{
	if (n >= 1 && n <= 2)
		return 0;
	buf_printf(err, "needs one capture (the value) or two (the value, then the step), has %d", n);
	return -1;
}

int log_metrics_check(const char *pattern, Buf *err) { return check_pattern(pattern, metric_captures, err); }

static int progress_one(int n, Buf *err)
{
	if (n == 1)
		return 0;
	buf_printf(err, "needs one capture (the count done) when `total` is given, has %d", n);
	return -1;
}

static int progress_two(int n, Buf *err)
{
	if (n == 2)
		return 0;
	buf_printf(err, "needs two captures (the count done, then the total), as \"(%%d+)/(%%d+)\", or one with "
			"`total`, as { \"Epoch (%%d+)\", total = 90 }; it has %d", n);
	return -1;
}

int log_progress_check(const char *pattern, long long total, Buf *err)
{
	return check_pattern(pattern, total > 0 ? progress_one : progress_two, err);
}

typedef struct {
	const char *text, *pattern;
	size_t len;
	long long done, total; /* the last match's, total 0 when it had none */
	int found;
} ProgressMatch;

/* The last match of the pattern whose captures are whole numbers. */
static int last_match(lua_State *L)
{
	ProgressMatch *pm = lua_touserdata(L, 1);
	lua_getglobal(L, "string");
	lua_getfield(L, -1, "gmatch");
	lua_pushlstring(L, pm->text, pm->len);
	lua_pushstring(L, pm->pattern);
	lua_call(L, 2, 1);
	int iter = lua_gettop(L);
	for (;;) {
		lua_settop(L, iter);
		lua_pushvalue(L, iter);
		lua_call(L, 0, 2);
		if (lua_isnil(L, -2))
			break;
		int isdone = 0, istotal = 0;
		lua_Integer done = lua_tointegerx(L, -2, &isdone), total = lua_tointegerx(L, -1, &istotal);
		if (isdone && done >= 0 && (lua_isnil(L, -1) || (istotal && total > 0))) {
			pm->done = (long long)done, pm->total = istotal ? (long long)total : 0;
			pm->found = 1;
		}
	}
	return 0;
}

int log_progress_last(const char *text, size_t len, const char *pattern, long long total_given, long long *done,
		      long long *total)
{
	lua_State *L = pattern_state();
	if (!L)
		return 0;
	ProgressMatch pm = {text, pattern, len, 0, 0, 0};
	lua_pushcfunction(L, last_match);
	lua_pushlightuserdata(L, &pm);
	int ok = lua_pcall(L, 1, 0, 0) == LUA_OK;
	lua_close(L);
	if (!ok || !pm.found || (total_given <= 0 && pm.total <= 0))
		return 0;
	*done = pm.done;
	*total = total_given > 0 ? total_given : pm.total;
	return 1;
}

/* Logs are read a piece at a time, each ending at a line's end: a log of any size takes
 * this much memory (twice: the piece and Lua's copy), and a match is found within a piece. */
#define PIECE_BYTES (8u << 20)

/* A pattern's matches so far, over the pieces. */
typedef struct {
	long index; /* matches seen: the next one's default step */
	char *last_text; /* the last match, when it was no number */
	double last;
	int have;
} PatternState;

typedef struct {
	const char *text; /* this piece */
	size_t len;
	const KeyValue *patterns;
	PatternState *state;
	int n;
	Metrics *m;
} Extraction;

static void add_row(Metrics *m, const char *key, int series, double step, double value, const char *text)
{
	if (m->count == m->cap)
		m->rows = xrealloc(m->rows, (size_t)(m->cap = m->cap ? m->cap * 2 : 16) * sizeof *m->rows);
	m->rows[m->count++] = (MetricRow){xstrdup(key), series, step, value, text ? xstrdup(text) : NULL};
}

/* Every pattern over one piece: its matches become series points, its state goes on. */
static int extract(lua_State *L)
{
	Extraction *x = lua_touserdata(L, 1);
	lua_pushlstring(L, x->text, x->len);
	int piece = lua_gettop(L);
	for (int i = 0; i < x->n; i++) {
		PatternState *ps = &x->state[i];
		lua_settop(L, piece);
		lua_getglobal(L, "string");
		lua_getfield(L, -1, "gmatch");
		lua_pushvalue(L, piece);
		lua_pushstring(L, x->patterns[i].value);
		lua_call(L, 2, 1); /* the iterator */
		int iter = lua_gettop(L);
		for (;; ps->index++) {
			lua_settop(L, iter);
			lua_pushvalue(L, iter);
			lua_call(L, 0, 2);
			if (lua_isnil(L, -2))
				break;
			int isnum = 0, stepnum = 0;
			double v = lua_tonumberx(L, -2, &isnum);
			double step = lua_isnil(L, -1) ? (double)ps->index : lua_tonumberx(L, -1, &stepnum);
			if (!lua_isnil(L, -1) && !stepnum)
				step = (double)ps->index;
			free(ps->last_text);
			ps->last_text = isnum ? NULL : xstrdup(lua_tostring(L, -2) ? lua_tostring(L, -2) : "");
			if (isnum) {
				add_row(x->m, x->patterns[i].key, 1, step, v, NULL);
				ps->last = v;
			}
			ps->have = 1;
		}
	}
	return 0;
}

int log_metrics_extract(const char *log_path, const KeyValue *patterns, int n, Metrics *m, Buf *err)
{
	int fd = open_read(log_path);
	if (fd < 0) {
		buf_printf(err, "cannot read %s for log_metrics", log_path);
		return -1;
	}
	lua_State *L = pattern_state();
	char *buf = xmalloc(PIECE_BYTES + 1);
	Extraction x = {buf, 0, patterns, xcalloc((size_t)n + 1, sizeof *x.state), n, m};
	size_t have = 0; /* bytes in buf: a piece, then the start of the next line */
	int first = 1, rc = L ? 0 : -1, eof = 0;
	if (!L)
		buf_puts(err, "out of memory reading log_metrics");
	while (rc == 0 && !(eof && have == 0)) {
		ssize_t got = eof ? 0 : read(fd, buf + have, PIECE_BYTES - have);
		if (got < 0) {
			buf_printf(err, "cannot read %s for log_metrics: %s", log_path, strerror(errno));
			rc = -1;
			break;
		}
		eof = got == 0;
		have += (size_t)got;
		buf[have] = 0;
		if (first) { /* kiln's header quotes the command: not output */
			const char *body = !strncmp(buf, "# kiln: ", 8) ? strstr(buf, "\n# --\n") : NULL;
			if (!body && !eof && have < PIECE_BYTES && !strncmp(buf, "# kiln: ", have < 8 ? have : 8))
				continue; /* the header is not all read yet */
			size_t skip = body ? (size_t)(body + 6 - buf) : 0;
			memmove(buf, buf + skip, have - skip + 1);
			have -= skip;
			first = 0;
		}
		const char *nl = have ? memrchr(buf, '\n', have) : NULL;
		size_t end = eof || have == PIECE_BYTES ? have : nl ? (size_t)(nl + 1 - buf) : 0; /* a line too long: cut */
		if (end == 0 && !eof)
			continue; /* no line ends yet */
		x.text = buf, x.len = end;
		if (lua_pushcfunction(L, extract), lua_pushlightuserdata(L, &x), lua_pcall(L, 1, 0, 0) != LUA_OK) {
			buf_printf(err, "log_metrics: %s", lua_tostring(L, -1));
			rc = -1;
		}
		memmove(buf, buf + end, have - end);
		have -= end;
	}
	for (int i = 0; i < n; i++) {
		if (rc == 0 && x.state[i].have)
			add_row(m, patterns[i].key, 0, 0, x.state[i].last, x.state[i].last_text);
		free(x.state[i].last_text);
	}
	free(x.state);
	free(buf);
	close(fd);
	if (L)
		lua_close(L);
	return rc;
}

int log_progress_in_tail(const Task *t, const char *tail, size_t len, int whole, long long *done, long long *total)
{
	const char *text = tail, *end = tail + len;
	if (!t->opts->log_progress)
		return 0;
	if (whole && len >= 8 && !strncmp(text, "# kiln: ", 8)) { /* the header quotes the command: not output */
		const char *body = memmem(text, len, "\n# --\n", 6);
		text = body ? body + 6 : end;
	} else if (!whole) {
		while (text < end && *text != '\n' && *text != '\r')
			text++;
	}
	return text < end &&
	       log_progress_last(text, (size_t)(end - text), t->opts->log_progress, t->opts->log_progress_total, done, total);
}
