/* verbs_accept.c — kiln accept: the named tasks' outputs, as they are, recorded as made by
 * the recipe as it is now, without running them. For an edit the user knows changes no
 * result (a comment or a log line in a script every task reads, a renamed variable): the
 * key changed, so everything would run again, and kiln cannot tell that it need not. The
 * record is the user's word, so it is asked for by name and never guessed: a task with an
 * output missing, an attempt still running, or a dependency that would run (and change
 * what it reads) is refused, and said why. Dependents are then up to date by their own
 * keys (the outputs they read did not change). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../base/os.h"
#include "../../cache/cache.h"
#include "cli.h"

static void mark_named(void *ctx, Task *t)
{
	((char *)ctx)[t->index] = 1;
}

static void note_open(void *ctx, const OpenAttempt *a)
{
	void **args = ctx;
	const Graph *g = args[0];
	const Task *t = graph_find((Graph *)g, a->rec.task);
	if (t && ((char *)args[1])[t->index])
		buf_printf(args[2], "  %s (%s%s%s)\n", t->name, a->rec.executor, a->rec.host ? " on " : "",
			   a->rec.host ? a->rec.host : "");
}

/* The first of t's outputs that is not there (optional ones may be missing), or NULL. */
static const char *missing_output(const Task *t)
{
	struct stat st;
	for (int i = 0; i < t->noutputs; i++)
		if (lstat(t->outputs[i], &st) != 0 && !(t->opts->optional && t->opts->optional[i]))
			return t->outputs[i];
	return NULL;
}

int verb_accept(Options *o, int argc, char **argv)
{
	if (!o->ntargets)
		fatal("kiln accept needs the tasks to accept by name or glob (kiln accept 'eval/*'): `kiln status` lists "
		      "what would run and why");
	Graph *g = new_graph();
	Cache *c = open_cache(o, g, 0); /* the workspace lock: no run may be writing meanwhile */
	load_graph_with(o, g, c);       /* the targets and what they need */
	char *named = xcalloc((size_t)g->ntasks + 1, 1);
	Buf err = {0}, open = {0};
	graph_match(g, o->targets, o->ntargets, mark_named, named, &err);
	void *args[] = {g, named, &open};
	cache_each_open_job(c, note_open, args);
	if (open.len)
		fatal("these tasks have attempts still running (left by a kiln that was killed or detached):\n%s`kiln "
		      "run` re-attaches them and records what they make; accept once they ended", buf_str(&open));
	Buf cmd = {0};
	for (int i = 0; i < argc; i++)
		buf_printf(&cmd, "%s%s", i ? " " : "", argv[i]);
	if (cache_begin_run(c, buf_str(&cmd)) != 0)
		fatal("%s", cache_write_error(c));
	buf_free(&cmd);
	int n, accepted = 0, current = 0, refused = 0;
	Task **order = graph_topo_tasks(g, &n);
	Buf reason = {0};
	cache_prepare(c);
	for (int i = 0; i < n; i++) {
		Task *t = order[i];
		if (task_is_runner(t))
			continue; /* no record of its own: its items are tasks */
		buf_reset(&reason);
		const Task *blocking = NULL;
		for (int j = 0; j < t->ndeps && !blocking; j++)
			if (cache_will_run(c, t->deps[j]))
				blocking = t->deps[j];
		enum Verdict v = blocking ? VERDICT_RUN : cache_check(c, t, 1, &reason);
		if (v == VERDICT_UP_TO_DATE) {
			current += named[t->index];
			continue;
		}
		if (!named[t->index]) {
			cache_assume_will_run(c, t); /* its dependents would read what it makes anew */
			continue;
		}
		const char *missing = missing_output(t);
		if (blocking)
			printf("refused   %s: its dependency %s would run (kiln why %s): run it first, or accept it too\n",
			       t->name, blocking->name, blocking->name);
		else if (v == VERDICT_RESTORED)
			printf("refused   %s: its key is unchanged (%s): `kiln run` puts its recorded outputs back\n", t->name,
			       buf_str(&reason));
		else if (!task_has_work(t))
			printf("refused   %s: it has no command; `kiln run` records it\n", t->name);
		else if (missing)
			printf("refused   %s: its output %s is not there: it must run\n", t->name, missing);
		if (blocking || v == VERDICT_RESTORED || !task_has_work(t) || missing) {
			cache_assume_will_run(c, t);
			refused++;
			continue;
		}
		buf_reset(&err);
		Metrics m;
		int with_metrics = t->more->metrics && metrics_read(t->more->metrics, &m, &err) == 0;
		if (cache_record_success(c, t, &err) != 0) {
			printf("refused   %s: %s\n", t->name, buf_str(&err));
			cache_assume_will_run(c, t);
			refused++;
		} else {
			if (with_metrics)
				cache_put_metrics(c, t, &m); /* what its outputs say is now this recipe's */
			printf("accepted  %s (%s)\n", t->name, buf_str(&reason));
			accepted++;
			cache_note_accepted(c, t); /* the run's record says what it did */
		}
		if (with_metrics)
			metrics_free(&m);
	}
	graph_topo_free(g, order);
	if (cache_end_run(c, refused ? "failed" : "ok") != 0)
		fatal("%s", cache_write_error(c));
	printf("kiln: %d task%s accepted, %d already up to date, %d refused\n", accepted, accepted == 1 ? "" : "s", current,
	       refused);
	cache_close(c);
	graph_free(g);
	free(named);
	buf_free(&reason);
	buf_free(&err);
	buf_free(&open);
	return refused ? EXIT_TASK_FAILED : 0;
}
