/* lcommand.c — a task's command as declared: run (an argv table or a shell string) with
 * its placeholders expanded for the task's paths ({out}, {in}, {outputs}, {inputs},
 * {resume}, {name}; from its cwd when it has one) and its {port} words counted against
 * `ports`. The words an attempt fills in ({port}, {gpus}, {rdzv}, {items}) stay for
 * exec_common.c. */
#define _GNU_SOURCE
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "lkiln_internal.h"

#define MAX_PORTS 16 /* ports.h's PORTS_MAX */

/* Workspace-relative path p as the command sees it from t's cwd ("../../data/x" from
 * "runs/a"); absolute paths and tasks without cwd keep p. */
static const char *from_cwd(Graph *g, const Task *t, const char *p)
{
	const char *cwd = t->opts->cwd;
	if (!cwd || p[0] == '/')
		return p;
	size_t n = strlen(cwd);
	if (!strncmp(p, cwd, n) && p[n] == '/') /* inside it: the rest */
		return p + n + 1;
	Buf b = {0};
	for (const char *c = cwd; c; c = strchr(c, '/') ? strchr(c, '/') + 1 : NULL)
		buf_puts(&b, "../");
	buf_puts(&b, p);
	const char *copy = arena_strdup(&g->arena, buf_str(&b));
	buf_free(&b);
	return copy;
}

const char *lk_expand_placeholders(lua_State *L, Graph *g, const Task *t, const char *s, int shell_quote,
				   int run_words)
{
	if (!strchr(s, '{'))
		return arena_strdup(&g->arena, s); /* s may be Lua's: it dies with the state */
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	for (const char *p = s; *p;) {
		const char *list_of = NULL;
		const char **items = NULL;
		int nitems = 0, word = 0;
		if (!strncmp(p, "{out}", 5)) {
			list_of = "outputs", items = t->outputs, nitems = t->noutputs > 0, word = 5;
		} else if (!strncmp(p, "{in}", 4)) {
			list_of = "inputs", items = t->inputs, nitems = t->ninputs > 0, word = 4;
		} else if (!strncmp(p, "{outputs}", 9)) {
			items = t->outputs, nitems = t->noutputs, word = 9;
		} else if (!strncmp(p, "{inputs}", 8)) {
			items = t->inputs, nitems = t->ninputs, word = 8;
		} else if (!strncmp(p, "{resume}", 8)) {
			list_of = "resume paths", items = t->opts->resume, nitems = t->opts->nresume > 0, word = 8;
		} else if (!strncmp(p, "{name}", 6)) {
			luaL_addstring(&b, t->name);
			p += 6;
			continue;
		}
		if (!word) {
			luaL_addchar(&b, *p++);
			continue;
		}
		if (list_of && nitems == 0) {
			char placeholder[16];
			snprintf(placeholder, sizeof placeholder, "%.*s", word, p);
			luaL_error(L, "task \"%s\" uses %s but declares no %s", t->name, placeholder, list_of);
		}
		for (int i = 0; i < nitems; i++) {
			const char *item = run_words ? from_cwd(g, t, items[i]) : items[i];
			if (i)
				luaL_addchar(&b, ' ');
			if (shell_quote) { /* every expansion into a shell string is one quoted word */
				Buf q = {0};
				buf_shell_quote(&q, item);
				luaL_addlstring(&b, q.data, q.len);
				buf_free(&q);
			} else {
				luaL_addstring(&b, item);
			}
		}
		p += word;
	}
	luaL_pushresult(&b);
	const char *copy = arena_strdup(&g->arena, lua_tostring(L, -1));
	lua_pop(L, 1);
	return copy;
}

void lk_parse_run(lua_State *L, Graph *g, Task *t, int idx)
{
	if (lua_type(L, idx) == LUA_TSTRING) {
		task_set_shell(t, lk_expand_placeholders(L, g, t, lua_tostring(L, idx), 1, 1));
		return;
	}
	if (lua_type(L, idx) != LUA_TTABLE)
		luaL_error(L, "task \"%s\": run must be an argv table or a shell string, got %s", t->name,
			   luaL_typename(L, idx));
	int n;
	const char **words = lk_string_list(L, g, idx, "run", &n, 0);
	if (n == 0)
		luaL_error(L, "task \"%s\": run is an empty argv table", t->name);
	int extra = 0; /* a whole-word {outputs}/{inputs} becomes several words */
	for (int i = 0; i < n; i++)
		extra += !strcmp(words[i], "{outputs}") ? t->noutputs : !strcmp(words[i], "{inputs}") ? t->ninputs : 0;
	const char **argv = arena_ptrs(&g->arena, (size_t)(n + extra + 1));
	int argc = 0;
	argv[0] = NULL;
	task_set_argv(t, argv); /* NULL-terminated as it grows: its words so far */
	for (int i = 0; i < n; i++) {
		int whole_out = !strcmp(words[i], "{outputs}"), whole_in = !strcmp(words[i], "{inputs}");
		if (whole_out || whole_in) {
			const char **items = whole_out ? t->outputs : t->inputs;
			for (int j = 0, m = whole_out ? t->noutputs : t->ninputs; j < m; j++)
				argv[argc] = from_cwd(g, t, items[j]), argv[++argc] = NULL;
		} else {
			argv[argc] = lk_expand_placeholders(L, g, t, words[i], 0, 1), argv[++argc] = NULL;
		}
	}
	if (argc == 0)
		luaL_error(L, "task \"%s\": run expands to an empty command", t->name);
}

/* The highest {portK} index s uses (+1; {port} is index 0), or 0 when it uses none. */
static int port_words_used(const char *s)
{
	int used = 0;
	for (const char *p = strstr(s, "{port"); p; p = strstr(p + 1, "{port")) {
		char *end;
		long k = p[5] == '}' ? 0 : strtol(p + 5, &end, 10);
		if (p[5] == '}' || (end != p + 5 && *end == '}' && k > 0))
			used = (int)k + 1 > used ? (int)k + 1 : used;
	}
	return used;
}

/* Levenshtein distance of a (n bytes) and b, capped at 3 (all that matters here). */
int lk_distance(const char *a, size_t n, const char *b)
{
	size_t m = strlen(b);
	if (n > 24 || m > 24 || (n > m ? n - m : m - n) > 2)
		return 3;
	int row[26];
	for (size_t j = 0; j <= m; j++)
		row[j] = (int)j;
	for (size_t i = 1; i <= n; i++) {
		int diag = row[0];
		row[0] = (int)i;
		for (size_t j = 1; j <= m; j++) {
			int up = row[j];
			int best = diag + (a[i - 1] != b[j - 1]);
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[m] < 3 ? row[m] : 3;
}

/* Words in braces that look like a mistyped placeholder ({outt}, {ouputs}, {gpu}) are
 * named with the placeholder meant, once per place: they would reach the command as
 * written. Other braces ({x} in a format string, ${VAR}, {a,b}) are the command's own. */
static void warn_near_misses(lua_State *L, const Task *t, const char *s)
{
	static const char *const known[] = {"out",  "in",   "outputs", "inputs", "resume", "name", "port",
					    "gpus", "rdzv", "items",   "item",   NULL};
	for (const char *p = strchr(s, '{'); p; p = strchr(p + 1, '{')) {
		size_t n = strspn(p + 1, "abcdefghijklmnopqrstuvwxyz_0123456789");
		if (p[1 + n] != '}' || n < 3 || (p > s && p[-1] == '$'))
			continue;
		const char *best = NULL;
		int best_d = 3;
		for (int k = 0; known[k]; k++) {
			int d = lk_distance(p + 1, n, known[k]);
			if (d == 0 || (!strncmp(known[k], "port", 4) && !strncmp(p + 1, "port", 4)))
				return; /* a placeholder ({port1} too) */
			if (d < best_d && d <= (strlen(known[k]) <= 4 ? 1 : 2))
				best = known[k], best_d = d;
		}
		if (!best)
			continue;
		static char last[200]; /* a map's items and shards share their command: once */
		char key[200];
		luaL_where(L, 1);
		if (!*lua_tostring(L, -1)) { /* task{} called by map{}: the map's line */
			lua_pop(L, 1);
			luaL_where(L, 2);
		}
		const char *where = lua_tostring(L, -1);
		snprintf(key, sizeof key, "%.150s{%.*s}", where, (int)(n < 40 ? n : 40), p + 1);
		if (strcmp(last, key)) {
			memcpy(last, key, sizeof last);
			fprintf(stderr, "kiln: %stask \"%s\" uses {%.*s}, which is no placeholder: it reaches the command as "
					"written (did you mean {%s}?)\n", where, t->name, (int)n, p + 1, best);
		}
		lua_pop(L, 1);
	}
}

void lk_warn_placeholder_typos(lua_State *L, const Task *t)
{
	if (task_shell(t))
		warn_near_misses(L, t, task_shell(t));
	for (int i = 0; task_word(t, i); i++)
		warn_near_misses(L, t, task_argv(t)[i]);
	for (int i = 0; i < t->more->nenv; i++)
		warn_near_misses(L, t, t->more->env[i].value);
}

void lk_check_port_placeholders(lua_State *L, Task *t)
{
	int used = task_shell(t) ? port_words_used(task_shell(t)) : 0;
	for (int i = 0; task_word(t, i); i++)
		used = port_words_used(task_argv(t)[i]) > used ? port_words_used(task_argv(t)[i]) : used;
	for (int i = 0; i < t->more->nenv; i++)
		used = port_words_used(t->more->env[i].value) > used ? port_words_used(t->more->env[i].value) : used;
	if (used > MAX_PORTS)
		lk_field_error(L, "run", "uses {port%d}, but a task gets at most %d ports", used - 1, MAX_PORTS);
	if (used > 1 && used > t->opts->ports)
		lk_field_error(L, "run", "uses {port%d} but declares ports = %d ({port} is the first, {port1} the second)",
			       used - 1, t->opts->ports);
	if (used == 1 && t->opts->ports == 0)
		t->opts->ports = 1;
}
