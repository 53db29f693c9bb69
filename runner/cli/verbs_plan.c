/* verbs_plan.c — the verbs that say what a run would do without running it: kiln status
 * (every task that would run or be restored, with its reason and the pending work's cost;
 * the ssh hosts' last runs; what executors' queues still hold) and kiln why (every
 * difference between a task's key and its last success's). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../base/os.h"
#include "../../cache/cache.h"
#include "../../cache/state/history.h"
#include "../exec/exec.h"
#include "../exec/gpu.h"
#include "../sched/sched.h"
#include "cli.h"

/* kiln status, per ssh host: the last run there, and what would run that may only go there. */
typedef struct {
	Graph *g;
	Cache *c;
} HostView;

static void print_host(void *ctx, const HistoryHost *h)
{
	HostView *v = ctx;
	int pending = 0;
	for (int i = 0; i < v->g->ntasks; i++) {
		const Task *t = v->g->tasks[i];
		for (int k = 0; k < t->opts->nhosts && t->needed && cache_will_run(v->c, t); k++)
			pending += !strcmp(t->opts->hosts[k], h->host);
	}
	char gpu[32];
	format_duration(h->gpu_sec, gpu, sizeof gpu);
	printf("kiln: host %s (last run there): %d done, %d failed, %d lost, %d stopped, GPU time %s; holds %d path%s kiln "
	       "copied or left there; %d pending that name it (host/hosts)\n", h->host, h->done, h->failed, h->lost, h->stopped,
	       gpu, h->holds, h->holds == 1 ? "" : "s", pending);
}

int verb_status(Options *o, int argc, char **argv)
{
	(void)argc, (void)argv;
	Graph *g = new_graph();
	Cache *c = open_cache(o, g, 1);
	load_graph_with(o, g, c);
	Buf ignored = {0}; /* a bad --gpus only changes the slot count here */
	GpuPool *pool = gpu_pool_open(o->gpus, &ignored);
	int restores = 0, at_work = 0;
	PlanCapacity cap = plan_capacity(o, g, pool);
	int n = sched_plan(g, c, stdout, o->all, cap, &restores, &at_work);
	free((void *)cap.elsewhere);
	gpu_pool_free(pool);
	buf_free(&ignored);
	if (n > at_work)
		printf("kiln: %d task%s would run", n - at_work, n - at_work == 1 ? "" : "s");
	if (at_work) /* the kiln running here now has them in hand */
		printf("%s%d%s at work under the kiln running here now", n > at_work ? ", " : "kiln: ", at_work,
		       n > at_work ? "" : at_work == 1 ? " task" : " tasks");
	if (restores) /* not "up to date": run copies their outputs back from the store */
		printf("%s%d would be restored from the store", n ? ", " : "kiln: ", restores);
	printf(n || restores ? "\n" : "kiln: everything is up to date\n");
	int pending = n > 0 || restores > 0;
	HostView view = {g, c};
	cache_each_host(c, 0, print_host, &view);
	for (int i = 0; exec_kinds[i]; i++) /* what the executors' queues hold of earlier runs */
		if (exec_kinds[i]->queue_status) {
			Buf q = {0};
			exec_kinds[i]->queue_status(c, &q);
			if (q.len)
				printf("kiln: %s\n", buf_str(&q));
			buf_free(&q);
		}
	cache_close(c);
	graph_free(g);
	return o->exit_code && pending ? EXIT_TASK_FAILED : 0; /* --exit-code: 1 when work is pending, as make -q */
}

/* kiln why: the plan's verdict on the one task asked about. */
typedef struct {
	const Task *t;
	int restored;
	Buf reason;
} WhyVerdict;

static int note_verdict(void *ctx, const Task *t, enum Verdict v, const char *reason)
{
	WhyVerdict *w = ctx;
	if (t != w->t || v != VERDICT_RESTORED)
		return 0;
	w->restored = 1;
	buf_puts(&w->reason, reason ? reason : "its outputs differ from its last success's");
	return 0;
}

int verb_why(Options *o, int argc, char **argv)
{
	(void)argc, (void)argv;
	if (o->ntargets != 1)
		fatal("usage: kiln why [RECIPE] TASK");
	Graph *g = new_graph();
	Cache *c = open_cache(o, g, 1);
	load_graph_with(o, g, c);
	Task *t = graph_find(g, o->targets[0]);
	if (!t)
		fatal("no task named \"%s\" (see `kiln list`)", o->targets[0]);
	WhyVerdict v = {.t = t};
	cache_plan(c, g, note_verdict, &v); /* t and what it needs (the targets) decided, quietly */
	Buf out = {0};
	if (task_is_runner(t)) { /* no record of its own: it runs for its items */
		const MapShard *s = t->more->shard;
		int items = cache_runner_items(c, t);
		printf("%s: runs map %s's shard %d of %d: started when an item of its runs (it has no record of its "
		       "own); %d of its %d items would run now (kiln why %s for one)\n", t->name, s->map, s->index, s->count,
		       items, s->nitems, s->nitems ? shard_item(g, s, 0)->name : s->map);
	} else {
		cache_explain(c, t, &out);
		printf("%s: %s", t->name, buf_str(&out));
		double when;
		int64_t run;
		if (cache_accepted(c, t->name, &when, &run)) { /* the user's word, not its command's: said */
			char at[32];
			time_t secs = (time_t)when;
			strftime(at, sizeof at, "%Y-%m-%d %H:%M", localtime(&secs));
			printf("%s: its outputs stand by `kiln accept` (run %lld, %s): recorded as they were, not made by "
			       "its command as it is now\n", t->name, (long long)run, at);
		}
	}
	if (v.restored) /* the key is the same, yet run would do something: say what */
		printf("%s: %s (the key is the same: run restores its outputs, the task does not run)\n", t->name,
		       buf_str(&v.reason));
	buf_free(&v.reason);
	/* the key holds the command with its placeholders; the latest log, what ran (a map's
	 * item: its shard's) */
	const Task *logged = t;
	if (t->more->shard && !task_is_runner(t)) {
		logged = t->more->shard->runner;
		printf("%s: an item of map %s, made in a batch by its shard %s (kiln log %s)\n", t->name, t->more->shard->map,
		       logged->name, t->name);
	}
	buf_reset(&out);
	FILE *log = cache_last_log(c, logged->name, &out, NULL) == 0 ? fopen(buf_str(&out), "r") : NULL;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while (log && (n = getline(&line, &cap, log)) > 0 && line[0] == '#' && strcmp(line, "# --\n") != 0)
		if (!strncmp(line, "# command: ", 11)) { /* in the header: the log itself may be gigabytes */
			printf("%s: %s latest attempt ran: %.*s\n", t->name, logged == t ? "its" : "its shard's",
			       (int)strcspn(line + 11, "\n"), line + 11);
			break;
		}
	free(line);
	if (log)
		fclose(log);
	buf_free(&out);
	cache_close(c);
	graph_free(g);
	return 0;
}

