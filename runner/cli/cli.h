/* cli.h — what the command-line program's files share: the options every verb reads, and
 * the steps verbs have in common (the graph of the recipe, loaded and selected). main.c
 * parses and dispatches and holds kiln run; verbs_plan.c what a run would do (status,
 * why); verbs_results.c the verbs that read results (metrics, plot, report); verbs_state.c
 * log, gc and clean; verbs_accept.c accept; verbs_graph.c list and graph. */
#ifndef KILN_CLI_H
#define KILN_CLI_H

#include "../../base/graph.h"
#include "../../cache/cache.h"
#include "../exec/gpu.h"
#include "../recipe/recipe.h"
#include "../sched/sched.h"

#define KILN_DIR ".kiln"

/* "0.9.0+d1ff5d1": the project's version and the commit it was configured at (main.c). */
extern const char kiln_version[];

typedef struct {
	const char *verb;
	const char *recipe;
	char *recipe_abs; /* malloc'd when -C made the recipe path absolute */
	const char *lua_word; /* a word ending in .lua that is no file: a mistyped recipe, likely */
	int lua_errno;        /* why it is not one (stat's errno; EISDIR for a folder) */
	char *hosts_abs;  /* and --hosts FILE's */
	int exit_code;    /* status -q / --exit-code: 1 when work is pending */
	char **targets;
	int ntargets;
	ParamOverrides params;
	int jobs, keep_going, dry_run, all;
	int follow;               /* log -f / --follow */
	int cpus;
	long long mem_mib, store_max_mib;
	const char *gpus;
	double gpu_busy, gpu_busy_util, gpu_wait, kill_grace;
	double host_wait;         /* ssh: how long a task waits for one of its hosts; 0: default */
	double load_timeout;      /* how long a recipe may load; 0: the default (lsandbox.h) */
	const char *executor;
	const char *rows, *cols, *value, *format, *out, *baseline, *best; /* metrics, report */
	int open;                 /* report: print the file's URL */
	double threshold;         /* report: shade cells that moved more than this (relative); -1: default */
	int max_jobs, detach;                           /* Slurm, ssh */
	const char *hosts_file;   /* --hosts FILE: a hosts{} block replacing the recipe's */
	char **force;             /* run: --force TARGET|GLOB, repeatable */
	int nforce;
	int deps;                 /* clean: also what the targets depend on */
	int patterns;             /* graph: a node per name pattern (a grid), not per task */
	long long vs_run;
	int mean;
} Options;

typedef int (*VerbFn)(Options *o, int argc, char **argv);

/* An empty graph for the workspace (the current directory). */
Graph *new_graph(void);
/* Loads the recipe (and --hosts FILE's hosts{}) into g, nothing more; exits on an error. */
Graph *load_recipe(Options *o, Graph *g);
/* Loads the recipe into g, resolves and selects the targets; exits on a recipe error. */
Graph *load_graph(Options *o, Graph *g);
/* load_graph with input checks through cache c (each input stat'ed once per command). */
Graph *load_graph_with(Options *o, Graph *g, Cache *c);
/* The workspace's cache, for reading (status, why) or writing (run, clean: takes the
 * workspace lock); exits with the reason when it cannot be opened. */
Cache *open_cache(Options *o, Graph *g, int readonly);

/* maplogs.c: what the shards' item lists say of a name (a map's item, or a map). */
typedef struct {
	char *shard;  /* MAP:shard-K whose newest list names the item `name`, or NULL; malloc'd */
	int attempt;  /* the attempt of it whose own list that is; 0: its latest (an older list) */
	int nshards;  /* shards of a map called name */
	char *map;    /* a map whose "MAP/" begins name, or NULL; malloc'd */
} ShardScan;
ShardScan scan_shards(const char *name);

/* verbs_state.c: the log of an attempt, pruning (gc), cleaning */
int verb_log(Options *o, int argc, char **argv);
int verb_gc(Options *o, int argc, char **argv);
int verb_clean(Options *o, int argc, char **argv);
/* verbs_accept.c: outputs recorded as they are, without running */
int verb_accept(Options *o, int argc, char **argv);

/* verbs_plan.c: what a run would do */
int verb_status(Options *o, int argc, char **argv);
int verb_why(Options *o, int argc, char **argv);
/* main.c: what runs at once for a plan's ETA (here, and the hosts other executors take
 * tasks to); its elsewhere list is malloc'd. */
PlanCapacity plan_capacity(const Options *o, Graph *g, GpuPool *gpus);

/* verbs_graph.c: the graph without running it */
int verb_list(Options *o, int argc, char **argv);
int verb_graph(Options *o, int argc, char **argv);

int verb_metrics(Options *o, int argc, char **argv);
int verb_plot(Options *o, int argc, char **argv);
int verb_report(Options *o, int argc, char **argv);

#endif
