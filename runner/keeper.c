/* keeper.c — kiln-keeper, the parent of every local attempt: it runs the command in a
 * session of its own so the attempt outlives a killed kiln, and writes how it ended.
 *
 *   kiln-keeper EXIT_FILE GRACE_MS KEY PROGRAM ARGV0 [ARGS...]
 *
 * KEY is the task's key when the attempt started: only a label, so a kiln that finds the
 * keeper before it finds the attempt's record (one killed right after the start) knows
 * whether the attempt is still the task's work.
 * The keeper leads a new session (kiln spawns it with POSIX_SPAWN_SETSID) and starts the
 * command as the leader of a process group of its own inside it, with stdio as kiln gave
 * them (the log) and the environment kiln built. It forwards SIGTERM, SIGINT and SIGHUP to
 * that group and turns SIGUSR1 into SIGKILL of the group (kiln's "the grace period is
 * over"). When the command exits, processes it left in its group are sent SIGTERM and, after
 * GRACE_MS, SIGKILL; once the group is gone the keeper writes "exit N" or "signal N" to
 * EXIT_FILE (a temporary file renamed into place, so a reader sees all of it or nothing)
 * and exits 0. kiln reads that file whether it is the keeper's parent (it reaps the keeper)
 * or a later kiln that re-attached to it. Plain libc, nothing else: it starts in well under
 * a millisecond. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void say(const char *text)
{
	size_t n = strlen(text);
	while (n > 0) {
		ssize_t w = write(2, text, n);
		if (w <= 0 && errno != EINTR)
			return;
		if (w > 0)
			text += w, n -= (size_t)w;
	}
}

static int write_exit(const char *path, const char *text)
{
	char tmp[4200];
	if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
		return -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0)
		return -1;
	int ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
	ok &= close(fd) == 0;
	return ok && rename(tmp, path) == 0 ? 0 : -1;
}

static int group_alive(pid_t pgid) { return kill(-pgid, 0) == 0 || errno == EPERM; }

int main(int argc, char **argv)
{
	if (argc < 6) {
		say("usage: kiln-keeper EXIT_FILE GRACE_MS KEY PROGRAM ARGV0 [ARGS...] (started by kiln)\n");
		return 2;
	}
	const char *exit_file = argv[1];
	long long grace_ms = atoll(argv[2]);
	if (getsid(0) != getpid())
		setsid(); /* kiln asked for it at the spawn; run by hand, do it here */
	/* orphans of the command's processes become the keeper's: reaped here, not by init */
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	sigset_t waited;
	sigemptyset(&waited);
	int handled[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGPIPE};
	for (size_t i = 0; i < sizeof handled / sizeof *handled; i++)
		sigaddset(&waited, handled[i]);
	sigprocmask(SIG_BLOCK, &waited, NULL);

	posix_spawnattr_t attr;
	posix_spawnattr_init(&attr);
	sigset_t none;
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &waited);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
	pid_t cmd;
	int rc = posix_spawn(&cmd, argv[4], NULL, &attr, argv + 5, environ);
	posix_spawnattr_destroy(&attr);
	if (rc != 0) {
		char msg[600];
		snprintf(msg, sizeof msg, "kiln: cannot start %s: %s%s\n", argv[5], strerror(rc),
			 rc == ENOENT ? " (is it installed and on PATH?)" : "");
		say(msg);
		write_exit(exit_file, "start-failed 127\n");
		return 0;
	}

	int status = 0, leader_done = 0;
	long long kill_at = 0; /* when the leftovers get SIGKILL; 0: not draining */
	for (;;) {
		pid_t p;
		int st;
		while ((p = waitpid(-1, &st, WNOHANG)) > 0)
			if (p == cmd)
				status = st, leader_done = 1;
		if (leader_done && !group_alive(cmd))
			break;
		if (leader_done && !kill_at) {
			say("# kiln: the command exited while other processes of its group still ran; they were sent "
			    "SIGTERM (SIGKILL after the grace period)\n");
			kill(-cmd, SIGTERM);
			kill(-cmd, SIGCONT);
			kill_at = now_ms() + grace_ms;
		}
		if (kill_at && now_ms() >= kill_at)
			kill(-cmd, SIGKILL);
		/* processes of the group that are not the keeper's children end unannounced:
		 * while draining, look again every 20 ms */
		struct timespec wait = {kill_at ? 0 : 3600, kill_at ? 20000000 : 0};
		int sig = sigtimedwait(&waited, NULL, &wait);
		if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
			kill(-cmd, sig);
			if (sig == SIGTERM)
				kill(-cmd, SIGCONT); /* a stopped group must wake to see it */
		} else if (sig == SIGUSR1) {
			kill(-cmd, SIGKILL);
		}
	}
	char text[64];
	if (WIFEXITED(status))
		snprintf(text, sizeof text, "exit %d\n", WEXITSTATUS(status));
	else
		snprintf(text, sizeof text, "signal %d\n", WTERMSIG(status));
	if (write_exit(exit_file, text) != 0) {
		say("kiln: the keeper cannot write the attempt's exit status file\n");
		return 1;
	}
	return 0;
}
