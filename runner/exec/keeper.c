/* keeper.c — kiln-keeper, the parent of a run's local attempts: it starts them when kiln
 * asks, each in a session of its own, and outlives kiln, so a kill -9 of kiln stops no
 * work and loses no exit status.
 *
 * kiln starts one keeper per run (in a session of its own) with a SOCK_SEQPACKET socket as
 * its stdin, and speaks keeper.h's protocol over it: kiln sends a start (the command, its
 * environment, its log, its exit file, the grace period), the keeper spawns it as the
 * leader of a new session and process group with stdout and stderr appended to the log,
 * and answers with its pid and start time. When the leader exits, processes it left in its
 * session (its group, and groups made inside it: `timeout` makes one) are sent SIGTERM
 * (unless a stop signal ended the leader: they had it too) and, after the grace period,
 * SIGKILL; once none is left the
 * keeper tells kiln how the attempt ended (and wakes it with SIGCHLD). kiln says which of
 * those it has recorded (after each commit of its state) and says goodbye when it ends.
 *
 * When kiln goes away (a goodbye, or kill -9, a crash), the keeper writes the exit status
 * of every attempt kiln had not confirmed recorded (a commit that failed, or none made yet)
 * to its exit file ("exit N" / "signal N", written to a temporary name and renamed), and of
 * every attempt still running (--detach, a hang-up, a killed kiln) once it ends; a later
 * kiln re-attaches to those (exec_local_attach.c). It exits when kiln is gone and no
 * attempt is left. Plain libc, nothing else.
 *
 * argv[1], when given, is the fd of a shared lock kiln took for it (exec_local_internal.h:
 * LOCAL_KEEPER_LOCK): held until the keeper has read all kiln sent, so a later kiln that
 * takes the lock knows every start a killed kiln sent was made. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "keeper.h"
#include "exit_file.h"
#include "../../base/os.h"

typedef struct {
	uint32_t token;
	pid_t pid;        /* leader of the attempt's session and group; 0: slot free */
	int status;       /* the leader's wait status, once it exited */
	int leader_done;
	long long grace_ms, kill_at; /* draining: when the leftovers get SIGKILL (0: not yet) */
	char *exit_path;
	pid_t left; /* one of its processes outside the leader's group (os_attempt_alive) */
	int claims[8]; /* its GPUs' machine-wide claims, from kiln (gpu.c): held until it ends */
	int nclaims;
} Attempt;

typedef struct {
	uint32_t token;
	int status;
	char *exit_path;
} Result; /* sent to kiln, not yet confirmed recorded */

static Attempt *attempts;
static int nattempts;
static Result *results;
static int nresults;
static uint32_t confirmed; /* results kiln confirmed, counted from the first sent */
static int connected = 1;
static pid_t kiln;
static int lock_fd = -1; /* the shared lock of argv[1], let go at the disconnect */

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* kiln is gone (or leaving): what it did not confirm recorded goes to the exit files. */
static void disconnect(void)
{
	connected = 0;
	if (lock_fd > 2) /* every start kiln sent was read, and made */
		close(lock_fd);
	lock_fd = -1;
	for (int i = 0; i < nresults; i++) {
		exit_file_write(results[i].exit_path, results[i].status);
		free(results[i].exit_path);
	}
	nresults = 0;
}

static void forget_confirmed(uint32_t upto)
{
	int n = 0;
	while (confirmed < upto && n < nresults)
		free(results[n++].exit_path), confirmed++;
	memmove(results, results + n, (size_t)(nresults - n) * sizeof *results);
	nresults -= n;
}

static void close_all(const int *fds, int n)
{
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

static void finished(Attempt *a)
{
	if (connected) {
		KeeperEnd msg = {'E', a->token, a->status};
		if (send(0, &msg, sizeof msg, MSG_NOSIGNAL) == (ssize_t)sizeof msg) {
			results = realloc(results, (size_t)(nresults + 1) * sizeof *results);
			results[nresults++] = (Result){a->token, a->status, a->exit_path};
			kill(kiln, SIGCHLD); /* wakes kiln's wait: "something ended" */
			a->exit_path = NULL;
		} else {
			disconnect();
		}
	}
	if (a->exit_path) /* kiln is gone: a later kiln reads it */
		exit_file_write(a->exit_path, a->status);
	free(a->exit_path);
	a->exit_path = NULL;
	a->pid = 0;
	close_all(a->claims, a->nclaims); /* its devices are free for every kiln here */
	a->nclaims = 0;
}

/* The start time of pid (clock ticks since boot, /proc/PID/stat field 22), read while it is
 * the keeper's unreaped child, so it is there even if the child already exited. */
static long long start_time(pid_t pid)
{
	char path[64], text[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, text, sizeof text - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return -1;
	text[n] = 0;
	const char *p = strrchr(text, ')'); /* the command name may hold anything but not after this */
	for (int field = 3; field <= 22 && p; field++)
		p = strchr(p + 1, ' ');
	return p ? atoll(p + 1) : -1;
}

static void start(const char *msg, size_t len, const sigset_t *defaults, const int *claims, int nclaims)
{
	KeeperStart head;
	KeeperStarted reply = {'P', 0, 0, 0};
	if (len < sizeof head) {
		reply.pid = -EINVAL;
		send(0, &reply, sizeof reply, MSG_NOSIGNAL);
		close_all(claims, nclaims);
		return;
	}
	memcpy(&head, msg, sizeof head);
	reply.token = head.token;
	/* the strings: log, exit file, directory, program, argv..., env... (each NUL-terminated) */
	size_t nstr = 4 + head.nargv + head.nenv;
	char **str = calloc(nstr + 2, sizeof *str);
	const char *p = msg + sizeof head, *end = msg + len;
	size_t k = 0;
	while (k < nstr && p < end) {
		const char *nul = memchr(p, 0, (size_t)(end - p));
		if (!nul)
			break;
		str[k++] = (char *)p;
		p = nul + 1;
	}
	if (k < nstr || head.nargv < 1) {
		reply.pid = -EINVAL;
		send(0, &reply, sizeof reply, MSG_NOSIGNAL);
		close_all(claims, nclaims);
		free(str);
		return;
	}
	char **argv = calloc(head.nargv + 1, sizeof *argv), **env = calloc(head.nenv + 1, sizeof *env);
	memcpy(argv, str + 4, head.nargv * sizeof *argv);
	memcpy(env, str + 4 + head.nargv, head.nenv * sizeof *env);
	posix_spawnattr_t attr;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_init(&attr);
	posix_spawn_file_actions_init(&fa);
	sigset_t none;
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, defaults);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSID);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, str[0], O_WRONLY | O_APPEND | O_CREAT, 0666);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	if (str[2][0]) /* after the log is open: its path is the keeper's */
		posix_spawn_file_actions_addchdir_np(&fa, str[2]);
	pid_t pid;
	int rc = posix_spawn(&pid, str[3], &fa, &attr, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (rc == 0) {
		int slot = 0;
		while (slot < nattempts && attempts[slot].pid)
			slot++;
		if (slot == nattempts)
			attempts = realloc(attempts, (size_t)++nattempts * sizeof *attempts);
		attempts[slot] = (Attempt){head.token, pid, 0, 0, head.grace_ms, 0, strdup(str[1]), 0, {0}, 0};
		memcpy(attempts[slot].claims, claims, (size_t)nclaims * sizeof *claims);
		attempts[slot].nclaims = nclaims;
		nclaims = 0; /* the attempt's now */
		reply.pid = pid;
		reply.start = start_time(pid);
	} else {
		reply.pid = -rc;
	}
	send(0, &reply, sizeof reply, MSG_NOSIGNAL);
	close_all(claims, nclaims); /* not started (none left when it was) */
	free(argv);
	free(env);
	free(str);
}

/* Whether any process of a's is left (its session, not only its group: `timeout` makes a
 * group of its own). Asked at every end and every 20 ms while one drains: through this
 * subreaper's own children, not a walk of /proc (a millisecond with a hundred processes). */
static int leftovers(Attempt *a)
{
	if (kill(-a->pid, 0) == 0 || errno == EPERM)
		return 1;
	int in = os_children_in_session(a->pid);
	return in >= 0 ? in : os_attempt_alive(a->pid, &a->left);
}

static void reap(void)
{
	pid_t p;
	int st;
	while ((p = waitpid(-1, &st, WNOHANG)) > 0)
		for (int i = 0; i < nattempts; i++)
			if (attempts[i].pid == p && !attempts[i].leader_done) {
				attempts[i].status = st;
				attempts[i].leader_done = 1;
			}
	long long now = now_ms();
	for (int i = 0; i < nattempts; i++) {
		Attempt *a = &attempts[i];
		if (!a->pid || !a->leader_done)
			continue;
		if (!leftovers(a)) {
			finished(a);
		} else if (!a->kill_at) { /* its leftovers are asked to stop, then made to */
			if (!exit_told_group(a->status))
				os_signal_attempt(a->pid, SIGTERM);
			os_signal_attempt(a->pid, SIGCONT);
			a->kill_at = now + a->grace_ms;
		} else if (now >= a->kill_at) {
			os_signal_attempt(a->pid, SIGKILL);
		}
	}
}

static int draining(void)
{
	for (int i = 0; i < nattempts; i++)
		if (attempts[i].pid && attempts[i].leader_done)
			return 1;
	return 0;
}

static int running(void)
{
	for (int i = 0; i < nattempts; i++)
		if (attempts[i].pid)
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	kiln = getppid();
	prctl(PR_SET_NAME, KEEPER_PROCESS_NAME, 0, 0, 0); /* kiln set its argv[0] already */
	if (argc > 1 && (lock_fd = atoi(argv[1])) > 2)
		fcntl(lock_fd, F_SETFD, FD_CLOEXEC); /* the attempts must not hold it */
	if (getsid(0) != getpid())
		setsid(); /* kiln asked for it at the spawn: done here when run otherwise */
	/* orphans of the attempts' processes become the keeper's: reaped here, not by init */
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	sigset_t handled, defaults;
	sigemptyset(&handled);
	sigaddset(&handled, SIGCHLD);
	sigemptyset(&defaults);
	int reset[] = {SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGXFSZ};
	for (size_t i = 0; i < sizeof reset / sizeof *reset; i++)
		sigaddset(&defaults, reset[i]);
	sigprocmask(SIG_BLOCK, &handled, NULL);
	/* a terminal's signals are kiln's business: the keeper lives on until its work ends.
	 * So is SIGTERM (a `kill` of this keeper, a pattern that names it): a keeper gone takes the
	 * attempts' ends with it (kiln then stops them at once, a save under way cut short, and
	 * a later kiln cannot tell how one ended); kiln's own stop tells the attempts itself */
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	int sfd = signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK);
	static char msg[KEEPER_MAX_MESSAGE];
	for (;;) {
		reap();
		if (!connected && !running())
			return 0;
		struct pollfd fds[2] = {{sfd, POLLIN, 0}, {connected ? 0 : -1, POLLIN, 0}};
		/* group members that are not the keeper's children end unannounced: while one
		 * drains, look again every 20 ms */
		if (poll(fds, 2, draining() ? 20 : -1) < 0 && errno != EINTR)
			return 1;
		if (fds[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof si) > 0)
				;
		}
		if (!connected || !(fds[1].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		for (;;) {
			/* a start may come with its GPUs' claims (SCM_RIGHTS), close-on-exec here */
			struct iovec iov = {msg, sizeof msg};
			union {
				struct cmsghdr align;
				char space[CMSG_SPACE(8 * sizeof(int))];
			} control;
			struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.space,
					    .msg_controllen = sizeof control.space};
			ssize_t n = recvmsg(0, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
			int claims[8], nclaims = 0;
			for (struct cmsghdr *cm = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL; cm; cm = CMSG_NXTHDR(&mh, cm))
				if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
					for (size_t k = 0; k < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); k++) {
						int fd;
						memcpy(&fd, CMSG_DATA(cm) + k * sizeof fd, sizeof fd);
						if (nclaims < 8)
							claims[nclaims++] = fd;
						else
							close(fd);
					}
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				break;
			if (n <= 0) { /* kiln is gone without a goodbye */
				disconnect();
				break;
			}
			if (msg[0] == 'S') {
				start(msg, (size_t)n, &defaults, claims, nclaims);
				nclaims = 0;
			} else if (msg[0] == 'C' && n >= (ssize_t)sizeof(KeeperRecorded)) {
				KeeperRecorded c;
				memcpy(&c, msg, sizeof c);
				forget_confirmed(c.count);
			} else if (msg[0] == 'B') {
				disconnect();
				break;
			}
			close_all(claims, nclaims); /* with no start to go with */
		}
	}
}
