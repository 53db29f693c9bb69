/* exec_local.c — the local executor: each attempt is spawned directly (posix_spawn,
 * no shell for argv commands) as the leader of its own process group, with stdin from
 * /dev/null and stdout+stderr into its log. An attempt ends when its whole group is gone:
 * processes the command left behind are stopped (SIGTERM, SIGKILL after the grace
 * period) before the outputs are hashed, so nothing of an attempt writes after it. */
#define _GNU_SOURCE
#include "exec.h"
#include "../base/os.h"

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

typedef struct {
	Job **jobs; /* running jobs, to map reaped pids back */
	int njobs, cap;
	Job **ended; /* jobs that failed to start: reported by the next reap */
	int nended, ended_cap;
	Job **draining; /* leader reaped, other processes of its group still alive */
	int ndraining, draining_cap;
	StrMap programs; /* "prog\nPATH" -> resolved path (resolve_program) */
} LocalExec;

void exec_adopted_add(AdoptedJob **list, int *n, const char *task, int attempt, const char *job_id,
		      const char *key_hex, const char *log_path, long long row)
{
	*list = xrealloc(*list, (size_t)(*n + 1) * sizeof **list);
	(*list)[(*n)++] = (AdoptedJob){xstrdup(task), xstrdup(job_id), xstrdup(key_hex ? key_hex : ""),
				       xstrdup(log_path ? log_path : ""), attempt, 0, row};
}

void exec_adopted_free(AdoptedJob *list, int n)
{
	for (int i = 0; i < n; i++) {
		free(list[i].task);
		free(list[i].job_id);
		free(list[i].key);
		free(list[i].log);
	}
	free(list);
}

void exec_push_job(Job ***list, int *n, int *cap, Job *job)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		*list = xrealloc(*list, (size_t)*cap * sizeof **list);
	}
	(*list)[(*n)++] = job;
}

static void write_all(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

int exec_open_log(const Job *job)
{
	if (mkdirs_parent(job->log_path) != 0)
		return -1;
	return open(job->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
}

void exec_write_log_header(int fd, const Job *job)
{
	const Task *t = job->task;
	Buf b = {0};
	char when[64];
	time_t now = time(NULL);
	strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime(&now));
	buf_printf(&b, "# kiln: task %s, attempt %d of %d, started %s\n", t->name, job->attempt, t->retries + 1, when);
	char *cmd = task_command_line(t);
	buf_printf(&b, "# command: %s%s\n", t->shell ? "/bin/sh -c " : "", cmd);
	free(cmd);
	buf_puts(&b, "# env:");
	for (char **e = job->env; e && *e; e++)
		buf_printf(&b, " %s", *e);
	for (int i = 0; i < t->nenv; i++)
		buf_printf(&b, " %s=%s", t->env[i].key, t->env[i].value);
	buf_puts(&b, "\n# --\n");
	write_all(fd, b.data, b.len);
	buf_free(&b);
}

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

const char *exec_self(void)
{
	static char self[4096]; /* computed once, read-only after: the binary does not move */
	if (!self[0]) {
		ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
		self[n > 0 ? n : 0] = 0;
	}
	return self;
}

int exec_has_attempt_words(const char *s)
{
	const char *brace = strchr(s, '{'); /* every spawn asks, for every word: most have no brace */
	return brace && (strstr(brace, "{port") || strstr(brace, "{gpus}") || strstr(brace, "{rdzv}") || strstr(brace, "{items}"));
}

char *exec_expand_attempt(const char *s, const Job *job)
{
	if (!exec_has_attempt_words(s))
		return NULL;
	Buf b = {0};
	for (const char *p = s; *p;) {
		char *end;
		long k = -1;
		if (!strncmp(p, "{gpus}", 6)) {
			buf_printf(&b, "%d", job->ngpus);
			p += 6;
			continue;
		}
		if (!strncmp(p, "{items}", 7) && job->items_path) { /* a map shard's item list */
			buf_puts(&b, job->items_path);
			p += 7;
			continue;
		}
		if (!strncmp(p, "{rdzv}", 6) && job->nports > 0) { /* torchrun's rendezvous: the last port */
			buf_printf(&b, "127.0.0.1:%d", job->ports[job->nports - 1]);
			p += 6;
			continue;
		}
		if (!strncmp(p, "{port}", 6))
			k = 0, end = (char *)p + 5;
		else if (!strncmp(p, "{port", 5) && p[5] >= '1' && p[5] <= '9' && (k = strtol(p + 5, &end, 10), *end != '}'))
			k = -1;
		if (k >= 0 && k < job->nports) {
			buf_printf(&b, "%d", job->ports[k]);
			p = end + 1;
			continue;
		}
		buf_putc(&b, *p++);
	}
	return b.data ? b.data : xstrdup("");
}

int exec_runs_kiln(const Task *t) { return !t->shell && t->argc && !strcmp(t->argv[0], "@kiln"); }

const char *exec_argv_word(const Task *t, int i) { return i == 0 && exec_runs_kiln(t) ? exec_self() : t->argv[i]; }

const char *exec_workspace_marker(void)
{
	static char *marker; /* computed once: the workspace does not change during a command */
	if (!marker) {
		char *cwd = getcwd(NULL, 0);
		marker = xasprintf("KILN_WORKSPACE=%s", cwd ? cwd : ".");
		free(cwd);
	}
	return marker;
}

const char *exec_path_entry(void)
{
	/* kiln's own directory ends PATH, so tasks find kiln-kernels (and kiln) beside it
	 * without shadowing anything the user put on PATH */
	static char *entry; /* computed once from PATH at start-up, then read-only */
	if (!entry) {
		char *dir = xstrdup(exec_self());
		char *slash = strrchr(dir, '/');
		if (slash)
			*slash = 0;
		const char *old = getenv("PATH");
		entry = xasprintf("PATH=%s:%s", old ? old : "/usr/local/bin:/usr/bin:/bin", dir);
		free(dir);
	}
	return entry;
}

static int local_start(Executor *ex, Job *job)
{
	LocalExec *le = ex->impl;
	const Task *t = job->task;
	job->started_ns = now_mono_ns();
	job->end = JOB_RUNNING;
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
	char *const *argv = (char *const *)(t->shell ? sh_argv : t->argv);
	char **expanded = NULL; /* argv words made for this attempt, freed after the spawn */
	int rewrite = !t->shell && exec_runs_kiln(t);
	for (int i = 0; !t->shell && i < t->argc && !rewrite; i++)
		rewrite = exec_has_attempt_words(t->argv[i]);
	if (rewrite) {
		argv = xmalloc((size_t)(t->argc + 1) * sizeof *argv);
		expanded = xcalloc((size_t)t->argc + 1, sizeof *expanded);
		for (int i = 0; i <= t->argc; i++) {
			expanded[i] = i < t->argc ? exec_expand_attempt(t->argv[i], job) : NULL;
			((char **)argv)[i] = expanded[i] ? expanded[i] : (char *)(i < t->argc ? exec_argv_word(t, i) : NULL);
		}
	}
	Buf scratch = {0};
	char **env = build_env(job, &scratch);
	const char *program = resolve_program(le, argv[0], env);
	OsSpawn spawn = {.program = program, .argv = argv, .env = env, .stdin_null = 1, .out_fd = fd, .err_fd = fd,
			 .new_group = 1};
	int rc = program ? os_spawn(&spawn, &job->pid) : ENOENT;
	char msg[512];
	int n = rc == 0 ? 0
			: snprintf(msg, sizeof msg, "kiln: cannot start %s: %s%s\n", argv[0], strerror(rc),
				   rc == ENOENT ? " (is it installed and on PATH?)" : "");
	free(env);
	if (argv != (char *const *)sh_argv && argv != (char *const *)t->argv)
		free((void *)argv);
	for (int i = 0; expanded && i < t->argc; i++)
		free(expanded[i]);
	free(expanded);
	free(shell);
	buf_free(&scratch);
	if (rc != 0) {
		if (n >= (int)sizeof msg)
			n = (int)sizeof msg - 1;
		write_all(fd, msg, (size_t)n);
		close(fd);
		job->end = JOB_START_FAILED;
		job->exit_code = 127;
		goto ended;
	}
	close(fd);
	os_children_watch(job->pid);
	exec_push_job(&le->jobs, &le->njobs, &le->cap, job);
	return 0;
ended:
	job->ended_ns = now_mono_ns();
	exec_push_job(&le->ended, &le->nended, &le->ended_cap, job);
	return -1;
}

static int group_alive(pid_t pgid) { return kill(-pgid, 0) == 0 || errno == EPERM; }

/* The leader of job's group exited: if other processes of the group live on, asks them
 * to stop and reports the job only once they are gone. Returns 1 if the job ended. */
static int leader_exited(LocalExec *le, Job *job)
{
	if (!group_alive(job->pid))
		return 1;
	kill(-job->pid, SIGTERM);
	kill(-job->pid, SIGCONT);
	if (job->kill_at_ns == 0)
		job->kill_at_ns = now_mono_ns() + job->grace_ns;
	int fd = open(job->log_path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd >= 0) {
		static const char note[] = "# kiln: the command exited while other processes of its group still ran; "
					   "they were sent SIGTERM (SIGKILL after the grace period)\n";
		write_all(fd, note, sizeof note - 1);
		close(fd);
	}
	exec_push_job(&le->draining, &le->ndraining, &le->draining_cap, job);
	return 0;
}

static int local_reap(Executor *ex, Job **out, int max)
{
	LocalExec *le = ex->impl;
	int n = 0;
	os_children_reap(); /* every child: leaders, other executors' helpers, and (as subreaper) orphans */
	for (int i = 0; i < le->njobs; i++) {
		Job *job = le->jobs[i];
		int status;
		if (!os_children_take(job->pid, &status))
			continue;
		job->ended_ns = now_mono_ns();
		if (WIFEXITED(status)) {
			job->end = JOB_EXITED;
			job->exit_code = WEXITSTATUS(status);
		} else {
			job->end = JOB_SIGNALED;
			job->term_signal = WTERMSIG(status);
		}
		le->jobs[i--] = le->jobs[--le->njobs];
		if (leader_exited(le, job))
			exec_push_job(&le->ended, &le->nended, &le->ended_cap, job);
	}
	for (int i = 0; i < le->ndraining; i++)
		if (!group_alive(le->draining[i]->pid)) {
			le->draining[i]->ended_ns = now_mono_ns();
			exec_push_job(&le->ended, &le->nended, &le->ended_cap, le->draining[i]);
			le->draining[i--] = le->draining[--le->ndraining];
		}
	while (le->nended > 0 && n < max)
		out[n++] = le->ended[--le->nended];
	return n;
}

static void local_signal(Executor *ex, Job *job, int sig)
{
	(void)ex;
	if (job->pid > 0) {
		kill(-job->pid, sig);
		if (sig == SIGTERM)
			kill(-job->pid, SIGCONT); /* a stopped group must wake to see SIGTERM */
	}
}

static void local_destroy(Executor *ex)
{
	LocalExec *le = ex->impl;
	free(le->jobs);
	free(le->ended);
	free(le->draining);
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

Executor *exec_local_new(void)
{
	Executor *ex = xcalloc(1, sizeof *ex);
	ex->name = "local";
	ex->title = "local";
	ex->local_slots = 1;
	ex->kiln_timeouts = 1;
	ex->kiln_ports = 1;
	ex->start = local_start;
	ex->reap = local_reap;
	ex->signal = local_signal;
	ex->poll_ms = NULL;
	ex->has_room = NULL;
	ex->destroy = local_destroy;
	ex->impl = xcalloc(1, sizeof(LocalExec));
	/* orphaned processes of a task (its leader exited first) become kiln's children, so
	 * their exit wakes kiln and a draining group is seen to end without polling */
	os_become_subreaper();
	return ex;
}
