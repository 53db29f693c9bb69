/* test_exec_slurm.c — how the Slurm executor reads a job's end, over the fake os layer
 * (os_fake.c): sbatch, squeue and scontrol answer from a script per task, and the job's exit
 * file (what its job script writes: the command's status, " stopped" where a stop's signal
 * came while it ran) appears when the script says. The cases a real cluster shows only by
 * chance: a cancel that came as the command had finished, a handler's exit 0 after a stop or
 * a preemption, an exit file that lands after Slurm already says CANCELLED. */
#define _GNU_SOURCE
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../cache/cache.h"
#include "../../runner/exec/exec.h"
#include "../../runner/recipe/recipe.h"
#include "../../runner/recipe/torchrun.h"
#include "../../runner/sched/sched.h"
#include "check.h"
#include "os_fake.h"

/* Each task a different size, so each attempt is a job of its own (no array). */
static const char recipe[] =
	"slurm { max_submit_rate = 1000 }\n"
	"task { name = 'done_at_cancel', run = 'a', cpus = 1 }\n"
	"task { name = 'handler_exit0', run = 'b', cpus = 2 }\n"
	"task { name = 'preempted_saving', run = 'c', cpus = 3 }\n"
	"task { name = 'preempted_done', run = 'd', cpus = 4 }\n"
	"task { name = 'exit_file_late', run = 'e', cpus = 5 }\n"
	"task { name = 'followed_to_its_end', run = 'f', cpus = 6 }\n"
	"task { name = 'ran_before_seen', run = 'g', cpus = 7, timeout = 30 }\n";

/* Stopped by a Ctrl-C (SIGINT to kiln) at kiln's first poll, each with stop_signal = "INT":
 * one that starts right after that poll (kiln saw it pending), one pending still. */
static const char stop_recipe[] =
	"slurm { max_submit_rate = 1000 }\n"
	"task { name = 'int_started_unseen', run = 'h', cpus = 1, stop_signal = 'INT' }\n"
	"task { name = 'int_pending', run = 'i', cpus = 2, stop_signal = 'INT' }\n";

/* What squeue says of a task's job at each poll (the last one repeats), and the exit file
 * its script leaves: written at the poll `exit_at` (0: with the first final state), or
 * never (NULL). A second attempt (a job given back as lost) completes. A job scancel'd is
 * CANCELLED from the next poll on, its exit file "143 stopped". Its time used is 0:00, or
 * 40 s for ran_before_seen (it had run when kiln first saw it: a killed kiln's job). */
static const struct {
	const char *task;
	const char *states[5];
	const char *exit_text;
	int exit_at;
} script[] = {
	{"done_at_cancel", {"RUNNING", "CANCELLED"}, "0", 0},
	{"handler_exit0", {"RUNNING", "CANCELLED"}, "0 stopped", 0},
	{"preempted_saving", {"RUNNING", "PREEMPTED"}, "0 stopped", 0},
	{"preempted_done", {"RUNNING", "PREEMPTED"}, "0", 0},
	{"exit_file_late", {"RUNNING", "CANCELLED"}, "7 stopped", 4},
	{"followed_to_its_end", {"RUNNING", "COMPLETING", "CANCELLED"}, NULL, 0},
	{"ran_before_seen", {"RUNNING"}, NULL, 0},
	{"int_started_unseen", {"PENDING", "RUNNING"}, NULL, 0},
	{"int_pending", {"PENDING"}, NULL, 0},
};
#define NTASKS (int)(sizeof script / sizeof *script)

static struct {
	int task;       /* script row */
	int attempt;
	char exit_path[256];
	int polls;      /* squeue answers that listed it */
	int cancelled;  /* scancel named it (cancelled while pending: 2, it never ran) */
	int signalled;  /* scancel --signal named it: its command saved and quit, exit 0 */
	int final_polls; /* of which in a final state */
} jobs[32];
static int njobs;

static int is_final(const char *state)
{
	return strcmp(state, "PENDING") && strcmp(state, "RUNNING") && strcmp(state, "COMPLETING");
}

/* Job j's state by its script, before any scancel. */
static const char *scripted_state(int j)
{
	int row = jobs[j].task, k = jobs[j].polls < 4 ? jobs[j].polls : 4;
	while (k > 0 && !script[row].states[k])
		k--;
	return script[row].states[k];
}

static int slurm_tools(char *const argv[], Buf *out, Buf *err)
{
	(void)err;
	if (!strcmp(argv[0], "scontrol") && argv[1] && !strcmp(argv[1], "show")) {
		if (out)
			buf_puts(out, "Configuration data as of now\nKillWait                = 1 sec\n");
		return 0;
	}
	if (!strcmp(argv[0], "sbatch") && argv[1] && !strcmp(argv[1], "--parsable")) {
		const char *name = NULL, *path = NULL;
		for (int i = 1; argv[i]; i++) {
			if (!strncmp(argv[i], "--job-name=kiln-", 16))
				name = strchr(argv[i] + 16, '-') + 1;
			path = argv[i]; /* the script, last */
		}
		CHECK(name && path && njobs < 32);
		int row = 0;
		while (row < NTASKS && strcmp(script[row].task, name))
			row++;
		CHECK(row < NTASKS);
		jobs[njobs].task = row;
		size_t n = strlen(path);
		CHECK(n > 3 && !strcmp(path + n - 3, ".sh"));
		snprintf(jobs[njobs].exit_path, sizeof jobs[njobs].exit_path, "%.*s.exit", (int)(n - 3), path);
		const char *at = strrchr(path, '@');
		jobs[njobs].attempt = at ? atoi(at + 1) : 0;
		buf_printf(out, "%d\n", 100 + njobs);
		njobs++;
		return 0;
	}
	if (!strcmp(argv[0], "squeue")) {
		const char *asked = "";
		for (int i = 1; argv[i]; i++)
			if (!strcmp(argv[i], "-j") && argv[i + 1])
				asked = argv[i + 1];
		for (int j = 0; j < njobs; j++) {
			char id[16];
			int len = snprintf(id, sizeof id, "%d", 100 + j);
			const char *at = strstr(asked, id);
			if (!at || (at[len] && at[len] != ',')) /* only the jobs kiln asks after */
				continue;
			int row = jobs[j].task, second = jobs[j].attempt > 1;
			const char *state = jobs[j].cancelled ? "CANCELLED" : jobs[j].signalled ? "COMPLETED"
					    : second ? (jobs[j].polls ? "COMPLETED" : "RUNNING") : scripted_state(j);
			if (!strcmp(script[row].task, "int_started_unseen") && jobs[j].polls == 0)
				fake_signal_next(SIGINT); /* the Ctrl-C, while kiln thinks it pending */
			jobs[j].polls++;
			if (is_final(state) && jobs[j].cancelled != 2) {
				jobs[j].final_polls++;
				const char *text = jobs[j].cancelled ? "143 stopped" : jobs[j].signalled ? "0 stopped"
						   : second ? "0" : script[row].exit_text;
				if (text && jobs[j].final_polls >= (second ? 1 : script[row].exit_at))
					CHECK(write_file_atomic(jobs[j].exit_path, text, strlen(text)) == 0);
			}
			buf_printf(out, "%d|%s|%s|None\n", 100 + j, state,
				   !strcmp(script[row].task, "ran_before_seen") ? "0:40" : "0:00");
		}
		return 0;
	}
	if (!strcmp(argv[0], "scancel")) {
		int pending_only = !strcmp(argv[1], "--state=PENDING"), signal = !strncmp(argv[1], "--signal=", 9);
		for (int i = 1; argv[i]; i++) {
			int j = atoi(argv[i]) - 100;
			if (j < 0 || j >= njobs || jobs[j].cancelled)
				continue;
			int pending = !strcmp(scripted_state(j), "PENDING");
			if (signal && !pending)
				jobs[j].signalled = 1;
			else if (!signal && (pending || !pending_only))
				jobs[j].cancelled = pending ? 2 : 1;
		}
	}
	return 0; /* --version */
}

/* task's attempts, "exit_code outcome failure" each, ";"-separated. */
static void attempts_of(const char *task, Buf *out)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	CHECK(sqlite3_open(".kiln/state.db", &db) == SQLITE_OK);
	CHECK(sqlite3_prepare_v2(db, "SELECT exit_code, outcome, coalesce(failure, '-') FROM attempts WHERE task = ? "
				     "AND attempt > 0 ORDER BY id", -1, &st, NULL) == SQLITE_OK);
	sqlite3_bind_text(st, 1, task, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW)
		buf_printf(out, "%d %s %s;", sqlite3_column_int(st, 0), sqlite3_column_text(st, 1),
			   sqlite3_column_text(st, 2));
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static int job_of(const char *task)
{
	for (int j = 0; j < njobs; j++)
		if (!strcmp(script[jobs[j].task].task, task))
			return j;
	return -1;
}

/* Runs text's tasks on the Slurm executor over the fake tools, in the current directory. */
static void run_recipe(const char *text, SchedSummary *sum)
{
	fake_reset();
	fake_run = slurm_tools;
	char cwd[4096];
	CHECK(getcwd(cwd, sizeof cwd) != NULL);
	Graph *g = graph_new(cwd);
	Buf err = {0};
	CHECK(write_file_atomic("kiln.lua", text, strlen(text)) == 0);
	const ExecutorKind *kind = exec_kind("slurm");
	RecipeBlock blocks[] = {{kind->block, kind->read_block}, {NULL, NULL}};
	RecipeLoad lo = {.executors = exec_kind_list(), .blocks = blocks};
	CHECK(recipe_load(g, "kiln.lua", &lo, &err) == 0);
	if (err.len)
		fprintf(stderr, "%s\n", buf_str(&err));
	CHECK(graph_resolve(g, NULL, NULL, &err) == 0);
	int ntasks = graph_select(g, NULL, 0, &err);
	CHECK(ntasks == g->ntasks && ntasks > 0);
	CacheOptions copt = {.store_max_mib = 16};
	Cache *c = cache_open(".kiln", g, &copt, &err);
	CHECK(c && cache_loaded(c, &err) == 0);
	CHECK(cache_begin_run(c, "test") == 0 && cache_run_id(c) > 0);
	ExecSetup setup = {.g = g, .cache = c, .run_id = cache_run_id(c), .state_dir = ".kiln/slurm"};
	Executor *slurm = kind->make(&setup, &err);
	CHECK(slurm != NULL);
	Executor *executors[] = {slurm};
	Executor **task_exec = xmalloc((size_t)g->ntasks * sizeof *task_exec);
	for (int i = 0; i < g->ntasks; i++)
		task_exec[i] = slurm;
	SchedOptions o = {.jobs = 16, .keep_going = 1, .cpus = 64, .mem_mib = 1024, .kill_grace_sec = 1,
			  .log_dir = ".kiln/logs", .executors = executors, .nexecutors = 1, .task_exec = task_exec,
			  .cache = c};
	sched_run(g, &o, sum);
	cache_end_run(c, "test");
	cache_close(c);
	slurm->destroy(slurm);
	free(task_exec);
	graph_free(g);
	buf_free(&err);
}

/* A job script passes a stop on to its command itself (kiln signals it alone), unless srun
 * steps run the command: torchrun's launchers, ranks over several nodes. */
static void test_which_scripts_pass_stops(void)
{
	Torchrun one_node = {.nnodes = 1};
	TaskOpts plain = {0}, ranks_here = {.rank_nodes = 1}, ranks_over = {.rank_nodes = 2}, torchrun = {.torchrun = &one_node};
	Task t = {.opts = &plain};
	CHECK(exec_script_passes_stops(&t));
	t.opts = &ranks_here;
	CHECK(exec_script_passes_stops(&t));
	t.opts = &ranks_over;
	CHECK(!exec_script_passes_stops(&t));
	t.opts = &torchrun;
	CHECK(!exec_script_passes_stops(&t));
}

int main(void)
{
	test_which_scripts_pass_stops();
	char dir[] = "/tmp/kiln-unit-slurm-XXXXXX";
	CHECK(mkdtemp(dir) != NULL && chdir(dir) == 0);
	SchedSummary sum;
	run_recipe(recipe, &sum);

	Buf a = {0};
	/* its command had finished when the cancel came (its exit file unmarked): done */
	attempts_of("done_at_cancel", &a);
	CHECK_CONTAINS(buf_str(&a), "0 ok -;");
	/* a handler that quit with exit 0 at the signal: stopped, not done */
	buf_reset(&a);
	attempts_of("handler_exit0", &a);
	CHECK(strstr(buf_str(&a), " ok ") == NULL);
	/* preempted while it saved, exit 0: given back (no retry spent) and run again */
	buf_reset(&a);
	attempts_of("preempted_saving", &a);
	CHECK_CONTAINS(buf_str(&a), "node-lost;");
	CHECK_CONTAINS(buf_str(&a), "0 ok -;");
	CHECK(strstr(buf_str(&a), "node-lost;") < strstr(buf_str(&a), "0 ok -;"));
	/* preempted after its command had finished: done, once */
	buf_reset(&a);
	attempts_of("preempted_done", &a);
	CHECK(!strcmp(buf_str(&a), "0 ok -;"));
	/* Slurm said CANCELLED before the exit file came: waited for it (its status, 7, is the
	 * one recorded, not Slurm's state's 1) */
	buf_reset(&a);
	attempts_of("exit_file_late", &a);
	CHECK_CONTAINS(buf_str(&a), "7 ");
	CHECK(jobs[job_of("exit_file_late")].final_polls >= 4);
	/* seen COMPLETING: Slurm followed its script's end, nothing to wait for after it */
	buf_reset(&a);
	attempts_of("followed_to_its_end", &a);
	CHECK(strstr(buf_str(&a), " ok ") == NULL);
	CHECK(jobs[job_of("followed_to_its_end")].final_polls == 1);
	/* it had run 40 s of its 30 when kiln first saw it: stopped at once, a timeout */
	buf_reset(&a);
	attempts_of("ran_before_seen", &a);
	CHECK_CONTAINS(buf_str(&a), "timeout;");
	/* told by its script (scancel --batch --signal=TERM: the script passes it on) */
	CHECK(jobs[job_of("ran_before_seen")].signalled && jobs[job_of("ran_before_seen")].polls <= 4);
	CHECK_CONTAINS(fake_run_log(), "scancel --signal=TERM --batch ");
	CHECK(sum.ran == 3);

	/* A Ctrl-C with stop_signal = "INT": the job kiln saw pending had started since. It
	 * gets SIGINT (`scancel --state=PENDING` first leaves it running), not Slurm's SIGTERM
	 * a plain scancel sends, and saves; the one still pending is cancelled before it runs */
	CHECK(mkdir("stop", 0777) == 0 && chdir("stop") == 0);
	run_recipe(stop_recipe, &sum);
	CHECK(sum.stopped_by_signal == SIGINT);
	int started = job_of("int_started_unseen"), waiting = job_of("int_pending");
	CHECK(started >= 0 && jobs[started].signalled && !jobs[started].cancelled);
	CHECK(waiting >= 0 && jobs[waiting].cancelled == 2 && !jobs[waiting].signalled);
	CHECK_CONTAINS(fake_run_log(), "scancel --state=PENDING ");
	CHECK_CONTAINS(fake_run_log(), "scancel --signal=INT --batch "); /* its script tells its processes */
	CHECK(strstr(fake_run_log(), "scancel --state=PENDING ") < strstr(fake_run_log(), "scancel --signal=INT"));
	buf_reset(&a);
	attempts_of("int_started_unseen", &a);
	CHECK(*buf_str(&a) && strstr(buf_str(&a), " ok ") == NULL); /* stopped: not done */
	buf_free(&a);
	CHECK(chdir("/") == 0);
	remove_tree(dir); /* no temp dirs left behind */
	return check_exit();
}
