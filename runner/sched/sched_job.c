/* sched_job.c — what an attempt carries to its executor: its number (continuing across
 * runs), its log, the environment every attempt gets (KILN_TASK, KILN_ATTEMPT,
 * KILN_PROGRESS, KILN_KEY, the leased devices, the reserved ports), and the resume state
 * it starts from; and the running attempts' clocks (timeouts, the kill grace, how long
 * the main loop may wait). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "../../base/os.h"
#include "../../cache/cache.h"
#include "../../cache/resume.h"
#include "progress.h"
#include "sched_internal.h"

char *sched_log_path(const char *log_dir, const Task *t, int attempt)
{
	return xasprintf("%s/%s@%d.log", log_dir, t->name, attempt);
}

/* The number of t's next attempt (t->attempt counts this run's): attempt numbers, and so
 * log names, continue from the highest one recorded, across runs. */
int sched_next_attempt(Run *r, Task *t)
{
	t->attempt++;
	if (!r->attempt_no[t->index])
		r->attempt_no[t->index] = cache_last_attempt_number(r->o->cache, t->name);
	return ++r->attempt_no[t->index];
}

/* Whether t's own env sets name (it then stands over what kiln would set). */
static int task_sets_env(const Task *t, const char *name)
{
	for (int i = 0; i < t->more->nenv; i++)
		if (!strcmp(t->more->env[i].key, name))
			return 1;
	return 0;
}

/* Whether t's command runs torchrun: kiln's (torchrun = {}), or its own line's. */
static int runs_torchrun(const Task *t)
{
	static const char *const names[] = {"torchrun", "torch.distributed.run", "torch.distributed.launch", NULL};
	if (t->opts->torchrun)
		return 1;
	for (int n = 0; names[n]; n++) {
		if (task_shell(t) && strstr(task_shell(t), names[n]))
			return 1;
		for (int i = 0; !task_shell(t) && task_word(t, i); i++)
			if (strstr(task_word(t, i), names[n]))
				return 1;
	}
	return 0;
}

Job *sched_new_job(Run *r, Task *t, Executor *ex, const char *key, const int *ids, const int *ports, int nports)
{
	const SchedOptions *o = r->o;
	Job *job = xcalloc(1, sizeof *job);
	job->task = t;
	job->attempt = sched_next_attempt(r, t);
	job->run_try = t->attempt;
	job->log_path = sched_log_path(o->log_dir, t, job->attempt);
	int nenv = 0;
	job->env = xcalloc(20, sizeof(char *)); /* what follows, and room for an executor's own (ssh) */
	job->env[nenv++] = xasprintf("KILN_TASK=%s", t->name);
	job->env[nenv++] = xasprintf("KILN_ATTEMPT=%d", job->attempt);
	job->progress_path = progress_path_for(job->log_path);
	/* by its full path: a command that starts in a folder of its own, or changes directory
	 * itself (`cd w2 && python train.py`), finds the file all the same */
	job->env[nenv++] = xasprintf("KILN_PROGRESS=%s/%s", r->g->workspace, job->progress_path);
	job->ex = ex;
	job->grace_ns = (int64_t)((t->opts->kill_grace_sec >= 0 ? t->opts->kill_grace_sec : o->kill_grace_sec) * 1e9);
	memcpy(job->key, key, sizeof job->key);
	if (key[0]) /* a killed kiln's successor knows an unrecorded attempt's work by it */
		job->env[nenv++] = xasprintf("KILN_KEY=%s", key);
	if (t->opts->threads && !getenv("OMP_NUM_THREADS") && !task_sets_env(t, "OMP_NUM_THREADS"))
		job->env[nenv++] = xasprintf("OMP_NUM_THREADS=%d", t->opts->threads); /* its share of its cpus */
	/* Python buffers what it prints when it is not on a terminal (8 KiB), and a process
	 * stopped by a signal (a timeout's SIGTERM, a Ctrl-C's, the OOM killer) leaves the
	 * buffer unwritten: the log lacks its last lines, and shows none while it runs */
	if (!getenv("PYTHONUNBUFFERED") && !task_sets_env(t, "PYTHONUNBUFFERED"))
		job->env[nenv++] = xstrdup("PYTHONUNBUFFERED=1");
	/* torchrun 1.13 looks at its workers every 5 s (0.1 s from PyTorch 2.3): a run whose
	 * workers have finished waits for that look, and a stop within it finds the run
	 * interrupted and throws its work away. Its option through its environment (PET_*),
	 * which the task's key does not hold: the same key as ever, and a user's own torchrun
	 * line gets it too */
	int torchrun = runs_torchrun(t);
	if (torchrun && !getenv("PET_MONITOR_INTERVAL") && !task_sets_env(t, "PET_MONITOR_INTERVAL"))
		job->env[nenv++] = xstrdup("PET_MONITOR_INTERVAL=0.5");
	/* and it keeps each run's folder (its workers' error files) in /tmp, never removed: one
	 * per attempt beside its log instead, removed when the attempt ends (sched.c, free_job) */
	if (torchrun && !getenv("PET_LOG_DIR") && !task_sets_env(t, "PET_LOG_DIR")) {
		job->torchrun_dir = xasprintf("%s" ATTEMPT_TORCHRUN_SUFFIX, job->log_path);
		/* by its full path: a worker that changes directory writes its error file there */
		job->env[nenv++] = xasprintf("PET_LOG_DIR=%s/%s", r->g->workspace, job->torchrun_dir);
	}
	if (ex->local_slots) /* this machine's: its devices leased by the scheduler (ids) */
		snprintf(job->lease.host, sizeof job->lease.host, "%s", os_hostname());
	for (int i = 0; ids && i < t->opts->gpus && i < 64; i++)
		job->lease.gpus[job->lease.ngpus++] = ids[i];
	if (nports) {
		memcpy(job->ports, ports, (size_t)nports * sizeof *ports);
		job->nports = nports;
		Buf list = {0};
		for (int i = 0; i < nports; i++)
			buf_printf(&list, "%s%d", i ? "," : "", ports[i]);
		job->env[nenv++] = xasprintf("KILN_PORT=%d", ports[0]);
		job->env[nenv++] = xasprintf("KILN_PORTS=%s", buf_str(&list));
		buf_free(&list);
	}
	return job;
}

/* The attempt's record, written from its lease: where it runs, the devices it holds. */
int64_t sched_record_start(Run *r, const Job *job)
{
	char gpus[512];
	lease_gpus_text(&job->lease, gpus, sizeof gpus);
	Buf ports = {0};
	for (int i = 0; i < job->nports; i++)
		buf_printf(&ports, "%s%d", i ? "," : "", job->ports[i]);
	AttemptRecord rec = {.task = job->task->name, .attempt = job->attempt, .executor = job->ex->name,
			     .host = job->lease.host[0] ? job->lease.host : NULL, .gpus = gpus, .pgid = (int)job->pid,
			     .log = job->log_path, .job_id = job->job_id, .key = job->key, .ports = ports.data};
	if (job->started_ns > 0) /* recorded once start() returned: a chart is rendered inside it */
		rec.started = now_wall() - (double)(now_mono_ns() - job->started_ns) / 1e9;
	int64_t row = cache_attempt_started(r->o->cache, &rec);
	buf_free(&ports);
	return row;
}

void sched_prepare_outputs(Run *r, Job *job, int reattach, int *nenv)
{
	Task *t = job->task;
	Buf note = {0};
	int kept = reattach ? 0 : cache_prepare_attempt(r->o->cache, t, job->key, &note);
	if (note.len)
		status_print(&r->st, "note", "%s: %s", t->name, buf_str(&note));
	buf_free(&note);
	job->resume_kept = kept > 0; /* an ssh host keeps its own copy: ssh_job.c */
	job->resumed = kept == 2;
	if (kept == 2)
		job->env[(*nenv)++] = xstrdup("KILN_RESUME=1"); /* it continues from its resume state */
	for (int i = 0; i < t->noutputs; i++)
		mkdirs_parent(t->outputs[i]);
}

void sched_hint_checkpoints(Run *r, const Task *t)
{
	if (task_is_runner(t)) /* a map's shard: the items it made are kept, each an output of its own */
		return;
	for (int i = 0; !t->opts->nresume && i < t->noutputs; i++) {
		Buf newest = {0};
		if (resume_holds_checkpoints(t->outputs[i], &newest))
			status_print(&r->st, "note", "%s: %s holds checkpoints (%s) that its next attempt deletes with its other "
				     "outputs, starting afresh: resume = { \"%s\" } in the task keeps them for it to continue "
				     "from (not part of the key: nothing re-runs for it)", t->name, t->outputs[i],
				     buf_str(&newest), t->outputs[i]);
		buf_free(&newest);
	}
}

void sched_say_kept(Run *r, const Task *t)
{
	char when[32];
	sched_hint_checkpoints(r, t);
	if (!t->opts->nresume || access(t->opts->resume[0], F_OK) != 0) /* what this Ctrl-C did not throw away */
		return;
	if (resume_cut_with_copy(r->o->cache, t, 0, when, sizeof when)) {
		status_print(&r->st, "kept", "%s: %s was being written when it stopped; the next `kiln run` continues from "
			     "its last whole copy, saved at %s (unless the task changes)", t->name, t->opts->resume[0], when);
	} else {
		status_print(&r->st, "kept", "%s: %s, its resume state: the next `kiln run` continues from it (unless the "
			     "task changes)", t->name, t->opts->resume[0]);
	}
}

int sched_stop_signal(const Job *job)
{
	return job->task->opts->stop_signal ? job->task->opts->stop_signal : SIGTERM;
}

void sched_check_clocks(Run *r)
{
	int64_t now = now_mono_ns();
	for (Job *j = r->running; j; j = j->next) {
		if (j->deadline_ns && now >= j->deadline_ns && !j->timed_out && !j->kill_at_ns) {
			j->timed_out = 1;
			shard_note_stop(r, j);
			j->ex->signal(j->ex, j, sched_stop_signal(j));
			j->kill_at_ns = now + j->grace_ns;
		}
		if (j->kill_at_ns > 0 && now >= j->kill_at_ns) {
			j->ex->signal(j->ex, j, SIGKILL);
			j->kill_at_ns = -1;
		}
	}
}

int sched_wait_ms(const Run *r)
{
	if (r->start_failures_pending)
		return 0;
	int64_t now = now_mono_ns(), next = INT64_MAX;
	for (const Job *j = r->running; j; j = j->next) {
		if (j->deadline_ns && !j->timed_out && j->deadline_ns < next)
			next = j->deadline_ns;
		if (j->kill_at_ns > 0 && j->kill_at_ns < next)
			next = j->kill_at_ns;
		if (j->resume_watch && now + 500000000 < next) /* its checkpoints, looked at twice a second */
			next = now + 500000000;
	}
	int ms = next == INT64_MAX ? -1 : (int)((next - now) / 1000000 + 1);
	if (ms < 0 && next != INT64_MAX)
		ms = 0;
	if (r->waiting_for_gpu && (ms < 0 || ms > 1000))
		ms = 1000;
	if (shards_running(r) && (ms < 0 || ms > 250)) /* follow the items as they are made */
		ms = 250;
	if (r->running && (ms < 0 || ms > 2000)) /* progress files: a plain-output line every 10 s */
		ms = 2000;
	if (r->st.tty && (ms < 0 || ms > 1000))
		ms = 1000;
	for (int i = 0; i < r->o->nexecutors; i++) {
		Executor *ex = r->o->executors[i];
		int poll = ex->poll_ms ? ex->poll_ms(ex) : -1;
		if (poll >= 0 && (ms < 0 || poll < ms))
			ms = poll;
	}
	return ms;
}
