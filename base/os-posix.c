/* os-posix.c — Linux/POSIX implementation of os.h. */
#define _GNU_SOURCE
#include "os.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static sigset_t waited; /* signal handling: set once by os_block_signals */

static void on_signal(int sig) { (void)sig; }

void os_block_signals(void)
{
	sigemptyset(&waited);
	sigaddset(&waited, SIGCHLD);
	sigaddset(&waited, SIGINT);
	sigaddset(&waited, SIGTERM);
	sigaddset(&waited, SIGHUP);
	/* a real handler, so a blocked SIGCHLD stays pending instead of being discarded */
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGCHLD, &sa, NULL);
	sigprocmask(SIG_BLOCK, &waited, NULL);
}

int os_stop_requested(void)
{
	sigset_t pending;
	if (sigpending(&pending) != 0)
		return 0;
	return sigismember(&pending, SIGINT) == 1 || sigismember(&pending, SIGTERM) == 1 ||
	       sigismember(&pending, SIGHUP) == 1;
}

int os_wait_event(int timeout_ms)
{
	siginfo_t info;
	struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
	for (;;) {
		int sig = timeout_ms < 0 ? sigwaitinfo(&waited, &info) : sigtimedwait(&waited, &info, &ts);
		if (sig > 0)
			return sig;
		if (errno == EAGAIN)
			return 0;
		if (errno != EINTR)
			return 0;
	}
}

int os_notify_readable(int fd)
{
	/* F_SETSIG: the signal sent when fd is ready, instead of SIGIO (not one kiln waits on) */
	if (fcntl(fd, F_SETOWN, getpid()) != 0 || fcntl(fd, F_SETSIG, SIGCHLD) != 0)
		return -1;
	return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK | O_ASYNC) == 0 ? 0 : -1;
}

extern char **environ;

int os_spawn(const OsSpawn *s, pid_t *pid)
{
	posix_spawnattr_t attr;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_init(&attr);
	posix_spawn_file_actions_init(&fa);
	sigset_t none, defaults;
	sigemptyset(&none);
	sigemptyset(&defaults);
	int reset[] = {SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGXFSZ};
	for (size_t i = 0; i < sizeof reset / sizeof *reset; i++)
		sigaddset(&defaults, reset[i]);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &defaults);
	short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
	if (s->new_group) {
		posix_spawnattr_setpgroup(&attr, 0);
		flags |= POSIX_SPAWN_SETPGROUP;
	}
	if (s->new_session)
		flags |= POSIX_SPAWN_SETSID;
	posix_spawnattr_setflags(&attr, flags);
	if (s->stdin_null)
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	else if (s->in_fd > 0)
		posix_spawn_file_actions_adddup2(&fa, s->in_fd, 0);
	if (s->out_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, s->out_fd, 1);
	if (s->err_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, s->err_fd, 2);
	if (s->pass_fd > 0) /* the copy made is not close-on-exec, whatever pass_fd is */
		posix_spawn_file_actions_adddup2(&fa, s->pass_fd, 3);
	char *const *env = s->env ? s->env : environ;
	int rc = s->program ? posix_spawn(pid, s->program, &fa, &attr, s->argv, env)
			    : posix_spawnp(pid, s->argv[0], &fa, &attr, s->argv, env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	return rc;
}

int os_signal(pid_t pid, int sig) { return kill(pid, sig); }

int os_program_found(const char *name)
{
	const char *path = getenv("PATH");
	for (const char *dir = path ? path : "/usr/bin:/bin"; *dir;) {
		size_t n = strcspn(dir, ":");
		char file[4096];
		snprintf(file, sizeof file, "%.*s/%s", n ? (int)n : 1, n ? dir : ".", name);
		if (access(file, X_OK) == 0)
			return 1;
		dir += n + (dir[n] == ':');
	}
	return 0;
}

int os_become_subreaper(void)
{
#ifdef PR_SET_CHILD_SUBREAPER
	return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0 ? 0 : -1;
#else
	return -1;
#endif
}

int os_cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

long long os_memory_mib(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
	return pages > 0 && size > 0 ? (long long)pages * size / (1024 * 1024) : 1024;
}

int os_isatty(int fd) { return isatty(fd); }

const char *os_hostname(void)
{
	static char name[256]; /* computed once, read-only after: the host does not change */
	if (!name[0] && gethostname(name, sizeof name - 1) != 0)
		strcpy(name, "localhost");
	return name;
}

/* Watched children: running (ended = 0) or ended with their status, until taken. A
 * handful at a time (running jobs and their helper processes), so a list will do. */
typedef struct {
	pid_t pid;
	int ended, status;
} Child;
static Child *children;
static int nchildren, children_cap;
/* The last ends of children nobody watched: orphans that came to kiln as the subreaper.
 * Kept a while, since the one an owner claims (os_children_adopt) may have been collected
 * before it knew to ask. */
#define STRAYS 64
static Child strays[STRAYS];
static unsigned nstrays;

static void forget_stray(pid_t pid)
{
	for (int i = 0; i < STRAYS; i++)
		if (strays[i].ended && strays[i].pid == pid)
			strays[i].ended = 0;
}

void os_children_watch(pid_t pid)
{
	forget_stray(pid); /* a new child with the pid of one collected earlier */
	if (nchildren == children_cap) {
		children_cap = children_cap ? 2 * children_cap : 16;
		children = xrealloc(children, (size_t)children_cap * sizeof *children);
	}
	children[nchildren++] = (Child){pid, 0, 0};
}

static void file_end(pid_t pid, int status)
{
	for (int i = nchildren - 1; i >= 0; i--)
		if (children[i].pid == pid) {
			children[i].ended = 1;
			children[i].status = status;
			return;
		}
	strays[nstrays++ % STRAYS] = (Child){pid, 1, status};
}

void os_children_reap(void)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			return;
		file_end(pid, status);
	}
}

int os_children_adopt(pid_t pid)
{
	for (int i = 0; i < STRAYS; i++)
		if (strays[i].ended && strays[i].pid == pid) {
			int status = strays[i].status;
			strays[i].ended = 0;
			os_children_watch(pid);
			file_end(pid, status);
			return 1;
		}
	int status;
	pid_t got = waitpid(pid, &status, WNOHANG);
	if (got < 0)
		return 0; /* not kiln's child: someone else collected it */
	os_children_watch(pid);
	if (got == pid)
		file_end(pid, status);
	return 1;
}

int os_children_take(pid_t pid, int *status)
{
	for (int i = nchildren - 1; i >= 0; i--)
		if (children[i].pid == pid) {
			if (!children[i].ended)
				return 0;
			*status = children[i].status;
			children[i] = children[--nchildren];
			return 1;
		}
	return 0;
}

/* Reads fd to its end into out (when given). */
static void drain(int fd, Buf *out)
{
	char chunk[4096];
	ssize_t n;
	while ((n = read(fd, chunk, sizeof chunk)) > 0 || (n < 0 && errno == EINTR))
		if (n > 0 && out)
			buf_put(out, chunk, (size_t)n);
}

int os_run(char *const argv[], int new_group, Buf *out, Buf *err)
{
	int outp[2], errp[2];
	if (pipe2(outp, O_CLOEXEC) != 0)
		return -1;
	if (pipe2(errp, O_CLOEXEC) != 0) {
		close(outp[0]), close(outp[1]);
		return -1;
	}
	pid_t pid;
	OsSpawn spawn = {.argv = argv, .stdin_null = 1, .out_fd = outp[1], .err_fd = errp[1], .new_group = new_group};
	int rc = os_spawn(&spawn, &pid);
	close(outp[1]);
	close(errp[1]);
	if (rc != 0) {
		close(outp[0]), close(errp[0]);
		if (err)
			buf_printf(err, "cannot run %s: %s", argv[0], strerror(rc));
		return -1;
	}
	os_children_watch(pid);
	drain(outp[0], out); /* small outputs: stderr fits its pipe meanwhile */
	drain(errp[0], err);
	close(outp[0]);
	close(errp[0]);
	int status = 0;
	for (;;) { /* through the one reaper: another executor's reap may come first */
		os_children_reap();
		if (os_children_take(pid, &status))
			break;
		struct timespec pause = {0, 1000000};
		nanosleep(&pause, NULL); /* its pipes closed: it is exiting */
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
