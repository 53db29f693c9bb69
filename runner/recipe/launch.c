/* launch.c — `kiln launch`, the launcher behind a task's `ranks = N`: it starts N copies of
 * the task's command, each with its rank in the environment torch reads (RANK, LOCAL_RANK,
 * WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) and in the words {rank},
 * {local_rank}, {world_size}, {master_addr}, {master_port} of its command and environment;
 * prefixes each line they print with "[rank R] "; and ends when all have ended, or, as soon
 * as one fails, stops the others (SIGTERM, then SIGKILL after the grace) and exits with the
 * failed rank's status, naming it. The leased GPUs (CUDA_VISIBLE_DEVICES) are split evenly
 * over the ranks, or all shown to every rank with --all-gpus (a command that picks
 * cuda:{local_rank} itself). One node: the ranks run where the launcher runs.
 *
 * usage: kiln launch --ranks N --master-port PORT [--nnodes M] [--all-gpus] [--grace SECONDS]
 *        [--shell | --shell-program PROGRAM] -- COMMAND... (with either, one word: a /bin/sh -c
 *        string, or PROGRAM -c)
 *        kiln launch --free-port [N] (prints N distinct TCP ports free on this machine, "p1,p2")
 * With --nnodes M > 1 one launcher runs per node (srun on Slurm, one per host on ssh hosts),
 * the node's rank in SLURM_NODEID (or KILN_NODE_RANK) and the first node's name in KILN_HEAD:
 * its ranks are node * N + 0..N-1 of N * M. */
#define _GNU_SOURCE
#include "launch.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "../../base/util.h"

extern char **environ;

typedef struct {
	pid_t pid;
	int fd;        /* its output, or -1 once at its end */
	int status;    /* its wait status, once it ended */
	int ended;
	int lost_peer; /* its output says a peer went away: it failed because another did */
	Buf line;      /* a line not yet ended */
} Rank;

/* What a rank prints when a peer, not itself, failed (gloo, NCCL, sockets). */
static int says_lost_peer(const char *text, size_t n)
{
	static const char *const words[] = {"Connection closed by peer", "Connection reset by peer", "Broken pipe",
					    "communicator was aborted", "connectFullMesh", "Socket Timeout",
					    "gloo] Timed out", NULL};
	for (int i = 0; words[i]; i++)
		if (memmem(text, n, words[i], strlen(words[i])))
			return 1;
	return 0;
}

/* Reads what rank r has printed so far (it ended: its output waits in the pipe), without
 * waiting for a child of its that keeps the pipe open. */
static void drain_ended(Rank *rank, int global, char *buf, size_t size);

/* Where this launcher's ranks stand among all of the task's. */
typedef struct {
	int first;        /* the global rank of this node's rank 0 */
	int world;        /* ranks on all nodes */
	int per_node;     /* ranks on this one */
	const char *addr; /* the rendezvous host */
	const char *port;
} Layout;

/* word with every rank placeholder filled in for local rank r (malloc'd). */
static char *fill(const char *word, int r, const Layout *l)
{
	Buf b = {0};
	for (const char *p = word; *p;) {
		if (!strncmp(p, "{rank}", 6)) {
			buf_printf(&b, "%d", l->first + r);
			p += 6;
		} else if (!strncmp(p, "{local_rank}", 12)) {
			buf_printf(&b, "%d", r);
			p += 12;
		} else if (!strncmp(p, "{world_size}", 12)) {
			buf_printf(&b, "%d", l->world);
			p += 12;
		} else if (!strncmp(p, "{master_addr}", 13)) {
			buf_puts(&b, l->addr);
			p += 13;
		} else if (!strncmp(p, "{master_port}", 13)) {
			buf_puts(&b, l->port);
			p += 13;
		} else {
			buf_putc(&b, *p++);
		}
	}
	return b.data ? b.data : xstrdup("");
}

/* The devices rank r of world sees: its share of the lease, or all of it. */
static char *devices_of(const char *lease, int r, int world, int all)
{
	if (!lease || all)
		return lease ? xstrdup(lease) : NULL;
	char *copy = xstrdup(lease), *save = NULL;
	const char *ids[256];
	int n = 0;
	for (char *id = strtok_r(copy, ",", &save); id && n < 256; id = strtok_r(NULL, ",", &save))
		ids[n++] = id;
	Buf b = {0};
	for (int i = r * n / world; i < (r + 1) * n / world; i++)
		buf_printf(&b, "%s%s", b.len ? "," : "", ids[i]);
	free(copy);
	return b.data ? b.data : xstrdup("");
}

static pid_t start_rank(char **words, int nwords, const char *shell, int r, const Layout *l, int all_gpus, int *out_fd)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		return -1;
	char **argv = xcalloc((size_t)nwords + 4, sizeof *argv);
	int argc = 0;
	if (shell) {
		argv[argc++] = xstrdup(shell);
		argv[argc++] = xstrdup("-c");
	}
	for (int i = 0; i < nwords; i++)
		argv[argc++] = fill(words[i], r, l);
	int nenv = 0;
	while (environ[nenv])
		nenv++;
	char **env = xcalloc((size_t)nenv + 8, sizeof *env);
	int k = 0;
	const char *lease = getenv("CUDA_VISIBLE_DEVICES");
	for (int i = 0; i < nenv; i++) {
		static const char *const ours[] = {"RANK=", "LOCAL_RANK=", "WORLD_SIZE=", "LOCAL_WORLD_SIZE=", "MASTER_ADDR=",
						   "MASTER_PORT=", "CUDA_VISIBLE_DEVICES=", NULL};
		int skip = 0;
		for (int j = 0; ours[j] && !skip; j++)
			skip = !strncmp(environ[i], ours[j], strlen(ours[j]));
		if (!skip) /* the task's env may name the rank too: {rank} in a value */
			env[k++] = fill(environ[i], r, l);
	}
	env[k++] = xasprintf("RANK=%d", l->first + r);
	env[k++] = xasprintf("LOCAL_RANK=%d", r);
	env[k++] = xasprintf("WORLD_SIZE=%d", l->world);
	env[k++] = xasprintf("LOCAL_WORLD_SIZE=%d", l->per_node);
	env[k++] = xasprintf("MASTER_ADDR=%s", l->addr);
	env[k++] = xasprintf("MASTER_PORT=%s", l->port);
	char *devices = devices_of(lease, r, l->per_node, all_gpus);
	if (devices)
		env[k++] = xasprintf("CUDA_VISIBLE_DEVICES=%s", devices);
	free(devices);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	pid_t pid;
	int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (rc != 0) {
		printf("[kiln launch] rank %d: cannot start %s: %s\n", l->first + r, argv[0], strerror(rc));
		close(p[0]);
		pid = -1;
	} else {
		*out_fd = p[0];
	}
	for (int i = 0; i < argc; i++)
		free(argv[i]);
	for (int i = 0; i < k; i++)
		free(env[i]);
	free(argv);
	free(env);
	return pid;
}

/* Writes what rank r printed, a whole line at a time, each after "[rank R] ". */
static void relay(Rank *rk, int r, const char *data, size_t n, int flush) /* r: the global rank */
{
	buf_put(&rk->line, data, n);
	size_t start = 0;
	for (size_t i = 0; i < rk->line.len; i++)
		if (rk->line.data[i] == '\n') {
			printf("[rank %d] %.*s\n", r, (int)(i - start), rk->line.data + start);
			start = i + 1;
		}
	if (flush && start < rk->line.len) {
		printf("[rank %d] %.*s\n", r, (int)(rk->line.len - start), rk->line.data + start);
		start = rk->line.len;
	}
	memmove(rk->line.data, rk->line.data + start, rk->line.len - start);
	rk->line.len -= start;
	fflush(stdout);
}

static void describe(int status, char *out, size_t n)
{
	if (WIFEXITED(status))
		snprintf(out, n, "exit status %d", WEXITSTATUS(status));
	else
		snprintf(out, n, "killed by signal %d", WTERMSIG(status));
}

/* A TCP port free on this machine now (bound, then let go for the ranks to take). */
static int free_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof a;
	int port = s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
				   getsockname(s, (struct sockaddr *)&a, &len) == 0
			   ? ntohs(a.sin_port)
			   : -1;
	if (s >= 0)
		close(s);
	return port;
}

/* The write end of the pipe SIGCHLD wakes the loop through: a rank that ends is seen at
 * once, so the one that failed first is named, not a peer that lost it a moment later. */
static int child_pipe = -1;

/* The stop signals a launcher outlives (exec.h's EXEC_STOP_SIGNALS), and the last one seen. */
static const int stop_signals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
static volatile sig_atomic_t stopped;

static void on_child(int sig)
{
	(void)sig;
	int saved = errno;
	if (write(child_pipe, "x", 1) < 0) { /* full: the loop is awake anyway */
	}
	errno = saved;
}

static void on_stop(int sig)
{
	stopped = sig;
	on_child(sig); /* wakes the loop */
}

int launch_main(int argc, char **argv)
{
	int world = 0, all_gpus = 0, first = -1, nodes = 1;
	const char *shell = NULL; /* a command string's program: --shell's /bin/sh, --shell-program's */
	double grace = 5;
	const char *port = NULL;
	if ((argc == 1 || argc == 2) && !strcmp(argv[0], "--free-port")) { /* [N]: N distinct ones, "p1,p2" */
		int want = argc == 2 ? atoi(argv[1]) : 1, got[64], n = 0;
		if (want < 1 || want > 64)
			return 2;
		for (int tries = 0; n < want && tries < 1000; tries++) {
			int p = free_port(), seen = 0;
			for (int i = 0; i < n; i++)
				seen |= got[i] == p;
			if (p > 0 && !seen)
				got[n++] = p;
		}
		if (n < want)
			return 1;
		for (int i = 0; i < n; i++)
			printf("%s%d", i ? "," : "", got[i]);
		printf("\n");
		return 0;
	}
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--ranks") && i + 1 < argc)
			world = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--nnodes") && i + 1 < argc)
			nodes = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--master-port") && i + 1 < argc)
			port = argv[++i];
		else if (!strcmp(argv[i], "--grace") && i + 1 < argc)
			grace = atof(argv[++i]);
		else if (!strcmp(argv[i], "--all-gpus"))
			all_gpus = 1;
		else if (!strcmp(argv[i], "--shell"))
			shell = "/bin/sh";
		else if (!strcmp(argv[i], "--shell-program") && i + 1 < argc)
			shell = argv[++i];
		else if (!strcmp(argv[i], "--")) {
			first = i + 1;
			break;
		}
	}
	if (world < 1 || world > 1024 || nodes < 1 || nodes > 1024 || !port || first < 0 || first >= argc ||
	    (shell && argc - first != 1)) {
		fprintf(stderr, "usage: kiln launch --ranks N --master-port PORT [--nnodes M] [--all-gpus] [--grace SECONDS] "
				"[--shell | --shell-program PROGRAM] -- COMMAND...\n");
		return 2;
	}
	/* the node's rank: Slurm's, or the ssh executor's (one launcher per host) */
	const char *head = getenv("KILN_HEAD"), *node = getenv("SLURM_NODEID");
	if (!node)
		node = getenv("KILN_NODE_RANK");
	Layout layout = {.first = nodes > 1 && node ? atoi(node) * world : 0, .world = world * nodes, .per_node = world,
			 .addr = head && *head ? head : "127.0.0.1", .port = port};
	signal(SIGPIPE, SIG_IGN);
	int wake[2];
	if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0)
		return 1;
	child_pipe = wake[1];
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_child;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGCHLD, &sa, NULL);
	/* A stop (kiln's, Slurm's, a Ctrl-C) signals the ranks' whole group, this launcher with
	 * them: it lives on, relaying what they print while they save (dead, it would leave them
	 * writing into a closed pipe, their save cut short), and a rank that fails meanwhile
	 * does not make it stop the others, who are saving. The ranks start with the defaults. */
	sa.sa_handler = on_stop;
	sa.sa_flags = 0;
	for (size_t i = 0; i < sizeof stop_signals / sizeof *stop_signals; i++)
		sigaction(stop_signals[i], &sa, NULL);
	Rank *ranks = xcalloc((size_t)world, sizeof *ranks);
	int failed = -1, running = 0;
	for (int r = 0; r < world; r++)
		ranks[r].fd = -1; /* ranks after one that cannot start are never started */
	for (int r = 0; r < world; r++) {
		ranks[r].pid = start_rank(argv + first, argc - first, shell, r, &layout, all_gpus, &ranks[r].fd);
		if (ranks[r].pid < 0) {
			ranks[r].ended = 1;
			ranks[r].status = 127 << 8;
			failed = failed < 0 ? r : failed;
			break;
		}
		running++;
	}
	struct pollfd *fds = xcalloc((size_t)world + 1, sizeof *fds);
	int64_t stop_at = 0, killed = 0;
	int said_stopped = 0;
	int suspect = -1;         /* a failed rank that blames a lost peer: named unless the cause shows */
	int64_t suspect_until = 0;
	char buf[65536];
	for (;;) {
		int open = 0;
		for (int r = 0; r < world; r++) {
			fds[r].fd = ranks[r].fd;
			fds[r].events = POLLIN;
			open += ranks[r].fd >= 0;
		}
		if (!running && !open)
			break;
		fds[world].fd = wake[0];
		fds[world].events = POLLIN;
		int woke = poll(fds, (nfds_t)world + 1, 100) > 0;
		if (woke && (fds[world].revents & POLLIN))
			while (read(wake[0], buf, sizeof buf) > 0)
				;
		/* ends first, then output: which rank failed first is a matter of milliseconds. The
		 * cause is the rank whose output does not blame a lost peer: its peers may be seen
		 * ended first (found at one look on a loaded machine, where waitpid's order is not
		 * theirs; or done sooner than the cause's own slow exit), so a rank that blames a
		 * peer is only a suspect for a moment, and the others are left to end meanwhile */
		int status, candidate = -1;
		pid_t pid;
		while (running && (pid = waitpid(-1, &status, WNOHANG)) > 0)
			for (int r = 0; r < world; r++)
				if (ranks[r].pid == pid && !ranks[r].ended) {
					ranks[r].ended = 1;
					ranks[r].status = status;
					running--;
					if (failed >= 0 || (WIFEXITED(status) && WEXITSTATUS(status) == 0))
						continue;
					drain_ended(&ranks[r], layout.first + r, buf, sizeof buf);
					if (candidate < 0 || (ranks[candidate].lost_peer && !ranks[r].lost_peer))
						candidate = r;
				}
		if (failed < 0 && candidate >= 0 && !ranks[candidate].lost_peer)
			failed = candidate;
		else if (failed < 0 && candidate >= 0 && suspect < 0) {
			suspect = candidate;
			suspect_until = now_mono_ns() + 2000000000LL;
		}
		if (failed < 0 && suspect >= 0 && (!running || now_mono_ns() > suspect_until))
			failed = suspect;
		for (int r = 0; woke && r < world; r++)
				if (ranks[r].fd >= 0 && (fds[r].revents & (POLLIN | POLLHUP | POLLERR))) {
					ssize_t n = read(ranks[r].fd, buf, sizeof buf);
					if (n > 0) {
						ranks[r].lost_peer |= says_lost_peer(buf, (size_t)n);
						relay(&ranks[r], layout.first + r, buf, (size_t)n, 0);
					} else if (n == 0 || errno != EINTR) {
						relay(&ranks[r], layout.first + r, "", 0, 1);
						close(ranks[r].fd);
						ranks[r].fd = -1;
					}
				}
		if (stopped && !said_stopped) {
			printf("[kiln launch] %s: the ranks were told too; waiting for them to end\n", strsignal(stopped));
			fflush(stdout);
			said_stopped = 1;
		}
		if (failed >= 0 && running && !stop_at && !stopped) { /* the others cannot finish without it */
			char how[64];
			describe(ranks[failed].status, how, sizeof how);
			printf("[kiln launch] rank %d failed (%s): stopping the other ranks\n", layout.first + failed, how);
			fflush(stdout);
			for (int r = 0; r < world; r++)
				if (!ranks[r].ended && ranks[r].pid > 0)
					kill(ranks[r].pid, SIGTERM);
			stop_at = now_mono_ns() + (int64_t)(grace * 1e9);
		}
		if (stop_at && running && !killed && now_mono_ns() > stop_at) {
			for (int r = 0; r < world; r++)
				if (!ranks[r].ended && ranks[r].pid > 0)
					kill(ranks[r].pid, SIGKILL);
			killed = 1;
		}
		if (!running && open && !stop_at)
			stop_at = now_mono_ns() + 2000000000LL; /* what a rank's own children still print */
		if (!running && stop_at && now_mono_ns() > stop_at + 2000000000LL)
			break;
	}
	int rc = 0;
	if (failed >= 0) {
		char how[64];
		describe(ranks[failed].status, how, sizeof how);
		printf("[kiln launch] rank %d of %d failed (%s)\n", layout.first + failed, layout.world, how);
		rc = WIFEXITED(ranks[failed].status) ? WEXITSTATUS(ranks[failed].status) : 128 + WTERMSIG(ranks[failed].status);
		if (rc == 0)
			rc = 1;
	}
	for (int r = 0; r < world; r++) {
		if (ranks[r].fd >= 0)
			close(ranks[r].fd);
		buf_free(&ranks[r].line);
	}
	close(wake[0]);
	close(wake[1]);
	free(ranks);
	free(fds);
	fflush(stdout);
	return rc;
}

static void drain_ended(Rank *rank, int global, char *buf, size_t size)
{
	struct pollfd one = {.fd = rank->fd, .events = POLLIN};
	while (rank->fd >= 0 && poll(&one, 1, 0) > 0) {
		ssize_t n = read(rank->fd, buf, size);
		if (n <= 0) {
			relay(rank, global, "", 0, 1);
			close(rank->fd);
			rank->fd = -1;
			break;
		}
		rank->lost_peer |= says_lost_peer(buf, (size_t)n);
		relay(rank, global, buf, (size_t)n, 0);
	}
}

int launch_wraps(const Task *t) { return t->opts->rank_nodes > 0; }

int launch_wrap(Graph *g, Task *t, int ranks, int nodes, double grace_sec, Buf *err)
{
	if (t->opts->spec || (!task_shell(t) && !task_word(t, 0))) {
		buf_puts(err, "ranks needs a command to start that many times");
		return -1;
	}
	if (t->opts->torchrun) {
		buf_puts(err, "and torchrun both start ranks: give one of them");
		return -1;
	}
	if (t->opts->ports >= 16) {
		buf_puts(err, "needs a port of its own for the ranks' rendezvous, and the task already uses all 16");
		return -1;
	}
	int all = task_shell(t) ? strstr(task_shell(t), "{local_rank}") != NULL : 0;
	for (int i = 0; task_word(t, i) && !all; i++)
		all = strstr(task_argv(t)[i], "{local_rank}") != NULL;
	for (int i = 0; i < t->more->nenv && !all; i++)
		all = strstr(t->more->env[i].value, "{local_rank}") != NULL;
	char n[16], port[16], grace[32], nnodes[16];
	snprintf(n, sizeof n, "%d", ranks);
	snprintf(nnodes, sizeof nnodes, "%d", nodes);
	snprintf(port, sizeof port, t->opts->ports ? "{port%d}" : "{port}", t->opts->ports);
	snprintf(grace, sizeof grace, "%g", grace_sec);
	const char *words[] = {"@kiln", "launch", "--ranks", n, "--master-port", port, "--grace", grace,
			       nodes > 1 ? "--nnodes" : NULL, nodes > 1 ? nnodes : NULL, all ? "--all-gpus" : NULL,
			       task_shell(t) ? (t->opts->shell ? "--shell-program" : "--shell") : NULL,
			       task_shell(t) && t->opts->shell ? t->opts->shell : NULL, "--"};
	int nwords = (int)(sizeof words / sizeof *words), user = task_shell(t) ? 1 : task_argc(t), k = 0;
	const char **argv = arena_alloc(&g->arena, (size_t)(nwords + user + 1) * sizeof *argv);
	for (int i = 0; i < nwords; i++)
		if (words[i])
			argv[k++] = arena_strdup(&g->arena, words[i]);
	for (int i = 0; i < user; i++)
		argv[k++] = task_shell(t) ? task_shell(t) : task_argv(t)[i];
	argv[k] = NULL;
	task_set_argv(t, argv);
	t->opts->ports++;
	t->opts->rank_nodes = nodes;
	return 0;
}
