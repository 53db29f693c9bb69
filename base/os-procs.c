/* os-procs.c — an attempt's processes, found through /proc: signalled, frozen, asked what
 * they hold, and whether any is left (os.h). libc only: kiln-keeper links it too.
 *
 * An attempt is its leader's session, not only its process group: the keeper makes each
 * leader a session's, and its processes stay in it, but some move to a group of their own
 * inside it — GNU `timeout` does for itself and its command (`timeout 10h python train.py`),
 * as do a shell's job control and setpgid. Asked by group alone, such a trainer was never
 * told to stop, its attempt looked ended while it trained on (a retry started beside it,
 * writing the same checkpoint), and the SIGKILL at the grace's end missed it. */
#define _GNU_SOURCE
#include "os.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

/* A live process's /proc/PID/stat: its state letter and fields 4 (parent), 5 (group), 6
 * (session), 22 (start time). -1 when there is no such process or it is a zombie. */
typedef struct {
	char state;
	long long field[23];
} ProcStat;

static int proc_stat(pid_t pid, ProcStat *st)
{
	char text[1024];
	if (read_proc(pid, "stat", text, sizeof text) <= 0)
		return -1;
	const char *p = strrchr(text, ')'); /* the command name may hold anything but not after this */
	if (!p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X')
		return -1;
	st->state = p[2];
	for (int field = 3; field <= 22; field++) { /* p: the space before field `field` */
		if (!(p = strchr(p + 1, ' ')))
			return -1;
		st->field[field] = atoll(p + 1);
	}
	return 0;
}

long long os_process_start(pid_t pid)
{
	ProcStat st;
	return proc_stat(pid, &st) == 0 ? st.field[22] : -1;
}

typedef struct {
	pid_t pid, parent, group;
	char state;
} Member;

/* The live processes of the attempt led by leader (its session, or its group for a leader
 * that leads no session) into *out (malloc'd, NULL when none): their count, or -1 when
 * /proc cannot be read. */
static int attempt_members(pid_t leader, Member **out)
{
	*out = NULL;
	DIR *proc = opendir("/proc");
	if (!proc)
		return -1;
	int n = 0, cap = 0;
	for (struct dirent *e; (e = readdir(proc));) {
		ProcStat st;
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		pid_t pid = (pid_t)atoi(e->d_name);
		if (proc_stat(pid, &st) != 0 || (st.field[6] != leader && st.field[5] != leader))
			continue;
		if (n == cap) {
			Member *more = realloc(*out, (size_t)(cap = cap ? 2 * cap : 16) * sizeof *more);
			if (!more)
				break; /* those found so far */
			*out = more;
		}
		(*out)[n++] = (Member){pid, (pid_t)st.field[4], (pid_t)st.field[5], st.state};
	}
	closedir(proc);
	return n;
}

int os_attempt_alive(pid_t leader, pid_t *hint)
{
	if (kill(-leader, 0) == 0 || errno == EPERM)
		return 1;
	/* the group is gone: a member elsewhere in the session, the one found last first (a
	 * keeper asks 50 times a second while a save runs) */
	if (*hint > 0 && kill(*hint, 0) == 0 && getsid(*hint) == leader)
		return 1;
	Member *m;
	int n = attempt_members(leader, &m);
	*hint = n > 0 ? m[0].pid : 0;
	free(m);
	return n > 0; /* no /proc to read: as the group says */
}

int os_children_in_session(pid_t sid)
{
	char path[64], text[8192];
	snprintf(path, sizeof path, "task/%d/children", (int)getpid());
	if (read_proc(getpid(), path, text, sizeof text) < 0)
		return -1; /* a kernel without CONFIG_PROC_CHILDREN */
	for (char *w = text, *end; *w; w = end) {
		pid_t child = (pid_t)strtol(w, &end, 10);
		if (end == w)
			break;
		if (child > 0 && getsid(child) == sid)
			return 1;
	}
	return 0;
}

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

/* Whether process pid is a worker torch's elastic agent started: the agent (torchrun,
 * python -m torch.distributed.run, or one run inside another program's python, as
 * `accelerate launch` does) puts TORCHELASTIC_RUN_ID in each worker's environment. */
static int is_elastic_worker(pid_t pid)
{
	static const char want[] = "\0TORCHELASTIC_RUN_ID="; /* the agent adds it last: read it all */
	const size_t keep = sizeof want - 2;                  /* a match across two reads */
	char path[64], buf[8192 + sizeof want];
	snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	size_t have = 1;
	buf[0] = 0; /* the first entry starts after a NUL too */
	int found = 0;
	for (ssize_t n; !found && (n = read(fd, buf + have, sizeof buf - have)) > 0;) {
		have += (size_t)n;
		found = memmem(buf, have, want, sizeof want - 1) != NULL;
		if (have > keep) {
			memmove(buf, buf + have - keep, keep);
			have = keep;
		}
	}
	close(fd);
	return found;
}

/* Whether pid's name (/proc/PID/comm) is one of names. */
static int named(pid_t pid, const char *const *names, size_t count)
{
	char comm[64];
	if (read_proc(pid, "comm", comm, sizeof comm) <= 0)
		return 0;
	comm[strcspn(comm, "\n")] = 0;
	for (size_t i = 0; i < count; i++)
		if (!strcmp(comm, names[i]))
			return 1;
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
	char path[64];
	struct stat st;
	if (!named(pid, filters, sizeof filters / sizeof *filters))
		return 0;
	snprintf(path, sizeof path, "/proc/%d/fd/0", (int)pid);
	return stat(path, &st) == 0 && S_ISFIFO(st.st_mode);
}

/* Whether process pid handles sig (a handler installed: /proc/PID/status's SigCgt mask). */
static int catches(pid_t pid, int sig)
{
	char text[4096];
	if (read_proc(pid, "status", text, sizeof text) <= 0)
		return 0;
	const char *line = strstr(text, "\nSigCgt:");
	if (!line)
		return 0;
	unsigned long long mask = strtoull(line + 8, NULL, 16);
	return sig >= 1 && sig <= 64 && (mask >> (sig - 1)) & 1;
}

/* Whether member i is a Python process's multiprocessing worker (a DataLoader's, a Pool's)
 * whose parent, member j, handles sig: forked (python, its command line the parent's) or
 * started by multiprocessing's spawn or forkserver (their command lines say so). The
 * parent handles the stop (a trainer's save) and ends its workers as it exits. Told too,
 * a DataLoader worker dies of it and PyTorch raises that death inside the trainer's
 * handler ("DataLoader worker (pid N) is killed by signal: Terminated"), its save cut.
 * A parent that does not handle sig dies of it: its workers are told with it. SIGINT
 * reaches every process, as a terminal's Ctrl-C does: a DataLoader worker ends quietly at
 * its KeyboardInterrupt, and workers of torch.multiprocessing.spawn (each a trainer, their
 * parent only waiting, with Python's own SIGINT handler) save at theirs. */
static int is_python_worker(pid_t pid, pid_t parent, int sig)
{
	char mine[4096], theirs[4096], comm[64];
	ssize_t n = sig == SIGINT ? 0 : read_proc(pid, "cmdline", mine, sizeof mine);
	if (n <= 0 || !catches(parent, sig))
		return 0;
	for (const char *w = mine; w < mine + n; w += strlen(w) + 1)
		if (!strcmp(w, "--multiprocessing-fork") || !strncmp(w, "from multiprocessing.", 21))
			return 1;
	ssize_t m = read_proc(parent, "cmdline", theirs, sizeof theirs);
	return m == n && !memcmp(mine, theirs, (size_t)n) && read_proc(pid, "comm", comm, sizeof comm) > 0 &&
	       !strncmp(comm, "python", 6); /* python, python3, python3.11 */
}

/* What a stop signal skips: 'w' a torchrun agent's worker (the agent passes the signal on;
 * an agent inside another launcher, `accelerate launch`, known by its workers' environment),
 * 't' a `timeout` (its command is told: told too, timeout would pass the signal to it, and
 * again to its group unless --foreground, and the command would have it two or three
 * times), 'f' a pipe's filter, 'm' a Python multiprocessing worker whose parent handles the
 * signal; 0 the others. Told twice, a trainer's handler runs again inside itself, and a
 * KeyboardInterrupt's second cuts short the save its first began. */
static void mark_skipped(const Member *m, int n, char *skip, int sig)
{
	static const char *const timeout[] = {"timeout"};
	pid_t agents[16];
	int nagents = 0;
	for (int i = 0; i < n && nagents < 16; i++)
		if (is_torchrun_agent(m[i].pid))
			agents[nagents++] = m[i].pid;
	for (int i = 0; i < n; i++) {
		skip[i] = 0;
		for (int a = 0; a < nagents && !skip[i]; a++)
			if (m[i].parent == agents[a])
				skip[i] = 'w';
		for (int j = 0; j < n && !skip[i]; j++) /* an agent no command line names: its worker says so */
			if (m[j].pid == m[i].parent && is_elastic_worker(m[i].pid) && !is_elastic_worker(m[j].pid))
				skip[i] = 'w';
		if (!skip[i] && named(m[i].pid, timeout, 1))
			skip[i] = 't';
		if (!skip[i] && is_pipe_filter(m[i].pid))
			skip[i] = 'f';
		for (int j = 0; j < n && !skip[i]; j++)
			if (m[j].pid == m[i].parent && is_python_worker(m[i].pid, m[j].pid, sig))
				skip[i] = 'm';
	}
}

/* SIGKILL, SIGCONT, SIGSTOP (and 0): every group of the attempt, each once. */
static int signal_every_group(pid_t leader, const Member *m, int n, int sig)
{
	int reached = kill(-leader, sig) == 0;
	for (int i = 0; i < n; i++) {
		int seen = m[i].group == leader;
		for (int j = 0; j < i && !seen; j++)
			seen = m[j].group == m[i].group;
		if (!seen && m[i].group > 1 && m[i].group != getpgrp())
			reached |= kill(-m[i].group, sig) == 0;
	}
	return reached;
}

int os_signal_attempt(pid_t leader, int sig)
{
	Member *m;
	int n = attempt_members(leader, &m);
	if (n < 0)
		return kill(-leader, sig);
	int rc = 0, reached = 0, all_in_group = 1;
	for (int i = 0; i < n; i++)
		all_in_group &= m[i].group == leader;
	char *skip = n ? calloc((size_t)n, 1) : NULL;
	int skips = 0;
	if (sig != SIGKILL && sig != SIGCONT && sig != SIGSTOP && sig != 0 && skip) {
		mark_skipped(m, n, skip, sig);
		for (int i = 0; i < n; i++)
			skips += skip[i] != 0;
	}
	if (!skips) {
		reached = all_in_group ? kill(-leader, sig) == 0 : signal_every_group(leader, m, n, sig);
	} else { /* one by one, parents before their children: a shell that waits for a child
		  * has its signal pending before that child's end wakes it (signalled after, it
		  * would run on past its `wait`, its trap never run). A process skipped counts as
		  * reached: it is told by its forwarder, or ends with its input. */
		for (int i = 0; i < n; i++)
			reached |= skip[i] != 0;
		for (int depth = 0, more = 1; more && depth < 64; depth++) {
			more = 0;
			for (int i = 0; i < n; i++) {
				int d = 0;
				for (pid_t up = m[i].parent; d <= depth;) { /* its ancestors among them */
					int k = 0;
					while (k < n && m[k].pid != up)
						k++;
					if (k == n)
						break;
					up = m[k].parent, d++;
				}
				more |= d > depth;
				if (d == depth && !skip[i] && kill(m[i].pid, sig) == 0)
					reached = 1;
			}
		}
	}
	if (!reached) {
		rc = -1;
		errno = ESRCH;
	}
	free(skip);
	free(m);
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

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int os_attempt_freeze(pid_t leader, int timeout_ms)
{
	if (os_signal_attempt(leader, SIGSTOP) != 0)
		return -1;
	/* by the clock, not by rounds: under heavy IO a walk of /proc takes milliseconds, and a
	 * process in a disk wait ('D') stops only when that wait ends */
	long long deadline = mono_ms() + timeout_ms;
	for (;;) {
		Member *m;
		int n = attempt_members(leader, &m), running = 0;
		for (int i = 0; i < n && !running; i++)
			running = m[i].state != 'T' && m[i].state != 't';
		free(m);
		if (n < 0)
			return -1;
		if (!running)
			return 0;
		if (mono_ms() > deadline)
			return -1;
		struct timespec tick = {0, 1000000};
		nanosleep(&tick, NULL);
	}
}

int os_attempt_uses(pid_t leader, const char *const *paths, int npaths)
{
	Member *m;
	int n = attempt_members(leader, &m), uses = n < 0 ? -1 : 0;
	for (int i = 0; i < n && uses == 0; i++)
		uses = process_uses(m[i].pid, paths, npaths);
	free(m);
	return uses;
}
