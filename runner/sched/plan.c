/* plan.c — `kiln run -n` and `kiln status`: what a run would do, with a reason for each
 * task, from the cache's verdicts; nothing runs. Then what it would cost: each task that
 * would run is estimated from its own last recorded duration, else from the tasks that
 * differ from it in one tag value only (the same model on another dataset), else from any
 * with the same tag keys, and the sum is given as work, GPU-hours and an ETA at the slots. */
#define _GNU_SOURCE
#include "sched.h"
#include "progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../base/os.h"

typedef struct {
	FILE *out;
	int all;
	Task **runs; /* the tasks that would run, when there are durations to estimate them */
	int nruns;
	int nwork;    /* tasks with work that would run (a million, in a first plan) */
	int restores; /* the tasks whose outputs would be restored */
	Buf text;     /* lines not yet written */
	Cache *c;
	StrMap failed; /* task -> its latest attempt's outcome, where that failed: read when first needed */
	int failed_read;
	StrMap edited; /* input -> how many tasks would run for its change alone (int*) */
	StrMap at_work_names; /* tasks the kiln at work here now runs (their running lines say so) */
	int at_work;
} PlanPrint;

/* A task that would run for one changed input alone ("input eval.py changed (a → b)"),
 * counted by that input: an edit that changes no result is what kiln accept is for. */
static void count_edit(PlanPrint *p, const char *reason)
{
	const char *end = strstr(reason, " changed (");
	if (strncmp(reason, "input ", 6) != 0 || !end || strchr(reason, ';'))
		return;
	char *path = strndup(reason + 6, (size_t)(end - reason - 6));
	int *n = strmap_get(&p->edited, path);
	if (n) {
		free(path);
	} else {
		n = xcalloc(1, sizeof *n);
		strmap_put(&p->edited, path, n);
	}
	(*n)++;
}


/* The lines gathered so far, written out: a MiB at a time, where stdio would write a pipe
 * 4 KiB at a time (11,000 writes for a million-task plan). */
static void print_flush(PlanPrint *p)
{
	fwrite(p->text.data ? p->text.data : "", 1, p->text.len, p->out);
	buf_reset(&p->text);
}

/* "run       NAME: REASON": a line a task; a million-task plan prints a million */
static void print_line(PlanPrint *p, const char *verdict, const char *name, const char *reason)
{
	buf_puts(&p->text, verdict);
	buf_puts(&p->text, name);
	if (reason) {
		buf_puts(&p->text, ": ");
		buf_puts(&p->text, reason);
	}
	buf_putc(&p->text, '\n');
	if (p->text.len >= 1u << 20)
		print_flush(p);
}

static void remember_failed(void *ctx, const char *task, const char *outcome)
{
	strmap_put(ctx, xstrdup(task), xstrdup(outcome ? outcome : "failed"));
}

/* A task with no success recorded whose latest attempt failed says so: which runs afresh and
 * which failed last time are told apart (the state is asked once, at the first). A task
 * with resume state says whether the run continues from it or, its key changed, drops it. */
static void print_run_reason(PlanPrint *p, const Task *t, const char *reason)
{
	const char *outcome = NULL;
	if (!strcmp(reason, CACHE_NO_SUCCESS)) {
		if (!p->failed_read) {
			p->failed_read = 1;
			cache_each_failed_latest(p->c, remember_failed, &p->failed);
		}
		outcome = p->failed.count ? strmap_get(&p->failed, t->name) : NULL;
	}
	Buf line = {0}, kept = {0};
	int resume = t->opts->nresume ? cache_resume_plan(p->c, t, &kept) : RESUME_NONE;
	if (!outcome && resume == RESUME_NONE) { /* the common case: the reason alone */
		print_line(p, "run       ", t->name, reason);
		return;
	}
	buf_puts(&line, reason);
	if (outcome)
		buf_printf(&line, "; its latest attempt: %s (kiln log %s)", outcome, t->name);
	Buf left = {0}, names = {0}; /* said before they go */
	if (outcome && cache_checkpoints_left(p->c, t, NULL, &left, &names))
		buf_printf(&line, "; %s, holding checkpoints it left, deleted as it starts afresh (resume = { %s } keeps "
			   "them for it to continue from)", buf_str(&left), buf_str(&names));
	buf_free(&left);
	buf_free(&names);
	if (resume == RESUME_DROPPED) /* GPU hours a changed key throws away: said first */
		buf_printf(&line, "; its resume state (%s) is of the task as it was, so it starts afresh (after a change "
			   "that makes no difference to it, `kiln accept %s` keeps it)", buf_str(&kept), t->name);
	else if (resume == RESUME_CONTINUES)
		buf_printf(&line, "; it continues from its resume state (%s)", buf_str(&kept));
	buf_free(&kept);
	print_line(p, "run       ", t->name, buf_str(&line));
	buf_free(&line);
}

static int print_verdict(void *ctx, const Task *t, enum Verdict v, const char *reason)
{
	PlanPrint *p = ctx;
	/* a map's item is in the hands of its shard's runner: at work when that is */
	const Task *runs_it = t->more->shard ? t->more->shard->runner : t;
	if (v == VERDICT_RUN && p->at_work_names.count && strmap_get(&p->at_work_names, runs_it->name)) {
		p->at_work += !task_is_runner(t); /* a runner is counted never (cache_plan) */
		return 0; /* not "run ... continues from its resume state" beside its running line */
	}
	if (v == VERDICT_RUN) {
		print_run_reason(p, t, reason);
		count_edit(p, reason);
		if (task_has_work(t)) {
			p->nwork++;
			if (p->runs)
				p->runs[p->nruns++] = (Task *)t;
		}
	} else if (v == VERDICT_RESTORED) {
		print_line(p, "restore   ", t->name, reason);
		p->restores++;
	} else if (p->all) {
		print_line(p, "ok        ", t->name, NULL);
	}
	return 0;
}

/* Attempts an earlier kiln started and never saw end (it was killed, or detached): what
 * became of each, and what a run does about it, so that a plan after a crash does not read
 * as if the work were lost. Those of tasks gone from the recipe a run stops (it says so). */
typedef struct {
	const Graph *g;
	Cache *c;
	FILE *out;
	int live_kiln; /* the pid of a kiln at work in the workspace now, or 0 */
} OpenNote;

static void note_open_attempt(void *ctx, const OpenAttempt *a)
{
	OpenNote *o = ctx;
	const AttemptRecord *r = &a->rec;
	const Task *t = r->task && r->job_id ? graph_find((Graph *)o->g, r->task) : NULL;
	if (!t)
		return;
	char ago[32];
	format_duration(r->started > 0 ? now_wall() - r->started : 0, ago, sizeof ago);
	const char *what = "was running when that kiln stopped: `kiln run` re-attaches to it if it still runs";
	/* how far it got: its progress file (kept up to date by the attempt itself, or for an
	 * ssh job by the kiln at work) or its log's log_progress reading */
	char at[64] = "";
	long long done, total;
	int local = !strncmp(r->job_id, "local/", 6) && r->host && !strcmp(r->host, os_hostname());
	if ((o->live_kiln || local) && r->log && progress_reading(t, r->log, &done, &total))
		snprintf(at, sizeof at, " at %lld/%lld,", done, total);
	if (o->live_kiln) { /* its attempts are open because it is at work on them */
		fprintf(o->out, "running   %s: attempt %d (%s), started %s ago,%s under the kiln at work here now (pid %d)\n",
			r->task, r->attempt, r->job_id, ago, at, o->live_kiln);
		return;
	}
	int alive = 1;
	char there[600];
	if (local)
		what = (alive = exec_local_job_alive(r->job_id)) ? "still runs: `kiln run` re-attaches to it"
								 : "ended while no kiln watched: `kiln run` takes up how it "
								   "ended (or, with no word of it, runs it again)";
	else if (!strncmp(r->job_id, "local/", 6) && r->host && r->log) { /* another host's: the workspace shared */
		if (exec_local_ended(r->log))
			snprintf(there, sizeof there, "ended on %s while no kiln watched: `kiln run` takes up how it ended",
				 r->host);
		else
			snprintf(there, sizeof there, "on %s, where it may still run: a kiln there re-attaches to it; one here "
				 "leaves it be (`kiln run --force %s` runs it here)", r->host, t->name);
		what = there;
	}
	char key[33], changed[320];
	cache_key_hex(o->c, t, key);
	if (alive && r->key && key[0] && strcmp(key, r->key) != 0) {
		snprintf(changed, sizeof changed, "but the task changed since it started: `kiln run` stops it and starts "
			 "afresh (after a change that makes no difference to it, `kiln accept %s` first and the run "
			 "re-attaches to it)", t->name);
		what = changed;
	}
	fprintf(o->out, "running   %s: attempt %d (%s), started %s ago by an earlier kiln,%s %s\n", r->task, r->attempt,
		r->job_id, ago, alive ? at : "", what);
}

/* An ssh job the killed kiln recorded lost with its host: it may run on there. */
static void note_lost_attempt(void *ctx, const OpenAttempt *a)
{
	OpenNote *o = ctx;
	const AttemptRecord *r = &a->rec;
	const Task *t = graph_find((Graph *)o->g, r->task);
	if (!t || !r->host || o->live_kiln)
		return;
	char ran[32], key[33];
	format_duration(a->ended - r->started > 0 ? a->ended - r->started : 0, ran, sizeof ran);
	cache_key_hex(o->c, t, key);
	fprintf(o->out, "lost      %s: attempt %d (job %s) lost with host %s after %s, before a kill stopped that "
			"kiln; the job may run on there: ",
		r->task, r->attempt, r->job_id, r->host, ran);
	if (a->superseded)
		fprintf(o->out, "a later attempt followed, so `kiln run` stops that job once %s answers (unless it takes it "
				"up in place of a later one still running, as the one that has run longer)\n", r->host);
	else if (key[0] && r->key && strcmp(key, r->key))
		fprintf(o->out, "but the task changed since, so `kiln run` runs it afresh and stops that job once %s "
				"answers\n", r->host);
	else
		fprintf(o->out, "`kiln run` waits for %s as long as the job had run (at most --host-wait) and takes it "
				"up\n", r->host);
}

static void remember(void *ctx, const char *task, double sec)
{
	double *slot = xmalloc(sizeof *slot);
	*slot = sec;
	free(strmap_put(ctx, xstrdup(task), slot)); /* each task once: its latest */
}

/* Recorded durations indexed for estimates, built in one pass over the graph: by every
 * "all tags but one" signature (the same model on another dataset), and by the tag keys
 * alone. Looking a task up is then a few hash probes, not a scan of the grid. */
typedef struct {
	double sum;
	int n;
} Mean;

typedef struct {
	StrMap all_but_one, keys_only; /* signature -> Mean* */
} Similar;

/* t's tags as one string: every key, and every value but the one at skip (-1: all values;
 * -2: no values). malloc'd. */
static char *signature(const Task *t, int skip)
{
	Buf b = {0};
	for (int i = 0; i < t->ntags; i++)
		buf_printf(&b, "%s\x1f%s\x1e", t->tags[i].key, skip == -2 || i == skip ? "*" : task_tag_value(t, i));
	return b.data ? b.data : xstrdup("");
}

static void add_mean(StrMap *m, char *key, double sec)
{
	Mean *acc = strmap_get(m, key);
	if (acc) {
		free(key);
	} else {
		acc = xcalloc(1, sizeof *acc);
		strmap_put(m, key, acc);
	}
	acc->sum += sec;
	acc->n++;
}

static void similar_build(Similar *s, Graph *g, StrMap *durations)
{
	memset(s, 0, sizeof *s);
	for (int i = 0; i < g->ntasks; i++) {
		const Task *t = g->tasks[i];
		double *d = t->ntags ? strmap_get(durations, t->name) : NULL;
		if (!d)
			continue;
		for (int j = 0; j < t->ntags; j++)
			add_mean(&s->all_but_one, signature(t, j), *d);
		add_mean(&s->keys_only, signature(t, -2), *d);
	}
}

static void similar_free(Similar *s)
{
	StrMap *maps[] = {&s->all_but_one, &s->keys_only};
	for (int k = 0; k < 2; k++) {
		strmap_free_owned(maps[k]);
	}
}

/* t's estimated seconds: 1 measured, 2 from similar tasks, 0 unknown. */
static int estimate(Similar *s, StrMap *durations, const Task *t, double *sec)
{
	double *own = strmap_get(durations, t->name);
	if (own) {
		*sec = *own;
		return 1;
	}
	if (!t->ntags)
		return 0;
	Mean m = {0};
	for (int j = 0; j < t->ntags; j++) { /* tasks that differ from t in one tag only */
		char *key = signature(t, j);
		Mean *acc = strmap_get(&s->all_but_one, key);
		free(key);
		if (acc)
			m.sum += acc->sum, m.n += acc->n;
	}
	if (!m.n) { /* else any task with the same tag keys */
		char *key = signature(t, -2);
		Mean *acc = strmap_get(&s->keys_only, key);
		free(key);
		if (acc)
			m = *acc;
	}
	if (!m.n)
		return 0;
	*sec = m.sum / m.n;
	return 2;
}

struct Estimator {
	StrMap durations;
	Similar index;
};

Estimator *estimator_new(Graph *g, Cache *c)
{
	Estimator *e = xcalloc(1, sizeof *e);
	cache_each_duration(c, remember, &e->durations);
	similar_build(&e->index, g, &e->durations);
	return e;
}

double estimator_task(Estimator *e, const Task *t)
{
	double sec = 0;
	return estimate(&e->index, &e->durations, t, &sec) ? sec : -1;
}

void estimator_free(Estimator *e)
{
	if (!e)
		return;
	strmap_free_owned(&e->durations);
	similar_free(&e->index);
	free(e);
}

static void remember_at_work(void *ctx, const OpenAttempt *a)
{
	if (a->rec.task && !strmap_get(ctx, a->rec.task))
		strmap_put(ctx, xstrdup(a->rec.task), xstrdup(""));
}

int sched_plan(Graph *g, Cache *c, FILE *out, int all, PlanCapacity cap, int *restores, int *at_work)
{
	/* the durations first: with none recorded (a first plan) nothing is estimated, and the
	 * tasks that would run are counted, not listed */
	StrMap durations = {0};
	cache_each_duration(c, remember, &durations);
	PlanPrint p = {out, all, durations.count ? xmalloc(((size_t)g->ntasks + 1) * sizeof(Task *)) : NULL, 0, 0, 0, {0},
		       c, {0}, 0, {0}, {0}, 0};
	int live_kiln = cache_lock_holder(c);
	if (live_kiln) /* its open attempts are its running ones */
		cache_each_open_job(c, remember_at_work, &p.at_work_names);
	int n = cache_plan(c, g, print_verdict, &p);
	print_flush(&p);
	buf_free(&p.text);
	strmap_free_owned(&p.failed);
	OpenNote open = {g, c, out, live_kiln};
	cache_each_open_job(c, note_open_attempt, &open);
	cache_each_lost_job(c, note_lost_attempt, &open);
	if (p.nwork && !p.nruns) {
		fprintf(out, "kiln: no recorded durations to estimate from yet\n");
	} else if (p.nruns) {
		Similar index;
		similar_build(&index, g, &durations);
		/* here and elsewhere (hosts, a cluster) bound apart: each by its own slots and GPUs */
		double work = 0, gpu_sec = 0, cpu_sec = 0, longest = 0, far_work = 0, far_gpu = 0;
		int measured = 0, similar = 0, unknown = 0, far = 0;
		for (int i = 0; i < p.nruns; i++) {
			double sec = 0;
			const Task *t = p.runs[i];
			int how = estimate(&index, &durations, t, &sec);
			measured += how == 1, similar += how == 2, unknown += how == 0;
			longest = sec > longest ? sec : longest;
			if (cap.elsewhere && cap.elsewhere[t->index]) {
				far++;
				far_work += sec;
				far_gpu += sec * t->opts->gpus;
				continue;
			}
			work += sec;
			gpu_sec += sec * t->opts->gpus;
			cpu_sec += sec * (t->opts->cpus < cap.cpus ? t->opts->cpus : cap.cpus);
		}
		if (measured + similar) {
			char w[32], eta[32];
			/* bound by whichever runs out first: slots, the CPUs tasks hold, the GPUs */
			double eta_sec = work / (cap.slots > 0 ? cap.slots : 1);
			if (cap.cpus > 0 && cpu_sec / cap.cpus > eta_sec)
				eta_sec = cpu_sec / cap.cpus;
			if (cap.gpus > 0 && gpu_sec / cap.gpus > eta_sec)
				eta_sec = gpu_sec / cap.gpus;
			if (far && cap.host_slots > 0 && far_work / cap.host_slots > eta_sec)
				eta_sec = far_work / cap.host_slots;
			if (far && cap.host_gpus > 0 && far_gpu / cap.host_gpus > eta_sec)
				eta_sec = far_gpu / cap.host_gpus;
			format_duration(work + far_work, w, sizeof w);
			format_duration(eta_sec > longest ? eta_sec : longest, eta, sizeof eta);
			fprintf(out, "kiln: estimated %s of work (%d from their last run, %d from similar tasks, %d unknown)",
				w, measured, similar, unknown);
			if (gpu_sec + far_gpu > 0)
				fprintf(out, ", %.2f GPU-hours", (gpu_sec + far_gpu) / 3600);
			fprintf(out, "; ETA about %s", eta);
			if (far < p.nruns) {
				fprintf(out, " at %d slot%s, %d CPU%s", cap.slots, cap.slots == 1 ? "" : "s", cap.cpus,
					cap.cpus == 1 ? "" : "s");
				if (cap.gpus)
					fprintf(out, ", %d GPU%s", cap.gpus, cap.gpus == 1 ? "" : "s");
				fprintf(out, "%s", far ? " here" : "");
			}
			if (far && cap.hosts) {
				fprintf(out, "%s %d host%s", far < p.nruns ? " and" : " over", cap.hosts, cap.hosts == 1 ? "" : "s");
				if (cap.host_slots)
					fprintf(out, "' %d slots", cap.host_slots);
				if (cap.host_gpus)
					fprintf(out, "%s %d GPUs", cap.host_slots ? "," : "'", cap.host_gpus);
				if (!cap.host_slots)
					fprintf(out, " (%s learned when kiln connects)", cap.host_gpus ? "their slots are" : "their capacity is");
			} else if (far) {
				fprintf(out, "%s as the cluster allows", far < p.nruns ? " and elsewhere" : " elsewhere");
			}
			fputc('\n', out);
		} else { /* durations are recorded, none of these tasks' nor of one like them */
			fprintf(out, "kiln: no estimate: none of these tasks, nor one with the same tag names, has a recorded duration\n");
		}
		similar_free(&index);
	}
	const char *path, *edited = NULL;
	void *count;
	int most = 0;
	for (size_t i = 0; strmap_next(&p.edited, &i, &path, &count);)
		if (*(int *)count > most)
			most = *(int *)count, edited = path;
	if (edited)
		fprintf(out, "kiln: %d task%s would run for %s's change alone: if that edit makes no difference to their "
			"results, `kiln accept TASK|GLOB ...` records their outputs as they are (kiln help accept)\n",
			most, most == 1 ? "" : "s", edited);
	strmap_free_owned(&p.edited);
	strmap_free_owned(&durations);
	free(p.runs);
	strmap_free_owned(&p.at_work_names);
	if (restores)
		*restores = p.restores;
	if (at_work)
		*at_work = p.at_work;
	return n;
}
