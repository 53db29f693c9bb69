/* history.h — the record of past runs and their attempts, read back for `kiln report`:
 * the runs (newest first), each run's outcome counts, slowest attempts, and every attempt
 * with its times, devices, outcome and failure class. Reads only; the rows are written by
 * state.c as runs go. */
#ifndef KILN_HISTORY_H
#define KILN_HISTORY_H

#include <stdint.h>

#include "state.h"

typedef struct {
	int64_t id;
	double started, ended;
	int finished;       /* ended with an outcome */
	char outcome[32];
} StateRun;

/* The latest run; 1 if there is one, its command appended to command. */
int state_last_run(State *s, StateRun *out, Buf *command);
/* The newest limit runs, newest first: fn(ctx, run, command). */
void history_each_run(State *s, int limit, void (*fn)(void *ctx, const StateRun *run, const char *command), void *ctx);
/* Attempts of run_id by outcome ("ok", "restored", "failed", "unfinished"): count and total seconds. */
void state_each_outcome(State *s, int64_t run_id, void (*fn)(void *ctx, const char *outcome, int count, double sec),
			void *ctx);
/* The limit slowest finished attempts of run_id (restores left out), slowest first. */
void state_each_slowest(State *s, int64_t run_id, int limit,
			void (*fn)(void *ctx, const char *task, double sec, const char *outcome, const char *log), void *ctx);

/* One recorded attempt. Strings live until the callback returns. */
typedef struct {
	const char *task, *gpus, *outcome, *failure, *log; /* outcome NULL: never ended */
	const char *host;   /* the ssh host it ran on, or "" (this machine, or Slurm's) */
	int attempt;
	double started, ended;
	double waited;      /* seconds it waited for its GPUs before it started */
} HistoryAttempt;
/* Every attempt of run_id, in start order. */
void history_each_attempt(State *s, int64_t run_id, void (*fn)(void *ctx, const HistoryAttempt *a), void *ctx);
/* Every task's latest successful attempt that ran a process: fn(ctx, task, seconds). */
void history_each_duration(State *s, void (*fn)(void *ctx, const char *task, double sec), void *ctx);
/* Every task's latest attempt (any run): fn(ctx, run_id, attempt) (started/ended unset). */
void history_each_latest(State *s, void (*fn)(void *ctx, int64_t run_id, const HistoryAttempt *a), void *ctx);

/* The latest attempt of task that ran (restores left out): 1 with its key (hex, "" when none
 * was recorded) and whether it succeeded, 0 when it never ran. */
int history_last_attempt(State *s, const char *task, char key[33], int *finished_ok);
/* Whether task's outputs were last recorded by `kiln accept` (after the last success its
 * command made): 1 with when, and in which run; 0 when not. */
int history_accepted(State *s, const char *task, double *when, int64_t *run_id);
/* The same with the executor it ran under ("ssh") and where ("v800"; a multi-node job's hosts
 * in node order, "v800+v801"; "" when unrecorded). */
int history_last_attempt_host(State *s, const char *task, char key[33], int *finished_ok, char executor[16],
			      char host[128]);
/* The seconds task's attempts under key have run since its last success (an open one's until
 * now, wall clock): the work its resume state holds. */
double history_unfinished_seconds(State *s, const char *task, const char *key, double now);
/* The same with its row id and whether it is still open (no end recorded). */
int history_last_attempt_row(State *s, const char *task, char key[33], int *finished_ok, int64_t *id, int *open);
/* How an attempt stands (state_last_log): the values the state's query gives. */
enum { ATTEMPT_ENDED = 0, ATTEMPT_RUNNING = 1, ATTEMPT_SUCCEEDED = 2 };
/* Every task whose latest attempt that ran (restores left out) failed or was interrupted:
 * fn(ctx, task, outcome as recorded, e.g. "exit status 1 [error]"). */
void history_each_failed_latest(State *s, void (*fn)(void *ctx, const char *task, const char *outcome), void *ctx);
/* The highest attempt number recorded for task (0: none): attempt numbers continue from it. */
int history_max_attempt(State *s, const char *task);

/* map{}'s items ("<map>/<item>"), each with a last success: fn(ctx, task, the run that made
 * it, 0 when unknown). Other tasks whose names start so come too: the caller knows its items. */
void history_each_item_recorded(State *s, const char *map, void (*fn)(void *ctx, const char *task, int64_t run_id),
				void *ctx);

/* One ssh host: what a run did there, and how many paths kiln has placed there. */
typedef struct HistoryHost {
	const char *host;
	int done, failed, lost, stopped; /* stopped: interrupted, or never ended */
	double gpu_sec;
	int holds;
} HistoryHost;
/* Per ssh host (the attempts' host column), what run_id did there and what kiln has placed
 * there (cache/placements.c). */
void history_each_host(State *s, int64_t run_id, void (*fn)(void *ctx, const HistoryHost *h), void *ctx);
/* The latest run that ran anything on a host (0: none). */
int64_t history_last_host_run(State *s);

#endif
