/* test_exec_local.c — the local executor and the scheduler over the fake os layer
 * (os_fake.c): the real exec_local.c speaks the keeper protocol to a scripted keeper, so
 * retries, failure classes, GPU leases, the attempt records written from the lease, and
 * the take-over of attempts a killed kiln left are checked without running a process. */
#define _GNU_SOURCE
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../cache/cache.h"
#include "../../runner/exec/exec.h"
#include "../../runner/exec/gpu.h"
#include "../../runner/recipe/recipe.h"
#include "../../runner/sched/sched.h"
#include "check.h"
#include "os_fake.h"

static const char recipe[] =
	"task { name = 'flaky', run = 'train flaky', gpus = 1, retries = 2 }\n"
	"task { name = 'oom', run = 'train oom', gpus = 1, retries = 3 }\n"
	"task { name = 'plain', run = 'train plain', gpus = 1 }\n"
	"task { name = 'cpu', run = 'train cpu' }\n";

/* flaky fails its first attempt (a lost peer: retried), oom runs out of memory (never
 * retried by default), the others succeed. Each attempt's log says what it did. */
static int flaky_tries;
static int attempt_status(const FakeAttempt *a)
{
	const char *cmd = a->argv[0] ? a->argv[2] : "";
	FILE *log = fopen(a->log, "a");
	int status = 0;
	if (!strcmp(cmd, "train flaky") && flaky_tries++ == 0) {
		fprintf(log, "RuntimeError: NCCL communicator was aborted: connection reset by peer\n");
		status = 1 << 8;
	} else if (!strcmp(cmd, "train oom")) {
		fprintf(log, "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n");
		status = 1 << 8;
	}
	fclose(log);
	return status;
}

static Graph *load(void)
{
	char cwd[4096];
	CHECK(getcwd(cwd, sizeof cwd) != NULL);
	Graph *g = graph_new(cwd);
	Buf err = {0};
	CHECK(write_file_atomic("kiln.lua", recipe, strlen(recipe)) == 0);
	RecipeLoad lo = {.executors = exec_kind_list()};
	CHECK(recipe_load(g, "kiln.lua", &lo, &err) == 0);
	CHECK(graph_resolve(g, NULL, NULL, &err) == 0);
	CHECK(graph_select(g, NULL, 0, &err) == 4);
	if (err.len)
		fprintf(stderr, "%s\n", buf_str(&err));
	buf_free(&err);
	return g;
}

/* The attempt rows, "task executor host gpus" each, in start order. */
static void attempt_rows(Buf *out)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	CHECK(sqlite3_open(".kiln/state.db", &db) == SQLITE_OK);
	CHECK(sqlite3_prepare_v2(db,
				 "SELECT task, executor, coalesce(host, '-'), gpus, job_id, failure FROM attempts "
				 "WHERE attempt > 0 ORDER BY id",
				 -1, &st, NULL) == SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		for (int i = 0; i < 6; i++) {
			const char *v = (const char *)sqlite3_column_text(st, i);
			buf_printf(out, "%s%s", i ? " " : "", v ? v : "NULL");
		}
		buf_putc(out, '\n');
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* The workspace's state opened for g, in a new run named run. */
static Cache *open_run(Graph *g, const char *run)
{
	Buf err = {0};
	CacheOptions copt = {.store_max_mib = 16};
	Cache *c = cache_open(".kiln", g, &copt, &err);
	CHECK(c && cache_loaded(c, &err) == 0);
	CHECK(cache_begin_run(c, run) == 0 && cache_run_id(c) > 0);
	buf_free(&err);
	return c;
}

static void test_retries_classes_and_leases(void)
{
	fake_reset();
	fake_attempt_status = attempt_status;
	Graph *g = load();
	Buf err = {0};
	Cache *c = open_run(g, "test");
	GpuPool *gpus = gpu_pool_from_list("0,1", &err);
	Executor *local = exec_local_new(c, 0);
	Executor *executors[] = {local};
	Executor **task_exec = xmalloc((size_t)g->ntasks * sizeof *task_exec);
	for (int i = 0; i < g->ntasks; i++)
		task_exec[i] = local;
	SchedOptions o = {.jobs = 4, .keep_going = 1, .cpus = 4, .mem_mib = 1024, .log_dir = ".kiln/logs", .gpus = gpus,
			  .executors = executors, .nexecutors = 1, .task_exec = task_exec, .cache = c};
	SchedSummary sum;
	CHECK(sched_run(g, &o, &sum) == 1);
	CHECK(sum.ran == 3 && sum.failed == 1);
	/* flaky twice (its lost peer retried), oom once (memory is not retried), plain, cpu */
	CHECK(fake_attempt_count() == 5);
	CHECK(flaky_tries == 2);
	for (int i = 0; i < fake_attempt_count(); i++) {
		const FakeAttempt *a = fake_attempt(i);
		const char *devices = fake_attempt_env(a, "CUDA_VISIBLE_DEVICES");
		if (!strcmp(a->argv[2], "train cpu")) {
			CHECK(devices == NULL); /* no lease, no devices */
			continue;
		}
		CHECK(devices && (!strcmp(devices, "0") || !strcmp(devices, "1")));
		CHECK(fake_attempt_env(a, "CUDA_DEVICE_ORDER") && !strcmp(fake_attempt_env(a, "CUDA_DEVICE_ORDER"), "PCI_BUS_ID"));
		CHECK(fake_attempt_env(a, "KILN_TASK") != NULL);
	}
	/* every lease went back: both devices can be leased together */
	int ids[2];
	CHECK(gpu_lease(gpus, 2, 0, ids) == 0);
	gpu_release(gpus, ids, 2);
	cache_end_run(c, "failed");
	cache_close(c);
	local->destroy(local);

	/* the records are written from the one lease: this machine, the devices the child saw */
	Buf rows = {0};
	attempt_rows(&rows);
	const char *text = buf_str(&rows);
	CHECK_CONTAINS(text, "flaky local fakehost ");
	CHECK_CONTAINS(text, "oom local fakehost ");
	CHECK_CONTAINS(text, " oom\n");      /* oom's failure class */
	CHECK_CONTAINS(text, " comm\n");     /* flaky's first attempt */
	CHECK_CONTAINS(text, "cpu local fakehost  local/"); /* no devices */
	CHECK(strstr(text, "fakehost/") == NULL);           /* no host in a job id */
	int gpu_rows = 0;
	for (const char *p = text; (p = strstr(p, " fakehost ")); p++)
		gpu_rows += p[10] == '0' || p[10] == '1';
	CHECK(gpu_rows == 4);
	buf_free(&rows);
	free(task_exec);
	gpu_pool_free(gpus);
	graph_free(g);
	buf_free(&err);
}

/* A killed kiln left two open attempts: one of this machine's (a task no longer in the
 * recipe, still running, holding device 1) and one of another host's. The take-over adopts
 * the first by its record's host and leases its device, leaves the other alone, and the
 * stale one is stopped. */
static void test_take_over_by_host_column(void)
{
	fake_reset();
	Graph *g = load();
	Buf err = {0};
	Cache *c = open_run(g, "killed");
	pid_t leader = fake_live_process(), keeper = fake_live_process();
	char job_id[128];
	snprintf(job_id, sizeof job_id, "local/%d/%d/%d/%d", (int)leader, 1000 + (int)leader, (int)keeper,
		 1000 + (int)keeper);
	AttemptRecord mine = {.task = "gone", .attempt = 1, .executor = "local", .host = "fakehost", .gpus = "1",
			      .log = ".kiln/logs/gone@1.log", .job_id = job_id, .key = "00"};
	AttemptRecord theirs = mine;
	theirs.host = "otherhost";
	CHECK(cache_attempt_started(c, &mine) > 0);
	CHECK(cache_attempt_started(c, &theirs) > 0);
	GpuPool *gpus = gpu_pool_from_list("0,1", &err);
	Executor *local = exec_local_new(c, 0);
	CHECK(exec_local_take_over(local, c, gpus) >= 0);
	int ids[2];
	CHECK(gpu_lease(gpus, 2, 0, ids) != 0); /* device 1 is the adopted attempt's */
	CHECK(gpu_lease(gpus, 1, 0, ids) == 0 && ids[0] == 0);
	gpu_release(gpus, ids, 1);
	CHECK(exec_local_stop_stale(local, g, 0) == 1); /* "gone" left the recipe: stopped */
	char sent[64];
	snprintf(sent, sizeof sent, "%d:15 ", -(int)leader);
	CHECK_CONTAINS(fake_signal_log(), sent);
	local->destroy(local);
	cache_close(c);
	gpu_pool_free(gpus);
	graph_free(g);
	buf_free(&err);
}

/* A killed kiln left two attempts of one task running (the second a retry it had started,
 * not yet recorded as the first's successor): when the task starts again, neither may run
 * on beside it. The latest is the one re-attached to (here its key changed: it is stopped
 * too) and the older one is stopped with it. */
static void test_two_attempts_of_a_task_left_running(void)
{
	fake_reset();
	Graph *g = load();
	Cache *c = open_run(g, "killed");
	pid_t leaders[2];
	for (int k = 0; k < 2; k++) {
		pid_t keeper = fake_live_process();
		leaders[k] = fake_live_process();
		char job_id[128], log[64];
		snprintf(job_id, sizeof job_id, "local/%d/%d/%d/%d", (int)leaders[k], 1000 + (int)leaders[k], (int)keeper,
			 1000 + (int)keeper);
		snprintf(log, sizeof log, ".kiln/logs/cpu@%d.log", k + 1);
		AttemptRecord r = {.task = "cpu", .attempt = k + 1, .executor = "local", .host = "fakehost",
				   .log = log, .job_id = job_id, .key = "00"};
		CHECK(cache_attempt_started(c, &r) > 0);
	}
	Executor *local = exec_local_new(c, 0);
	CHECK(exec_local_take_over(local, c, NULL) >= 0);
	Executor *executors[] = {local};
	Executor **task_exec = xmalloc((size_t)g->ntasks * sizeof *task_exec);
	for (int i = 0; i < g->ntasks; i++)
		task_exec[i] = local;
	SchedOptions o = {.jobs = 4, .keep_going = 1, .cpus = 4, .mem_mib = 1024, .log_dir = ".kiln/logs",
			  .executors = executors, .nexecutors = 1, .task_exec = task_exec, .cache = c};
	SchedSummary sum;
	for (int i = 0; i < g->ntasks; i++) /* the others need devices this run has none of */
		g->tasks[i]->needed = !strcmp(g->tasks[i]->name, "cpu");
	CHECK(sched_run(g, &o, &sum) == 0 && sum.ran == 1);
	for (int k = 0; k < 2; k++) {
		char sent[64];
		snprintf(sent, sizeof sent, "%d:15 ", -(int)leaders[k]);
		CHECK_CONTAINS(fake_signal_log(), sent);
	}
	local->destroy(local);
	cache_close(c);
	free(task_exec);
	graph_free(g);
}

int main(void)
{
	char dir[] = "/tmp/kiln-exec-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	CHECK(chdir(dir) == 0);
	test_retries_classes_and_leases();
	remove_tree(".kiln");
	test_take_over_by_host_column();
	remove_tree(".kiln");
	test_two_attempts_of_a_task_left_running();
	CHECK(chdir("/") == 0);
	remove_tree(dir);
	return check_exit();
}
