/* plan.c — `kiln run -n` and `kiln status`: what a run would do, with a reason for each
 * task, from the cache's verdicts; nothing runs. Then what it would cost: each task that
 * would run is estimated from its own last recorded duration, else from tasks with the same
 * tag keys (the mean of those sharing the most tag values: the same model on another
 * dataset), and the sum is given as work, GPU-hours and an ETA at the run's slots. */
#define _GNU_SOURCE
#include "sched.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
	FILE *out;
	int all;
	Task **runs; /* the tasks that would run */
	int nruns;
} PlanPrint;

static void print_verdict(void *ctx, const Task *t, enum Verdict v, const char *reason)
{
	PlanPrint *p = ctx;
	if (v == VERDICT_RUN) {
		fprintf(p->out, "run       %s: %s\n", t->name, reason);
		if (task_has_work(t))
			p->runs[p->nruns++] = (Task *)t;
	} else if (v == VERDICT_RESTORED) {
		fprintf(p->out, "restore   %s: %s\n", t->name, reason);
	} else if (p->all) {
		fprintf(p->out, "ok        %s\n", t->name);
	}
}

static void remember(void *ctx, const char *task, double sec)
{
	double *slot = xmalloc(sizeof *slot);
	*slot = sec;
	free(strmap_put(ctx, xstrdup(task), slot)); /* each task once: its latest */
}

static int same_keys(const Task *a, const Task *b)
{
	if (a->ntags != b->ntags || !a->ntags)
		return 0;
	for (int i = 0; i < a->ntags; i++)
		if (strcmp(a->tags[i].key, b->tags[i].key))
			return 0;
	return 1;
}

/* t's estimated seconds: 1 measured, 2 from similar tasks, 0 unknown. */
static int estimate(Graph *g, StrMap *durations, const Task *t, double *sec)
{
	double *own = strmap_get(durations, t->name);
	if (own) {
		*sec = *own;
		return 1;
	}
	int best = -1, n = 0;
	double sum = 0;
	for (int i = 0; i < g->ntasks; i++) {
		const Task *o = g->tasks[i];
		double *d = o == t ? NULL : strmap_get(durations, o->name);
		if (!d || !same_keys(t, o))
			continue;
		int shared = 0;
		for (int k = 0; k < t->ntags; k++)
			shared += !strcmp(t->tags[k].value, o->tags[k].value);
		if (shared > best)
			best = shared, sum = 0, n = 0;
		if (shared == best)
			sum += *d, n++;
	}
	if (!n)
		return 0;
	*sec = sum / n;
	return 2;
}

int sched_plan(Graph *g, Cache *c, FILE *out, int all, int slots)
{
	PlanPrint p = {out, all, xmalloc(((size_t)g->ntasks + 1) * sizeof(Task *)), 0};
	int n = cache_plan(c, g, print_verdict, &p);
	if (p.nruns) {
		StrMap durations = {0};
		cache_each_duration(c, remember, &durations);
		double work = 0, gpu_sec = 0, longest = 0;
		int measured = 0, similar = 0, unknown = 0;
		for (int i = 0; i < p.nruns; i++) {
			double sec = 0;
			int how = estimate(g, &durations, p.runs[i], &sec);
			measured += how == 1, similar += how == 2, unknown += how == 0;
			work += sec;
			gpu_sec += sec * p.runs[i]->gpus;
			longest = sec > longest ? sec : longest;
		}
		if (measured + similar) {
			char w[32], eta[32];
			double at_slots = work / (slots > 0 ? slots : 1);
			format_duration(work, w, sizeof w);
			format_duration(at_slots > longest ? at_slots : longest, eta, sizeof eta);
			fprintf(out, "kiln: estimated %s of work (%d from their last run, %d from similar tasks, %d unknown)",
				w, measured, similar, unknown);
			if (gpu_sec > 0)
				fprintf(out, ", %.2f GPU-hours", gpu_sec / 3600);
			fprintf(out, "; ETA about %s at %d slot%s\n", eta, slots, slots == 1 ? "" : "s");
		} else {
			fprintf(out, "kiln: no recorded durations to estimate from yet\n");
		}
		const char *key;
		void *val;
		for (size_t i = 0; strmap_next(&durations, &i, &key, &val);) {
			free((char *)key);
			free(val);
		}
		strmap_free(&durations);
	}
	free(p.runs);
	return n;
}
