/* main.c — the kiln command line: parses options, loads and validates the recipe, and
 * dispatches to the verbs (run, status, why, list, graph, log, clean, gc, help). */
#define _GNU_SOURCE
#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../cache/cache.h"
#include "../../plots/plot.h"
#include "../../plots/report.h"
#include "../recipe/torchrun.h"
#include "../../plots/table.h"
#include "../exec/exec.h"
#include "../exec/gpu.h"
#include "../../base/graph.h"
#include "../../base/os.h"
#include "cli.h"

#include "../recipe/launch.h"
#include "../recipe/recipe.h"
#include "../sched/sched.h"

static int verb_run(Options *, int, char **),
	verb_help(Options *, int, char **);

/* Every verb: its usage line, its help, and the function main dispatches to. */
static const struct {
	const char *verb, *usage, *help;
	VerbFn fn;
} verbs[] = {
	{"run", "kiln run [RECIPE] [TARGET|GLOB ...] [name=value ...] [-j N] [-k] [-n] [--force TARGET|GLOB]",
	 "Runs what the targets need (everything by default), skipping tasks whose key and\n"
	 "outputs match their last success; --force (repeatable) runs the tasks it names anyway, their\n"
	 "dependents only if the outputs change. -j N runs up to N tasks at once;\n"
	 "-k keeps going past failures; -n prints what would run, and why, and runs nothing.\n"
	 "Options: --gpus 0,1,3  --gpu-busy-mem 0.5  --gpu-busy-util 0.7  --gpu-wait 5m  --cpus N  --mem 64G\n"
	 "--store-max 1G  --kill-grace 30 (seconds a stopped task may take to quit: a trainer's save).\n"
	 "-j defaults to the CPUs plus the known GPUs.\n"
	 "Slurm: --executor slurm (or executor = \"slurm\" per task), --max-jobs N, --detach (leave jobs\n"
	 "running when kiln stops; the next run re-attaches).\n"
	 "SSH hosts: --executor ssh (or executor = \"ssh\" per task) over the recipe's hosts{} or\n"
	 "--hosts FILE (a Lua file with a hosts{} block); --detach as for Slurm; --host-wait 60s: how long\n"
	 "a task waits for a host it may run on to answer before it fails as host-down (and, at least, for\n"
	 "the host holding its resume state before it starts afresh elsewhere: as long as that work took).\n"
	 "Local attempts outlive a killed kiln (or a closed terminal) and are re-attached by the next run;\n"
	 "--detach leaves them running on purpose. Ctrl-C stops them.\n"
	 "Exit status: 0 all succeeded, 1 a task failed, 2 usage or recipe error, 130 Ctrl-C.", verb_run},
	{"status", "kiln status [RECIPE] [TARGET ...] [name=value ...] [-q|--exit-code]",
	 "Lists the tasks a run would execute or restore, each with a one-line reason.\n"
	 "-q / --exit-code: exit 1 when some task would run or be restored, 0 when all is up to date\n"
	 "(as make -q), for scripts.", verb_status},
	{"why", "kiln why [RECIPE] TASK [name=value ...]",
	 "Prints every difference between TASK's current key and its last success:\n"
	 "which input changed (old -> new hash), which argument or param, which dependency.", verb_why},
	{"list", "kiln list [RECIPE] [TARGET ...]", "Lists tasks with dependencies, resources and tags.", verb_list},
	{"graph", "kiln graph [RECIPE] [TARGET ...] [--patterns]",
	 "Prints the task graph in Graphviz dot (kiln graph | dot -Tsvg > g.svg), each task filled by what\n"
	 "run would do: green up to date, blue restored from the store, orange runs (red: its last attempt\n"
	 "failed); GPU tasks outlined. --patterns draws a grid as one node per pattern, its tag values put\n"
	 "back as {tag} (eval/{dataset}/{model} ×80), and a map{} as one node, with the counts by state.", verb_graph},
	{"log", "kiln log TASK [N | --all | -f]", "Prints the log of TASK's latest attempt (from .kiln/logs), of its attempt N, or\n"
	 "of every attempt it kept, oldest first (attempt numbers never repeat across runs). A map{}'s item\n"
	 "(MAP/ITEM) prints the log of the shard that last ran it. -f (--follow) prints the latest and\n"
	 "what is written to it until its attempt ends, going on to a retry's.", verb_log},
	{"clean", "kiln clean [RECIPE] [TARGET|GLOB ...] [--deps] [--all]",
	 "Deletes the declared outputs and the recorded successes of the named tasks (all by default), so\n"
	 "the next run runs them instead of restoring them; --deps also cleans what they depend on; --all\n"
	 "also deletes .kiln/ (state, logs, stored outputs).", verb_clean},
	{"accept", "kiln accept [RECIPE] TARGET|GLOB ... [name=value ...] [-n]",
	 "Records the named tasks' outputs, as they are, as made by the recipe as it is now, without running\n"
	 "them: after an edit you know changes no result (a comment or a log line in a script they read).\n"
	 "Their dependents are then up to date too. Refused, with the reason, for a task with an output\n"
	 "missing or a dependency that would run (accept or run it first). Unfinished work is taken as it\n"
	 "stands: a killed kiln's running attempt is re-attached, a stopped one's resume state kept.\n"
	 "`kiln status` first lists what would run and why; -n says what it would accept and records nothing.", verb_accept},
	{"gc", "kiln gc", "Deletes stored outputs that no recorded success refers to, and old attempt logs: it keeps\n"
	 "each task's 5 latest attempts' logs, the latest run's, each task's latest success's and\n"
	 "those of attempts still running; and checkpoint copies (resume) no unfinished attempt needs.", verb_gc},
	{"metrics", "kiln metrics [TASK|GLOB ...] [--rows TAG [--cols TAG] --value METRIC[,METRIC...]] [--baseline TAG=VALUE] [--format text|md|tsv|json|latex] [--best max|min|METRIC=max|min,...] [--vs RUN] [--mean] [--out FILE]",
	 "Prints the latest recorded metrics. With --rows/--cols/--value, a pivot (e.g. dataset x model of top1);\n"
	 "with --rows alone, one row per value of the tag and the metrics (all, or those --value lists) as\n"
	 "columns. Cells average the tasks they hold; repeats (seeds) print as mean ± std. --baseline\n"
	 "method=ddp adds after each value column its ratio to that row (a speedup for a time or a\n"
	 "throughput, faster above 1; a plain ratio otherwise); --mean adds a row of column means; --vs\n"
	 "RUN shows deltas against the metrics as they were at run RUN. Without --rows: one row per task\n"
	 "with its tags and metrics. --best max (or min, or top1=max,loss=min) sets the best value bold:\n"
	 "in each row of a pivot, else in each column. --format latex prints a booktabs tabular for a\n"
	 "paper; --out FILE.tex (.md, .tsv, .json) picks the format when --format is not given.", verb_metrics},
	{"plot", "kiln plot [RECIPE] [NAME ...]",
	 "Re-renders all (or the named) plot{} charts from the recorded metrics, without running any task:\n"
	 "after a change of style only. Charts land where each plot's `out` says (default plots/NAME.svg/.png).", verb_plot},
	{"report", "kiln report [RECIPE] [--out report.html] [--vs RUN] [--threshold 0.01] [--open]",
	 "Writes one self-contained HTML page: the last run (outcomes, a timeline of its attempts on GPU and\n"
	 "slot lanes with the GPU utilisation, the slowest tasks), an outcome map of every grid (failed cells\n"
	 "link their log tails), every plot{} chart with links to its svg/png/pdf and its table with deltas\n"
	 "against run RUN (default: the run before the latest that recorded those tasks; cells that moved\n"
	 "more than --threshold, relative, are shaded), and the run history. --open prints its file:// URL.", verb_report},
	{"help", "kiln help [VERB]", "Shows help for a verb.", verb_help},
};

static void usage_all(FILE *out)
{
	fprintf(out, "kiln — a build-graph experiment runner\n\nusage:\n");
	for (size_t i = 0; i < sizeof verbs / sizeof *verbs; i++)
		fprintf(out, "  %s\n", verbs[i].usage);
	fprintf(out, "\nGlobal: -C/--directory DIR (workspace; default .; only run creates it), --load-timeout 2m (how "
		     "long a recipe may load), -h/--help, --version.\nLong forms: -j/--jobs N, -k/--keep-going, "
		     "-n/--dry-run, -q/--exit-code. `kiln help VERB` for details. "
		     "Without RECIPE kiln reads kiln.lua in the workspace.\n");
}

static int verb_help(Options *o, int argc, char **argv)
{
	(void)argc, (void)argv;
	const char *verb = o->ntargets ? o->targets[0] : NULL;
	if (!verb) {
		usage_all(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof verbs / sizeof *verbs; i++)
		if (!strcmp(verbs[i].verb, verb)) {
			printf("usage: %s\n\n%s\n", verbs[i].usage, verbs[i].help);
			if (!strcmp(verb, "run")) { /* the table's own words, so a new executor is listed */
				printf("\nExecutors (--executor NAME, or executor = \"NAME\" per task):\n");
				for (int k = 0; exec_kinds[k]; k++)
					printf("  %-6s %s%s%s%s\n", exec_kinds[k]->name, exec_kinds[k]->about,
					       exec_kinds[k]->block ? "; its recipe block: " : "",
					       exec_kinds[k]->block ? exec_kinds[k]->block : "", exec_kinds[k]->block ? "{}" : "");
			}
			return 0;
		}
	fatal("unknown verb \"%s\" (see kiln --help)", verb);
}

/* Whether w names a recipe: a file ending in .lua. One that ends so and is no file is noted
 * in o (a mistyped recipe reads as a target, and kiln.lua loads instead). */
static int is_recipe_word(Options *o, const char *w)
{
	size_t n = strlen(w);
	struct stat st;
	if (n <= 4 || strcmp(w + n - 4, ".lua") != 0)
		return 0;
	int found = stat(w, &st) == 0, is_file = found && S_ISREG(st.st_mode);
	if (!is_file && !o->lua_word) {
		o->lua_word = w;
		o->lua_errno = !found ? errno : S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
	}
	return is_file;
}

/* Long options with no letter of their own (past any char getopt_long returns). */
enum { OPT_FORCE = 256, OPT_BEST };

static void parse_args(int argc, char **argv, Options *o)
{
	static const struct option longs[] = {
		{"help", no_argument, 0, 'h'},      {"gpus", required_argument, 0, 'G'},
		{"jobs", required_argument, 0, 'j'}, {"keep-going", no_argument, 0, 'k'},
		{"dry-run", no_argument, 0, 'n'},   {"directory", required_argument, 0, 'C'},
		{"version", no_argument, 0, 'X'},   {"exit-code", no_argument, 0, 'q'},
		{"quiet", no_argument, 0, 'q'},
		{"gpu-busy", required_argument, 0, 'B'}, {"gpu-busy-mem", required_argument, 0, 'B'},
		{"gpu-busy-util", required_argument, 0, 'U'}, {"gpu-wait", required_argument, 0, 'W'},
		{"cpus", required_argument, 0, 'c'},
		{"mem", required_argument, 0, 'M'}, {"store-max", required_argument, 0, 'S'},
		{"kill-grace", required_argument, 0, 'K'}, {"executor", required_argument, 0, 'E'},
		{"all", no_argument, 0, 'a'},       {"rows", required_argument, 0, 'R'},
		{"cols", required_argument, 0, 'L'}, {"value", required_argument, 0, 'V'},
		{"format", required_argument, 0, 'F'}, {"vs", required_argument, 0, 'v'},
		{"mean", no_argument, 0, 'm'},      {"out", required_argument, 0, 'o'},
		{"max-jobs", required_argument, 0, 'J'}, {"detach", no_argument, 0, 'D'},
		{"baseline", required_argument, 0, 'b'}, {"open", no_argument, 0, 'O'},
		{"force", required_argument, 0, OPT_FORCE}, {"follow", no_argument, 0, 'f'},
		{"best", required_argument, 0, OPT_BEST},
		{"deps", no_argument, 0, 'd'},      {"patterns", no_argument, 0, 'P'},
		{"threshold", required_argument, 0, 'T'}, {"hosts", required_argument, 0, 'H'},
		{"host-wait", required_argument, 0, 'w'}, {"load-timeout", required_argument, 0, 'l'}, {0, 0, 0, 0}};
	const char *dir = NULL;
	int c;
	/* '+' would stop at the verb; permute instead so options may follow it */
	char *self = argv[0];
	argv[0] = "kiln"; /* getopt's own messages start "kiln: ", not the binary's path */
	while ((c = getopt_long(argc, argv, "hj:knqfC:", longs, NULL)) != -1) {
		char *end;
		switch (c) {
		case 'h': o->verb = "help"; break;
		case 'j':
			o->jobs = (int)strtol(optarg, &end, 10);
			if (*end || o->jobs < 1)
				fatal("-j takes a positive number, got \"%s\"", optarg);
			break;
		case 'k': o->keep_going = 1; break;
		case 'n': o->dry_run = 1; break;
		case 'C': dir = optarg; break;
		case 'q': o->exit_code = 1; break;
		case 'X':
			printf("kiln %s\n", kiln_version);
			exit(0);
		case 'G': o->gpus = optarg; break;
		case 'B':
			o->gpu_busy = strtod(optarg, &end);
			if (*end || o->gpu_busy <= 0 || o->gpu_busy > 1)
				fatal("--gpu-busy-mem takes a fraction in (0, 1], got \"%s\"", optarg);
			break;
		case 'U':
			o->gpu_busy_util = strtod(optarg, &end);
			if (*end || o->gpu_busy_util <= 0 || o->gpu_busy_util > 1)
				fatal("--gpu-busy-util takes a fraction in (0, 1], got \"%s\"", optarg);
			break;
		case 'W':
			o->gpu_wait = parse_duration(optarg);
			if (!(o->gpu_wait > 0))
				fatal("--gpu-wait takes a duration like 300, \"90s\" or \"5m\", got \"%s\"", optarg);
			break;
		case 'w':
			o->host_wait = parse_duration(optarg);
			if (!(o->host_wait > 0))
				fatal("--host-wait takes a duration like 60, \"90s\" or \"5m\", got \"%s\"", optarg);
			break;
		case 'l':
			o->load_timeout = parse_duration(optarg);
			if (!(o->load_timeout > 0))
				fatal("--load-timeout takes a duration like 300, \"90s\" or \"10m\", got \"%s\"", optarg);
			break;
		case 'c':
			o->cpus = (int)strtol(optarg, &end, 10);
			if (*end || o->cpus < 1)
				fatal("--cpus takes a positive number, got \"%s\"", optarg);
			break;
		case 'M':
			if ((o->mem_mib = parse_size_mib(optarg)) <= 0)
				fatal("--mem takes a size like 64G, got \"%s\"", optarg);
			break;
		case 'S':
			if ((o->store_max_mib = parse_size_mib(optarg)) < 0)
				fatal("--store-max takes a size like 1G, got \"%s\"", optarg);
			break;
		case 'K':
			o->kill_grace = strtod(optarg, &end);
			if (*end || o->kill_grace < 0)
				fatal("--kill-grace takes seconds, got \"%s\"", optarg);
			break;
		case 'E':
			if (!exec_kind(optarg))
				fatal("--executor takes %s, got \"%s\"", exec_kind_names(), optarg);
			o->executor = optarg;
			break;
		case 'H': o->hosts_file = optarg; break;
		case 'J':
			o->max_jobs = (int)strtol(optarg, &end, 10);
			if (*end || o->max_jobs < 1)
				fatal("--max-jobs takes a positive number, got \"%s\"", optarg);
			break;
		case 'D': o->detach = 1; break;
		case 'a': o->all = 1; break;
		case 'R': o->rows = optarg; break;
		case 'L': o->cols = optarg; break;
		case 'V': o->value = optarg; break;
		case 'b': o->baseline = optarg; break;
		case 'O': o->open = 1; break;
		case 'f': o->follow = 1; break;
		case OPT_FORCE:
			o->force = xrealloc(o->force, (size_t)(o->nforce + 1) * sizeof *o->force);
			o->force[o->nforce++] = optarg;
			break;
		case OPT_BEST: o->best = optarg; break;
		case 'd': o->deps = 1; break;
		case 'P': o->patterns = 1; break;
		case 'T':
			o->threshold = strtod(optarg, &end);
			if (*end || !(o->threshold >= 0))
				fatal("--threshold takes a relative change like 0.01 (1 %%), got \"%s\"", optarg);
			break;
		case 'F':
			if (strcmp(optarg, "text") && strcmp(optarg, "md") && strcmp(optarg, "tsv") && strcmp(optarg, "json") &&
			    strcmp(optarg, "latex"))
				fatal("--format takes text, md, tsv, json or latex, got \"%s\"", optarg);
			o->format = optarg;
			break;
		case 'v':
			o->vs_run = strtoll(optarg, &end, 10);
			if (*end || o->vs_run < 1)
				fatal("--vs takes a run id (see the runs in `kiln report`), got \"%s\"", optarg);
			break;
		case 'm': o->mean = 1; break;
		case 'o': o->out = optarg; break;
		default: fprintf(stderr, "(see kiln --help)\n"); exit(EXIT_USAGE);
		}
	}
	argv[0] = self;
	char **rest = argv + optind;
	int nrest = argc - optind;
	if (!o->verb) {
		if (nrest == 0) {
			usage_all(stderr);
			exit(EXIT_USAGE);
		}
		o->verb = rest[0];
		rest++, nrest--;
	}
	o->targets = xcalloc((size_t)nrest + 1, sizeof(char *));
	char **words = xcalloc((size_t)nrest + 1, sizeof(char *));
	int nwords = params_split(rest, nrest, &o->params, words);
	for (int i = 0; i < nwords; i++) {
		if (!o->recipe && strcmp(o->verb, "help") && is_recipe_word(o, words[i]))
			o->recipe = words[i];
		else
			o->targets[o->ntargets++] = words[i];
	}
	free(words);
	if (o->recipe && dir && o->recipe[0] != '/') {
		/* the recipe is named relative to where kiln was started, not to -C */
		char *abs = realpath(o->recipe, NULL);
		if (abs)
			o->recipe = o->recipe_abs = abs;
	}
	if (o->hosts_file && dir && o->hosts_file[0] != '/') { /* --hosts FILE: the same */
		char *abs = realpath(o->hosts_file, NULL);
		if (!abs)
			fatal("--hosts %s: %s (a Lua file with a hosts{} block, named from where kiln was started)",
			      o->hosts_file, strerror(errno));
		o->hosts_file = o->hosts_abs = abs;
	}
	if (dir && chdir(dir) != 0) {
		/* only a run makes its workspace: a verb that reads (status, log, report) never
		 * creates a directory for a mistyped -C */
		if (errno == ENOENT && !strcmp(o->verb, "run") && mkdirs(dir, 0777) == 0 && chdir(dir) == 0)
			return;
		fatal("cannot enter workspace %s: %s%s", dir, strerror(errno),
		      errno == ENOENT ? " (only `kiln run` creates a workspace)" : "");
	}
}

Graph *new_graph(void)
{
	char cwd[PATH_MAX];
	if (!getcwd(cwd, sizeof cwd))
		fatal("cannot read the current directory: %s", strerror(errno));
	return graph_new(cwd);
}

/* The GPUs a recipe's gpus_available() sees (--gpus, else NVML's), counted when a recipe
 * first asks: o is the command's Options. Errors surface in verb_run. */
static int count_gpus(void *o)
{
	Buf err = {0};
	GpuPool *pool = gpu_pool_open(((Options *)o)->gpus, &err);
	int n = gpu_count(pool);
	gpu_pool_free(pool);
	buf_free(&err);
	return n;
}

/* Loads a recipe or exits: 2 with its error, 130 when Ctrl-C stopped the load. */
static void load_or_exit(Graph *g, const char *path, const ParamOverrides *ov, Options *o)
{
	Buf err = {0};
	RecipeBlock blocks[16] = {{0}};
	int n = 0;
	for (int i = 0; exec_kinds[i] && n < 15; i++)
		if (exec_kinds[i]->block)
			blocks[n++] = (RecipeBlock){exec_kinds[i]->block, exec_kinds[i]->read_block};
	struct stat st;
	/* the compiled recipe is kept in a workspace kiln has made: a command never makes one */
	RecipeLoad lo = {.params = ov, .count_gpus = count_gpus, .count_gpus_ctx = o, .timeout_sec = o->load_timeout,
			 .executors = exec_kind_list(),
			 .blocks = blocks, .chunk_dir = stat(KILN_DIR, &st) == 0 ? KILN_DIR "/recipes" : NULL};
	int rc = recipe_load(g, path, &lo, &err);
	if (rc == -2) {
		fprintf(stderr, "kiln: %s (nothing was started)\n", buf_str(&err));
		exit(130);
	}
	if (rc != 0)
		fatal("%s", buf_str(&err));
}

Graph *load_recipe(Options *o, Graph *g)
{
	const char *recipe = o->recipe ? o->recipe : "kiln.lua";
	if (!o->recipe && o->lua_word && access(recipe, F_OK) != 0) /* not "cannot read kiln.lua" */
		fatal("cannot read recipe %s: %s (a recipe is named from where kiln was started)", o->lua_word,
		      strerror(o->lua_errno));
	load_or_exit(g, recipe, &o->params, o);
	if (o->hosts_file) { /* its hosts{} replaces the recipe's */
		int ntasks = g->ntasks;
		const void *recipe_hosts = graph_block(g, "hosts");
		ParamOverrides none = {0};
		struct stat st;
		if (stat(o->hosts_file, &st) != 0)
			fatal("--hosts %s: %s (a Lua file with a hosts{} block)", o->hosts_file, strerror(errno));
		load_or_exit(g, o->hosts_file, &none, o);
		if (g->ntasks != ntasks)
			fatal("%s: a hosts file declares hosts{} only, not tasks", o->hosts_file);
		if (graph_block(g, "hosts") == recipe_hosts)
			fatal("%s: no hosts{} block in it", o->hosts_file);
	}
	return g;
}

/* Loads, resolves and selects into g (made by new_graph); with a cache, input checks
 * go through it so each input is stat'ed once per command. */
Graph *load_graph_with(Options *o, Graph *g, Cache *c)
{
	Buf err = {0};
	load_recipe(o, g);
	for (int i = 0; exec_kinds[i]; i++) /* what each executor's block promises */
		if (exec_kinds[i]->check && exec_kinds[i]->check(g, &err) != 0)
			fatal("%s", buf_str(&err));
	if (recipe_check_plots(g, &err) != 0)
		fatal("%s", buf_str(&err));
	trace_mark("recipe loaded");
	if (c && cache_loaded(c, &err) != 0) /* the state opened on another thread meanwhile */
		fatal("%s", buf_str(&err));
	if (graph_resolve(g, c ? cache_input_exists : NULL, c, &err) != 0)
		fatal("%s", buf_str(&err));
	if (c)
		cache_resolved(c);
	trace_mark("graph resolved");
	if (graph_select(g, o->targets, o->ntargets, &err) < 0) {
		if (o->lua_word && !o->recipe && strstr(buf_str(&err), o->lua_word))
			fatal("%s; as a recipe, %s cannot be read: %s (named from where kiln was started)", buf_str(&err),
			      o->lua_word, strerror(o->lua_errno));
		fatal("%s", buf_str(&err));
	}
	buf_free(&err);
	return g;
}

/* The one place that says where a task runs: its executor field, else what an executor
 * claims of it (a task naming hosts runs on them), else --executor. */
static const ExecutorKind *executor_of(const Options *o, const Task *t)
{
	if (t->opts->executor)
		return exec_kind(t->opts->executor);
	if (exec_runs_kiln(t) && !launch_wraps(t))
		return exec_kinds[0]; /* kiln itself reads the state, which is here (its launcher does not) */
	if (!o->executor || !strcmp(o->executor, exec_kinds[0]->name))
		for (int i = 0; exec_kinds[i]; i++)
			if (exec_kinds[i]->claims && exec_kinds[i]->claims(t))
				return exec_kinds[i];
	return o->executor ? exec_kind(o->executor) : exec_kinds[0];
}

/* Resource checks that need the machine: a task that could never start is a recipe error.
 * Slurm tasks are Slurm's to check. */
static void check_resources(const Options *o, Graph *g, GpuPool *gpus, int cpus, long long mem)
{
	for (int i = 0; i < g->ntasks; i++) {
		Task *t = g->tasks[i];
		if (!t->needed || t->opts->plot || executor_of(o, t) != exec_kinds[0])
			continue; /* their own system's, or the hosts' (exec_ssh.c says when none fits) */
		if (t->opts->gpus > 0 && gpu_count(gpus) > 0 && t->opts->gpus > gpu_count(gpus))
			fatal("%s:%d: task \"%s\" asks for %d GPUs but only %d are known (from %s)", t->opts->file, t->line,
			      t->name, t->opts->gpus, gpu_count(gpus), gpu_source(gpus));
		if (t->opts->cpus > cpus)
			fatal("%s:%d: task \"%s\" asks for %d CPUs but kiln may use %d (raise it with --cpus)", t->opts->file,
			      t->line, t->name, t->opts->cpus, cpus);
		if (t->opts->mem_mib > mem)
			fatal("%s:%d: task \"%s\" asks for %lld MiB of memory but kiln may use %lld (raise it with --mem)",
			      t->opts->file, t->line, t->name, t->opts->mem_mib, mem);
	}
}

Graph *load_graph(Options *o, Graph *g) { return load_graph_with(o, g, NULL); }

Cache *open_cache(Options *o, Graph *g, int readonly)
{
	CacheOptions copt = {.store_max_mib = o->store_max_mib, .readonly = readonly};
	Buf err = {0};
	Cache *c = cache_open(KILN_DIR, g, &copt, &err);
	if (!c)
		fatal("%s", buf_str(&err));
	return c;
}

static void adopt_job(void *ctx, const OpenAttempt *a)
{
	Executor *ex = ctx;
	if (!strcmp(a->rec.executor, ex->name))
		ex->adopt(ex, a);
}

static void mark_forced(void *ctx, Task *t)
{
	(void)ctx;
	t->forced = 1;
}

/* What runs at once, for a plan's ETA: this machine's slots, CPUs and GPUs, and for the tasks
 * another executor takes, its machines as the recipe declares them (ssh hosts). The
 * elsewhere list is malloc'd. */
PlanCapacity plan_capacity(const Options *o, Graph *g, GpuPool *gpus)
{
	int cpus = o->cpus ? o->cpus : os_cpu_count();
	PlanCapacity cap = {.slots = o->jobs ? o->jobs : os_cpu_count() + gpu_count(gpus),
			    .cpus = o->jobs > cpus && !o->cpus ? o->jobs : cpus, .gpus = gpu_count(gpus)};
	unsigned char *elsewhere = xcalloc((size_t)g->ntasks + 1, 1);
	const ExecutorKind *counted[8] = {0};
	for (int i = 0; i < g->ntasks; i++) {
		const ExecutorKind *kind = g->tasks[i]->opts->plot ? exec_kinds[0] : executor_of(o, g->tasks[i]);
		if (kind == exec_kinds[0])
			continue;
		elsewhere[i] = 1;
		int k = 0;
		while (k < 8 && counted[k] && counted[k] != kind)
			k++;
		if (k < 8 && !counted[k] && kind->plan_capacity) { /* each kind's machines once */
			int slots, ngpus;
			counted[k] = kind;
			cap.hosts += kind->plan_capacity(g, &slots, &ngpus);
			cap.host_slots += slots, cap.host_gpus += ngpus;
		}
	}
	cap.elsewhere = elsewhere;
	return cap;
}

static int verb_run(Options *o, int argc, char **argv)
{
	Graph *g = new_graph();
	/* from here on Ctrl-C is a request the run answers (exit 130, nothing half-recorded),
	 * even while the recipe loads: it stays pending until the scheduler takes it */
	if (!o->dry_run)
		os_block_signals();
	/* the state loads on another thread while the recipe loads on this one */
	Cache *c = open_cache(o, g, o->dry_run);
	load_graph_with(o, g, c);
	Buf gerr = {0};
	if (graph_match(g, o->force, o->nforce, mark_forced, NULL, &gerr) != 0)
		fatal("--force: %s", buf_str(&gerr));
	graph_forget_outputs(g); /* targets and --force were the last to ask */
	GpuPool *gpus = gpu_pool_open(o->gpus, &gerr);
	if (!gpus)
		fatal("%s", buf_str(&gerr));
	buf_free(&gerr);
	gpu_set_busy_threshold(gpus, o->gpu_busy > 0 ? o->gpu_busy : 0.5, o->gpu_busy_util > 0 ? o->gpu_busy_util : 0.7);
	int cpus = o->cpus ? o->cpus : os_cpu_count();
	if (!o->cpus && o->jobs > cpus)
		cpus = o->jobs; /* -j beyond the core count means "oversubscribe", as in make */
	long long mem = o->mem_mib ? o->mem_mib : os_memory_mib();
	check_resources(o, g, gpus, cpus, mem);
	if (o->dry_run) {
		PlanCapacity cap = plan_capacity(o, g, gpus);
		int at_work = 0, n = sched_plan(g, c, stdout, 0, cap, NULL, &at_work);
		free((void *)cap.elsewhere);
		printf("kiln: %d task%s would run", n - at_work, n - at_work == 1 ? "" : "s");
		if (at_work)
			printf(", %d at work under the kiln running here now", at_work);
		printf(" (dry run: nothing was started)\n");
		trace_mark("plan printed");
		cache_close(c);
		gpu_pool_free(gpus);
		graph_free(g);
		trace_mark("freed");
		return 0;
	}
	/* attempts a killed kiln left running are re-attached; everything else of it is stopped */
	Executor *ex = exec_local_new(c, o->detach);
	int orphans = exec_local_take_over(ex, c, gpus);
	exec_local_stop_stale(ex, g, STALE_BEFORE_RUN); /* says what it stops */
	if (orphans > 0)
		fprintf(stderr, "kiln: stopped %d task process group%s left running by a kiln that was killed (not re-attached)\n",
			orphans, orphans == 1 ? "" : "s");
	Buf cmd = {0};
	for (int i = 0; i < argc; i++)
		buf_printf(&cmd, "%s%s", i ? " " : "", argv[i]);
	if (orphans < 0 || cache_begin_run(c, buf_str(&cmd)) != 0)
		fatal("%s", cache_write_error(c));
	buf_free(&cmd);
	/* the executors this run needs beside the local one, each made once, from the table */
	enum { MAX_EXECUTORS = 8 };
	Executor *executors[MAX_EXECUTORS] = {ex, exec_plot_new(KILN_DIR "/state.db")}, *plots = executors[1];
	const ExecutorKind *made[MAX_EXECUTORS] = {exec_kinds[0], NULL};
	char state_dirs[MAX_EXECUTORS][64]; /* .kiln/NAME: each executor keeps the path for the run */
	int nexecutors = 2;
	Executor **task_exec = xmalloc(((size_t)g->ntasks + 1) * sizeof *task_exec);
	for (int i = 0; i < g->ntasks; i++) { /* chosen once: the scheduler never asks */
		Task *t = g->tasks[i];
		const ExecutorKind *kind = executor_of(o, t);
		Buf why = {0};
		if (t->opts->plot) {
			task_exec[i] = plots;
			continue;
		}
		if (t->needed && kind->refuses && kind->refuses(t, &why))
			fatal("%s:%d: task \"%s\" %s", t->opts->file, t->line, t->name, buf_str(&why));
		int e = 0;
		while (e < nexecutors && made[e] != kind)
			e++;
		if (e == nexecutors && t->needed) {
			int64_t run_id = cache_run_id(c); /* names its jobs: the run's row is written now */
			if (run_id < 0)
				fatal("%s", cache_write_error(c));
			ExecSetup setup = {.g = g, .cache = c, .detach = o->detach, .run_id = run_id, .max_jobs = o->max_jobs,
					   .busy_mem = o->gpu_busy > 0 ? o->gpu_busy : 0.5,
					   .busy_util = o->gpu_busy_util > 0 ? o->gpu_busy_util : 0.7,
					   .host_wait_sec = o->host_wait > 0 ? o->host_wait : 60};
			snprintf(state_dirs[e], sizeof state_dirs[e], KILN_DIR "/%s", kind->name);
			setup.state_dir = state_dirs[e];
			if (nexecutors == MAX_EXECUTORS || !(executors[e] = kind->make(&setup, &why)))
				fatal("%s", buf_str(&why));
			made[nexecutors++] = kind;
			cache_each_open_job(c, adopt_job, executors[e]); /* jobs a killed or detached kiln left */
			cache_each_lost_job(c, adopt_job, executors[e]); /* and ssh jobs it lost with their host */
		}
		task_exec[i] = e < nexecutors ? executors[e] : ex;
		buf_free(&why);
	}
	SchedOptions so = {
		/* room for every known GPU besides the cores: GPU tasks are not capped by the CPU count */
		.jobs = o->jobs ? o->jobs : os_cpu_count() + gpu_count(gpus),
		.gpu_wait_sec = o->gpu_wait,
		.keep_going = o->keep_going || g->keep_going,
		.cpus = cpus,
		.mem_mib = mem,
		/* Slurm's KillWait and Kubernetes' grace: a trainer that saves when told to stop
		 * gets the time a checkpoint of some GiB takes; a command that quits at the signal
		 * ends at once, and a second Ctrl-C kills what does not */
		.kill_grace_sec = o->kill_grace >= 0 ? o->kill_grace : 30,
		.log_dir = KILN_DIR "/logs",
		.gpus = gpus,
		.executors = executors,
		.nexecutors = nexecutors,
		.task_exec = task_exec,
		.cache = c,
	};
	SchedSummary sum;
	trace_mark("scheduler starts");
	int rc = sched_run(g, &so, &sum);
	trace_mark("scheduler done");
	if (!o->detach && sum.stopped_by_signal != SIGHUP)
		exec_local_stop_stale(ex, g, STALE_AFTER_RUN); /* left running only when this kiln leaves its own */
	if (cache_end_run(c, rc == 0 ? "ok" : sum.stopped_by_signal ? "stopped" : "failed") != 0 && rc == 0) {
		fprintf(stderr, "kiln: %s\n", cache_write_error(c));
		rc = EXIT_TASK_FAILED;
	}
	cache_close(c);
	trace_mark("state closed");
	for (int i = 0; i < nexecutors; i++)
		executors[i]->destroy(executors[i]);
	free(task_exec);
	gpu_pool_free(gpus);
	graph_free(g);
	return rc;
}

int main(int argc, char **argv)
{
	trace_mark("start");
	Options o = {.kill_grace = -1, .store_max_mib = 1024, .threshold = -1};
	signal(SIGPIPE, SIG_DFL);
	/* past a file-size limit (ulimit -f, batch systems) a write fails with EFBIG, which
	 * the state and the logs report as they do a full disk, instead of killing kiln;
	 * commands get the default back (os_spawn) */
	signal(SIGXFSZ, SIG_IGN);
	if (argc > 1 && !strcmp(argv[1], "launch")) /* a task's ranks (launch.c): its own arguments */
		return launch_main(argc - 2, argv + 2);
	parse_args(argc, argv, &o);
	int rc = -1;
	size_t i = 0;
	while (i < sizeof verbs / sizeof *verbs && strcmp(verbs[i].verb, o.verb))
		i++;
	if (i == sizeof verbs / sizeof *verbs)
		fatal("unknown verb \"%s\" (verbs: run status why list graph log clean gc metrics plot report help)", o.verb);
	if (o.follow && strcmp(o.verb, "log"))
		fatal("-f (--follow) is kiln log's: kiln log -f TASK; to run a task again whatever its record, --force TASK");
	rc = verbs[i].fn(&o, argc, argv);
	params_free(&o.params);
	free(o.targets);
	free(o.force);
	free(o.recipe_abs);
	free(o.hosts_abs);
	return rc;
}
