/* test_sched.c — slot accounting through a fake executor: jobs, cpus, memory and GPUs
 * are never oversubscribed, dependencies finish first, -k and failure stop rules. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "../../cache/cache.h"
#include "../../base/os.h"
#include "../../runner/sched/sched.h"
#include "check.h"

/* The fake executor keeps started jobs and ends the oldest one at each reap, checking
 * the resources in use against the capacities on every start. */
typedef struct {
	Job *jobs[256];
	int n;
	int cpus_in_use, gpus_in_use, max_running, max_cpus;
	long long mem_in_use;
	int cap_cpus, cap_gpus;
	long long cap_mem;
	int overbooked, order_broken, started;
	const char *fail_task;
	Graph *g;
} Fake;

static Fake fake;

static int fake_start(Executor *ex, Job *job)
{
	(void)ex;
	Task *t = job->task;
	for (int i = 0; i < t->ndeps; i++)
		if (t->deps[i]->state != TS_DONE)
			fake.order_broken = 1;
	fake.jobs[fake.n++] = job;
	fake.started++;
	fake.cpus_in_use += t->opts->cpus;
	fake.mem_in_use += t->opts->mem_mib;
	fake.gpus_in_use += t->opts->gpus;
	if (fake.n > fake.max_running)
		fake.max_running = fake.n;
	if (fake.cpus_in_use > fake.max_cpus)
		fake.max_cpus = fake.cpus_in_use;
	if (fake.cpus_in_use > fake.cap_cpus || fake.mem_in_use > fake.cap_mem || fake.gpus_in_use > fake.cap_gpus)
		fake.overbooked = 1;
	job->pid = 0;
	kill(getpid(), SIGCHLD); /* wake the scheduler's wait */
	return 0;
}

static int fake_reap(Executor *ex, Job **out, int max)
{
	(void)ex;
	if (fake.n == 0 || max < 1)
		return 0;
	Job *job = fake.jobs[0];
	memmove(fake.jobs, fake.jobs + 1, (size_t)--fake.n * sizeof *fake.jobs);
	Task *t = job->task;
	fake.cpus_in_use -= t->opts->cpus;
	fake.mem_in_use -= t->opts->mem_mib;
	fake.gpus_in_use -= t->opts->gpus;
	job->end = JOB_EXITED;
	job->exit_code = fake.fail_task && !strcmp(t->name, fake.fail_task) ? 1 : 0;
	out[0] = job;
	if (fake.n)
		kill(getpid(), SIGCHLD);
	return 1;
}

static void fake_signal(Executor *ex, Job *job, int sig) { (void)ex, (void)job, (void)sig; }

static Task *add(Graph *g, const char *name, int cpus, long long mem, int gpus, Task *dep)
{
	Task *t = graph_new_task(g);
	t->name = name;
	graph_task_opts(g, t)->file = "r.lua"; /* opts of its own: written below */
	task_set_shell(t, "true"); /* the fake executor runs nothing, but a task without a command never reaches it */
	t->opts->cpus = cpus;
	t->opts->mem_mib = mem;
	t->opts->gpus = gpus;
	if (dep) {
		graph_task_more(g, t)->dep_names = arena_alloc(&g->arena, sizeof(char *));
		t->more->dep_names[0] = dep->name;
		t->more->ndep_names = 1;
	}
	graph_add_task(g, t);
	return t;
}

static int run(Graph *g, int jobs, int keep_going, SchedSummary *sum)
{
	char dir[] = "/tmp/kiln-sched-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char *kdir = xasprintf("%s/.kiln", dir);
	Buf err = {0};
	CacheOptions copt = {.store_max_mib = 16};
	Cache *c = cache_open(kdir, g, &copt, &err);
	CHECK(c != NULL && cache_loaded(c, &err) == 0);
	GpuPool *gpus = gpu_pool_from_list("0,1,2", &err);
	Executor ex = {.name = "fake", .local_slots = 1, .start = fake_start, .reap = fake_reap, .signal = fake_signal};
	Executor *executors[] = {&ex};
	Executor **task_exec = xmalloc((size_t)g->ntasks * sizeof *task_exec);
	for (int i = 0; i < g->ntasks; i++)
		task_exec[i] = &ex;
	SchedOptions o = {.jobs = jobs, .keep_going = keep_going, .cpus = fake.cap_cpus, .mem_mib = fake.cap_mem,
			  .log_dir = kdir, .gpus = gpus, .executors = executors, .nexecutors = 1, .task_exec = task_exec,
			  .cache = c};
	int rc = sched_run(g, &o, sum);
	cache_close(c);
	gpu_pool_free(gpus);
	free(task_exec);
	remove_tree(dir); /* no temp dirs left behind */
	free(kdir);
	buf_free(&err);
	return rc;
}

int main(void)
{
	os_block_signals();
	Graph *g = graph_new("/tmp");
	Buf err = {0};
	static char names[60][16];
	Task *prev = NULL;
	for (int i = 0; i < 60; i++) {
		snprintf(names[i], sizeof names[i], "t%d", i);
		/* a mix of shapes; every fifth task depends on the one before */
		prev = add(g, names[i], 1 + i % 3, (i % 4) * 1000, i % 5 == 0 ? 2 : i % 2, i % 5 == 4 ? prev : NULL);
	}
	CHECK(graph_resolve(g, NULL, NULL, &err) == 0);
	CHECK(graph_select(g, NULL, 0, &err) == 60);
	fake = (Fake){.cap_cpus = 4, .cap_gpus = 3, .cap_mem = 4000};
	SchedSummary sum;
	CHECK(run(g, 8, 0, &sum) == 0);
	CHECK(sum.ran == 60 && sum.failed == 0);
	CHECK(!fake.overbooked);
	CHECK(!fake.order_broken);
	CHECK(fake.max_running >= 2); /* parallelism happened */
	CHECK(fake.max_cpus <= 4);

	/* -j 1: never two at once */
	fake = (Fake){.cap_cpus = 4, .cap_gpus = 3, .cap_mem = 4000};
	CHECK(run(g, 1, 0, &sum) == 0);
	CHECK(fake.max_running == 1);
	graph_free(g);

	/* a failure: without -k nothing new starts; with -k only its downstream is skipped */
	g = graph_new("/tmp");
	Task *bad = add(g, "bad", 1, 0, 0, NULL);
	add(g, "down", 1, 0, 0, bad);
	Task *ok1 = add(g, "ok1", 1, 0, 0, NULL);
	add(g, "ok2", 1, 0, 0, ok1);
	CHECK(graph_resolve(g, NULL, NULL, &err) == 0);
	graph_select(g, NULL, 0, &err);
	fake = (Fake){.cap_cpus = 1, .cap_gpus = 0, .cap_mem = 10, .fail_task = "bad"};
	CHECK(run(g, 1, 0, &sum) == 1);
	CHECK(sum.failed == 1 && sum.ran == 0 && sum.not_run == 3);
	fake = (Fake){.cap_cpus = 1, .cap_gpus = 0, .cap_mem = 10, .fail_task = "bad"};
	CHECK(run(g, 1, 1, &sum) == 1);
	CHECK(sum.failed == 1 && sum.ran == 2 && sum.not_run == 1);
	graph_free(g);
	buf_free(&err);
	return check_exit();
}
