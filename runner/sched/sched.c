/* sched.c — the scheduler: tasks become ready when their dependencies are done, the
 * cache decides whether each must run, and runnable tasks start as slots, memory and
 * GPUs allow. One thread; the only blocking point is os_wait_event(). */
#define _GNU_SOURCE
#include "sched.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../base/os.h"
#include "../recipe/failure.h"
#include "../recipe/logmetrics.h"
#include "../../cache/resume.h"
#include "progress.h"
#include "sched_internal.h"

static void push_ready(Run *r, Task *t)
{
	t->state = TS_READY;
	r->ready[r->ready_head + r->ready_len++] = t;
}

void task_done(Run *r, Task *t)
{
	t->state = TS_DONE;
	r->done++;
	sched_eta_ended(r, t);
	for (int i = 0; i < t->ndependents; i++) {
		Task *d = t->dependents[i];
		if (d->needed && d->state == TS_WAITING && --d->pending_deps == 0)
			push_ready(r, d);
	}
}

static int skip_if_waiting(void *ctx, Task *d)
{
	Run *r = ctx;
	if (!d->needed || d->state != TS_WAITING)
		return 0;
	if (d->opts->plot && r->o->keep_going) { /* -k: a chart draws what the others made, gaps for the rest */
		if (--d->pending_deps == 0)
			push_ready(r, d);
		return 0;
	}
	if (d->more->shard)
		shard_item_settled(r, d);
	d->state = TS_SKIPPED;
	r->done++;
	return 1;
}

/* Everything waiting downstream of a failed task is not run, but under -k a chart over it
 * (called once per edge from the failed or skipped task) still draws what was made. */
static void skip_downstream(Run *r, Task *root) { graph_reach(root, 1, skip_if_waiting, r); }

void task_failed(Run *r, Task *t, const char *reason, const char *log)
{
	t->state = TS_FAILED;
	r->done++;
	sched_eta_ended(r, t);
	r->sum->failed++;
	r->failures = xrealloc(r->failures, (size_t)(r->nfailures + 1) * sizeof *r->failures);
	r->failures[r->nfailures++] = (Failure){t, xstrdup(reason), log ? xstrdup(log) : NULL};
	status_print(&r->st, "FAILED", "[%d/%d] %s: %s", r->done, r->sum->total, t->name, reason);
	skip_downstream(r, t);
	if (!r->o->keep_going)
		r->stopping = 1;
}

static void free_job(Job *job)
{
	for (char **e = job->env; e && *e; e++)
		free(*e);
	free(job->env);
	free(job->log_path);
	free(job->items_path);
	free(job->items_listed);
	free(job->items);
	progress_end(job);
	free(job->progress_path);
	if (job->torchrun_dir)
		remove_tree(job->torchrun_dir);
	free(job->torchrun_dir);
	resume_watch_end(job->resume_watch);
	free(job);
}

/* t succeeded and its success is in the open batch: dependents may go on; the "ok" line
 * waits for the commit (see settle_commit). */
static void task_succeeded(Run *r, Task *t, int64_t attempt_id, const char *detail)
{
	cache_attempt_ended(r->o->cache, attempt_id, 0, "ok", NULL);
	r->sum->ran++;
	task_done(r, t);
	if (r->nunconfirmed == r->unconfirmed_cap) {
		r->unconfirmed_cap = r->unconfirmed_cap ? 2 * r->unconfirmed_cap : 64;
		r->unconfirmed = xrealloc(r->unconfirmed, (size_t)r->unconfirmed_cap * sizeof *r->unconfirmed);
		r->unconfirmed_lines =
			xrealloc(r->unconfirmed_lines, (size_t)r->unconfirmed_cap * sizeof *r->unconfirmed_lines);
	}
	r->unconfirmed[r->nunconfirmed] = t;
	r->unconfirmed_lines[r->nunconfirmed++] = xasprintf("[%d/%d] %s (%s)", r->done, r->sum->total, t->name, detail);
}

/* Commits the cache's batch when due (always when force) and settles the successes in it:
 * printed once committed; failed, with the run stopping, when the commit failed. Returns
 * the milliseconds until the next commit is due, or -1. */
static int settle_commit(Run *r, int force)
{
	int due_ms = cache_commit(r->o->cache, force);
	const char *err = cache_write_error(r->o->cache);
	if (err && !r->state_error) {
		r->state_error = err;
		r->stopping = 1;
		status_print(&r->st, "FAILED", "%s", err);
	}
	if (due_ms >= 0 && !err)
		return due_ms; /* still in an open batch */
	for (int i = 0; !err && i < r->o->nexecutors; i++) /* what they reported is recorded now */
		if (r->o->executors[i]->committed)
			r->o->executors[i]->committed(r->o->executors[i]);
	int n = r->nunconfirmed;
	r->nunconfirmed = 0;
	for (int i = 0; i < n; i++) {
		Task *t = r->unconfirmed[i];
		if (err) {
			r->sum->ran--;
			r->done--;
			task_failed(r, t, "succeeded, but its success could not be recorded (see above): it runs again next time",
				    NULL);
		} else {
			status_print(&r->st, "ok", "%s", r->unconfirmed_lines[i]);
		}
		free(r->unconfirmed_lines[i]);
	}
	return err ? -1 : due_ms;
}

/* The one success path: t's command (if any) exited 0. Its metrics are read first (a
 * malformed file fails the attempt before anything is recorded), then its outputs are
 * hashed and stored, and the success joins the open batch. 0, or -1 with why in err. */
static int record_success(Run *r, Task *t, int64_t attempt_id, const char *detail, const char *log, Buf *err)
{
	Metrics m = {0};
	int rc = -1;
	if ((!t->more->metrics || metrics_read(t->more->metrics, &m, err) == 0) && (rc = cache_record_success(r->o->cache, t, err)) == 0) {
		Buf why = {0}; /* a log that cannot be read loses its metrics, not the success */
		if (t->opts->nlog_metrics && log &&
		    log_metrics_extract(log, t->opts->log_metrics, t->opts->nlog_metrics, &m, &why) != 0)
			status_print(&r->st, "note", "%s: %s", t->name, buf_str(&why));
		buf_free(&why);
		if (t->more->metrics || m.count)
			cache_put_metrics(r->o->cache, t, &m);
		task_succeeded(r, t, attempt_id, detail);
	}
	metrics_free(&m);
	return rc;
}

/* A task without `run` (a group over its deps, like ninja's phony) succeeds as soon as it
 * may run: nothing is spawned, declared outputs must exist as for any task. */
static void finish_without_command(Run *r, Task *t)
{
	Buf err = {0};
	/* an attempt with a one-line log, so `kiln log` and the report account for it */
	int attempt = sched_next_attempt(r, t);
	char *log = sched_log_path(r->o->log_dir, t, attempt);
	char line[600];
	int n = snprintf(line, sizeof line, "# kiln: task %s has no command: it groups its deps, which are done\n", t->name);
	if (mkdirs_parent(log) != 0 || write_file_atomic(log, line, (size_t)(n < (int)sizeof line ? n : (int)sizeof line - 1)) != 0)
		warn("cannot write %s: %s", log, strerror(errno));
	/* nothing ran anywhere: no host, no devices */
	AttemptRecord rec = {.task = t->name, .attempt = attempt, .executor = r->o->task_exec[t->index]->name, .log = log};
	int64_t attempt_id = cache_attempt_started(r->o->cache, &rec);
	free(log);
	if (record_success(r, t, attempt_id, "no command", NULL, &err) != 0) {
		cache_attempt_ended(r->o->cache, attempt_id, 0, buf_str(&err), failure_name(FC_ERROR));
		task_failed(r, t, buf_str(&err), NULL);
	}
	buf_free(&err);
}

static void push_runnable(Run *r, Task *t)
{
	if (r->runnable_end == r->runnable_cap) { /* pack the live entries to the front */
		int k = 0;
		for (int i = r->runnable_head; i < r->runnable_end; i++)
			if (r->runnable[i])
				r->runnable[k++] = r->runnable[i];
		r->runnable_head = 0;
		r->runnable_end = k;
	}
	r->runnable[r->runnable_end++] = t;
	r->nrunnable++;
}

int try_start(Run *r, Task *t)
{
	const SchedOptions *o = r->o;
	Executor *ex = o->task_exec[t->index];
	int local = ex->local_slots;
	int cpus = t->opts->cpus < o->cpus ? t->opts->cpus : o->cpus;
	int ids[64];
	if (!executor_has_room(r, ex, t))
		return t->state == TS_FAILED; /* 1: it failed its wait for devices there */
	const char *held_elsewhere = ex->held_elsewhere ? ex->held_elsewhere(ex, t) : NULL;
	if (held_elsewhere) {
		task_failed(r, t, held_elsewhere, NULL);
		return 1;
	}
	if (local && (r->free_jobs < 1 || cpus > r->free_cpus || t->opts->mem_mib > r->free_mem))
		return 0;
	if (cache_run_id(o->cache) < 0) { /* the run's row, written before its first attempt starts */
		settle_commit(r, 1); /* a state that cannot be written stops the run before any work */
		return 0;
	}
	if (ex->reads_state || exec_runs_kiln(t)) {
		settle_commit(r, 1); /* the task reads the state (a chart, kiln itself): show it all */
		if (r->state_error)
			return 0;
	}
	/* an attempt a previous kiln left, re-attached: what it wrote so far stays, and the
	 * devices it holds (leased for it before the run began) are its lease */
	char key[33];
	Lease held = {0};
	cache_key_hex(o->cache, t, key);
	int reattach = ex->adoptable && ex->adoptable(ex, t, key, &held);
	double waited = 0;
	if (reattach && local && t->opts->gpus > 0 && held.ngpus) {
		memset(ids, 0, sizeof ids); /* the job's lease becomes held: release() frees those */
		memcpy(ids, held.gpus, (size_t)(held.ngpus < 64 ? held.ngpus : 64) * sizeof *ids);
	}
	if (local && t->opts->gpus > 0 && !(reattach && held.ngpus) && !lease_gpus(r, t, ids, &waited))
		return t->state == TS_FAILED; /* 1: it failed its wait and leaves the queue */
	int ports[PORTS_MAX];
	Buf why = {0};
	int nports = ex->kiln_ports ? t->opts->ports : 0; /* else the job script finds its port (torchrun on Slurm) */
	if (nports && ports_reserve(r->ports, nports, ports, &why) != 0) {
		if (local && t->opts->gpus > 0)
			gpu_release(o->gpus, ids, t->opts->gpus);
		task_failed(r, t, buf_str(&why), NULL);
		buf_free(&why);
		return 1;
	}
	Job *job = sched_new_job(r, t, ex, key, local ? ids : NULL, ports, nports);
	if (local && t->opts->gpus > 0)
		job->ngpu_claims = gpu_claim_fds(o->gpus, ids, t->opts->gpus, job->gpu_claims, 8);
	int nenv = 0;
	while (job->env[nenv])
		nenv++;
	if (t->opts->timeout_sec > 0 && ex->kiln_timeouts) /* otherwise the executor's system enforces it (Slurm: --time) */
		job->deadline_ns = now_mono_ns() + (int64_t)(t->opts->timeout_sec * 1e9);
	sched_prepare_outputs(r, job, reattach, &nenv);
	if (task_is_runner(t)) { /* its batch: the pending items' list, their outputs cleared */
		Buf err = {0};
		if ((job->items_path = shard_prepare(r, t, job->attempt, reattach, &err)) && job->items_path[0] != '/') {
			/* {items} by its full path: from its cwd, or after a `cd` of its command's own */
			char *full = xasprintf("%s/%s", r->g->workspace, job->items_path);
			free(job->items_path);
			job->items_path = full;
		}
		if (!job->items_path) {
			if (local && t->opts->gpus > 0)
				gpu_release(o->gpus, ids, t->opts->gpus);
			ports_release(r->ports, job->ports, job->nports);
			t->attempt--;
			status_print(&r->st, "FAILED", "%s: %s", t->name, buf_str(&err));
			r->stopping = 1;
			buf_free(&err);
			free_job(job);
			return 0;
		}
		job->env[nenv++] = xasprintf("KILN_ITEMS=%s", job->items_path);
		job->items = shard_items(r, t, &job->nitems);
	}
	if (local) {
		r->free_jobs--;
		r->free_cpus -= cpus;
		r->free_mem -= t->opts->mem_mib;
	}
	t->state = TS_RUNNING;
	job->next = r->running;
	r->running = job;
	r->nrunning++;
	int reserved = job->attempt; /* an attached job keeps its own number: this one goes unused */
	if (job->ex->start(job->ex, job) != 0)
		r->start_failures_pending = 1;
	else if (job->ex->workspace_files)
		job->resume_watch = resume_watch_new(o->cache, t);
	if (job->stopped_stale) /* no GPU-hour goes without a word */
		status_print(&r->st, "note", "%s: stopped the attempt an earlier kiln left running: the task changed since "
			     "it started, so this one starts afresh", t->name);
	if (job->adopted) {
		if (job->deadline_ns) /* its timeout counts from its start, not from this kiln's */
			job->deadline_ns -= (int64_t)(job->ran_before_sec * 1e9);
		if (r->attempt_no[t->index] == reserved) /* the next attempt is numbered as if this one were */
			r->attempt_no[t->index] = reserved - 1;
		if (job->attempt > r->attempt_no[t->index])
			r->attempt_no[t->index] = job->attempt;
		r->attempt_ids[t->index] = job->attempt_row;
		if (!job->attempt_row) /* started by a kiln killed before it recorded the start */
			r->attempt_ids[t->index] = job->attempt_row = sched_record_start(r, job);
		status_print(&r->st, "note", "%s: attached to %s job %s, %s", t->name, ex->title, job->job_id,
			     job->adopted_lost ? "which ran on while its host did not answer" : "started by an earlier kiln");
	} else {
		r->attempt_ids[t->index] = job->attempt_row = sched_record_start(r, job);
		if (waited > 0) /* the report draws the wait before the attempt */
			cache_attempt_waited(o->cache, r->attempt_ids[t->index], waited);
	}
	return 1;
}

static void release(Run *r, Job *job)
{
	const Task *t = job->task;
	if (job->ex->local_slots) {
		r->free_jobs++;
		r->free_cpus += t->opts->cpus < r->o->cpus ? t->opts->cpus : r->o->cpus;
		r->free_mem += t->opts->mem_mib;
	}
	if (job->lease.ngpus && job->ex->local_slots) /* an ssh host's devices are its executor's */
		gpu_release(r->o->gpus, job->lease.gpus, job->lease.ngpus);
	ports_release(r->ports, job->ports, job->nports);
	for (Job **p = &r->running; *p; p = &(*p)->next)
		if (*p == job) {
			*p = job->next;
			break;
		}
	r->nrunning--;
}

/* A task lost with its host this often (every host failing it) fails after all. */
#define MAX_LOSSES 5

static void job_ended(Run *r, Job *job)
{
	Task *t = job->task;
	const SchedOptions *o = r->o;
	release(r, job);
	char dur[32], why[512];
	format_duration((double)(job->ended_ns - job->started_ns) / 1e9, dur, sizeof dur);
	int64_t attempt_id = r->attempt_ids[t->index];
	enum FailureClass cls = FC_ERROR; /* a success that cannot be recorded is a plain error */
	/* an exit 0 after kiln's own SIGTERM (a timeout, a Ctrl-C) is the command's handler
	 * quitting early (trap ... TERM; exit 0), not its work done: never recorded. One that
	 * ended by itself before the signal (reaped before it was sent: the main loop; or found
	 * gone by it) stands */
	int done = exec_job_done(job, job->end, job->exit_code);
	if (task_is_runner(t) && done) {
		cache_attempt_ended(o->cache, attempt_id, 0, "ok", NULL);
		t->attempt = 0; /* a batch after this one (items a re-attached attempt did not list) is no retry */
		shard_job_ended(r, job, NULL, SHARD_OK);
		free_job(job);
		return;
	}
	if (job->end == JOB_LOST && !r->stopping && t->lost < MAX_LOSSES) {
		/* its host went away (or its Slurm node): not the task's failure, so the attempt is
		 * given back */
		int here = job->ex->local_slots; /* local: killed while no kiln watched */
		int hosts = job->ex->state_on_host; /* ssh; else Slurm: its node preempted or failed */
		const char *reason = job->reason[0] ? job->reason : "lost with its host";
		cache_attempt_ended(o->cache, attempt_id, -1, reason,
				    job->superseded ? "superseded" : here ? "lost" : hosts ? "host-lost" : "node-lost");
		if (job->superseded) /* its reason says which job goes on in its place */
			status_print(&r->st, "retry", "%s: %s", t->name, reason);
		else
			status_print(&r->st, "retry", "%s: %s; it runs again%s", t->name, reason, lost_runs_again(job));
		t->attempt--;
		t->lost++;
		if (task_is_runner(t))
			shard_job_ended(r, job, "lost with its host", SHARD_RETRY);
		else {
			push_runnable(r, t);
			t->state = TS_READY;
		}
		free_job(job);
		return;
	}
	if (done) {
		Buf err = {0};
		int recorded = record_success(r, t, attempt_id, dur, job->log_path, &err);
		if (recorded == 0) {
			r->sum->taken_up += job->adopted;
			buf_free(&err);
			free_job(job);
			return;
		}
		if (recorded == CACHE_INPUT_CHANGED)
			cls = FC_INPUT_CHANGED;
		snprintf(why, sizeof why, "%s", buf_str(&err));
		buf_free(&err);
	} else if (job->interrupted && r->sum->stopped_by_signal) {
		cache_attempt_ended(o->cache, attempt_id, job->exit_code, "interrupted", NULL);
		r->sum->cut_short++;
		sched_say_kept(r, t);
		if (task_is_runner(t))
			shard_job_ended(r, job, "interrupted", SHARD_STOPPED);
		else
			t->state = TS_SKIPPED;
		free_job(job);
		return;
	} else {
		failure_describe_end(job, why, sizeof why);
		cls = failure_of_job(job);
	}
	size_t wl = strlen(why);
	snprintf(why + wl, sizeof why - wl, " [%s]", failure_name(cls));
	if (cls != FC_INPUT_CHANGED) { /* a script that is beside the recipe, not in the workspace */
		wl = strlen(why);
		failure_hint_missing(t, why + wl, sizeof why - wl);
	}
	if (job->resumed && !job->interrupted && cls == FC_ERROR) { /* a state it could not load, maybe */
		wl = strlen(why);
		snprintf(why + wl, sizeof why - wl, "; it continued from the resume state an earlier attempt left (%s): if "
			 "that is damaged, `kiln clean %s` starts afresh", t->opts->resume[0], t->name);
	}
	cache_attempt_ended(o->cache, attempt_id, job->end == JOB_EXITED ? job->exit_code : -1, why, failure_name(cls));
	failure_note_in_log(job, why);
	int retryable = (t->opts->retry_on & FC_BIT(cls)) != 0 && cls != FC_INPUT_CHANGED;
	if (task_is_runner(t)) { /* its complete items stay recorded; the rest retry or fail */
		int retry = t->attempt <= t->opts->retries && retryable && !r->stopping;
		if (retry)
			status_print(&r->st, "retry", "%s: %s; attempt %d of %d takes the items left (log: %s)", t->name, why,
				     t->attempt + 1, t->opts->retries + 1, job->log_path);
		shard_job_ended(r, job, why, retry ? SHARD_RETRY : r->stopping ? SHARD_STOPPED : SHARD_FAILED);
		free_job(job);
		return;
	}
	if (t->attempt <= t->opts->retries && retryable && !r->stopping) {
		status_print(&r->st, "retry", "%s: %s; attempt %d of %d (log: %s)", t->name, why, t->attempt + 1,
			     t->opts->retries + 1, job->log_path);
		push_runnable(r, t);
		t->state = TS_READY;
	} else {
		char full[700];
		if (t->opts->retries && !retryable && t->attempt <= t->opts->retries)
			snprintf(full, sizeof full, "%s (not retried: a retry does not mend %s; retry_on = { \"%s\" } would)",
				 why, failure_name(cls), failure_name(cls));
		else
			snprintf(full, sizeof full, "%s%s", why, t->opts->retries ? " (retries exhausted)" : "");
		task_failed(r, t, full, job->log_path);
		sched_hint_checkpoints(r, t);
	}
	free_job(job);
}

/* Takes every job that has ended from the executors and settles it. */
static void reap_all(Run *r)
{
	Job *ended[64];
	int n;
	for (int e = 0; e < r->o->nexecutors; e++)
		while ((n = r->o->executors[e]->reap(r->o->executors[e], ended, 64)) > 0)
			for (int i = 0; i < n; i++)
				job_ended(r, ended[i]);
}

/* Stops every running job — SIGTERM: with its stop signal (sched_stop_signal); SIGKILL — or
 * leaves it running where its executor detaches it (--detach, or hangup: the terminal
 * closed). */
static void stop_all(Run *r, int sig, int hangup)
{
	int64_t now = now_mono_ns();
	for (Job *j = r->running, *next; j; j = next) {
		next = j->next;
		j->interrupted = 1;
		if (j->ex->detach && j->ex->detach(j->ex, j, hangup)) {
			/* --detach: the job runs on; its attempt stays open for the next kiln */
			status_print(&r->st, "note", "%s: left running as %s job %s (%s)", j->task->name, j->ex->title,
				     j->job_id, hangup ? "the terminal closed" : "--detach");
			release(r, j);
			j->task->state = TS_SKIPPED;
			free(j->torchrun_dir); /* torchrun writes there while it runs: the next kiln removes it */
			j->torchrun_dir = NULL;
			free_job(j); /* the executor keeps no reference to a detached job */
			continue;
		}
		if (sig == SIGTERM)
			shard_note_stop(r, j); /* a shard's, before its processes go: which outputs they hold */
		j->ex->signal(j->ex, j, sig == SIGTERM ? sched_stop_signal(j) : sig);
		j->kill_at_ns = sig == SIGKILL ? -1 : now + j->grace_ns;
	}
}

static void check_ready(Run *r)
{
	const SchedOptions *o = r->o;
	Buf reason = {0};
	int64_t stop_checked_ns = now_mono_ns();
	while (!r->stopping && r->ready_len > 0) {
		/* checks can take long (hashing a new dataset): heed a Ctrl-C between them */
		if (now_mono_ns() - stop_checked_ns > 20000000) {
			stop_checked_ns = now_mono_ns();
			if (os_stop_requested())
				break; /* the wait that follows takes the signal and stops the run */
		}
		Task *t = r->ready[r->ready_head++];
		r->ready_len--;
		buf_reset(&reason);
		/* a forced task is judged without restoring anything (its key is still computed) */
		enum Verdict v = cache_check(o->cache, t, t->forced, &reason);
		if (t->forced && task_has_work(t)) {
			if (v != VERDICT_RUN)
				status_print(&r->st, "note", "%s: up to date, runs anyway (--force)", t->name);
			v = VERDICT_RUN;
		}
		if (t->more->shard && v != VERDICT_RUN)
			shard_item_settled(r, t);
		if (v == VERDICT_UP_TO_DATE) {
			r->sum->up_to_date++;
			task_done(r, t);
		} else if (v == VERDICT_RESTORED) {
			r->sum->restored++;
			Metrics m;
			Buf ignored = {0}; /* the restored file was ingested when it was made */
			if (t->more->metrics && metrics_read(t->more->metrics, &m, &ignored) == 0) {
				cache_put_metrics(o->cache, t, &m); /* the metrics now on disk are the latest */
				metrics_free(&m);
			}
			buf_free(&ignored);
			cache_note_restored(o->cache, t);
			task_done(r, t);
			status_print(&r->st, "restored", "[%d/%d] %s (%s)", r->done, r->sum->total, t->name, buf_str(&reason));
		} else if (graph_unmade_input(t, &reason)) {
			task_failed(r, t, buf_str(&reason), NULL);
		} else if (!task_has_work(t)) {
			finish_without_command(r, t);
		} else if (t->more->shard) {
			shard_item_pending(r, t); /* its shard's process makes it */
		} else if (t->opts->gpus > 0 && gpu_count(o->gpus) == 0 && o->task_exec[t->index]->local_slots) {
			/* asked only of work that runs: an up-to-date GPU task passes on a machine without one */
			task_failed(r, t, "needs a GPU but none is known: no NVML driver was found; name devices with --gpus 0,1", NULL);
		} else {
			if (r->st.tty)
				sched_eta_planned(r, t);
			push_runnable(r, t);
		}
	}
	buf_free(&reason);
}

/* Starts runnable tasks in order while slots are free. The scan stops at the first full
 * slot count, so a wake-up costs what it starts, not the length of the queue (10k queued
 * tasks and 10k wake-ups would otherwise be 10^8 steps); a task that does not fit (CPUs,
 * memory, GPUs) stays in place for the next wake-up. */
static void start_runnable(Run *r)
{
	r->waiting_for_gpu = 0;
	buf_reset(&r->wait_text);
	if (r->nrunnable > 0 && r->free_jobs > 0 && os_stop_requested())
		return; /* about to stop: start nothing more */
	/* tasks of an executor with slots of its own (Slurm, ssh hosts) may start while this
	 * machine's are full */
	for (int i = r->runnable_head; i < r->runnable_end && !r->stopping && (r->free_jobs > 0 || r->remote_slots); i++) {
		Task *t = r->runnable[i];
		if (t && try_start(r, t)) {
			r->runnable[i] = NULL;
			r->nrunnable--;
		}
	}
	while (r->runnable_head < r->runnable_end && !r->runnable[r->runnable_head])
		r->runnable_head++;
	if (r->runnable_head == r->runnable_end)
		r->runnable_head = r->runnable_end = 0;
	if (r->g->nshards)
		shards_start(r);
	if (r->waiting_for_gpu)
		gpu_refresh(r->o->gpus, 0);
}

int sched_run(Graph *g, const SchedOptions *o, SchedSummary *sum)
{
	memset(sum, 0, sizeof *sum);
	Run r = {.o = o, .g = g, .sum = sum};
	status_init(&r.st);
	r.free_jobs = o->jobs;
	r.free_cpus = o->cpus;
	r.free_mem = o->mem_mib;
	r.ready = xmalloc((size_t)g->ntasks * sizeof(Task *) + 1);
	r.runnable_cap = g->ntasks + 1; /* a task is queued at most once at a time */
	r.runnable = xmalloc((size_t)r.runnable_cap * sizeof(Task *));
	r.attempt_ids = xcalloc((size_t)g->ntasks + 1, sizeof *r.attempt_ids);
	r.attempt_no = xcalloc((size_t)g->ntasks + 1, sizeof *r.attempt_no);
	r.wait_since = xcalloc((size_t)g->ntasks + 1, sizeof *r.wait_since);
	r.wait_noted = xcalloc((size_t)g->ntasks + 1, sizeof *r.wait_noted);
	r.ports = ports_new();
	for (int i = 0; i < o->nexecutors; i++)
		r.remote_slots |= !o->executors[i]->local_slots;
	double t0 = now_wall();
	if (o->cache)
		cache_prepare(o->cache);
	for (int i = 0; i < g->ntasks; i++) {
		Task *t = g->tasks[i];
		t->attempt = 0;
		if (task_is_runner(t))
			t->needed = 0; /* a shard's runner is started for its items, not on its own */
		if (!t->needed) {
			t->state = TS_IDLE;
			continue;
		}
		sum->total++;
		t->state = TS_WAITING;
		t->pending_deps = t->ndeps;
		for (int d = 0; d < t->ndeps; d++)
			t->pending_deps -= task_is_runner(t->deps[d]);
	}
	shards_init(&r);
	r.started_ns = now_mono_ns();
	for (int i = 0; i < g->ntasks; i++)
		if (g->tasks[i]->needed && g->tasks[i]->pending_deps == 0)
			push_ready(&r, g->tasks[i]);

	for (;;) {
		check_ready(&r);
		start_runnable(&r);
		if (r.nrunning == 0 && (r.stopping || (r.ready_len == 0 && r.nrunnable == 0 && !shards_waiting(&r))))
			break;
		if (g->nshards)
			shards_poll(&r);
		int commit_due_ms = settle_commit(&r, 0);
		sched_status_line(&r);
		int timeout = sched_wait_ms(&r);
		if (commit_due_ms >= 0 && (timeout < 0 || timeout > commit_due_ms))
			timeout = commit_due_ms;
		int flush_due_ms = status_flush_due_ms(&r.st);
		if (flush_due_ms >= 0 && (timeout < 0 || timeout > flush_due_ms))
			timeout = flush_due_ms;
		int sig = os_wait_event(timeout);
		if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
			int again = sum->stopped_by_signal != 0;
			sum->stopped_by_signal = sig;
			r.stopping = 1;
			reap_all(&r); /* what ended before the signal ended on its own: recorded as it ended */
			if (!again && r.nrunning && sig != SIGHUP) { /* the grace period, in words (the line says it too) */
				int64_t most = -1, least = -1; /* each task's kill_grace, or --kill-grace */
				int own = 0;      /* and its stop_signal another than SIGTERM */
				const char *note = NULL; /* and an executor's own way (Slurm's KillWait) */
				for (const Job *j = r.running; j; j = j->next) {
					most = j->grace_ns > most ? j->grace_ns : most;
					least = least < 0 || j->grace_ns < least ? j->grace_ns : least;
					own |= sched_stop_signal(j) != SIGTERM;
					note = j->ex->stop_note ? j->ex->stop_note : note;
				}
				char after[64];
				if (most == least)
					snprintf(after, sizeof after, "%g s", (double)most / 1e9);
				else
					snprintf(after, sizeof after, "%g to %g s (each task's kill_grace)", (double)least / 1e9,
						 (double)most / 1e9);
				status_print(&r.st, "stopping", "%d running task%s: SIGTERM%s now, SIGKILL after %s or at a "
					     "second Ctrl-C%s%s%s", r.nrunning, r.nrunning == 1 ? "" : "s",
					     own ? " (another signal where a task's stop_signal says)" : "", after,
					     note ? " (" : "", note ? note : "", note ? ")" : "");
			}
			stop_all(&r, again ? SIGKILL : SIGTERM, sig == SIGHUP && !again);
		}
		r.start_failures_pending = 0;
		reap_all(&r);
		for (Job *j = r.running; j; j = j->next) /* checkpoints: each one's last whole copy */
			resume_watch_poll(j->resume_watch);
		sched_check_clocks(&r);
	}
	settle_commit(&r, 1);
	sum->wall_sec = now_wall() - t0;
	sum->not_run = sum->total - sum->ran - sum->up_to_date - sum->restored - sum->failed;
	if (g->nshards) { /* the maps' last progress: items and rate */
		Buf progress = {0};
		shards_progress(&r, &progress, 1);
		buf_free(&progress);
	}
	sched_print_summary(&r, sum);
	for (int i = 0; i < o->nexecutors; i++)
		if (o->executors[i]->summarize)
			o->executors[i]->summarize(o->executors[i]);
	for (int i = 0; i < r.nfailures; i++) {
		free(r.failures[i].reason);
		free(r.failures[i].log);
	}
	free(r.failures);
	free(r.unconfirmed);
	free(r.unconfirmed_lines);
	free(r.ready);
	free(r.runnable);
	free(r.attempt_ids);
	free(r.attempt_no);
	free(r.wait_since);
	shards_free(&r);
	sched_eta_free(&r);
	free(r.wait_noted);
	buf_free(&r.wait_text);
	buf_free(&r.queue_said);
	ports_free(r.ports);
	if (sum->stopped_by_signal)
		return 128 + sum->stopped_by_signal;
	return sum->failed || sum->not_run ? EXIT_TASK_FAILED : 0;
}
