/* exec_local.c — the local executor: each attempt is spawned directly (posix_spawn,
 * no shell for argv commands) as the leader of its own process group, with stdin from
 * /dev/null and stdout+stderr into its log. An attempt ends when its whole group is gone:
 * processes the command left behind are stopped (SIGTERM, SIGKILL after the grace
 * period) before the outputs are hashed, so nothing of an attempt writes after it. */
#define _GNU_SOURCE
#include "exec.h"
#include "../base/os.h"
#include "../cache/cache.h"

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

typedef struct {
	Job **jobs; /* running jobs, to map reaped pids back */
	int njobs, cap;
	Job **ended; /* jobs that failed to start: reported by the next reap */
	int nended, ended_cap;
	StrMap programs; /* "prog\nPATH" -> resolved path (resolve_program) */
	char *keeper;    /* kiln-keeper beside this binary: the parent of every attempt */
	AdoptedJob *adopted; /* attempts a previous kiln left running (or ended unrecorded) */
	int nadopted;
	char **exits;    /* exit files of ended attempts, removed at the end of the run */
	int nexits;
	struct Cache *cache; /* closes the rows of stale adopted attempts */
	int detach;      /* --detach: a stop leaves attempts running */
} LocalExec;

void exec_adopted_add(AdoptedJob **list, int *n, const char *task, int attempt, const char *job_id,
		      const char *key_hex, const char *log_path, long long row)
{
	*list = xrealloc(*list, (size_t)(*n + 1) * sizeof **list);
	(*list)[(*n)++] = (AdoptedJob){xstrdup(task), xstrdup(job_id), xstrdup(key_hex ? key_hex : ""),
				       xstrdup(log_path ? log_path : ""), attempt, 0, row};
}

int exec_adopted_matches(const AdoptedJob *list, int n, const Task *t, const char *key_hex)
{
	for (int i = 0; i < n; i++)
		if (!list[i].used && !strcmp(list[i].task, t->name))
			return !strcmp(list[i].key, key_hex);
	return 0;
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
	buf_printf(&b, "# kiln: task %s, attempt %d (try %d of %d in this run), started %s\n", t->name, job->attempt,
		   job->run_try, t->retries + 1, when);
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

/* "<log without .log>.exit": where the attempt's keeper writes how it ended. malloc'd. */
static char *exit_path_of(const char *log_path)
{
	size_t n = strlen(log_path);
	if (n > 4 && !strcmp(log_path + n - 4, ".log"))
		n -= 4;
	return xasprintf("%.*s.exit", (int)n, log_path);
}

/* A job id "local/HOST/PID/START": the keeper's pid and start time on this host. */
static int parse_local_id(const char *id, pid_t *pid, long long *start)
{
	const char *host = os_hostname();
	size_t hl = strlen(host);
	if (strncmp(id, "local/", 6) || strncmp(id + 6, host, hl) || id[6 + hl] != '/')
		return -1;
	int p;
	if (sscanf(id + 7 + hl, "%d/%lld", &p, start) != 2)
		return -1;
	*pid = p;
	return 0;
}

int exec_local_is_job_id(const char *id) { return !strncmp(id, "local/", 6); }

/* Reads the keeper's exit file into job (end, code, signal): 1 when it is there. */
static int read_exit_file(const char *path, Job *job)
{
	size_t len;
	char *text = read_file(path, &len);
	if (!text)
		return 0;
	int n = 0;
	if (sscanf(text, "exit %d", &n) == 1)
		job->end = JOB_EXITED, job->exit_code = n;
	else if (sscanf(text, "signal %d", &n) == 1)
		job->end = JOB_SIGNALED, job->term_signal = n;
	else
		job->end = JOB_START_FAILED, job->exit_code = 127;
	free(text);
	return 1;
}

int exec_local_reattachable(const char *job_id, const char *log_path, pid_t *keeper)
{
	pid_t pid;
	long long start;
	*keeper = 0;
	if (parse_local_id(job_id, &pid, &start) != 0)
		return 0;
	if (os_process_start(pid) == start) {
		*keeper = pid;
		return 1;
	}
	char *exit_path = exit_path_of(log_path);
	int ended = access(exit_path, F_OK) == 0;
	free(exit_path);
	return ended;
}

static void local_adopt(Executor *ex, const char *task, int attempt, const char *job_id, const char *key_hex,
			const char *log_path, long long attempt_row)
{
	LocalExec *le = ex->impl;
	pid_t pid;
	if (exec_local_is_job_id(job_id) && exec_local_reattachable(job_id, log_path, &pid))
		exec_adopted_add(&le->adopted, &le->nadopted, task, attempt, job_id, key_hex, log_path, attempt_row);
}

static AdoptedJob *adopted_for(LocalExec *le, const Task *t)
{
	for (int i = 0; i < le->nadopted; i++)
		if (!le->adopted[i].used && !strcmp(le->adopted[i].task, t->name))
			return &le->adopted[i];
	return NULL;
}

/* The device list at the end of a local job id "local/HOST/PID/START/GPUS" ("" when none). */
static const char *gpus_of_id(const char *id)
{
	int slashes = 0;
	for (const char *p = id; *p; p++)
		if (*p == '/' && ++slashes == 4)
			return p + 1;
	return "";
}

static int local_adoptable(Executor *ex, const Task *t, const char *key_hex, char *gpus)
{
	LocalExec *le = ex->impl;
	AdoptedJob *a = adopted_for(le, t);
	snprintf(gpus, 128, "%s", a ? gpus_of_id(a->job_id) : "");
	return exec_adopted_matches(le->adopted, le->nadopted, t, key_hex);
}

int exec_local_adopted_gpus(Executor *local, int *ids, int max)
{
	LocalExec *le = local->impl;
	int n = 0;
	for (int i = 0; i < le->nadopted; i++)
		for (const char *s = gpus_of_id(le->adopted[i].job_id); *s && n < max;) {
			char *end;
			ids[n++] = (int)strtol(s, &end, 10);
			s = *end ? end + 1 : end;
		}
	return n;
}

/* Waits for an adopted keeper to write its exit file, asking it to stop first (its task's
 * key changed: the attempt is stale and must not write beside the new one). */
static void stop_stale(LocalExec *le, AdoptedJob *a)
{
	pid_t pid;
	long long start;
	char *exit_path = exit_path_of(a->log);
	if (parse_local_id(a->job_id, &pid, &start) == 0 && os_process_start(pid) == start) {
		kill(pid, SIGTERM);
		for (int i = 0; i < 1000 && os_process_start(pid) == start; i++) { /* 20 s at most */
			if (i == 250)
				kill(pid, SIGUSR1); /* 5 s of grace are over */
			struct timespec pause = {0, 20000000};
			nanosleep(&pause, NULL);
		}
	}
	unlink(exit_path);
	free(exit_path);
	if (le->cache)
		cache_attempt_ended(le->cache, a->row, -1, "stopped: the task's key changed since it started", NULL);
}

/* The value of NAME=... in a NUL-separated environment block, or NULL. */
static const char *env_value(const char *env, size_t len, const char *name)
{
	size_t n = strlen(name);
	for (size_t off = 0; off < len; off += strlen(env + off) + 1)
		if (!strncmp(env + off, name, n) && env[off + n] == '=')
			return env + off + n + 1;
	return NULL;
}

int exec_local_find_keepers(Executor *local, const char *marker, pid_t **spare, int *nspare)
{
	LocalExec *le = local->impl;
	DIR *proc = opendir("/proc");
	int found = 0;
	for (struct dirent *e; proc && (e = readdir(proc));) {
		pid_t pid = (pid_t)atoi(e->d_name);
		if (pid <= 0 || getsid(pid) != pid)
			continue; /* a keeper leads its session */
		char path[64];
		size_t clen, elen;
		snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
		char *cmd = read_file(path, &clen);
		const char *slash = cmd ? strrchr(cmd, '/') : NULL;
		char *env = NULL;
		if (!slash || strcmp(slash, "/kiln-keeper") || clen < strlen(cmd) + 1)
			goto next;
		snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
		env = read_file(path, &elen);
		const char *ws = env ? env_value(env, elen, "KILN_WORKSPACE") : NULL;
		const char *task = env ? env_value(env, elen, "KILN_TASK") : NULL;
		const char *attempt = env ? env_value(env, elen, "KILN_ATTEMPT") : NULL;
		if (!ws || !task || !attempt || strcmp(ws, strchr(marker, '=') + 1))
			goto next;
		const char *exit_path = cmd + strlen(cmd) + 1, *grace = exit_path + strlen(exit_path) + 1;
		const char *key = grace < cmd + clen ? grace + strlen(grace) + 1 : NULL;
		if (!key || key >= cmd + clen)
			goto next;
		char job_id[256];
		const char *devices = env_value(env, elen, "CUDA_VISIBLE_DEVICES");
		snprintf(job_id, sizeof job_id, "local/%s/%d/%lld/%s", os_hostname(), (int)pid, os_process_start(pid),
			 devices ? devices : "");
		int known = 0;
		for (int i = 0; i < le->nadopted && !known; i++)
			known = !strcmp(le->adopted[i].job_id, job_id);
		if (!known) { /* started, but its record was not yet committed: adopted all the same */
			size_t n = strlen(exit_path);
			char *log = xasprintf("%.*s.log", (int)(n > 5 ? n - 5 : n), exit_path);
			exec_adopted_add(&le->adopted, &le->nadopted, task, atoi(attempt), job_id, key, log, 0);
			free(log);
			*spare = xrealloc(*spare, (size_t)(*nspare + 1) * sizeof **spare);
			(*spare)[(*nspare)++] = pid;
			found++;
		}
	next:
		free(cmd);
		free(env);
	}
	if (proc)
		closedir(proc);
	return found;
}

int exec_local_stop_stale(Executor *local, const Graph *g, int after_run)
{
	LocalExec *le = local->impl;
	int stopped = 0;
	for (int i = 0; i < le->nadopted; i++) {
		AdoptedJob *a = &le->adopted[i];
		if (a->used)
			continue;
		const Task *t = graph_find(g, a->task);
		if (after_run ? !(t && t->needed) : t != NULL)
			continue; /* not asked for in this run: it runs on for a later kiln */
		a->used = 1;
		fprintf(stderr, "kiln: stopped the attempt of \"%s\" an earlier kiln left running: %s\n", a->task,
			t ? "this run did not take it up" : "the task is no longer in the recipe");
		stop_stale(le, a);
		stopped++;
	}
	return stopped;
}

/* Attaches job to the attempt a previous kiln left for its task, when its key is the same. */
static int reattach(Executor *ex, Job *job)
{
	LocalExec *le = ex->impl;
	AdoptedJob *a = adopted_for(le, job->task);
	if (!a)
		return 0;
	a->used = 1;
	if (strcmp(a->key, job->key)) {
		stop_stale(le, a);
		return 0;
	}
	long long start;
	parse_local_id(a->job_id, &job->pid, &start);
	snprintf(job->job_id, sizeof job->job_id, "%s", a->job_id);
	snprintf(job->gpu_list, sizeof job->gpu_list, "%s", gpus_of_id(a->job_id));
	job->attempt = a->attempt;
	free(job->log_path);
	job->log_path = xstrdup(a->log);
	job->adopted = 1;
	job->attempt_row = a->row;
	exec_push_job(&le->jobs, &le->njobs, &le->cap, job);
	return 1;
}

static int local_start(Executor *ex, Job *job)
{
	LocalExec *le = ex->impl;
	const Task *t = job->task;
	job->started_ns = now_mono_ns();
	job->end = JOB_RUNNING;
	if (le->nadopted && reattach(ex, job))
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
	char *exit_path = exit_path_of(job->log_path), grace[32];
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
		write_all(fd, msg, (size_t)n);
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
	char *exit_path = exit_path_of(job->log_path);
	int ended = 0;
	if (!job->adopted && os_children_take(job->pid, &status)) {
		ended = 1;
		if (!read_exit_file(exit_path, job)) { /* the keeper itself was killed */
			job->end = WIFEXITED(status) ? JOB_EXITED : JOB_SIGNALED;
			job->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
			job->term_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
		}
	} else if (job->adopted) {
		pid_t pid;
		long long start;
		ended = read_exit_file(exit_path, job);
		if (!ended && (parse_local_id(job->job_id, &pid, &start) != 0 || os_process_start(pid) != start) &&
		    !(ended = read_exit_file(exit_path, job))) { /* gone without a word: killed */
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
