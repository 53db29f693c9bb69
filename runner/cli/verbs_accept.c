/* verbs_accept.c — kiln accept: the named tasks' outputs, as they are, recorded as made by
 * the recipe as it is now, without running them. For an edit the user knows changes no
 * result (a comment or a log line in a script every task reads, a renamed variable): the
 * key changed, so everything would run again, and kiln cannot tell that it need not. The
 * record is the user's word, so it is asked for by name and never guessed: a task with an
 * output missing or a dependency that would run (and change what it reads) is refused, and
 * said why. Dependents are then up to date by their own keys (the outputs they read did not
 * change). A task left unfinished under the recipe as it was is taken as it stands: an
 * attempt still running (a killed kiln's) counts for the recipe as it is, so the next run
 * re-attaches to it instead of stopping it; a stopped one's resume state is kept, so the
 * next attempt continues from it instead of starting afresh. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
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

/* The first of t's outputs that is not there (optional ones may be missing), or NULL. */
static const char *missing_output(const Task *t)
{
	struct stat st;
	for (int i = 0; i < t->noutputs; i++)
		if (lstat(t->outputs[i], &st) != 0 && !(t->opts->optional && t->opts->optional[i]))
			return t->outputs[i];
	return NULL;
}

/* A line of each kind up to LISTED: a 100,000-item map accepted is a count, not a screenful. */
#define LISTED 50
static void __attribute__((format(printf, 2, 3))) say(int *listed, const char *fmt, ...)
{
	if ((*listed)++ >= LISTED)
		return;
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
}

typedef struct {
	Cache *c;
	const char *named; /* by task index: named on the command line (or gathered by a name) */
	Buf what, err;
	int accepted, current, refused, listed_ok, listed_no;
	int dry;           /* -n: says what it would accept, records nothing */
	const char *word;  /* "accepted  " or "would accept  " */
} Acceptance;

/* kiln accept's verdict on one task of the plan, in dependency order: 1 when it recorded
 * the task's outputs (its dependents then take it as up to date), else 0. */
static int accept_one(void *ctx, const Task *task, enum Verdict v, const char *reason)
{
	Acceptance *a = ctx;
	Task *t = (Task *)task; /* the plan's task: recorded here */
	if (task_is_runner(t))
		return 0; /* no record of its own: its items are tasks */
	if (v == VERDICT_UP_TO_DATE) {
		a->current += a->named[t->index];
		return 0;
	}
	if (!a->named[t->index])
		return 0; /* it would run: its dependents would read what it makes anew */
	const Task *blocking = NULL;
	for (int j = 0; j < t->ndeps && !blocking; j++)
		if (cache_will_run(a->c, t->deps[j]))
			blocking = t->deps[j];
	const char *missing = missing_output(t);
	const Task *shard = t->more->shard ? t->more->shard->runner : NULL;
	if (shard && cache_attempt_open(a->c, shard->name)) { /* an output in the making is no result */
		say(&a->listed_no, "refused   %s: its shard %s was left running by an earlier kiln: `kiln run` takes it up "
		    "first (re-attaching to it, or recording how it ended); accept after that\n", t->name, shard->name);
		a->refused++;
		return 0;
	}
	buf_reset(&a->what);
	int k = blocking || !task_has_work(t) ? ACCEPT_NONE : cache_accept_unfinished(a->c, t, !missing, a->dry, &a->what);
	if (k == ACCEPT_RUNNING || k == ACCEPT_RESUME) { /* it still runs, from where it is */
		if (k == ACCEPT_RUNNING)
			say(&a->listed_ok, "%s%s: its attempt still running, started under the recipe as it was, counts "
			    "for the recipe as it is: the next `kiln run` re-attaches to it (%s)\n", a->word, t->name, reason);
		else
			say(&a->listed_ok, "%s%s: its resume state (%s), left by an attempt under the recipe as it was, "
			    "is kept for the recipe as it is: the next `kiln run` continues from it (%s)\n", a->word, t->name,
			    buf_str(&a->what), reason);
		a->accepted++;
		return 0;
	}
	if (k == ACCEPT_RUNNING_ALREADY)
		say(&a->listed_no, "refused   %s: an attempt of the recipe as it is still runs (left by an earlier kiln): "
		    "`kiln run` re-attaches to it and records what it makes\n", t->name);
	else if (k < 0)
		say(&a->listed_no, "refused   %s: %s\n", t->name, buf_str(&a->what));
	else if (blocking)
		say(&a->listed_no, "refused   %s: its dependency %s would run (kiln why %s): run it first, or accept it "
		    "too\n", t->name, blocking->name, blocking->name);
	else if (v == VERDICT_RESTORED)
		say(&a->listed_no, "refused   %s: its key is unchanged (%s): `kiln run` puts its recorded outputs back\n",
		    t->name, reason);
	else if (!task_has_work(t))
		say(&a->listed_no, "refused   %s: it has no command; `kiln run` records it\n", t->name);
	else if (missing)
		say(&a->listed_no, "refused   %s: its output %s is not there: it must run\n", t->name, missing);
	if (k != ACCEPT_NONE || blocking || v == VERDICT_RESTORED || !task_has_work(t) || missing) {
		a->refused++;
		return 0;
	}
	if (a->dry) {
		say(&a->listed_ok, "%s%s (%s)\n", a->word, t->name, reason);
		a->accepted++;
		return 1; /* as if recorded: its dependents are judged as they would be then */
	}
	buf_reset(&a->err);
	Metrics m;
	int with_metrics = t->more->metrics && metrics_read(t->more->metrics, &m, &a->err) == 0, settled = 0;
	if (cache_record_success(a->c, t, &a->err) != 0) {
		say(&a->listed_no, "refused   %s: %s\n", t->name, buf_str(&a->err));
		a->refused++;
	} else {
		if (with_metrics)
			cache_put_metrics(a->c, t, &m); /* what its outputs say is now this recipe's */
		say(&a->listed_ok, "%s%s (%s)\n", a->word, t->name, reason);
		a->accepted++;
		cache_note_accepted(a->c, t); /* the run's record says what it did */
		settled = 1;
	}
	if (with_metrics)
		metrics_free(&m);
	return settled;
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
	Acceptance a = {.c = c, .named = named, .dry = o->dry_run, .word = o->dry_run ? "would accept  " : "accepted  "};
	graph_match(g, o->targets, o->ntargets, mark_named, named, &a.err);
	for (int i = 0; i < g->ntasks; i++) /* a map's name, or a group's: what it gathers */
		if (named[i] && !task_has_work(g->tasks[i]))
			for (int j = 0; j < g->tasks[i]->ndeps; j++)
				named[g->tasks[i]->deps[j]->index] = 1;
	Buf cmd = {0};
	for (int i = 0; i < argc; i++)
		buf_printf(&cmd, "%s%s", i ? " " : "", argv[i]);
	if (!a.dry && cache_begin_run(c, buf_str(&cmd)) != 0)
		fatal("%s", cache_write_error(c));
	buf_free(&cmd);
	cache_plan(c, g, accept_one, &a);
	if (!a.dry && cache_end_run(c, a.refused ? "failed" : "ok") != 0)
		fatal("%s", cache_write_error(c));
	if (a.listed_ok > LISTED || a.listed_no > LISTED)
		printf("kiln: the first %d of each were listed\n", LISTED);
	printf("kiln: %d task%s %s, %d already up to date, %d refused\n", a.accepted, a.accepted == 1 ? "" : "s",
	       a.dry ? "would be accepted (-n: nothing recorded)" : "accepted", a.current, a.refused);
	cache_close(c);
	graph_free(g);
	free(named);
	buf_free(&a.what);
	buf_free(&a.err);
	return a.refused ? EXIT_TASK_FAILED : 0;
}
