/* exec_common.c — what every executor shares: the list of jobs a previous kiln left
 * (adoption), the lease's text and the GPU environment, the log header, the words an attempt fills in ({port}, {gpus}, {rdzv},
 * {items}), kiln's own path and the environment entries every task gets. */
#define _GNU_SOURCE
#include "exec.h"
#include "../recipe/torchrun.h"
#include "../../cache/cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void lease_gpus_text(const Lease *l, char *out, size_t n)
{
	size_t len = 0;
	out[0] = 0;
	for (int i = 0; i < l->ngpus && len < n; i++)
		len += (size_t)snprintf(out + len, n - len, "%s%d", i ? "," : "", l->gpus[i]);
}

int lease_parse_gpus(Lease *l, const char *list)
{
	l->ngpus = 0;
	for (const char *s = list ? list : ""; *s && l->ngpus < 64;) {
		char *end;
		long id = strtol(s, &end, 10);
		if (end == s || id < 0)
			break;
		l->gpus[l->ngpus++] = (int)id;
		s = *end == ',' ? end + 1 : end;
	}
	return l->ngpus;
}

void exec_gpu_env(Job *job)
{
	if (!job->lease.ngpus)
		return;
	int n = 0;
	while (job->env[n])
		n++;
	char list[512];
	lease_gpus_text(&job->lease, list, sizeof list);
	job->env[n++] = xasprintf("CUDA_VISIBLE_DEVICES=%s", list);
	job->env[n++] = xstrdup("CUDA_DEVICE_ORDER=PCI_BUS_ID");
}

int exec_refuses_nodes(const Task *t, Buf *why)
{
	if (t->opts->rank_nodes > 1)
		buf_printf(why, "spreads its ranks over %d nodes, but it runs on this machine only: run it with "
				"--executor slurm or ssh (or executor = \"slurm\" / hosts = {...}), or drop nnodes",
			   t->opts->rank_nodes);
	else if (t->opts->torchrun && t->opts->torchrun->nnodes > 1)
		buf_printf(why, "asks torchrun for %d nodes, but it runs on this machine only: run it with "
				"--executor slurm or ssh (or executor = \"slurm\" / hosts = {...}), or set nnodes = 1",
			   t->opts->torchrun->nnodes);
	return why->len > 0;
}

void exec_adopted_add(AdoptedJob **list, int *n, const OpenAttempt *o)
{
	const AttemptRecord *r = &o->rec;
	*list = xrealloc(*list, (size_t)(*n + 1) * sizeof **list);
	AdoptedJob *a = &(*list)[(*n)++];
	*a = (AdoptedJob){xstrdup(r->task), xstrdup(r->job_id ? r->job_id : ""), xstrdup(r->key ? r->key : ""),
			  xstrdup(r->log ? r->log : ""), .attempt = r->attempt, .row = o->row,
			  .ran_sec = r->started > 0 ? now_wall() - r->started : 0}; /* so far, if it runs on */
	snprintf(a->lease.host, sizeof a->lease.host, "%s", r->host ? r->host : "");
	lease_parse_gpus(&a->lease, r->gpus);
}

AdoptedJob *exec_adopted_latest(AdoptedJob *list, int n, const char *task)
{
	AdoptedJob *latest = NULL;
	for (int i = 0; i < n; i++)
		if (!list[i].used && !strcmp(list[i].task, task) && (!latest || list[i].attempt > latest->attempt))
			latest = &list[i];
	return latest;
}

int exec_adopted_matches(AdoptedJob *list, int n, const Task *t, const char *key_hex)
{
	const AdoptedJob *a = exec_adopted_latest(list, n, t->name);
	return a && !strcmp(a->key, key_hex);
}

void exec_attach(Job *job, const AdoptedJob *a)
{
	snprintf(job->job_id, sizeof job->job_id, "%s", a->job_id);
	job->attempt = a->attempt;
	free(job->log_path);
	job->log_path = xstrdup(a->log);
	if (job->progress_path) { /* the one that attempt writes: read while it runs, removed when it ends */
		free(job->progress_path);
		job->progress_path = xasprintf("%s" ATTEMPT_PROGRESS_SUFFIX, a->log);
	}
	if (job->torchrun_dir) { /* and its torchrun folder, removed when it ends */
		free(job->torchrun_dir);
		job->torchrun_dir = xasprintf("%s" ATTEMPT_TORCHRUN_SUFFIX, a->log);
	}
	job->adopted = 1;
	job->ran_before_sec = a->ran_sec > 0 ? a->ran_sec : 0;
	job->attempt_row = a->row;
	job->lease = a->lease;
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

void exec_end_job(Job *job, enum JobEnd end, int code, const char *reason, Job ***ended, int *n, int *cap)
{
	job->end = end;
	job->exit_code = code;
	job->ended_ns = now_mono_ns();
	if (reason && reason != job->reason) /* the job's own may be passed */
		snprintf(job->reason, sizeof job->reason, "%s", reason);
	exec_push_job(ended, n, cap, job);
}

void exec_push_job(Job ***list, int *n, int *cap, Job *job)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		*list = xrealloc(*list, (size_t)*cap * sizeof **list);
	}
	(*list)[(*n)++] = job;
}

void exec_write_all(int fd, const char *s, size_t n)
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

void exec_write_shell_note(int fd, const Job *job, const char *where)
{
	if (task_shell(job->task) && !job->task->opts->shell)
		dprintf(fd, "# kiln: %sthe command runs as ( eval COMMAND ) in the job script's sh, as sh -c would\n",
			where);
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
		   job->run_try, t->opts->retries + 1, when);
	/* as it ran: ports, the rendezvous, GPUs and a shard's item list filled in */
	char *cmd = task_command_line(t), *ran = exec_expand_attempt(cmd, job, task_shell(t) != NULL);
	buf_printf(&b, "# command: %s%s%s\n", task_shell(t) ? task_shell_program(t) : "", task_shell(t) ? " -c " : "",
		   ran ? ran : cmd);
	free(ran);
	free(cmd);
	if (t->opts->cwd)
		buf_printf(&b, "# cwd: %s (in the workspace)\n", t->opts->cwd);
	buf_puts(&b, "# env:");
	for (char **e = job->env; e && *e; e++)
		buf_printf(&b, " %s", *e);
	for (int i = 0; i < t->more->nenv; i++)
		buf_printf(&b, " %s=%s", t->more->env[i].key, t->more->env[i].value);
	buf_puts(&b, "\n# --\n");
	exec_write_all(fd, b.data, b.len);
	buf_free(&b);
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

char *exec_expand_attempt(const char *s, const Job *job, int shell)
{
	if (!exec_has_attempt_words(s))
		return NULL;
	Buf b = {0};
	for (const char *p = s; *p;) {
		char *end;
		long k = -1;
		if (!strncmp(p, "{gpus}", 6)) {
			buf_printf(&b, "%d", job->task->opts->gpus);
			p += 6;
			continue;
		}
		if (!strncmp(p, "{items}", 7) && job->items_path) { /* a map shard's item list */
			if (shell) /* one word: the workspace's path may hold a space */
				buf_shell_quote(&b, job->items_path);
			else
				buf_puts(&b, job->items_path);
			p += 7;
			continue;
		}
		if (!strncmp(p, "{rdzv}", 6) && job->nports > 0) { /* torchrun's rendezvous: the last port */
			buf_printf(&b, "%s:%d", job->rdzv_host[0] ? job->rdzv_host : "127.0.0.1",
				   job->rdzv_port ? job->rdzv_port : job->ports[job->nports - 1]);
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

int exec_runs_kiln(const Task *t) { return task_word(t, 0) && !strcmp(task_word(t, 0), "@kiln"); }

int exec_job_done(const Job *job, enum JobEnd end, int exit_code)
{
	return end == JOB_EXITED && exit_code == 0 && !job->timed_out && !(job->interrupted && job->stop_landed);
}

const char *exec_argv_word(const Task *t, int i) { return i == 0 && exec_runs_kiln(t) ? exec_self() : task_argv(t)[i]; }

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

/* tee as a task's PATH finds it: the tee next on PATH, run deaf to the stop signals (an
 * ignored signal stays ignored across exec). `python train.py | tee run.log` stopped by a
 * Ctrl-C or a timeout (or on Slurm by a scancel, which signals every process of the job)
 * would otherwise lose its tee first, and what the command prints while it saves would hit a
 * closed pipe: Python's BrokenPipeError inside the save, the checkpoint never written. Deaf,
 * tee ends with its input, once the command has; SIGKILL still ends it. */
static const char tee_shim[] =
	"#!/bin/sh\n"
	"# written by kiln: the tee next on PATH, deaf to the signals that stop a task, so that it\n"
	"# ends with its input, after what prints into it has saved its work\n"
	"trap '' " EXEC_STOP_SIGNALS "\n"
	"set -f; IFS=:\n"
	"for d in $PATH; do [ -x \"$d/tee\" ] && [ ! -d \"$d/tee\" ] && ! [ \"$d/tee\" -ef \"$0\" ] && "
	"exec \"$d/tee\" \"$@\"; done\n"
	"exec /usr/bin/tee \"$@\"\n";

const char *exec_tee_shim(void) { return tee_shim; }

/* "<workspace>/.kiln/shims", or NULL where the workspace's path cannot stand in PATH. */
static const char *shim_dir(void)
{
	static char *dir; /* computed once: the workspace does not change during a command */
	if (!dir) {
		const char *ws = exec_workspace_marker() + strlen("KILN_WORKSPACE=");
		dir = strchr(ws, ':') || ws[0] != '/' ? xstrdup("") : xasprintf("%s/.kiln/shims", ws);
	}
	return *dir ? dir : NULL;
}

void exec_write_shims(void)
{
	const char *dir = shim_dir();
	if (!dir)
		return;
	char *path = xasprintf("%s/tee", dir);
	size_t len = 0;
	char *there = read_file(path, &len);
	if (!there || len != sizeof tee_shim - 1 || memcmp(there, tee_shim, len) || access(path, X_OK) != 0)
		if (mkdirs(dir, 0777) == 0) /* if not, a task's tee is the system's, as without kiln */
			write_file_atomic_mode(path, tee_shim, sizeof tee_shim - 1, 0777);
	free(there);
	free(path);
}

const char *exec_path_entry(void)
{
	/* kiln's own directory ends PATH, so tasks find kiln-kernels (and kiln) beside it
	 * without shadowing anything the user put on PATH; kiln's shims (tee) lead it */
	static char *entry; /* computed once from PATH at start-up, then read-only */
	if (!entry) {
		char *dir = xstrdup(exec_self());
		char *slash = strrchr(dir, '/');
		if (slash)
			*slash = 0;
		const char *old = getenv("PATH"), *shims = shim_dir();
		entry = xasprintf("PATH=%s%s%s:%s", shims ? shims : "", shims ? ":" : "",
				  old ? old : "/usr/local/bin:/usr/bin:/bin", dir);
		free(dir);
	}
	return entry;
}

char *exec_map_outputs_path(const char *items_path)
{
	const char *slash = strrchr(items_path, '/'), *dot = strrchr(items_path, '.');
	size_t n = dot && (!slash || dot > slash) ? (size_t)(dot - items_path) : strlen(items_path);
	return xasprintf("%.*s.outputs", (int)n, items_path);
}

int exec_write_map_outputs(const Job *job, const char *path)
{
	Buf list = {0};
	for (int i = 0; i < job->nitems; i++)
		buf_printf(&list, "%s\n", job->items[i]->noutputs ? job->items[i]->outputs[0] : "");
	int rc = mkdirs_parent(path) == 0 && write_file_atomic(path, list.data ? list.data : "", list.len) == 0 ? 0 : -1;
	buf_free(&list);
	return rc;
}

void exec_set_items_path(Job *job, char *path)
{
	free(job->items_path);
	job->items_path = path;
	for (char **e = job->env; e && *e; e++)
		if (!strncmp(*e, "KILN_ITEMS=", 11)) {
			free(*e);
			*e = xasprintf("KILN_ITEMS=%s", path);
		}
}
