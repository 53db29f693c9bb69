/* exec_local.c — the local executor: each attempt runs under kiln-keeper (runner/keeper.c)
 * in a session of its own, the command spawned directly (posix_spawn, no shell for argv
 * commands) as the leader of its own process group, with stdin from /dev/null and
 * stdout+stderr into its log. An attempt ends when its whole group is gone: processes the
 * command left behind are stopped by the keeper (SIGTERM, SIGKILL after the grace period)
 * before it writes the exit status, so nothing of an attempt writes after it. The attempt
 * outlives a killed kiln; exec_local_attach.c re-attaches to it. */
#define _GNU_SOURCE
#include "exec_local_internal.h"
#include "../base/os.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	char **env = xmalloc((n + extra + (size_t)t->nenv + 3) * sizeof *env);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(environ[i], '=');
		size_t kl = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
		int overridden = 0;
		for (char **e = job->env; e && *e && !overridden; e++)
			overridden = !strncmp(*e, environ[i], kl) && (*e)[kl] == '=';
		for (int j = 0; j < t->nenv && !overridden; j++)
			overridden = strlen(t->env[j].key) == kl && !strncmp(t->env[j].key, environ[i], kl);
		overridden |= !strncmp(environ[i], "KILN_WORKSPACE=", 15);
		if (!overridden)
			env[k++] = environ[i];
	}
	env[k++] = (char *)exec_workspace_marker();
	for (char **e = job->env; e && *e; e++)
		env[k++] = *e;
	const char *path_entry = exec_path_entry();
	int task_sets_path = 0;
	for (int j = 0; j < t->nenv; j++)
		task_sets_path |= !strcmp(t->env[j].key, "PATH");
	if (!task_sets_path) {
		for (size_t i = 0; i < k; i++)
			if (!strncmp(env[i], "PATH=", 5))
				env[i] = env[--k];
		env[k++] = (char *)path_entry;
	}
	/* task env strings "K=V" are laid out in one scratch buffer; offsets become pointers */
	size_t offsets[t->nenv + 1];
	buf_reset(scratch);
	for (int j = 0; j < t->nenv; j++) {
		offsets[j] = scratch->len;
		char *value = exec_expand_attempt(t->env[j].value, job);
		buf_printf(scratch, "%s=%s", t->env[j].key, value ? value : t->env[j].value);
		free(value);
		buf_putc(scratch, 0);
	}
	for (int j = 0; j < t->nenv; j++)
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

static int local_start(Executor *ex, Job *job)
{
	LocalExec *le = ex->impl;
	const Task *t = job->task;
	job->started_ns = now_mono_ns();
	job->end = JOB_RUNNING;
	if (le->nadopted && local_reattach(ex, job))
		return 0;
	int fd = exec_open_log(job);
	if (fd < 0) {
		job->end = JOB_START_FAILED;
		fprintf(stderr, "kiln: cannot open log %s: %s\n", job->log_path, strerror(errno));
		goto ended;
	}
	exec_write_log_header(fd, job);

	/* this attempt's ports and device count go into the words that name them */
	char *shell = t->shell ? exec_expand_attempt(t->shell, job) : NULL;
	const char *sh_argv[] = {"/bin/sh", "-c", shell ? shell : t->shell, NULL};
	const char *const *argv = t->shell ? sh_argv : t->argv;
	int argc = t->shell ? 3 : t->argc;
	char **expanded = xcalloc((size_t)argc + 1, sizeof *expanded); /* words made for this attempt */
	for (int i = 0; !t->shell && i < argc; i++)
		expanded[i] = exec_expand_attempt(t->argv[i], job);
	/* the keeper runs the command: kiln-keeper EXIT GRACE KEY PROGRAM ARGV... */
	char *exit_path = local_exit_path(job->log_path), grace[32];
	snprintf(grace, sizeof grace, "%lld", (long long)(job->grace_ns / 1000000));
	unlink(exit_path);
	const char **kargv = xmalloc((size_t)(argc + 6) * sizeof *kargv);
	Buf scratch = {0};
	char **env = build_env(job, &scratch);
	const char *word0 = expanded[0] ? expanded[0] : t->shell ? argv[0] : exec_argv_word(t, 0);
	const char *program = resolve_program(le, word0, env);
	kargv[0] = le->keeper;
	kargv[1] = exit_path;
	kargv[2] = grace;
	kargv[3] = job->key[0] ? job->key : "-";
	kargv[4] = program;
	for (int i = 0; i < argc; i++)
		kargv[5 + i] = expanded[i] ? expanded[i] : t->shell ? argv[i] : exec_argv_word(t, i);
	kargv[5 + argc] = NULL;
	OsSpawn spawn = {.program = le->keeper, .argv = (char *const *)kargv, .env = env, .stdin_null = 1,
			 .out_fd = fd, .err_fd = fd, .new_session = 1};
	int rc = program ? os_spawn(&spawn, &job->pid) : ENOENT;
	char msg[512];
	int n = rc == 0 ? 0
			: snprintf(msg, sizeof msg, "kiln: cannot start %s: %s%s\n", program ? le->keeper : word0, strerror(rc),
				   rc == ENOENT ? " (is it installed and on PATH?)" : "");
	free(env);
	free(kargv);
	free(exit_path);
	for (int i = 0; i < argc; i++)
		free(expanded[i]);
	free(expanded);
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
	/* the id a later kiln re-attaches by: the keeper's pid and start time on this host */
	snprintf(job->job_id, sizeof job->job_id, "local/%s/%d/%lld/%s", os_hostname(), (int)job->pid,
		 os_process_start(job->pid), job->gpu_list);
	os_children_watch(job->pid);
	exec_push_job(&le->jobs, &le->njobs, &le->cap, job);
	return 0;
ended:
	job->ended_ns = now_mono_ns();
	exec_push_job(&le->ended, &le->nended, &le->ended_cap, job);
	return -1;
}

/* Whether job's keeper is done, and how its attempt ended (from its exit file). An adopted
 * keeper is not kiln's child: its exit file, or its disappearance, says it ended. */
static int keeper_ended(LocalExec *le, Job *job)
{
	int status;
	char *exit_path = local_exit_path(job->log_path);
	int ended = 0;
	if (!job->adopted && os_children_take(job->pid, &status)) {
		ended = 1;
		if (!local_read_exit_file(exit_path, job)) { /* the keeper itself was killed */
			job->end = WIFEXITED(status) ? JOB_EXITED : JOB_SIGNALED;
			job->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
			job->term_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
		}
	} else if (job->adopted) {
		pid_t pid;
		long long start;
		ended = local_read_exit_file(exit_path, job);
		if (!ended && (local_parse_id(job->job_id, &pid, &start) != 0 || os_process_start(pid) != start) &&
		    !(ended = local_read_exit_file(exit_path, job))) { /* gone without a word: killed */
			ended = 1;
			job->end = JOB_SIGNALED;
			job->term_signal = SIGKILL;
		}
	}
	if (ended) { /* removed once the run's records are committed (local_destroy) */
		le->exits = xrealloc(le->exits, (size_t)(le->nexits + 1) * sizeof *le->exits);
		le->exits[le->nexits++] = exit_path;
	} else {
		free(exit_path);
	}
	return ended;
}

static int local_reap(Executor *ex, Job **out, int max)
{
	LocalExec *le = ex->impl;
	int n = 0;
	os_children_reap(); /* every child: keepers, other executors' helpers, and (as subreaper) orphans */
	for (int i = 0; i < le->njobs; i++) {
		Job *job = le->jobs[i];
		if (!keeper_ended(le, job))
			continue;
		job->ended_ns = now_mono_ns();
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
	for (int i = 0; i < le->njobs; i++)
		if (le->jobs[i]->adopted)
			return 200; /* not kiln's child: no SIGCHLD tells of its end */
	return -1;
}

static void local_signal(Executor *ex, Job *job, int sig)
{
	(void)ex;
	/* the keeper passes TERM, INT and HUP on to the command's group; SIGKILL would end the
	 * keeper before it says how the attempt ended, so it is asked for with SIGUSR1 */
	if (job->pid > 0)
		kill(job->pid, sig == SIGKILL ? SIGUSR1 : sig);
}

static int local_detach(Executor *ex, Job *job, int hangup)
{
	LocalExec *le = ex->impl;
	if (!le->detach && !hangup)
		return 0;
	for (int i = 0; i < le->njobs; i++) /* it runs on under its keeper; this kiln forgets it */
		if (le->jobs[i] == job)
			le->jobs[i] = le->jobs[--le->njobs];
	return 1;
}

static void local_destroy(Executor *ex)
{
	LocalExec *le = ex->impl;
	for (int i = 0; i < le->nexits; i++) {
		unlink(le->exits[i]);
		free(le->exits[i]);
	}
	free(le->exits);
	exec_adopted_free(le->adopted, le->nadopted);
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
	Executor *ex = xcalloc(1, sizeof *ex);
	ex->name = "local";
	ex->title = "local";
	ex->local_slots = 1;
	ex->kiln_timeouts = 1;
	ex->kiln_ports = 1;
	ex->reattaches = 1;
	ex->start = local_start;
	ex->reap = local_reap;
	ex->signal = local_signal;
	ex->poll_ms = local_poll_ms;
	ex->has_room = NULL;
	ex->detach = local_detach;
	ex->adopt = local_adopt;
	ex->adoptable = local_adoptable;
	ex->destroy = local_destroy;
	LocalExec *le = xcalloc(1, sizeof(LocalExec));
	le->cache = cache;
	le->detach = detach;
	char *dir = xstrdup(exec_self()), *slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	le->keeper = xasprintf("%s/kiln-keeper", dir); /* built and installed beside kiln */
	free(dir);
	ex->impl = le;
	/* orphaned processes that reach kiln (a keeper killed on its own) are reaped here */
	os_become_subreaper();
	return ex;
}
