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

/* /proc/PID/WHAT's first size - 1 bytes into buf, NUL-ended: their count, or -1 (and "")
 * when there is no such process or file. */
static ssize_t read_proc(pid_t pid, const char *what, char *buf, size_t size)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, what);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, size - 1) : -1;
	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = 0;
	return n;
}

/* Field `want` (4: the parent, 5: the process group, 22: the start time) of a live process's
 * /proc/PID/stat, or -1 when there is no such process or it is a zombie. */
static long long proc_stat_field(pid_t pid, int want)
{
	char text[1024];
	if (read_proc(pid, "stat", text, sizeof text) <= 0)
		return -1;
	const char *p = strrchr(text, ')'); /* the command name may hold anything but not after this */
	if (!p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X')
		return -1;
	/* fields after the name: state(3) ... */
	for (int field = 3; field <= want && p; field++)
		p = strchr(p + 1, ' ');
	return p ? atoll(p + 1) : -1;
}

long long os_process_start(pid_t pid) { return proc_stat_field(pid, 22); }

/* Whether process pid is a torchrun agent, by its command line: torchrun (or python
 * .../torchrun), or python [options] -m torch.distributed.run (or .launch). */
static int is_torchrun_agent(pid_t pid)
{
	char text[4096];
	ssize_t n = read_proc(pid, "cmdline", text, sizeof text);
	if (n <= 0)
		return 0;
	const char *words[8];
	int nw = 0;
	for (const char *w = text; w < text + n && nw < 8; w += strlen(w) + 1)
		words[nw++] = w;
	for (int i = 0; i < nw && i < 2; i++) { /* the program, or the script python runs */
		const char *base = strrchr(words[i], '/');
		if (!strcmp(base ? base + 1 : words[i], "torchrun"))
			return 1;
	}
	for (int i = 1; i + 1 < nw && words[i][0] == '-'; i++) /* python's options, then -m */
		if (!strcmp(words[i], "-m"))
			return !strcmp(words[i + 1], "torch.distributed.run") ||
			       !strcmp(words[i + 1], "torch.distributed.launch");
	return 0;
}

/* Whether process pid is a pipe's reader that only passes text on or packs it (tee, grep,
 * sed, awk, ts, gzip, ...: by its name) with its stdin a pipe: `python train.py | grep -v
 * DEBUG | gzip > run.log.gz` told to stop with the trainer would end at once, and what the
 * trainer prints while it saves would hit a closed pipe (a BrokenPipeError in its handler,
 * its save cut) or be lost with the filter's buffer. Left alone, it ends at its input's end,
 * once the trainer has; SIGKILL at the grace's end still reaches it. Such a tool reading a
 * file, or run alone, is told as any process is. */
static int is_pipe_filter(pid_t pid)
{
	static const char *const filters[] = {"tee", "grep", "egrep", "fgrep", "sed", "awk", "gawk", "mawk", "nawk",
					      "ts", "cut", "tr", "cat", "col", "fold", "nl", "head", "tail", "sort", "uniq",
					      "wc", "gzip", "pigz", "bzip2", "xz", "zstd", "lz4", "logger", "rotatelogs"};
	char comm[64];
	ssize_t n = read_proc(pid, "comm", comm, sizeof comm);
	if (n <= 0)
		return 0;
	comm[strcspn(comm, "\n")] = 0;
	size_t i = 0;
	while (i < sizeof filters / sizeof *filters && strcmp(comm, filters[i]))
		i++;
	if (i == sizeof filters / sizeof *filters)
		return 0;
	char path[64];
	struct stat st;
	snprintf(path, sizeof path, "/proc/%d/fd/0", (int)pid);
	return stat(path, &st) == 0 && S_ISFIFO(st.st_mode);
}

int os_signal_group(pid_t pgid, int sig)
{
	DIR *proc = sig == SIGKILL || sig == 0 ? NULL : opendir("/proc");
	if (!proc)
		return kill(-pgid, sig);
	pid_t (*members)[2] = NULL; /* pid, parent */
	int n = 0, cap = 0;
	for (struct dirent *e; (e = readdir(proc));) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		pid_t pid = (pid_t)atoi(e->d_name);
		if (proc_stat_field(pid, 5) != (long long)pgid)
			continue;
		if (n == cap)
			members = xrealloc(members, (size_t)(cap = cap ? 2 * cap : 16) * sizeof *members);
		members[n][0] = pid;
		members[n++][1] = (pid_t)proc_stat_field(pid, 4);
	}
	closedir(proc);
	pid_t agents[16];
	int nagents = 0, nfilters = 0;
	char *filter = xcalloc((size_t)n + 1, 1);
	for (int i = 0; i < n; i++) {
		if (nagents < 16 && is_torchrun_agent(members[i][0]))
			agents[nagents++] = members[i][0];
		nfilters += filter[i] = (char)is_pipe_filter(members[i][0]);
	}
	int rc = 0;
	if (!nagents && !nfilters) {
		rc = kill(-pgid, sig);
	} else { /* one by one, parents before their children: a shell that waits for a child
		  * has its signal pending before that child's end wakes it (signalled after, it
		  * would run on past its `wait`, its trap never run). A filter left alone counts
		  * as reached: it ends with its input. */
		int reached = nfilters;
		for (int depth = 0, more = 1; more && depth < 64; depth++) {
			more = 0;
			for (int i = 0; i < n; i++) {
				int d = 0, worker = 0;
				for (pid_t up = members[i][1]; d <= depth;) { /* its ancestors in the group */
					int k = 0;
					while (k < n && members[k][0] != up)
						k++;
					if (k == n)
						break;
					up = members[k][1], d++;
				}
				more |= d > depth;
				for (int a = 0; a < nagents && !worker; a++)
					worker = members[i][1] == agents[a];
				if (d == depth && !worker && !filter[i] && kill(members[i][0], sig) == 0)
					reached++;
			}
		}
		if (!reached) {
			rc = -1;
			errno = ESRCH;
		}
	}
	free(members);
	free(filter);
	return rc;
}

/* Whether process pid holds one of paths open or mapped: 1, 0, or -1 when it cannot be told. */
static int process_uses(pid_t pid, const char *const *paths, int npaths)
{
	char dir[64], link[64], target[4096];
	snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
	DIR *fds = opendir(dir);
	if (!fds)
		return errno == ENOENT ? 0 : -1; /* gone meanwhile, or not ours to look at */
	int uses = 0;
	for (struct dirent *e; !uses && (e = readdir(fds));) {
		snprintf(link, sizeof link, "%.40s", e->d_name);
		ssize_t n = readlinkat(dirfd(fds), link, target, sizeof target - 1);
		if (n <= 0)
			continue;
		target[n] = 0;
		for (int i = 0; i < npaths && !uses; i++)
			uses = !strcmp(target, paths[i]);
	}
	closedir(fds);
	snprintf(dir, sizeof dir, "/proc/%d/maps", (int)pid);
	FILE *maps = uses ? NULL : fopen(dir, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	while (maps && !uses && (len = getline(&line, &cap, maps)) > 0) {
		if (line[len - 1] == '\n')
			line[--len] = 0;
		for (int i = 0; i < npaths && !uses; i++) {
			size_t pl = strlen(paths[i]);
			uses = (size_t)len > pl && !strcmp(line + len - pl, paths[i]) && line[len - pl - 1] == ' ';
		}
	}
	free(line);
	if (maps)
		fclose(maps);
	return uses;
}

int os_group_freeze(pid_t pgid, int timeout_ms)
{
	if (kill(-pgid, SIGSTOP) != 0)
		return -1;
	/* by the clock, not by rounds: under heavy IO a walk of /proc takes milliseconds, and a
	 * process in a disk wait ('D') stops only when that wait ends */
	int64_t deadline = now_mono_ns() + (int64_t)timeout_ms * 1000000;
	for (;;) {
		DIR *proc = opendir("/proc");
		if (!proc)
			return -1;
		int running = 0;
		for (struct dirent *e; !running && (e = readdir(proc));) {
			if (e->d_name[0] < '1' || e->d_name[0] > '9')
				continue;
			pid_t pid = (pid_t)atoi(e->d_name);
			if (proc_stat_field(pid, 5) != (long long)pgid)
				continue;
			char text[512];
			read_proc(pid, "stat", text, sizeof text);
			const char *p = strrchr(text, ')');
			running = p && p[1] == ' ' && p[2] != 'T' && p[2] != 't' && p[2] != 'Z' && p[2] != 'X';
		}
		closedir(proc);
		if (!running)
			return 0;
		if (now_mono_ns() > deadline)
			return -1;
		struct timespec tick = {0, 1000000};
		nanosleep(&tick, NULL);
	}
}

int os_group_uses(pid_t pgid, const char *const *paths, int npaths)
{
	DIR *proc = opendir("/proc");
	if (!proc)
		return -1;
	int uses = 0;
	for (struct dirent *e; uses == 0 && (e = readdir(proc));) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		pid_t pid = (pid_t)atoi(e->d_name);
		if (proc_stat_field(pid, 5) == (long long)pgid)
			uses = process_uses(pid, paths, npaths);
	}
	closedir(proc);
	return uses;
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

void os_children_watch(pid_t pid)
{
	if (nchildren == children_cap) {
		children_cap = children_cap ? 2 * children_cap : 16;
		children = xrealloc(children, (size_t)children_cap * sizeof *children);
	}
	children[nchildren++] = (Child){pid, 0, 0};
}

void os_children_reap(void)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			return;
		for (int i = nchildren - 1; i >= 0; i--)
			if (children[i].pid == pid) {
				children[i].ended = 1;
				children[i].status = status;
				break;
			}
	}
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
