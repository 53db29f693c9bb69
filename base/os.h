/* os.h — what kiln needs from the operating system beyond libc: signal-driven waiting
 * for children, process creation and signals, and machine facts. base/os-posix.c is the
 * implementation the programs link; it is linked as an object of its own (not part of
 * libkilncore), so a test links another in its place: tests/unit/os_fake.c runs the
 * executors and the scheduler against scripted processes, hosts and a scripted keeper,
 * without root, sshd or Slurm. */
#ifndef KILN_OS_H
#define KILN_OS_H

#include <stdint.h>
#include <sys/types.h>

#include "util.h"

/* Blocks SIGCHLD/SIGINT/SIGTERM/SIGHUP for the process so os_wait_event can take them;
 * children get a clean signal mask back (see exec_local.c). */
void os_block_signals(void);
/* Waits up to timeout_ms (-1: forever) for a signal; returns its number, or 0 on
 * timeout. SIGCHLD means "reap". */
int os_wait_event(int timeout_ms);
/* Makes fd (a pipe this process reads) non-blocking, and data arriving on it raise
 * SIGCHLD, which os_wait_event already waits for: a reader of a child's stream wakes as a
 * reaper does. 0, or -1. */
int os_notify_readable(int fd);
/* Whether SIGINT, SIGTERM or SIGHUP arrived and waits (blocked) for os_wait_event: long
 * work before the next wait (hashing a dataset) checks this to stop early. */
int os_stop_requested(void);
/* What os_spawn starts: the one place kiln creates processes. */
typedef struct {
	const char *program;   /* the file to run; NULL: argv[0] looked up on this process's PATH */
	char *const *argv;
	char *const *env;      /* NULL: this process's environment */
	int stdin_null;        /* stdin from /dev/null (else in_fd, or inherited) */
	int in_fd;             /* becomes stdin when > 0 (0: inherited) */
	int out_fd, err_fd;    /* become stdout / stderr; -1: inherited */
	int new_group;         /* leader of a new process group (so it can be stopped whole) */
	int new_session;       /* leader of a new session: it outlives kiln's terminal and kiln */
	int pass_fd;           /* > 0: becomes the child's fd 3 (the one it inherits) */
} OsSpawn;
/* Starts a child with a clean signal mask and default dispositions for the signals kiln
 * waits on. Returns 0 with *pid set, or an errno value. */
int os_spawn(const OsSpawn *s, pid_t *pid);
/* One reaper for every child, whichever executor started it: a pid is watched from its
 * start; os_children_reap() collects every ended child (waitpid(-1)), filing the status of
 * watched ones (others, orphans kiln adopted as subreaper, are dropped); their owner takes
 * it with os_children_take(), which returns 1 once the child ended. */
void os_children_watch(pid_t pid);
void os_children_reap(void);
int os_children_take(pid_t pid, int *status);
/* Watches pid, an orphan that came to kiln as the subreaper (os_become_subreaper): its end
 * is filed for os_children_take even when os_children_reap collected it before this call
 * (the last few unwatched ends are kept). 1, or 0 when pid is not (and was not lately)
 * kiln's child. */
int os_children_adopt(pid_t pid);
/* Runs argv (looked up on PATH, stdin from /dev/null; new_group: a process group of its
 * own) to its end: its stdout into out and stderr into err when given. Returns its exit
 * status, or -1 (with "cannot run X: why" in err when it could not start). */
int os_run(char *const argv[], int new_group, Buf *out, Buf *err);
/* Whether name is an executable file in one of PATH's directories (what posix_spawnp would
 * run), found without starting it. */
int os_program_found(const char *name);
/* Sends sig to pid, or to the process group -pid when pid is negative: 0, or -1 (errno). */
int os_signal(pid_t pid, int sig);
/* An attempt's processes (os-procs.c): those of the session its leader made (the keeper's
 * attempts each lead one), also the ones that moved to a group of their own inside it (GNU
 * `timeout` with its command, a shell's job control), or of its group where the leader
 * leads no session. os_signal_attempt sends sig to each once. A torchrun agent among them
 * (`torchrun`, `python -m torch.distributed.run` or `.launch`) forwards SIGINT and SIGTERM
 * to its workers itself, so they are left to it, and a `timeout` is left out (it would pass
 * the signal on to its command, told already): told twice, a worker's second
 * KeyboardInterrupt cuts short the save its first began. A filter
 * reading a pipe (tee, grep, sed, gzip, ...) is left to end with its input, after what it
 * reads from has saved. None of those there (or SIGKILL, SIGCONT, SIGSTOP): the signal of
 * each of the attempt's groups. 0 when it reached a process, -1 otherwise (errno ESRCH:
 * none was left). */
int os_signal_attempt(pid_t leader, int sig);
/* Whether any process of the attempt led by leader is left. *hint (0 at first, kept by the
 * caller) remembers one found outside the leader's group, so asking often stays cheap. */
int os_attempt_alive(pid_t leader, pid_t *hint);
/* For a subreaper (the keeper): whether one of its children is in session sid. What an
 * attempt leaves behind is such a child or a descendant of one (a session is never joined
 * again once left), so this answers os_attempt_alive's question for its attempts without a
 * walk of /proc. 1, 0, or -1 when this kernel does not list children. */
int os_children_in_session(pid_t sid);
/* Makes this process the reaper of its orphaned descendants (Linux), so a task's
 * processes that outlive their parent still report to kiln; 0, or -1 where unsupported. */
int os_become_subreaper(void);
/* The start time of process pid (clock ticks since boot, /proc/PID/stat), which tells a
 * live process from a later one given the same pid; -1 when there is no such process or
 * it is a zombie. */
long long os_process_start(pid_t pid);
/* Stops the attempt led by leader (SIGSTOP) and waits until each of its processes has
 * stopped, at most timeout_ms: 0 when they all have, -1 otherwise. SIGCONT wakes them. */
int os_attempt_freeze(pid_t leader, int timeout_ms);
/* Whether a process of the attempt led by leader holds one of paths (absolute, symbolic
 * links resolved) open or mapped: 1, 0 (none does, or none is left), or -1 when that
 * cannot be told (no /proc, or a process kiln may not look into). */
int os_attempt_uses(pid_t leader, const char *const *paths, int npaths);
/* Number of online CPUs and physical memory in MiB. */
int os_cpu_count(void);
long long os_memory_mib(void);
/* Whether fd is a terminal. */
int os_isatty(int fd);
/* Returns the hostname (static buffer). */
const char *os_hostname(void);

#endif
