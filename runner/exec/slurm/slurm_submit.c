/* slurm_submit.c — attempts to sbatch calls. The scheduler starts every ready task in one
 * pass; the executor queues them and submits on its next turn, so the tasks of a grid that
 * ask for the same resources go out as one job array (`--array=0-K%T`, at most
 * SLURM_ARRAY_SIZE elements), each element an attempt of its own: its script, log, exit
 * file, record and job id (ARRAY_INDEX). Submissions keep to slurm{ max_submit_rate } per
 * second; one the controller cannot take now ("Socket timed out", a submit limit) is tried
 * again with a doubling back-off and never fails a task; one it refuses for good fails its
 * tasks with sbatch's own words. */
#define _GNU_SOURCE
#include "slurm_internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../recipe/torchrun.h"

/* A growable list of owned strings: sbatch's argv. */
typedef struct {
	char **items;
	int n, cap;
} StrList;

static void strlist_push(StrList *l, char *s)
{
	if (l->n == l->cap)
		l->items = xrealloc(l->items, (size_t)(l->cap = l->cap ? 2 * l->cap : 16) * sizeof *l->items);
	l->items[l->n++] = s;
}

static void strlist_free(StrList *l)
{
	for (int i = 0; i < l->n; i++)
		free(l->items[i]);
	free(l->items);
}

/* sbatch's flags for t that decide where and how it runs (not its name, log or script):
 * tasks with equal flags may share an array. Appended to args (owned strings). */
static void resource_args(const SlurmExec *se, const Task *t, StrList *args)
{
	if (t->opts->torchrun || t->opts->rank_nodes) { /* one launcher per node, each with the task's CPUs and GPUs */
		strlist_push(args, xasprintf("--nodes=%d", t->opts->torchrun ? t->opts->torchrun->nnodes : t->opts->rank_nodes));
		strlist_push(args, xstrdup("--ntasks-per-node=1"));
	}
	if (t->opts->cpus > 0)
		strlist_push(args, xasprintf("--cpus-per-task=%d", t->opts->cpus));
	if (t->opts->mem_mib > 0)
		strlist_push(args, xasprintf("--mem=%lldM", t->opts->mem_mib));
	const TaskSlurm *own = t->opts->slurm; /* the task's own, over the recipe's slurm{} */
	if (t->opts->gpus > 0 && own && own->gpu_type)
		strlist_push(args, xasprintf("--gres=gpu:%s:%d", own->gpu_type, t->opts->gpus));
	else if (t->opts->gpus > 0)
		strlist_push(args, xasprintf("--gres=gpu:%d", t->opts->gpus));
	if (t->opts->timeout_sec > 0)
		strlist_push(args, xasprintf("--time=%d", (int)((t->opts->timeout_sec + 59) / 60)));
	const RecipeSlurm *r = &se->recipe;
	const char *flags[] = {"--partition", own && own->partition ? own->partition : r->partition,
			       "--account", own && own->account ? own->account : r->account,
			       "--qos", own && own->qos ? own->qos : r->qos,
			       "--constraint", own && own->constraint ? own->constraint : r->constraint};
	for (int i = 0; i < 8; i += 2)
		if (flags[i + 1])
			strlist_push(args, xasprintf("%s=%s", flags[i], flags[i + 1]));
	for (int i = 0; i < r->nextra; i++)
		strlist_push(args, xstrdup(r->extra[i]));
	for (int i = 0; own && i < own->nextra; i++)
		strlist_push(args, xstrdup(own->extra[i]));
}

/* Whether job may share an array with others: one node, nothing found on it at start. */
static int arrayable(const Job *job)
{
	const Task *t = job->task;
	return !t->opts->torchrun && !t->opts->rank_nodes;
}

/* What sbatch says when the controller cannot take a job now, but will later. */
static int transient(const char *err)
{
	static const char *const words[] = {"Socket timed out", "Unable to contact slurm controller",
					    "Resource temporarily unavailable", "Transport endpoint", "Connection refused",
					    "Zero Bytes were transmitted", "try again", "MaxSubmitJob", "backup controller",
					    "Connection timed out", NULL};
	for (int i = 0; words[i]; i++)
		if (strcasestr(err, words[i]))
			return 1;
	return 0;
}

/* Appends a line to the job's log. */
static void log_line(const Job *job, const char *what, const char *text)
{
	int fd = open(job->log_path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd >= 0) {
		dprintf(fd, "kiln: %s%s\n", what, text);
		close(fd);
	}
}

/* The array's own script: element i appends to its task's log and runs its task's script. */
static char *array_script(const SlurmExec *se, Job **jobs, int n)
{
	Buf b = {0};
	buf_puts(&b, "#!/bin/sh\n# written by kiln: one element per task\ncase \"$SLURM_ARRAY_TASK_ID\" in\n");
	for (int i = 0; i < n; i++) {
		char *script = se->cfg.state_dir[0] == '/'
				       ? xasprintf("%s/%s@%d.sh", se->cfg.state_dir, jobs[i]->task->name, jobs[i]->attempt)
				       : xasprintf("%s/%s/%s@%d.sh", se->workspace, se->cfg.state_dir, jobs[i]->task->name,
						   jobs[i]->attempt);
		char *log = jobs[i]->log_path[0] == '/' ? xstrdup(jobs[i]->log_path)
							: xasprintf("%s/%s", se->workspace, jobs[i]->log_path);
		buf_printf(&b, "%d) exec >>", i);
		buf_shell_quote(&b, log);
		buf_puts(&b, " 2>&1; exec /bin/sh ");
		buf_shell_quote(&b, script);
		buf_puts(&b, " ;;\n");
		free(script);
		free(log);
	}
	buf_puts(&b, "esac\necho \"kiln: no task for array index $SLURM_ARRAY_TASK_ID\" >&2\nexit 1\n");
	return b.data;
}

/* The submission failed: 1 when it is tried again later (transient), 0 when its jobs failed
 * with sbatch's words. */
static int refused(SlurmExec *se, Job **jobs, int n, int rc, const char *err)
{
	char first[160];
	snprintf(first, sizeof first, "%.*s", (int)strcspn(err, "\n"), *err ? err : rc < 0 ? "cannot run sbatch" : "no job id");
	if (rc >= 0 && transient(err)) {
		se->backoff_ms = se->backoff_ms ? (se->backoff_ms * 2 > 60000 ? 60000 : se->backoff_ms * 2) : 1000;
		se->next_submit_ns = now_mono_ns() + (int64_t)se->backoff_ms * 1000000;
		snprintf(se->submit_trouble, sizeof se->submit_trouble, "sbatch: %.120s; again in %ds", first, se->backoff_ms / 1000);
		return 1; /* they stay queued, in order */
	}
	for (int i = 0; i < n; i++) {
		log_line(jobs[i], "sbatch failed: ", *err ? err : first);
		log_line(jobs[i], "", "check the recipe's slurm{} (partition, account, qos, constraint, extra) and the "
				      "task's resources against `sinfo` and `sacctmgr show assoc user=$USER`");
		char reason[256];
		snprintf(reason, sizeof reason, "sbatch refused it: %.200s", first);
		jobs[i]->unschedulable = rc >= 0;
		slurm_end_job(se, jobs[i], JOB_START_FAILED, 127, reason);
	}
	return 0;
}

/* The jobs were submitted as id (an array: element i is id_i): they are followed now, and
 * each record learns its job id (a later kiln re-attaches by it). */
static void submitted(SlurmExec *se, Job **jobs, int n, const char *id, int array)
{
	for (int i = 0; i < n; i++) {
		Job *job = jobs[i];
		if (array)
			snprintf(job->job_id, sizeof job->job_id, "%.200s_%d", id, i);
		else
			snprintf(job->job_id, sizeof job->job_id, "%.200s", id);
		char *go = slurm_go_path(se, job);
		if (job->attempt_row > 0 && se->cfg.cache) { /* it begins once the id is committed */
			cache_attempt_job_id(se->cfg.cache, job->attempt_row, job->job_id);
			if (se->ngo == se->go_cap)
				se->go = xrealloc(se->go, (size_t)(se->go_cap = se->go_cap ? 2 * se->go_cap : 16) * sizeof *se->go);
			se->go[se->ngo++] = go;
		} else { /* nothing to wait for */
			slurm_let_go(go);
			free(go);
		}
		exec_push_job(&se->active, &se->nactive, &se->cap, job);
	}
	se->backoff_ms = 0;
	se->submit_trouble[0] = 0;
	slurm_poll_soon(se);
}

void slurm_submit_queued(SlurmExec *se)
{
	if (!se->nqueued || now_mono_ns() < se->next_submit_ns)
		return;
	/* the oldest queued job, and those queued after it that ask for the same */
	StrList first = {0};
	resource_args(se, se->queued[0]->task, &first);
	Job **batch = xmalloc((size_t)se->nqueued * sizeof *batch);
	int n = 0;
	for (int i = 0; i < se->nqueued && n < SLURM_ARRAY_SIZE; i++) {
		if (i > 0 && (!arrayable(se->queued[0]) || !arrayable(se->queued[i])))
			continue;
		StrList mine = {0};
		resource_args(se, se->queued[i]->task, &mine);
		int same = mine.n == first.n;
		for (int k = 0; same && k < mine.n; k++)
			same = !strcmp(mine.items[k], first.items[k]);
		strlist_free(&mine);
		if (same)
			batch[n++] = se->queued[i];
	}
	int array = n > 1;
	StrList args = {0};
	strlist_push(&args, xstrdup("sbatch"));
	strlist_push(&args, xstrdup("--parsable"));
	strlist_push(&args, xasprintf("--chdir=%s", se->workspace));
	char *script_path;
	int wrote;
	if (array) {
		strlist_push(&args, xasprintf("--job-name=kiln-%lld-%s+%d", se->cfg.run_id, batch[0]->task->name, n - 1));
		strlist_push(&args, xstrdup("--output=/dev/null"));
		int throttle = se->recipe.array_max > 0 ? se->recipe.array_max : SLURM_ARRAY_MAX_DEFAULT;
		strlist_push(&args, xasprintf("--array=0-%d%%%d", n - 1, throttle));
		script_path = xasprintf("%s/array-%lld-%d.sh", se->cfg.state_dir, se->cfg.run_id, se->submissions);
		char *text = array_script(se, batch, n);
		wrote = write_file_atomic(script_path, text, strlen(text));
		free(text);
	} else {
		const Job *job = batch[0];
		strlist_push(&args, xasprintf("--job-name=kiln-%lld-%s", se->cfg.run_id, job->task->name));
		strlist_push(&args, job->log_path[0] == '/' ? xasprintf("--output=%s", job->log_path)
							    : xasprintf("--output=%s/%s", se->workspace, job->log_path));
		strlist_push(&args, xstrdup("--open-mode=append"));
		script_path = xasprintf("%s/%s@%d.sh", se->cfg.state_dir, job->task->name, job->attempt);
		wrote = 0; /* written when it was queued */
	}
	for (int k = 0; k < first.n; k++)
		strlist_push(&args, xstrdup(first.items[k]));
	strlist_push(&args, script_path);
	strlist_push(&args, NULL); /* the argv's end (not freed: NULL) */
	Buf out = {0}, err = {0};
	int rc = wrote == 0 ? slurm_tool(args.items, &out, &err) : -1;
	se->submissions++;
	se->arrays += array;
	double rate = se->recipe.max_submit_rate > 0 ? se->recipe.max_submit_rate : SLURM_SUBMIT_RATE_DEFAULT;
	se->next_submit_ns = now_mono_ns() + (int64_t)(1e9 / rate);
	/* the batch leaves the queue either way: submitted, failed, or queued again in front */
	int kept = 0;
	for (int i = 0, b = 0; i < se->nqueued; i++) {
		if (b < n && se->queued[i] == batch[b])
			b++;
		else
			se->queued[kept++] = se->queued[i];
	}
	se->nqueued = kept;
	const char *id = buf_str(&out);
	if (rc == 0 && *id) { /* --parsable prints "id" or "id;cluster" */
		char clean[64];
		snprintf(clean, sizeof clean, "%.*s", (int)strcspn(id, ";\n"), id);
		submitted(se, batch, n, clean, array);
	} else {
		if (refused(se, batch, n, wrote ? -1 : rc, wrote ? "cannot write the job script" : buf_str(&err))) {
			/* still theirs to run: back in front, in order */
			se->queued = xrealloc(se->queued, (size_t)(se->nqueued + n) * sizeof *se->queued);
			memmove(se->queued + n, se->queued, (size_t)se->nqueued * sizeof *se->queued);
			memcpy(se->queued, batch, (size_t)n * sizeof *batch);
			se->nqueued += n;
			if (se->queued_cap < se->nqueued)
				se->queued_cap = se->nqueued;
		}
	}
	buf_free(&out);
	buf_free(&err);
	strlist_free(&first);
	strlist_free(&args);
	free(batch);
}

int slurm_submit_due_ms(const SlurmExec *se)
{
	if (!se->nqueued)
		return -1;
	int64_t ms = (se->next_submit_ns - now_mono_ns()) / 1000000;
	return ms < 0 ? 0 : (int)ms + 1;
}
