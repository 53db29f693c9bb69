/* gpu_wait.c — leasing GPUs for a task that is ready to start, and waiting while they are
 * leased or busy: the bounded wait for devices other programs keep busy (gpu_wait,
 * --gpu-wait, then the least busy or class gpu-busy), what the wait prints, and how long
 * tasks waited. Part of the scheduler (sched_internal.h). */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "../recipe/failure.h"
#include "sched_internal.h"

/* A task whose GPUs are all leased or busy waits; while devices kiln did not lease are
 * busy the wait is bounded (gpu_wait, --gpu-wait), then it takes the least busy ones or
 * fails with class gpu-busy. The wait is printed when it starts and every 30 s, and the
 * status line shows it. Returns 1 with ids filled when leased. */
static double end_gpu_wait(Run *r, const Task *t);
static void note_gpu_wait(Run *r, const Task *t, const char *devices);

/* One task's wait for a GPU, into the run's summary. */
static void count_wait(SchedSummary *sum, double sec)
{
	sum->gpu_wait_sec += sec;
	sum->gpu_waiters++;
	if (sec > sum->gpu_wait_max_sec)
		sum->gpu_wait_max_sec = sec;
}

/* Whether t's bounded wait for devices other programs keep busy is over (gpu_wait, --gpu-wait). */
static int gpu_wait_over(const Run *r, const Task *t, double *limit)
{
	int64_t since = r->wait_since[t->index];
	*limit = t->opts->gpu_wait_sec >= 0 ? t->opts->gpu_wait_sec : r->o->gpu_wait_sec;
	return since && *limit > 0 && now_mono_ns() - since >= (int64_t)(*limit * 1e9);
}

/* gpu_wait_then = "fail": t fails with class gpu-busy, recorded as an attempt. */
static void fail_gpu_wait(Run *r, Task *t, double limit)
{
	const SchedOptions *o = r->o;
	char why[160];
	snprintf(why, sizeof why, "no GPU became free within gpu_wait = %.0f s [%s]", limit, failure_name(FC_GPU_BUSY));
	AttemptRecord rec = {.task = t->name, .attempt = ++t->attempt, .executor = o->task_exec[t->index]->name};
	int64_t id = cache_attempt_started(o->cache, &rec);
	cache_attempt_ended(o->cache, id, -1, why, failure_name(FC_GPU_BUSY));
	end_gpu_wait(r, t);
	task_failed(r, t, why, NULL);
}

int lease_gpus(Run *r, Task *t, int *ids, double *waited)
{
	const SchedOptions *o = r->o;
	int leased = gpu_lease(o->gpus, t->opts->gpus, t->opts->gpu_mem_mib, ids) == 0;
	double limit;
	if (!leased && gpu_wait_over(r, t, &limit) && gpu_busy_count(o->gpus) > 0) {
		if (t->opts->gpu_wait_fail) {
			fail_gpu_wait(r, t, limit);
			return 0;
		}
		leased = gpu_lease_least_busy(o->gpus, t->opts->gpus, ids) == 0;
		if (leased)
			status_print(&r->st, "note", "%s: waited %.0f s for a free GPU; taking the least busy", t->name, limit);
	}
	if (leased) {
		*waited = end_gpu_wait(r, t);
		return 1;
	}
	Buf devices = {0};
	gpu_describe(o->gpus, &devices);
	note_gpu_wait(r, t, buf_str(&devices));
	buf_free(&devices);
	return 0;
}

static double end_gpu_wait(Run *r, const Task *t)
{
	int64_t *since = &r->wait_since[t->index];
	double waited = *since ? (double)(now_mono_ns() - *since) / 1e9 : 0;
	if (*since)
		count_wait(r->sum, waited);
	*since = 0;
	return waited;
}

static void note_gpu_wait(Run *r, const Task *t, const char *devices)
{
	int64_t now = now_mono_ns(), *since = &r->wait_since[t->index];
	r->waiting_for_gpu = 1;
	buf_reset(&r->wait_text);
	buf_printf(&r->wait_text, "%s waits for %s: %s", t->name, t->opts->gpus > 1 ? "GPUs" : "a GPU",
		   *devices ? devices : "none known");
	if (!*since || now - r->wait_noted[t->index] >= 30000000000LL) {
		status_print(&r->st, "wait", "%s", buf_str(&r->wait_text));
		r->wait_noted[t->index] = now;
	}
	if (!*since)
		*since = now;
}

int executor_has_room(Run *r, Executor *ex, Task *t)
{
	if (!ex->has_room)
		return 1;
	if (ex->has_room(ex, t)) {
		if (!ex->local_slots && r->wait_since[t->index]) /* it waited for devices there: counted as here */
			end_gpu_wait(r, t);
		return 1;
	}
	if (!ex->gpus_wait_text || t->opts->gpus <= 0)
		return 0;
	double limit; /* the bounded wait, as for this machine's devices */
	int took = gpu_wait_over(r, t, &limit) && ex->gpus_after_wait ? ex->gpus_after_wait(ex, t, !t->opts->gpu_wait_fail) : -1;
	if (took >= 0 && t->opts->gpu_wait_fail) {
		fail_gpu_wait(r, t, limit);
		return 0;
	}
	if (took == 1) {
		status_print(&r->st, "note", "%s: waited %.0f s for a free GPU; taking the least busy", t->name, limit);
		end_gpu_wait(r, t);
		return 1;
	}
	Buf devices = {0};
	ex->gpus_wait_text(ex, t, &devices);
	if (devices.len)
		note_gpu_wait(r, t, buf_str(&devices));
	buf_free(&devices);
	return 0;
}
