/* sched.h — running the needed part of a graph: a ready queue, resource slots (jobs,
 * cpus, memory, GPUs), retries, timeouts, -k, and a clean stop on SIGINT/SIGTERM. */
#ifndef KILN_SCHED_H
#define KILN_SCHED_H

#include <stdio.h>

#include "../../cache/cache.h"
#include "../exec/exec.h"
#include "../exec/gpu.h"
#include "../../base/graph.h"

typedef struct {
	int jobs;             /* at most this many tasks at once */
	int keep_going;       /* -k */
	int cpus;             /* CPU capacity for tasks' `cpus` */
	long long mem_mib;    /* memory capacity for tasks' `mem` */
	double kill_grace_sec;/* SIGTERM → SIGKILL delay for timeouts and stops */
	const char *log_dir;  /* e.g. ".kiln/logs" */
	GpuPool *gpus;
	double gpu_wait_sec;  /* --gpu-wait: how long a task waits for busy GPUs (0: as long as it takes) */
	Executor **executors; /* every executor some needed task uses */
	int nexecutors;
	Executor **task_exec; /* per task index: the executor chosen for it (once, by the caller) */
	Cache *cache;
} SchedOptions;

typedef struct {
	int total, ran, up_to_date, restored, failed, not_run;
	int taken_up;          /* of ran: done by attempts an earlier kiln started, re-attached */
	double gpu_wait_sec;   /* time tasks spent waiting for a GPU, summed */
	double gpu_wait_max_sec; /* the longest one task waited */
	int gpu_waiters;       /* tasks that waited for a GPU */
	int stopped_by_signal; /* 0, or SIGINT/SIGTERM/SIGHUP */
	int cut_short;         /* attempts that stop stopped (recorded interrupted, not done) */
	double wall_sec;
} SchedSummary;

/* Runs every needed task (graph_select() first). Prints progress and the summary.
 * Returns 0 when all succeeded, 1 when a task failed, 128+sig when stopped. */
int sched_run(Graph *g, const SchedOptions *o, SchedSummary *sum);

/* A task's expected duration, as the plan estimates it: its own last recorded one, else
 * the mean of tasks that differ in one tag value, else of any with its tag keys. */
typedef struct Estimator Estimator;
Estimator *estimator_new(Graph *g, Cache *c);
/* Seconds, or -1 when nothing recorded says. */
double estimator_task(Estimator *e, const Task *t);
void estimator_free(Estimator *e);

/* What runs at once, for a plan's ETA: job slots, CPUs and GPUs (0: none) here; for tasks
 * that run elsewhere (elsewhere[t->index] set: ssh hosts, Slurm), the slots and GPUs of
 * the hosts (0: not known, no bound) and how many there are (0: a cluster's own). */
typedef struct {
	int slots, cpus, gpus;
	const unsigned char *elsewhere;
	int hosts, host_slots, host_gpus;
} PlanCapacity;
/* Prints what a run would do, in order, with the reason for each task that would run
 * or be restored, then its estimated cost (work, GPU-hours, an ETA bound by the slots, the
 * CPUs the tasks hold and their GPUs); runs nothing. all: also list up-to-date tasks.
 * Returns the number that would run; restores (when given) gets the number whose outputs
 * would be restored, at_work (when given) the number of those the kiln at work in the
 * workspace now runs (each told by its running line, not a run line). */
int sched_plan(Graph *g, Cache *c, FILE *out, int all, PlanCapacity cap, int *restores, int *at_work);

/* Log file path of a task attempt: <log_dir>/<name>@<attempt>.log; malloc'd. */
char *sched_log_path(const char *log_dir, const Task *t, int attempt);

#endif
