/* lsandbox.c — the parts of a recipe's sandbox written in C, because a recipe can reach
 * and redefine anything written in Lua (string.sub through the string metatable, say):
 * io.open that opens for reading only, loadfile that loads text only and names the line
 * where nesting ran out of C stack, and the watch that stops a load that runs too long or
 * was asked to stop (Ctrl-C) while Lua code runs. */
#define _GNU_SOURCE
#include "lsandbox.h"

#include <errno.h>
#include <lauxlib.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../base/intfmt.h"
#include "../../base/os.h"
#include "../../base/util.h"

/* io.open, for reading only. The mode is checked here, not by methods of the string a
 * recipe could have replaced; the real io.open is upvalue 1, out of a recipe's reach. */
static int guarded_open(lua_State *L)
{
	luaL_checkstring(L, 1);
	const char *mode = luaL_optstring(L, 2, "r");
	if (mode[0] != 'r' || strchr(mode, '+'))
		return luaL_error(L, "recipes only declare tasks: io.open(\"%s\", \"%s\") would write", lua_tostring(L, 1),
				  mode);
	lua_settop(L, 2);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, 2, LUA_MULTRET);
	return lua_gettop(L);
}

/* tostring(v) as the base library's, with an integer (no metatable given to numbers)
 * written here: the library's goes through lua_pushfstring("%I"), ~700 instructions a call,
 * and recipes name a grid's cells tostring(i) by the hundred thousand. */
static int quick_tostring(lua_State *L)
{
	luaL_checkany(L, 1);
	if (lua_isinteger(L, 1) && !lua_getmetatable(L, 1)) {
		char text[24];
		lua_pushlstring(L, text, (size_t)intfmt_lld(text, (long long)lua_tointeger(L, 1)));
		return 1;
	}
	luaL_tolstring(L, 1, NULL);
	return 1;
}

void sandbox_quick_tostring(lua_State *L)
{
	lua_pushcfunction(L, quick_tostring);
	lua_setglobal(L, "tostring");
}

void sandbox_guard_io_open(lua_State *L)
{
	lua_getglobal(L, "io");
	lua_getfield(L, -1, "open");
	lua_pushcclosure(L, guarded_open, 1);
	lua_setfield(L, -2, "open");
	lua_pop(L, 1);
}

int sandbox_has_position(const char *msg)
{
	for (const char *colon = strchr(msg, ':'); colon; colon = strchr(colon + 1, ':')) {
		size_t digits = strspn(colon + 1, "0123456789");
		if (digits && colon[1 + digits] == ':')
			return 1;
	}
	return 0;
}

/* Whether text[0..len) fails to load because the parser ran out of C stack. */
static int overflows(lua_State *L, const char *text, size_t len)
{
	int status = luaL_loadbufferx(L, text, len, "=probe", "t");
	int over = status != LUA_OK && lua_type(L, -1) == LUA_TSTRING && strstr(lua_tostring(L, -1), "C stack overflow");
	lua_pop(L, 1);
	return over;
}

void sandbox_name_overflow_line(lua_State *L, const char *path)
{
	const char *msg = lua_tostring(L, -1);
	if (!msg || !strstr(msg, "C stack overflow") || !path) /* a load runs no code: the overflow is the parse's */
		return;
	size_t len;
	char *text = read_file(path, &len);
	if (!text)
		return;
	/* the first line whose prefix of the file overflows: lines are searched by halves,
	 * each probe one parse of a prefix (only on this error path) */
	int lines = 1;
	for (size_t i = 0; i < len; i++)
		lines += text[i] == '\n';
	int lo = 1, hi = lines;
	while (lo < hi) {
		int mid = lo + (hi - lo) / 2, line = 1;
		size_t end = 0;
		while (end < len && (line < mid || text[end] != '\n'))
			line += text[end++] == '\n';
		if (overflows(L, text, end))
			hi = mid;
		else
			lo = mid + 1;
	}
	free(text);
	lua_pop(L, 1);
	lua_pushfstring(L, "%s:%d: nesting too deep (Lua's parser allows about 200 levels of brackets, calls and blocks: "
			   "C stack overflow)", path, lo);
}

/* loadfile(path [, env]) for recipes: text chunks only (a crafted binary chunk can crash
 * the interpreter), and an overflow's line named. */
static int load_text_file(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1); /* no stdin: a load must not wait for input */
	int has_env = !lua_isnone(L, 2);
	if (luaL_loadfilex(L, path, "t") == LUA_OK) {
		if (has_env) {
			lua_pushvalue(L, 2);
			if (!lua_setupvalue(L, -2, 1))
				lua_pop(L, 1);
		}
		return 1;
	}
	sandbox_name_overflow_line(L, path);
	lua_pushnil(L);
	lua_insert(L, -2);
	return 2;
}

void sandbox_push_loadfile(lua_State *L) { lua_pushcfunction(L, load_text_file); }

/* --- the load watch --------------------------------------------------------------- */

enum { WATCH_QUIET, WATCH_TIMEOUT, WATCH_STOP };

/* How often the watch looks, and how long a fired watch waits for the hook to act before
 * it ends the process. */
#define WATCH_PERIOD_NS 100000000L
#define STUCK_GRACE_NS 5000000000LL

/* A timer signals the loading thread every 100 ms (SIGALRM); no thread of its own, so a
 * no-op run pays three system calls for it. */
struct LoadWatch {
	lua_State *L;
	double limit_sec;
	int64_t started_ns, fired_ns;
	int wait_when_stuck, have_timer;
	volatile sig_atomic_t fired;
	timer_t timer;
	struct sigaction old_alarm;
};

static LoadWatch *watched; /* for the signal handler: one recipe loads at a time */

/* Runs in the loading thread at its next Lua instruction once the watch fired. It stays
 * set, so a recipe that catches the error with pcall meets it again at once. */
static void stop_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	LoadWatch *w = watched;
	lua_Debug here;
	if (lua_getstack(L, 0, &here) && lua_getinfo(L, "Sl", &here) && here.currentline > 0)
		lua_pushfstring(L, "%s:%d: ", here.short_src, here.currentline);
	else
		lua_pushliteral(L, "");
	if (w && w->fired == WATCH_STOP)
		lua_pushliteral(L, "stopped while the recipe was loading");
	else
		lua_pushfstring(L, "the recipe has not finished loading after %d s (an endless loop?); "
				   "`--load-timeout SECONDS` allows longer", w ? (int)w->limit_sec : 0);
	lua_concat(L, 2);
	lua_error(L);
}

static void say(const char *s) /* async-signal-safe */
{
	if (write(2, s, strlen(s)) < 0) { /* nowhere left to say it */
	}
}

/* The timer's tick, in the loading thread. lua_sethook is safe in a signal handler (lua.c
 * stops a script on Ctrl-C so); a Ctrl-C stays pending (blocked) for the run that follows,
 * it is only looked at. A recipe stuck inside one library call (a pattern match that
 * backtracks for ever) never reaches the hook: nothing has started yet, so after a grace the
 * process ends here, saying why. */
static void on_alarm(int sig)
{
	(void)sig;
	LoadWatch *w = watched;
	if (!w)
		return;
	int saved = errno;
	int64_t now = now_mono_ns();
	if (!w->fired) {
		int why = os_stop_requested()					   ? WATCH_STOP
			  : (double)(now - w->started_ns) / 1e9 > w->limit_sec ? WATCH_TIMEOUT
										   : WATCH_QUIET;
		if (why) {
			w->fired = why;
			w->fired_ns = now;
			lua_sethook(w->L, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
		}
	} else if (!w->wait_when_stuck && now - w->fired_ns > STUCK_GRACE_NS) {
		say(w->fired == WATCH_STOP ? "kiln: a stop was requested while the recipe loaded"
					   : "kiln: the recipe has not finished loading in time (--load-timeout)");
		say(", and is stuck inside one library call (a pattern match that backtracks, a huge string?): stopped\n");
		_exit(w->fired == WATCH_STOP ? 130 : 2);
	}
	errno = saved;
}

LoadWatch *sandbox_watch_start(lua_State *L, double limit_sec, int wait_when_stuck)
{
	LoadWatch *w = xcalloc(1, sizeof *w);
	w->L = L;
	w->wait_when_stuck = wait_when_stuck;
	w->limit_sec = limit_sec > 0 ? limit_sec : SANDBOX_DEFAULT_LOAD_SEC;
	w->started_ns = now_mono_ns();
	watched = w;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGALRM, &sa, &w->old_alarm);
	struct sigevent ev;
	memset(&ev, 0, sizeof ev);
	ev.sigev_notify = SIGEV_THREAD_ID; /* this thread: the one running Lua */
	ev.sigev_signo = SIGALRM;
	ev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
	struct itimerspec every = {{0, WATCH_PERIOD_NS}, {0, WATCH_PERIOD_NS}};
	w->have_timer = timer_create(CLOCK_MONOTONIC, &ev, &w->timer) == 0;
	if (w->have_timer)
		timer_settime(w->timer, 0, &every, NULL);
	return w;
}

int sandbox_watch_fired(const LoadWatch *w) { return w && w->fired == WATCH_STOP ? 2 : w && w->fired ? 1 : 0; }

void sandbox_watch_stop(LoadWatch *w)
{
	if (!w)
		return;
	if (w->have_timer)
		timer_delete(w->timer);
	/* a tick sent just before the delete may still be on its way: take it here */
	sigset_t alarm, old;
	sigemptyset(&alarm);
	sigaddset(&alarm, SIGALRM);
	struct timespec none = {0, 0};
	pthread_sigmask(SIG_BLOCK, &alarm, &old);
	while (sigtimedwait(&alarm, NULL, &none) > 0)
		;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	sigaction(SIGALRM, &w->old_alarm, NULL);
	lua_sethook(w->L, NULL, 0, 0);
	watched = NULL;
	free(w);
}
