/* sched_internal.h — the scheduler's run state, shared by sched.c and shards.c (map{}
 * shards: item tasks batched into one process per shard). Not for other modules. */
#ifndef KILN_SCHED_INTERNAL_H
#define KILN_SCHED_INTERNAL_H

#include "ports.h"
#include "sched.h"
#include "status.h"
#include "../recipe/failure.h"

typedef struct {
	Task *task;
	char *reason; /* malloc'd */
	char *log;    /* malloc'd or NULL */
} Failure;

typedef struct {
	const SchedOptions *o;
	Graph *g;
	SchedSummary *sum;
	Status st;
	Task **ready;      /* dependencies done, not yet checked: a FIFO */
	int ready_head, ready_len;
	Task **runnable;   /* must run, waiting for a slot: a queue in [runnable_head, */
	int runnable_head, runnable_end, runnable_cap; /* runnable_end), NULL where one started */
	int nrunnable;     /* tasks still in the queue */
	Job *running;
	int nrunning;
	int free_jobs, free_cpus;
	int remote_slots;  /* some executor keeps slots of its own (not this machine's) */
	long long free_mem;
	int stopping, start_failures_pending, waiting_for_gpu;
	int done;
	Failure *failures;
	int nfailures;
	int64_t *attempt_ids; /* per task index: the open attempt row */
	int *attempt_no;      /* per task index: its last attempt number (across runs), 0 before asked */
	int64_t *wait_since;  /* per task index: when it began waiting for a GPU, 0 when not */
	int64_t *wait_noted;  /* per task index: when its waiting was last printed */
	Buf wait_text;        /* "t waits for a GPU: ..." for the status line, "" when none waits */
	PortPool *ports;      /* held by running attempts */
	/* Successes recorded in the open batch: reported once the batch is committed, so no
	 * "ok" is printed (or counted) for a success a full disk kept from being recorded. */
	Task **unconfirmed;
	char **unconfirmed_lines;
	int nunconfirmed, unconfirmed_cap;
	const char *state_error; /* set once a commit failed: nothing new starts */
	struct ShardRun *shards;  /* per map shard (g->shards): shards.c */
	int64_t progress_printed_ns; /* the last progress line on plain output */
	Buf queue_said;          /* the executors' queue parts last printed (no terminal) */
	int64_t queue_said_ns;
	/* the status line's ETA (sched_line.c): each task that runs, estimated as `run -n` does */
	struct Estimator *est;   /* built at the first task that must run: a no-op run builds none */
	signed char *est_state;  /* per task: 1 planned, 2 ended, 0 neither */
	double *est_sec;         /* per task: its estimate, or -1 unknown */
	double est_known, est_done_known; /* seconds: planned with an estimate, and ended of those */
	int est_nknown, est_nunknown, est_ended, est_ended_unknown;
	int64_t started_ns;
} Run;

/* sched_line.c: a task that must run is planned (its estimate counted), and has ended. */
void sched_eta_planned(Run *r, Task *t);
void sched_eta_ended(Run *r, const Task *t);
void sched_eta_free(Run *r);

/* sched.c */
void task_done(Run *r, Task *t);
void task_failed(Run *r, Task *t, const char *reason, const char *log);
/* Starts t (a task or a shard's runner) when slots allow: 1 if it started or failed for
 * good (it leaves the queue), 0 if it must wait. */
int try_start(Run *r, Task *t);

/* sched_job.c: the number of t's next attempt (t->attempt counts this run's), and a new
 * attempt's Job: its log path and environment, with the devices ids (NULL: none leased
 * here) and the nports ports reserved for it. */
int sched_next_attempt(Run *r, Task *t);
Job *sched_new_job(Run *r, Task *t, Executor *ex, const char *key, const int *ids, const int *ports, int nports);
/* Writes job's attempt record from its lease (executor, host, gpus, ports, job id, key);
 * its row id. */
int64_t sched_record_start(Run *r, const Job *job);
/* Before job starts (unless it re-attaches: what that attempt made stays): its task's
 * outputs cleared and its resume state kept or not, said in a note when a checkpoint cut
 * short was mended; KILN_RESUME=1 appended at env[*nenv] when it continues. */
void sched_prepare_outputs(Run *r, Job *job, int reattach, int *nenv);
/* A Ctrl-C stopped t's attempt: says what of its resume state the next run continues from
 * (and sched_hint_checkpoints). */
void sched_say_kept(Run *r, const Task *t);
/* t's attempt ended unfinished (stopped, or failed with no retry left) and t names no
 * resume state: an output holding checkpoints (a Hugging Face output_dir with its
 * checkpoint-N) is said to be deleted by its next attempt, and `resume` to keep it. */
void sched_hint_checkpoints(Run *r, const Task *t);
/* The running jobs' clocks: a timeout's stop signal, and SIGKILL once its grace is over. */
void sched_check_clocks(Run *r);
/* The signal kiln stops job's command with (a Ctrl-C, a timeout): its task's stop_signal,
 * or SIGTERM. */
int sched_stop_signal(const Job *job);
/* How long the main loop may wait for an event: until the next clock, a poll an executor
 * or a shard wants, or the status line's next refresh; -1: no limit. */
int sched_wait_ms(const Run *r);

/* sched_line.c: draws the status line (the running tasks, progress, maps, queues). */
void sched_status_line(Run *r);

/* sched_summary.c: prints the run's end: counts, failures with their logs' tails. */
void sched_print_summary(Run *r, SchedSummary *s);

/* gpu_wait.c: leases t's GPUs into ids (1, with how long it waited for them in waited), or
 * waits (0: it stays queued; it may have failed its bounded wait, then t->state is TS_FAILED) */
int lease_gpus(Run *r, Task *t, int *ids, double *waited);
/* Whether t's executor has room for it now (Executor.has_room); a wait for its devices
 * there (ssh hosts') is said, counted and bounded (gpu_wait) as a wait for this machine's
 * is: after it, the least busy devices there, or t fails (gpu_wait_then = "fail"). */
int executor_has_room(Run *r, Executor *ex, Task *t);

/* shards.c */
void shards_init(Run *r);
void shards_free(Run *r);
/* An item task's verdict is in: it must run (queued for its shard) or it is settled. */
void shard_item_pending(Run *r, Task *t);
void shard_item_settled(Run *r, Task *t);
/* Starts each shard whose items are all decided and some pending; records the items whose
 * outputs are complete while shards run. */
void shards_start(Run *r);
void shards_poll(Run *r);
/* Before the runner's attempt starts: clears the pending items' outputs and writes their
 * list (.kiln/maps/RUNNER.items, linked as LOGDIR/RUNNER@ATTEMPT.items beside the attempt's
 * log: which attempt ran an item, for `kiln log MAP/ITEM`); returns its path (malloc'd), or
 * NULL with err. reattach: the attempt is one a previous kiln left running, whose list is
 * read instead (outputs kept, its order followed). */
char *shard_prepare(Run *r, Task *runner, int attempt, int reattach, Buf *err);
/* The items the runner's attempt makes, in its list's order (a malloc'd copy; n set). */
Task **shard_items(Run *r, const Task *runner, int *n);
/* Before kiln stops a job (Ctrl-C, its timeout): for a local shard of a map with
 * atomic_outputs, freezes its process group (SIGSTOP; the SIGTERM that follows comes with a
 * SIGCONT) and notes its last item with outputs if no process of the group holds one open
 * or mapped: renamed into place, it is finished, and is recorded when the shard has
 * stopped, outputs unchanged, rather than run again. Other jobs: nothing. */
void shard_note_stop(Run *r, Job *job);
/* The shard's process ended: records its complete items, then the rest are recorded
 * (SHARD_OK), kept for the next attempt (SHARD_RETRY), not run (SHARD_STOPPED) or failed
 * with why (SHARD_FAILED). */
enum { SHARD_OK, SHARD_RETRY, SHARD_STOPPED, SHARD_FAILED };
void shard_job_ended(Run *r, Job *job, const char *why, int mode);
/* Whether a shard runs (the loop then wakes often enough to follow its items), and
 * whether one has items waiting to start (the run is not over). */
int shards_running(const Run *r);
int shards_waiting(const Run *r);
/* "caption: 812/5000 items, 26.1/s, ETA 2m40s" for the status line, "" when none. */
void shards_progress(Run *r, Buf *out, int force_print);

/* job_end.c */
/* How a failed attempt ended, in words ("exit status 1", "timed out after 5m ..."). */
void failure_describe_end(const Job *job, char *out, size_t n);
/* "; the line is bash's (...)" when the log at log_path ends in dash's word on bash syntax,
 * else "": a command string /bin/sh could not run, and shell = "bash" would. */
void failure_hint_bash(const char *log_path, char *out, size_t n);
/* The class of a failed attempt, from how it ended and its log's tail. */
enum FailureClass failure_of_job(const Job *job);
/* Ends a failed attempt's log with how it ended, so `kiln log` says it beside the output. */
void failure_note_in_log(const Job *job, const char *why);
/* How the task of an attempt lost with its host (or Slurm node, or while no kiln watched)
 * runs again, in words that follow "it runs again". */
const char *lost_runs_again(const Job *job);

#endif
