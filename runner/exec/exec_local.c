/* exec_local.c — the local executor: each attempt runs under kiln-keeper (exec/keeper.c)
 * in a session of its own, the command spawned directly (posix_spawn, no shell for argv
 * commands) as the leader of its own process group, with stdin from /dev/null and
 * stdout+stderr into its log. An attempt ends when its whole group is gone: processes the
 * command left behind are stopped by the keeper (SIGTERM, SIGKILL after the grace period)
 * before it writes the exit status, so nothing of an attempt writes after it. The attempt
 * outlives a killed kiln; exec_local_attach.c re-attaches to it. */
#define _GNU_SOURCE
#include "exec_local_internal.h"
#include "../../base/os.h"
#include "keeper.h"
#include "exit_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* environ, minus what kiln or the task sets, plus those. Returned array is malloc'd;
 * the strings belong to environ, the job or the arena (task env is joined here). */
static char **build_env(const Job *job, Buf *scratch)
{
	const Task *t = job->task;
	size_t n = 0, extra = 0;
	while (environ[n])
		n++;
	for (char **e = job->env; e && *e; e++)
		extra++;
	char **env = xmalloc((n + extra + (size_t)t->more->nenv + 3) * sizeof *env);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(environ[i], '=');
		size_t kl = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
		int overridden = 0;
		for (char **e = job->env; e && *e && !overridden; e++)
			overridden = !strncmp(*e, environ[i], kl) && (*e)[kl] == '=';
		for (int j = 0; j < t->more->nenv && !overridden; j++)
			overridden = strlen(t->more->env[j].key) == kl && !strncmp(t->more->env[j].key, environ[i], kl);
		overridden |= !strncmp(environ[i], "KILN_WORKSPACE=", 15);
		if (!overridden)
			env[k++] = environ[i];
	}
	env[k++] = (char *)exec_workspace_marker();
	for (char **e = job->env; e && *e; e++)
		env[k++] = *e;
	const char *path_entry = exec_path_entry();
	int task_sets_path = 0;
	for (int j = 0; j < t->more->nenv; j++)
		task_sets_path |= !strcmp(t->more->env[j].key, "PATH");
	if (!task_sets_path) {
		for (size_t i = 0; i < k; i++)
			if (!strncmp(env[i], "PATH=", 5))
				env[i] = env[--k];
		env[k++] = (char *)path_entry;
	}
	/* task env strings "K=V" are laid out in one scratch buffer; offsets become pointers */
	size_t offsets[t->more->nenv + 1];
	buf_reset(scratch);
	for (int j = 0; j < t->more->nenv; j++) {
		offsets[j] = scratch->len;
		char *value = exec_expand_attempt(t->more->env[j].value, job, 0);
		buf_printf(scratch, "%s=%s", t->more->env[j].key, value ? value : t->more->env[j].value);
		free(value);
		buf_putc(scratch, 0);
	}
	for (int j = 0; j < t->more->nenv; j++)
		env[k++] = scratch->data + offsets[j];
	env[k] = NULL;
	return env;
}

/* Finds prog on the task's PATH (posix_spawnp would search kiln's own PATH); results are
 * cached, since grids spawn the same few programs thousands of times. NULL if not found. */
static const char *resolve_program(LocalExec *le, const char *prog, char **env)
{
	StrMap *cache = &le->programs;
	if (strchr(prog, '/'))
		return prog;
	const char *path = "/usr/local/bin:/usr/bin:/bin";
	for (char **e = env; *e; e++)
		if (!strncmp(*e, "PATH=", 5))
			path = *e + 5;
	char *key = xasprintf("%s\n%s", prog, path);
	const char *hit = strmap_get(cache, key);
	if (hit) {
		free(key);
		return hit;
	}
	char *found = NULL;
	for (const char *p = path; !found;) {
		const char *colon = strchr(p, ':');
		size_t n = colon ? (size_t)(colon - p) : strlen(p);
		char *cand = xasprintf("%.*s/%s", (int)n, n ? p : ".", prog);
		if (access(cand, X_OK) == 0)
			found = cand;
		else
			free(cand);
		if (!colon)
			break;
		p = colon + 1;
	}
	if (found)
		strmap_put(cache, key, found);
	else
		free(key);
	return found;
}

/* Starts this run's keeper, the parent of its attempts (keeper.c): 0, or an errno value. */
static int start_keeper(LocalExec *le)
{
	exec_write_shims(); /* before the first attempt's PATH is searched */
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
		return errno;
	int size = KEEPER_MAX_MESSAGE + 4096;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
	/* the keeper's shared lock (LOCAL_KEEPER_LOCK), taken here and handed over as its fd 3,
	 * so it is held from before the first start kiln sends */
	int lock = open(LOCAL_KEEPER_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (lock >= 0 && flock(lock, LOCK_SH | LOCK_NB) != 0) {
		close(lock);
		lock = -1;
	}
	char *argv[] = {KEEPER_PROCESS_NAME, lock > 0 ? "3" : NULL, NULL};
	/* nothing of kiln's stdio: whoever reads kiln's output must not wait for the keeper */
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	OsSpawn spawn = {.program = le->keeper, .argv = argv, .in_fd = sv[1], .out_fd = null, .err_fd = null,
			 .new_session = 1, .pass_fd = lock > 0 ? lock : 0};
	int rc = null < 0 ? errno : os_spawn(&spawn, &le->keeper_pid);
	close(sv[1]);
	if (null >= 0)
		close(null);
	if (lock >= 0) /* the keeper's copy holds it */
		close(lock);
	if (rc != 0) {
		close(sv[0]);
		return rc;
	}
	os_children_watch(le->keeper_pid);
	le->sock = sv[0];
	le->keeper_start = os_process_start(le->keeper_pid);
	return 0;
}

static Job *job_of_token(LocalExec *le, uint32_t token)
{
	for (int i = 0; i < le->njobs; i++)
		if (!le->jobs[i]->adopted && (uint32_t)le->jobs[i]->exec_token == token)
			return le->jobs[i];
	return NULL;
}

/* An attempt's group is gone: it moves to the ended list with how its leader ended. */
static void job_over(LocalExec *le, Job *job, int status)
{
	if (WIFEXITED(status)) {
		job->end = JOB_EXITED;
		job->exit_code = WEXITSTATUS(status);
	} else {
		job->end = JOB_SIGNALED;
		job->term_signal = WTERMSIG(status);
	}
	job->ended_ns = now_mono_ns();
	for (int i = 0; i < le->njobs; i++)
		if (le->jobs[i] == job)
			le->jobs[i] = le->jobs[--le->njobs];
	exec_push_job(&le->ended, &le->nended, &le->ended_cap, job);
}

/* Takes one message from the keeper: an end is filed, a start's answer returned in
 * started. Returns 1 for a message, 0 when none waits (nonblocking), -1 when the keeper is
 * gone. */
static int keeper_message(LocalExec *le, int block, KeeperStarted *started)
{
	char msg[64];
	ssize_t n = recv(le->sock, msg, sizeof msg, block ? 0 : MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0)
		return -1;
	if (msg[0] == 'E' && n >= (ssize_t)sizeof(KeeperEnd)) {
		KeeperEnd e;
		memcpy(&e, msg, sizeof e);
		le->ends_read++;
		Job *job = job_of_token(le, e.token);
		if (job)
			job_over(le, job, e.status);
	} else if (msg[0] == 'P' && n >= (ssize_t)sizeof(KeeperStarted) && started) {
		memcpy(started, msg, sizeof *started);
	}
	return 1;
}

/* The keeper was killed on its own (kill -9, the OOM killer: it ignores the rest). Its
 * attempts run on, kiln's children now (kiln is the subreaper), and kiln does the keeper's
 * part for them (kept_reap): it hears each leader's end, stops what the leader left, writes
 * the exit file (for a later kiln, should this one be killed before it records the end),
 * and ends the attempt. Stopping them threw away the work of every running attempt. The
 * next start brings up a new keeper. */
static void keeper_lost(LocalExec *le)
{
	close(le->sock);
	le->sock = -1;
	pid_t keeper = le->keeper_pid;
	le->keeper_pid = 0;
	int n = 0;
	for (int i = 0; i < le->njobs; i++) {
		Job *job = le->jobs[i];
		int kept = job->adopted;
		for (int k = 0; k < le->nkept && !kept; k++)
			kept = le->kept[k].job == job;
		if (kept) /* another keeper's, or already kiln's */
			continue;
		le->kept = xrealloc(le->kept, (size_t)(le->nkept + 1) * sizeof *le->kept);
		/* not kiln's child: it ended as the keeper died, which collected it unsaid */
		le->kept[le->nkept++] = (KeptAttempt){job, 0, os_children_adopt(job->pid) ? 0 : -1, 0, 0};
		n++;
		int fd = open(job->log_path, O_WRONLY | O_APPEND | O_CLOEXEC);
		if (fd >= 0) {
			dprintf(fd, "\n# kiln: the attempts' keeper (pid %d) was killed; this attempt runs on, kept by kiln\n",
				(int)keeper);
			close(fd);
		}
	}
	if (n)
		fprintf(stderr, "kiln: the keeper of this run's attempts (pid %d) was killed; %s %d running attempt%s "
			"run%s on, kept by kiln itself\n", (int)keeper, n == 1 ? "its" : "all", n, n == 1 ? "" : "s",
			n == 1 ? "s" : "");
}

/* The keeper's part (keeper.c: reap) for the attempts kiln kept: a leader's end heard, its
 * leftovers told to stop (unless the signal that ended it told them), made to after the
 * grace period, and once none is left, the exit file written and the attempt ended. */
static void kept_reap(LocalExec *le)
{
	long long now = now_mono_ns();
	for (int i = 0; i < le->nkept; i++) {
		KeptAttempt *k = &le->kept[i];
		Job *job = k->job;
		if (!k->leader_done && os_children_take(job->pid, &k->status))
			k->leader_done = 1;
		if (!k->leader_done)
			continue;
		if (os_attempt_alive(job->pid, &k->hint)) {
			if (!k->kill_at_ns) {
				if (k->leader_done < 0 || !exit_told_group(k->status))
					os_signal_attempt(job->pid, SIGTERM);
				os_signal_attempt(job->pid, SIGCONT);
				k->kill_at_ns = now + job->grace_ns;
			} else if (now >= k->kill_at_ns) {
				os_signal_attempt(job->pid, SIGKILL);
			}
			continue;
		}
		int known = k->leader_done > 0, status = k->status;
		le->kept[i--] = le->kept[--le->nkept];
		char *exit_path = local_exit_path(job->log_path);
		if (known) /* removed once the run's records are committed (local_destroy) */
			exit_file_write(exit_path, status);
		le->exits = xrealloc(le->exits, (size_t)(le->nexits + 1) * sizeof *le->exits);
		le->exits[le->nexits++] = exit_path;
		if (known) {
			job_over(le, job, status);
			continue;
		}
		job_over(le, job, SIGKILL); /* then: not the task's failure, it runs again */
		job->end = JOB_LOST;
		snprintf(job->reason, sizeof job->reason, "its keeper was killed as it ended: how it ended is not known");
	}
}

/* Sends the start of job to the keeper and waits for its answer: 0, or an errno value. */
static int keeper_start(LocalExec *le, Job *job, const char *program, const char *const *argv, int argc,
			char **env, const char *exit_path)
{
	if (le->sock < 0) {
		int rc = start_keeper(le);
		if (rc != 0)
			return rc;
	}
	int nenv = 0;
	while (env[nenv])
		nenv++;
	KeeperStart head = {'S', ++le->next_token, (uint32_t)(job->grace_ns / 1000000), (uint32_t)argc, (uint32_t)nenv};
	Buf msg = {0};
	buf_put(&msg, &head, sizeof head);
	const char *fixed[] = {job->log_path, exit_path, job->task->opts->cwd ? job->task->opts->cwd : "", program};
	for (int i = 0; i < 4; i++)
		buf_put(&msg, fixed[i], strlen(fixed[i]) + 1);
	for (int i = 0; i < argc; i++)
		buf_put(&msg, argv[i], strlen(argv[i]) + 1);
	for (int i = 0; i < nenv; i++)
		buf_put(&msg, env[i], strlen(env[i]) + 1);
	/* with its devices' claims, which the keeper holds until the attempt ends */
	struct iovec iov = {msg.data, msg.len};
	union {
		struct cmsghdr align;
		char space[CMSG_SPACE(sizeof job->gpu_claims)];
	} control;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (job->ngpu_claims > 0) {
		size_t bytes = (size_t)job->ngpu_claims * sizeof(int);
		mh.msg_control = control.space;
		mh.msg_controllen = CMSG_SPACE(bytes);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(bytes);
		memcpy(CMSG_DATA(cm), job->gpu_claims, bytes);
	}
	int rc = msg.len > KEEPER_MAX_MESSAGE ? E2BIG : sendmsg(le->sock, &mh, MSG_NOSIGNAL) < 0 ? errno : 0;
	buf_free(&msg);
	KeeperStarted started = {0};
	while (rc == 0 && started.type != 'P')
		if (keeper_message(le, 1, &started) < 0)
			rc = EPIPE;
	if (rc == EPIPE || (rc != 0 && rc != E2BIG)) {
		keeper_lost(le);
		return rc;
	}
	if (rc == 0 && started.pid <= 0)
		rc = -started.pid;
	if (rc == 0) {
		job->pid = started.pid;
		job->exec_token = (int)head.token;
		le->last_start = started.start;
	}
	return rc;
}

static int local_start(Executor *ex, Job *job)
{
	LocalExec *le = ex->impl;
	const Task *t = job->task;
	job->started_ns = now_mono_ns();
	job->end = JOB_RUNNING;
	if (le->nadopted && local_reattach(ex, job))
		return 0;
	exec_gpu_env(job);
	int fd = exec_open_log(job);
	if (fd < 0) {
		job->end = JOB_START_FAILED;
		fprintf(stderr, "kiln: cannot open log %s: %s\n", job->log_path, strerror(errno));
		goto ended;
	}
	exec_write_log_header(fd, job);

	/* this attempt's ports and device count go into the words that name them */
	char *shell = task_shell(t) ? exec_expand_attempt(task_shell(t), job, 1) : NULL;
	const char *sh_argv[] = {task_shell_program(t), "-c", shell ? shell : task_shell(t), NULL};
	int argc = task_shell(t) ? 3 : task_argc(t);
	const char **argv = xcalloc((size_t)argc + 1, sizeof *argv);
	char **expanded = xcalloc((size_t)argc + 1, sizeof *expanded); /* words made for this attempt */
	for (int i = 0; i < argc; i++) {
		expanded[i] = task_shell(t) ? NULL : exec_expand_attempt(task_argv(t)[i], job, 0);
		argv[i] = expanded[i] ? expanded[i] : task_shell(t) ? sh_argv[i] : exec_argv_word(t, i);
	}
	char *exit_path = local_exit_path(job->log_path);
	unlink(exit_path);
	Buf scratch = {0};
	char **env = build_env(job, &scratch);
	const char *program = resolve_program(le, argv[0], env);
	int rc = t->opts->cwd && mkdirs(t->opts->cwd, 0777) != 0 ? errno : 0; /* made if missing, never emptied */
	int no_keeper = rc == 0 && program && le->sock < 0 && (rc = start_keeper(le)) != 0;
	if (rc == 0)
		rc = program ? keeper_start(le, job, program, argv, argc, env, exit_path) : ENOENT;
	char msg[1024];
	int n = rc == 0 ? 0
		: no_keeper ? snprintf(msg, sizeof msg, "kiln: cannot start %s: %s (kiln starts every local attempt "
						       "through it, and it belongs beside kiln: install both, or copy "
						       "kiln-keeper next to %s)\n", le->keeper, strerror(rc), exec_self())
			    : snprintf(msg, sizeof msg, "kiln: cannot start %s: %s%s\n", argv[0], strerror(rc),
				       rc == ENOENT ? " (is it installed and on PATH?)" : "");
	free(env);
	free(exit_path);
	for (int i = 0; i < argc; i++)
		free(expanded[i]);
	free(expanded);
	free(argv);
	free(shell);
	buf_free(&scratch);
	if (rc != 0) {
		if (n >= (int)sizeof msg)
			n = (int)sizeof msg - 1;
		exec_write_all(fd, msg, (size_t)n);
		close(fd);
		job->end = JOB_START_FAILED;
		job->exit_code = 127;
		goto ended;
	}
	close(fd);
	/* the id a later kiln re-attaches by: the leader's and the keeper's pid and start time */
	snprintf(job->job_id, sizeof job->job_id, "local/%d/%lld/%d/%lld", (int)job->pid, le->last_start,
		 (int)le->keeper_pid, le->keeper_start);
	exec_push_job(&le->jobs, &le->njobs, &le->cap, job);
	return 0;
ended:
	job->ended_ns = now_mono_ns();
	exec_push_job(&le->ended, &le->nended, &le->ended_cap, job);
	return -1;
}

/* Whether an adopted attempt (not this kiln's keeper's) ended: its exit file says how; its
 * leader and keeper both gone without one, it was killed. Killed by a signal while no kiln
 * watched (someone's kill, the OOM killer), it is lost, not failed: it runs again. One this
 * kiln's own signal reached (its timeout, a Ctrl-C) ended as the scheduler then says. */
static int adopted_ended(LocalExec *le, Job *job)
{
	char *exit_path = local_exit_path(job->log_path);
	int ended = local_read_exit_file(exit_path, job), unsaid = 0;
	if (!ended && !exec_local_job_alive(job->job_id) && !(ended = local_read_exit_file(exit_path, job))) {
		ended = unsaid = 1; /* gone without a word: its keeper was killed too */
		job->end = JOB_SIGNALED;
		job->term_signal = SIGKILL;
	}
	if (ended && job->end == JOB_SIGNALED && !job->stop_landed) { /* no kiln saw it, none sent it: not the task's failure */
		if (unsaid)
			snprintf(job->reason, sizeof job->reason, "ended while neither a kiln nor its keeper watched: how is not known");
		else
			snprintf(job->reason, sizeof job->reason, "killed by signal %d while no kiln watched", job->term_signal);
		job->end = JOB_LOST;
	}
	if (ended) { /* removed once the run's records are committed (local_destroy) */
		le->exits = xrealloc(le->exits, (size_t)(le->nexits + 1) * sizeof *le->exits);
		le->exits[le->nexits++] = exit_path;
		job->ended_ns = now_mono_ns();
	} else {
		free(exit_path);
	}
	return ended;
}

static int local_reap(Executor *ex, Job **out, int max)
{
	LocalExec *le = ex->impl;
	int n = 0, status;
	os_children_reap(); /* every child: the keeper, other executors' helpers, orphans */
	if (le->keeper_pid && os_children_take(le->keeper_pid, &status)) {
		while (keeper_message(le, 0, NULL) > 0) /* what it said before it died */
			;
		keeper_lost(le);
	}
	while (le->sock >= 0 && keeper_message(le, 0, NULL) > 0)
		;
	kept_reap(le);
	for (int i = 0; i < le->njobs; i++) {
		Job *job = le->jobs[i];
		if (!job->adopted || !adopted_ended(le, job))
			continue;
		le->jobs[i--] = le->jobs[--le->njobs];
		exec_push_job(&le->ended, &le->nended, &le->ended_cap, job);
	}
	while (le->nended > 0 && n < max)
		out[n++] = le->ended[--le->nended];
	return n;
}

static int local_poll_ms(Executor *ex)
{
	LocalExec *le = ex->impl;
	for (int i = 0; i < le->nkept; i++)
		if (le->kept[i].leader_done)
			return 20; /* its leftovers end unannounced: looked for as the keeper would */
	for (int i = 0; i < le->njobs; i++)
		if (le->jobs[i]->adopted)
			return 200; /* another keeper's: only its exit file tells of its end */
	return -1;
}

static void local_committed(Executor *ex)
{
	LocalExec *le = ex->impl;
	if (le->sock < 0 || le->ends_read == le->ends_confirmed)
		return;
	KeeperRecorded c = {'C', le->ends_read}; /* every end read so far is in the commit */
	if (send(le->sock, &c, sizeof c, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)sizeof c)
		le->ends_confirmed = le->ends_read;
}

static void local_signal(Executor *ex, Job *job, int sig)
{
	(void)ex;
	if (job->pid > 0) { /* the attempt's session (its keeper stays outside it) */
		if (os_signal_attempt(job->pid, sig) == 0)
			job->stop_landed = 1; /* none there (ESRCH): it had ended by itself */
		if (sig != SIGKILL)
			os_signal_attempt(job->pid, SIGCONT); /* a stopped group must wake to see its stop signal */
	}
}

static int local_detach(Executor *ex, Job *job, int hangup)
{
	LocalExec *le = ex->impl;
	if (!le->detach && !hangup)
		return 0;
	for (int i = 0; i < le->njobs; i++) /* it runs on under its keeper; this kiln forgets it */
		if (le->jobs[i] == job)
			le->jobs[i] = le->jobs[--le->njobs];
	for (int i = 0; i < le->nkept; i++) /* one kiln kept: no exit file will say how it ended */
		if (le->kept[i].job == job)
			le->kept[i] = le->kept[--le->nkept];
	le->detached++;
	return 1;
}

static void local_destroy(Executor *ex)
{
	LocalExec *le = ex->impl;
	if (le->sock >= 0) { /* the keeper keeps what runs on and what was not recorded */
		send(le->sock, "B", 1, MSG_NOSIGNAL);
		close(le->sock);
		if (!le->detached) /* it has nothing left to keep and exits: reaped here, not left a zombie */
			waitpid(le->keeper_pid, NULL, 0);
	}
	for (int i = 0; i < le->nexits; i++) {
		unlink(le->exits[i]);
		free(le->exits[i]);
	}
	free(le->exits);
	free(le->kept);
	exec_adopted_free(le->adopted, le->nadopted);
	for (int i = 0; i < le->nheld; i++) {
		free(le->held[i].task);
		free(le->held[i].host);
		free(le->held[i].why);
	}
	free(le->held);
	free(le->keeper);
	free(le->jobs);
	free(le->ended);
	const char *key;
	void *value;
	for (size_t i = 0; strmap_next(&le->programs, &i, &key, &value);) {
		free((char *)key);
		free(value);
	}
	strmap_free(&le->programs);
	free(le);
	free(ex);
}

Executor *exec_local_new(struct Cache *cache, int detach)
{
	LocalExec *le = xcalloc(1, sizeof(LocalExec));
	le->sock = -1;
	le->cache = cache;
	le->detach = detach;
	char *dir = xstrdup(exec_self()), *slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	le->keeper = xasprintf("%s/kiln-keeper", dir); /* built and installed beside kiln */
	free(dir);
	Executor *ex = xmalloc(sizeof *ex);
	*ex = (Executor){
		.name = "local",
		.title = "local",
		.local_slots = 1,
		.workspace_files = 1,
		.kiln_timeouts = 1,
		.kiln_ports = 1,
		.reattaches = 1,
		.start = local_start,
		.reap = local_reap,
		.signal = local_signal,
		.poll_ms = local_poll_ms,
		.detach = local_detach,
		.adopt = local_adopt,
		.adoptable = local_adoptable,
		.held_elsewhere = local_held_elsewhere,
		.committed = local_committed,
		.destroy = local_destroy,
		.impl = le,
	};
	/* orphaned processes that reach kiln (of a keeper killed on its own) are reaped here */
	os_become_subreaper();
	return ex;
}

static Executor *make_local(const ExecSetup *s, Buf *err)
{
	(void)err;
	return exec_local_new(s->cache, s->detach);
}

extern const ExecutorKind exec_local_kind;
const ExecutorKind exec_local_kind = {.name = "local", .about = "this machine: its CPUs, memory and GPUs (the default)",
				      .refuses = exec_refuses_nodes, .make = make_local};
