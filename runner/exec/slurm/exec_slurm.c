/* exec_slurm.c — the Slurm executor: each attempt is a batch job (or an element of a job
 * array, slurm_submit.c) whose script does exactly what the local executor does
 * (job_script.c), then writes its own exit-code file; slurm_queue.c follows them. A job
 * outlives kiln: its record holds its job id, and the next run re-attaches to it. */
#define _GNU_SOURCE
#include "slurm_internal.h"

#include <lauxlib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../../base/os.h"
#include "../../recipe/launch.h"
#include "../../recipe/lblock.h"
#include "../../recipe/torchrun.h"

int slurm_tool(char *const argv[], Buf *out, Buf *err) { return os_run(argv, 0, out, err); }

char *slurm_exit_path(const SlurmExec *se, const Job *job)
{
	return xasprintf("%s/%s@%d.exit", se->cfg.state_dir, job->task->name, job->attempt);
}

char *slurm_go_path(const SlurmExec *se, const Job *job)
{
	return xasprintf("%s/%s@%d.go", se->cfg.state_dir, job->task->name, job->attempt);
}

/* Lets a job whose id is committed begin (exec_job_script's go_path). */
void slurm_let_go(const char *go_path)
{
	if (write_file_atomic(go_path, "", 0) != 0)
		warn("cannot write %s: the Slurm job waiting for it ends in two minutes without running", go_path);
}

char *slurm_ports_path(const SlurmExec *se, const Job *job)
{
	return xasprintf("%s/%s@%d.ports", se->cfg.state_dir, job->task->name, job->attempt);
}

void slurm_poll_soon(SlurmExec *se)
{
	se->interval_ms = 100;
	se->next_poll_ns = now_mono_ns() + 100000000LL;
}

void slurm_end_job(SlurmExec *se, Job *job, enum JobEnd end, int code, const char *reason)
{
	exec_end_job(job, end, code, reason, &se->ended, &se->nended, &se->ended_cap);
}

/* Removes job from a list; 1 when it was there. */
static int drop(Job **list, int *n, const Job *job)
{
	for (int i = 0; i < *n; i++)
		if (list[i] == job) {
			memmove(list + i, list + i + 1, (size_t)(--*n - i) * sizeof *list);
			return 1;
		}
	return 0;
}

/* A map shard's job works from its own copy of kiln's item list (LIST.job), beside its
 * items' outputs (RUNNER.outputs): Slurm may start the job again (a requeue), and its
 * script then starts at the first item not made (job_script.c), leaving kiln's list as it
 * was — the list a re-attaching kiln follows. 0, or -1 when a list cannot be written. */
static int map_lists(Job *job)
{
	char *outputs = exec_map_outputs_path(job->items_path);
	int rc = exec_write_map_outputs(job, outputs);
	free(outputs);
	free(job->items_listed);
	job->items_listed = xstrdup(job->items_path);
	exec_set_items_path(job, xasprintf("%s.job", job->items_path));
	return rc;
}

static int slurm_start(Executor *ex, Job *job)
{
	SlurmExec *se = ex->impl;
	const Task *t = job->task;
	job->started_ns = now_mono_ns();
	job->end = JOB_RUNNING;
	/* re-attach: a previous kiln's latest job for this task and key is still ours; the
	 * others left for it are stale (older, or of a changed recipe) and are cancelled */
	AdoptedJob *ours = exec_adopted_latest(se->adopted, se->nadopted, t->name);
	if (ours && strcmp(ours->key, job->key))
		ours = NULL;
	for (AdoptedJob *a; (a = exec_adopted_latest(se->adopted, se->nadopted, t->name));) {
		a->used = 1;
		if (ours && !strcmp(a->job_id, ours->job_id))
			continue; /* the same job, recorded twice */
		char *cancel[] = {"scancel", a->job_id, NULL};
		slurm_tool(cancel, NULL, NULL);
		job->stopped_stale |= strcmp(a->key, job->key) != 0;
	}
	if (ours) {
		exec_attach(job, ours);
		char *go = slurm_go_path(se, job); /* its id was committed; a killed kiln may not have said so */
		if (access(go, F_OK) != 0)
			slurm_let_go(go);
		free(go);
		exec_push_job(&se->active, &se->nactive, &se->cap, job);
		slurm_poll_soon(se);
		return 0;
	}
	int fd = exec_open_log(job);
	if (fd >= 0) {
		exec_write_log_header(fd, job);
		if (!exec_script_passes_stops(job->task)) /* there it is /bin/sh -c, as the header says */
			exec_write_shell_note(fd, job, "");
		close(fd);
	}
	if (job->items_path && map_lists(job) != 0) {
		slurm_end_job(se, job, JOB_START_FAILED, 127, "cannot write the list of its items' outputs");
		return -1;
	}
	char *exit_path = slurm_exit_path(se, job), *ports_path = slurm_ports_path(se, job);
	char *script_path = xasprintf("%s/%s@%d.sh", se->cfg.state_dir, t->name, job->attempt);
	char *go = slurm_go_path(se, job);
	char *script = exec_job_script(job, se->workspace, exit_path, 0, NULL, go);
	exec_write_shims(); /* on the shared filesystem, first on the job's PATH */
	unlink(go);
	free(go);
	unlink(exit_path);
	unlink(ports_path);
	mkdirs_parent(script_path);
	int wrote = write_file_atomic(script_path, script, strlen(script));
	free(script);
	free(script_path);
	free(exit_path);
	free(ports_path);
	if (wrote != 0) {
		slurm_end_job(se, job, JOB_START_FAILED, 127, "cannot write the job script");
		return -1;
	}
	/* submitted on the executor's next turn, with the others started in this pass */
	exec_push_job(&se->queued, &se->nqueued, &se->queued_cap, job);
	return 0;
}

/* scancel [FLAG [--full]] IDS... */
static void scancel_ids(char *const *ids, int n, const char *flag, const char *full)
{
	char **argv = xmalloc((size_t)(n + 4) * sizeof *argv);
	int words = 0;
	argv[words++] = "scancel";
	if (flag)
		argv[words++] = (char *)flag;
	if (flag && full)
		argv[words++] = (char *)full;
	memcpy(argv + words, ids, (size_t)n * sizeof *argv);
	argv[n + words] = NULL;
	slurm_tool(argv, NULL, NULL);
	free(argv);
}

/* scancel for the jobs signalled since the last turn, 500 ids a call: those to cancel, then
 * those sent a stop signal, a call per signal and way: `scancel --state=PENDING` first
 * (those still waiting end there, nothing of theirs ran), then `scancel --signal=TERM
 * --batch` to a job script that passes its stops on (exec_script_passes_stops: its shell
 * alone gets it, and tells the command's processes itself, the way a local stop does), or
 * `--signal=INT --full` to one that cannot (every process of the job gets it); either way
 * the job runs on until its command quits. In that order a job kiln last saw pending that
 * has started since gets its own signal, not Slurm's SIGTERM, and one that starts between
 * the calls was cancelled before it ran. */
static void cancel_signalled(SlurmExec *se)
{
	for (int at = 0, n; at < se->ncancels; at += n) {
		int sig = se->cancel_sigs[at];
		for (n = 1; n < 500 && at + n < se->ncancels && se->cancel_sigs[at + n] == sig;)
			n++; /* a call holds one signal's (and way's) ids */
		char flag[32] = "";
		if (sig) {
			snprintf(flag, sizeof flag, "--signal=%s", exec_signal_name(sig < 0 ? -sig : sig));
			scancel_ids(se->cancels + at, n, "--state=PENDING", NULL);
		}
		scancel_ids(se->cancels + at, n, sig ? flag : NULL, sig < 0 ? "--batch" : "--full");
	}
	for (int i = 0; i < se->ncancels; i++)
		free(se->cancels[i]);
	se->ncancels = 0;
	if (se->nactive)
		slurm_poll_soon(se);
}

static int slurm_reap(Executor *ex, Job **out, int max)
{
	SlurmExec *se = ex->impl;
	if (se->ncancels)
		cancel_signalled(se);
	slurm_submit_queued(se);
	if (se->nended == 0 && se->nactive > 0 && now_mono_ns() >= se->next_poll_ns)
		slurm_poll_queue(se);
	int n = 0;
	while (se->nended > 0 && n < max)
		out[n++] = se->ended[--se->nended];
	return n;
}

static void slurm_signal(Executor *ex, Job *job, int sig)
{
	SlurmExec *se = ex->impl;
	if (drop(se->queued, &se->nqueued, job)) { /* never submitted: it ends here */
		job->term_signal = sig;
		slurm_end_job(se, job, JOB_SIGNALED, -1, NULL);
		return;
	}
	if (!job->job_id[0] || (se->cfg.detach && job->interrupted))
		return;
	/* Signalled on the executor's next turn, every job a stop signals at once (an array's
	 * elements) in one call (cancel_signalled: a job kiln saw pending may have started
	 * since). A stop's signal goes to the job script, which passes it on (a negative entry:
	 * --batch), or, where the script cannot (srun steps), to every process of the job: a
	 * task's own stop_signal as such, SIGTERM as a plain scancel (Slurm's SIGTERM, then
	 * SIGKILL after its KillWait). SIGKILL, after kill_grace: that scancel */
	int way = sig == SIGKILL ? 0 : exec_script_passes_stops(job->task) ? -sig : sig == SIGTERM ? 0 : sig;
	se->cancels = xrealloc(se->cancels, (size_t)(se->ncancels + 1) * sizeof *se->cancels);
	se->cancel_sigs = xrealloc(se->cancel_sigs, (size_t)(se->ncancels + 1) * sizeof *se->cancel_sigs);
	se->cancel_sigs[se->ncancels] = way;
	se->cancels[se->ncancels++] = xstrdup(job->job_id);
	if (way) /* sorted by signal and way, so a call takes all of one's ids */
		for (int i = se->ncancels - 1; i > 0 && se->cancel_sigs[i - 1] > se->cancel_sigs[i]; i--) {
			int s = se->cancel_sigs[i];
			char *id = se->cancels[i];
			se->cancel_sigs[i] = se->cancel_sigs[i - 1], se->cancels[i] = se->cancels[i - 1];
			se->cancel_sigs[i - 1] = s, se->cancels[i - 1] = id;
		}
	se->next_poll_ns = now_mono_ns();
}


static int slurm_poll_ms(Executor *ex)
{
	SlurmExec *se = ex->impl;
	int submit = slurm_submit_due_ms(se);
	if (!se->nactive)
		return submit;
	int64_t ms = (se->next_poll_ns - now_mono_ns()) / 1000000;
	int poll = ms < 0 ? 0 : (int)ms + 1;
	return submit >= 0 && submit < poll ? submit : poll;
}

/* The status line's part: jobs waiting in Slurm's queue by reason, and trouble with sbatch. */
static void slurm_describe(Executor *ex, Buf *out)
{
	SlurmExec *se = ex->impl;
	const char *reasons[8];
	int counts[8], nr = 0, pending = 0;
	for (int i = 0; i < se->nactive; i++) {
		const char *w = se->active[i]->waiting;
		if (!w[0])
			continue;
		pending++;
		int k = 0;
		while (k < nr && strcmp(reasons[k], w))
			k++;
		if (k == nr && nr < 8)
			reasons[nr] = w, counts[nr++] = 0;
		if (k < nr)
			counts[k]++;
	}
	for (int k = 0; k < nr; k++) {
		const char *gloss = slurm_reason_gloss(reasons[k]);
		buf_printf(out, "%s%d pending: %s%s%s%s", k ? ", " : "", counts[k], reasons[k], gloss ? " (" : "",
			   gloss ? gloss : "", gloss ? ")" : "");
	}
	int kill_wait, ending = slurm_ending(se, &kill_wait);
	if (ending)
		buf_printf(out, "%s%d stopped, %s command%s given Slurm's KillWait (%d s) to quit", out->len ? ", " : "", ending,
			   ending == 1 ? "its" : "their", ending == 1 ? "" : "s", kill_wait);
	if (se->nqueued)
		buf_printf(out, "%s%d to submit", out->len ? ", " : "", se->nqueued);
	if (se->submit_trouble[0])
		buf_printf(out, "%s%s", out->len ? "; " : "", se->submit_trouble);
	(void)pending;
}

static void slurm_summarize(Executor *ex)
{
	SlurmExec *se = ex->impl;
	if (se->submissions)
		printf("kiln: Slurm: %d submission%s (%d job array%s)\n", se->submissions, se->submissions == 1 ? "" : "s",
		       se->arrays, se->arrays == 1 ? "" : "s");
}

static int slurm_has_room(Executor *ex, const Task *t)
{
	(void)t;
	SlurmExec *se = ex->impl;
	return se->cfg.max_jobs <= 0 || se->nactive + se->nqueued < se->cfg.max_jobs;
}

static int slurm_detach(Executor *ex, Job *job, int hangup)
{
	SlurmExec *se = ex->impl;
	if (!se->cfg.detach && !hangup)
		return 0;
	for (int i = 0; i < se->nqueued; i++)
		if (se->queued[i] == job)
			return 0; /* never submitted: nothing runs on; the stop ends it here (slurm_signal) */
	for (int i = 0; i < se->nactive; i++) /* it runs on in the queue; this kiln forgets it */
		if (se->active[i] == job)
			se->active[i] = se->active[--se->nactive];
	return 1;
}

/* The record of every job submitted so far is committed: they may begin. */
static void slurm_committed(Executor *ex)
{
	SlurmExec *se = ex->impl;
	for (int i = 0; i < se->ngo; i++) {
		slurm_let_go(se->go[i]);
		free(se->go[i]);
	}
	se->ngo = 0;
}

static void slurm_destroy(Executor *ex)
{
	SlurmExec *se = ex->impl;
	for (int i = 0; i < se->ngo; i++) /* the run's last commit failed: they end without running */
		free(se->go[i]);
	free(se->go);
	exec_adopted_free(se->adopted, se->nadopted);
	free(se->active);
	free(se->queued);
	for (int i = 0; i < se->ncancels; i++)
		free(se->cancels[i]);
	free(se->cancels);
	free(se->cancel_sigs);
	free(se->ended);
	free(se);
	free(ex);
}

static int slurm_adoptable(Executor *ex, const Task *t, const char *key_hex, Lease *held)
{
	SlurmExec *se = ex->impl;
	(void)held; /* Slurm's own to lease */
	return exec_adopted_matches(se->adopted, se->nadopted, t, key_hex);
}

static void slurm_adopt(Executor *ex, const OpenAttempt *a)
{
	SlurmExec *se = ex->impl;
	exec_adopted_add(&se->adopted, &se->nadopted, a);
}

/* slurm{}: where Slurm tasks go (partition, account, qos, constraint, extra sbatch flags). */
static int slurm_read_block(lua_State *L)
{
	Graph *g = lk_block_graph(L);
	luaL_checktype(L, 1, LUA_TTABLE);
	RecipeSlurm *sl = arena_alloc(&g->arena, sizeof *sl);
	*sl = (RecipeSlurm){0};
	lua_settop(L, 1);
	static const char *const fields[] = {"partition", "account", "qos", "constraint", "extra", "array_max",
					     "max_submit_rate", NULL};
	unsigned has = lk_check_fields(L, "slurm{}", fields);
	const char **slots[] = {&sl->partition, &sl->account, &sl->qos, &sl->constraint};
	const char *names[] = {"partition", "account", "qos", "constraint"};
	for (int i = 0; i < 4; i++) {
		if (lua_getfield(L, 1, names[i]) != LUA_TNIL)
			*slots[i] = lk_value_string(L, g, -1, names[i], 0);
		lua_pop(L, 1);
	}
	if (lua_getfield(L, 1, "extra") != LUA_TNIL)
		sl->extra = lk_string_list(L, g, -1, "extra", &sl->nextra, 0);
	lua_pop(L, 1);
	if (has & 32) { /* elements of one array running at once */
		lua_getfield(L, 1, "array_max");
		if ((sl->array_max = (int)lk_integer_field(L, -1, "slurm{}: array_max", 100000)) < 1)
			lk_field_error(L, "slurm{}: array_max", "must be 1 or more");
		lua_pop(L, 1);
	}
	if (has & 64) { /* sbatch calls per second */
		lua_getfield(L, 1, "max_submit_rate");
		int ok = lua_type(L, -1) == LUA_TNUMBER;
		sl->max_submit_rate = ok ? lua_tonumber(L, -1) : 0;
		if (!ok || !(sl->max_submit_rate > 0) || sl->max_submit_rate > 1000)
			lk_field_error(L, "slurm{}: max_submit_rate", "must be a number of submissions per second in (0, 1000]");
		lua_pop(L, 1);
	}
	graph_set_block(g, "slurm", sl);
	return 0;
}

static Executor *slurm_new(const ExecSetup *cfg, Buf *err)
{
	const char *tools[] = {"sbatch", "squeue", "scancel"};
	for (int i = 0; i < 3; i++) {
		char *argv[] = {(char *)tools[i], "--version", NULL};
		Buf said = {0};
		int rc = slurm_tool(argv, NULL, &said);
		if (rc != 0) { /* sbatch's own words: not there, or there without a configuration */
			if (rc < 0 || !said.len)
				buf_printf(err, "the Slurm executor needs %s on PATH (is this a Slurm login node? Debian: "
						"slurm-client)", tools[i]);
			else { /* its last line says most ("fatal: Could not establish a configuration source") */
				const char *text = buf_str(&said), *last = text;
				for (const char *p = text; *p; p++)
					if (p[0] == '\n' && p[1])
						last = p + 1;
				buf_printf(err, "%s --version failed: %.*s; check that Slurm's client is configured here "
						"(SLURM_CONF or /etc/slurm/slurm.conf) and that `scontrol ping` reaches the "
						"controller", tools[i], (int)strcspn(last, "\n"), last);
			}
			buf_free(&said);
			return NULL;
		}
		buf_free(&said);
	}
	SlurmExec *se = xcalloc(1, sizeof *se);
	se->cfg = *cfg;
	const RecipeSlurm *block = graph_block(cfg->g, "slurm");
	if (block)
		se->recipe = *block;
	if (!getcwd(se->workspace, sizeof se->workspace))
		strcpy(se->workspace, ".");
	se->interval_ms = 100;
	Executor *ex = xmalloc(sizeof *ex);
	*ex = (Executor){
		.name = "slurm",
		.title = "Slurm",
		.stop_note = "on Slurm, SIGKILL is a scancel's, after the cluster's KillWait",
		.reattaches = 1,
		.workspace_files = 1,
		.detach = slurm_detach,
		.start = slurm_start,
		.reap = slurm_reap,
		.signal = slurm_signal,
		.poll_ms = slurm_poll_ms,
		.has_room = slurm_has_room,
		.destroy = slurm_destroy,
		.committed = slurm_committed,
		.adopt = slurm_adopt,
		.adoptable = slurm_adoptable,
		.describe = slurm_describe,
		.summarize = slurm_summarize,
		.impl = se,
	};
	return ex;
}

extern const ExecutorKind exec_slurm_kind;
const ExecutorKind exec_slurm_kind = {.name = "slurm", .about = "a Slurm cluster: batch jobs, a job array per grid (slurm{} says where)",
				      .block = "slurm", .read_block = slurm_read_block, .queue_status = slurm_queue_status,
				      .holds_job = slurm_holds_job,
				      .make = slurm_new};
