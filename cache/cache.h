/* cache.h — "is this task done?": content-hash keys, the SQLite state (.kiln/state.db)
 * and the output store (.kiln/objects). The scheduler asks cache_check() when a task's
 * dependencies are finished and calls cache_record_success() after its command exits 0.
 * Library module: never exits; errors come back as -1 plus a message. */
#ifndef KILN_CACHE_H
#define KILN_CACHE_H

#include <stdint.h>
#include <sys/types.h>

#include "state/metrics.h"
#include "state/history.h"
#include "../base/graph.h"

typedef struct Cache Cache;

typedef struct {
	long long store_max_mib; /* outputs larger than this are not kept in the store */
	int readonly;            /* status / why / list: no writes, no lock */
} CacheOptions;

enum Verdict {
	VERDICT_UP_TO_DATE, /* key and outputs match the last success */
	VERDICT_RESTORED,   /* outputs put back from the store (dry: would be) */
	VERDICT_RUN,        /* must run; the reason says why */
};

/* Opens (creating or migrating) kiln_dir/state.db for graph g. In write mode also takes
 * the workspace lock: a second kiln fails with a message naming the holder's pid. The
 * stored state is read by a background thread, so open the cache before loading the
 * recipe: the two overlap. g's tasks may be added after this call. */
Cache *cache_open(const char *kiln_dir, Graph *g, const CacheOptions *opt, Buf *err);
void cache_close(Cache *c);
/* `kiln clean --all`: closes c (opened for writing) and deletes kiln_dir — state, logs,
 * stored outputs — still holding the workspace lock, the lock file last. 0, or -1 when
 * something could not be removed. */
int cache_close_removing(Cache *c, const char *kiln_dir);
/* The pid of the kiln that holds the workspace lock of c's directory now (a run at work),
 * or 0 when none does. Takes no lock itself. */
int cache_lock_holder(const Cache *c);
/* The same for kiln_dir, with the holder's host in host when it is another than this one
 * (a workspace on a file system hosts share), else "". */
int cache_lock_holder_at(const char *kiln_dir, char *host, size_t host_len);
/* Waits until the state is open (the loader may still be stat'ing files): 0, or -1 with
 * why in err (a database that cannot be opened or read). Every function below requires a
 * successful cache_loaded(); cache_open's caller calls it once the recipe has loaded. */
int cache_loaded(Cache *c, Buf *err);

/* An InputExists for graph_resolve (ctx: the Cache): stats once, and hashing reuses it. */
int cache_input_exists(void *cache, Task *t, int input);
/* After graph_resolve: drops the directory listings a plan answered cache_input_exists
 * from (a million-input directory's names are tens of MiB, needed no more). */
void cache_resolved(Cache *c);

/* Starts a run: its row (with command_line) is written by cache_run_id, when the run first
 * records something, so a no-op run writes nothing. 0, or -1 when the state cannot be
 * written already (cache_write_error says why). */
int cache_begin_run(Cache *c, const char *command_line);
/* The run's id, its row written on the first call; -1 when it cannot be (cache_write_error). */
int64_t cache_run_id(Cache *c);
/* Records the run's outcome and commits; 0, or -1 (cache_write_error). */
int cache_end_run(Cache *c, const char *outcome);
/* Why the state cannot be written ("cannot record results in PATH: ... (what to do)"),
 * or NULL while every write succeeded. Once set, every later write fails as well. */
const char *cache_write_error(Cache *c);

/* Decides for task t, whose dependencies are all done (their output hashes known to the
 * cache). dry: decide only — restore nothing, write nothing. reason gets one line for
 * RUN and RESTORED ("input data/a.txt changed", CACHE_NO_SUCCESS, ...). */
enum Verdict cache_check(Cache *c, Task *t, int dry, Buf *reason);
/* The reason of a task with no success recorded, whole: callers may add to it. */
#define CACHE_NO_SUCCESS "no successful run recorded"
/* Hashes, on all cores, the source files (inputs no task produces) of the needed tasks
 * whose memo entries are out of date, so cache_check finds them hashed. Optional: call
 * after graph_select, before the first cache_check. */
void cache_prepare(Cache *c);
/* Marks t as "would run" in a dry plan, so dependents know its outputs are unknown. */
void cache_assume_will_run(Cache *c, Task *t);
/* Whether the last cache_plan() (or cache_assume_will_run) says t runs. */
int cache_will_run(Cache *c, const Task *t);
/* How many of a map shard runner's items the last cache_plan() says run. */
int cache_runner_items(Cache *c, const Task *runner);
/* A dry plan of g's needed tasks in dependency order: decides each (restoring nothing,
 * writing nothing) and calls fn, when given, with its verdict and reason; a map shard's
 * runner last, running when an item of its would (a run starts it for them). fn returns 0,
 * or 1 when it settled a task that would run (kiln accept recorded it): its dependents then
 * take it as decided. Returns how many would run, runners not counted (a run's summary
 * counts the items). Afterwards every needed task's key is known (cache_explain). */
typedef int (*PlanFn)(void *ctx, const Task *t, enum Verdict v, const char *reason);
int cache_plan(Cache *c, Graph *g, PlanFn fn, void *ctx);

/* After t's command exited 0: checks that its inputs still hold what its key was
 * computed from and every declared output exists, hashes and stores the outputs and
 * records the success in the pending batch. Returns 0; CACHE_INPUT_CHANGED when an input
 * changed while it ran (nothing is recorded: the result belongs to neither content); or -1
 * with a message (a declared output is missing). Either way the attempt counts as failed. */
#define CACHE_INPUT_CHANGED (-2)
int cache_record_success(Cache *c, Task *t, Buf *err);
/* Records t's parsed metrics (plots/metrics.h) for this run, with t's tags. */
void cache_put_metrics(Cache *c, const Task *t, const Metrics *m);

/* Before an attempt of t with key key_hex: removes its outputs, and its resume paths
 * (TaskOpts.resume) unless its latest attempt was an unfinished one of the same key (not
 * --forced), in which case they are kept, outputs among them too, and a resume file cut
 * short is put back from its last whole copy (resume.h; what was done appended to note).
 * Returns 0 when nothing was kept, 1 when the state was kept but none of it is here, 2
 * when some of it is here (the attempt continues: KILN_RESUME=1). In resume.c. */
int cache_prepare_attempt(Cache *c, Task *t, const char *key_hex, Buf *note);
/* Whether t's next attempt continues from resume state an ssh host holds: t keeps resume
 * paths, is not --forced, and its latest attempt ran on an ssh host, under t's current key,
 * and did not succeed; 1 with that host's name (a multi-node job's hosts in node order,
 * "v800+v801"), else 0. In resume.c. */
int cache_resume_host(Cache *c, const Task *t, char host[128]);
/* The seconds t's attempts under its current key have run since its last success: the work
 * its resume state holds, what starting afresh would throw away. In resume.c. */
double cache_resume_seconds(Cache *c, const Task *t);
/* kiln accept of t whose latest attempt did not succeed: ACCEPT_RUNNING when it is still open
 * (running, or left by a killed kiln) under an older key, and now counts for t's key (the
 * next run re-attaches to it); ACCEPT_RUNNING_ALREADY when it is open under t's key already;
 * ACCEPT_RESUME when it ended, t's outputs are not there (outputs_there 0) and its resume
 * state is, kept now for t's key (listed in what; the next attempt continues from it);
 * ACCEPT_NONE otherwise; -1 when the state cannot be written (why in what). dry: decides,
 * writes nothing (kiln accept -n). In resume.c. */
enum { ACCEPT_NONE, ACCEPT_RESUME, ACCEPT_RUNNING, ACCEPT_RUNNING_ALREADY };
int cache_accept_unfinished(Cache *c, Task *t, int outputs_there, int dry, Buf *what);
/* For kiln status: what t's next attempt does with the resume state its latest attempt left
 * unfinished (the paths that are there listed in what; for an attempt on an ssh host, its
 * resume paths "on host NAME", as kept there): RESUME_CONTINUES from it (the same
 * key), RESUME_DROPPED (an older key: it starts afresh; kiln accept keeps it), or
 * RESUME_NONE (none there, or the latest attempt succeeded). In resume.c. */
enum { RESUME_NONE, RESUME_CONTINUES, RESUME_DROPPED };
int cache_resume_plan(Cache *c, const Task *t, Buf *what);
/* t names no resume state and its latest attempt, of the work keyed key_hex (NULL: t's key
 * now), was left unfinished: for each output holding checkpoints, "OUT (NEWEST)" appended
 * to what and "\"OUT\"" to names (", " between). The count; 0 when any of that is not so.
 * What `kiln status` says and the attempt that deletes them says. */
int cache_checkpoints_left(Cache *c, const Task *t, const char *key_hex, Buf *what, Buf *names);
/* kiln gc: deletes the resume copies no unfinished attempt may need (their task's latest
 * attempt succeeded, or it has none: gone from the recipe) and half-made ones. Returns how
 * many, their size in *bytes. In resume.c. */
int cache_gc_resume(Cache *c, long long *bytes);
/* Removes t's declared outputs before an attempt so nothing stale can pass for new. */
void cache_clear_outputs(Cache *c, Task *t);

/* Attempt bookkeeping: started records a (state.h's AttemptRecord: executor, host, gpus,
 * job id and key, which a later kiln re-attaches by) and returns its row id; ended fills
 * in the outcome. */
int64_t cache_attempt_started(Cache *c, const AttemptRecord *a);
/* What an executor learns after the start (state.h): the job id, the ports. Joins the
 * open write batch; 0, or -1. */
int cache_attempt_job_id(Cache *c, int64_t attempt_id, const char *job_id);
int cache_attempt_ports(Cache *c, int64_t attempt_id, const char *ports);
/* The key cache_check() computed for t, as hex ("" before a check). */
void cache_key_hex(Cache *c, const Task *t, char out[33]);
/* Whether t's last recorded success has key key_hex: work under that key is done, so a job
 * still at it (one a host that did not answer kept running) is not wanted. */
int cache_succeeded_with(Cache *c, const Task *t, const char *key_hex);
/* Calls fn for every batch job whose attempt a previous kiln left open. */
void cache_each_open_job(Cache *c, void (*fn)(void *ctx, const OpenAttempt *a), void *ctx);
/* Calls fn for every ssh job lost with its host in the runs a kill ended before this one (the
 * last runs, when no run began) since the last that ended cleanly: it may run on there
 * (state_each_lost_job). */
void cache_each_lost_job(Cache *c, void (*fn)(void *ctx, const OpenAttempt *a), void *ctx);
/* Notes that the attempt waited seconds for its GPUs before it started (the report draws it). */
void cache_attempt_waited(Cache *c, int64_t attempt_id, double seconds);
/* Calls fn with each task's latest recorded duration (its last successful attempt). */
void cache_each_duration(Cache *c, void (*fn)(void *ctx, const char *task, double sec), void *ctx);
/* Forgets every recorded success of t (so the next run runs it rather than restoring it
 * from the store); written with the open batch. 0, or -1 when the state cannot be written. */
int cache_forget(Cache *c, const Task *t);
/* Records that t was restored from the store in this run (an attempt row of outcome
 * "restored", attempt 0, no log), so the run's record says what each task did. */
void cache_note_restored(Cache *c, const Task *t);
/* The same for a task whose outputs `kiln accept` recorded as they are (outcome "accepted"). */
void cache_note_accepted(Cache *c, const Task *t);
/* failure: the failed attempt's class ("oom", runner/recipe/failure.h), NULL when it succeeded or
 * was interrupted. */
void cache_attempt_ended(Cache *c, int64_t attempt_id, int exit_code, const char *outcome, const char *failure);
/* Closes the attempts without a job id a killed kiln left open and, when that kiln did not
 * exit cleanly (or scan is set), kills (SIGKILL) every process still carrying its
 * workspace marker (exec.h's exec_workspace_marker) with its process group, waiting until
 * they are gone, except the processes of the nspare sessions in spare (attempts a new
 * kiln re-attaches to). Returns the number of sessions (attempts) killed, kiln's own ssh
 * and rsync helpers not counted, or -1 when the state cannot be written. */
int cache_reap_orphans(Cache *c, const char *marker, const pid_t *spare, int nspare, int scan);

/* Commits the pending batch of writes (one transaction for many tasks), at most every
 * 50 ms unless force. Returns the milliseconds until an uncommitted batch is due (the
 * caller must call again by then), or -1 when nothing is pending; a failed commit shows
 * in cache_write_error(). */
int cache_commit(Cache *c, int force);

/* Whether the kiln before this one in the workspace did not exit cleanly (killed). */
int cache_unclean(Cache *c);
/* The highest attempt number recorded for task (0: none, or no cache). */
int cache_last_attempt_number(Cache *c, const char *task);
/* Whether the latest attempt of task that ran (restores left out) failed or was stopped. */
int cache_last_attempt_failed(Cache *c, const char *task);
/* Whether task's latest attempt is open: running, or left by a kiln killed while it ran. */
int cache_attempt_open(Cache *c, const char *task);
/* Whether task's outputs stand by `kiln accept` rather than by its command (history.h). */
int cache_accepted(Cache *c, const char *task, double *when, int64_t *run_id);
/* Calls fn with every task whose latest attempt that ran failed or was interrupted, and its
 * recorded outcome ("exit status 1 [error]", "interrupted"). */
void cache_each_failed_latest(Cache *c, void (*fn)(void *ctx, const char *task, const char *outcome), void *ctx);
/* Writes the log path of t's latest attempt into out; -1 if none is recorded. stands, when
 * given: how that attempt stands as recorded so far (the state is read anew), as
 * state_last_log says (ATTEMPT_RUNNING, ATTEMPT_SUCCEEDED, ATTEMPT_ENDED). */
int cache_last_log(Cache *c, const char *task, Buf *out, int *stands);
/* `kiln why`: writes the field-level difference between t's current key and its last
 * success into out (its dependencies decided first: cache_plan). */
void cache_explain(Cache *c, Task *t, Buf *out);
/* Calls fn for each of task's attempts that had a log, oldest first (outcome "unfinished"
 * when it never ended); returns how many. */
int cache_each_attempt_log(Cache *c, const char *task,
			   void (*fn)(void *ctx, int attempt, long long run_id, const char *outcome, const char *log), void *ctx);
/* What sits beside an attempt's log X@N.log, named after it: the progress file the attempt
 * writes (KILN_PROGRESS) and torchrun's folder of it (PET_LOG_DIR). `kiln gc` takes both
 * with their log; a kiln re-attaching knows a local attempt of its own by the first. */
#define ATTEMPT_PROGRESS_SUFFIX ".progress"
#define ATTEMPT_TORCHRUN_SUFFIX ".torchrun"
#define SUFFIX_LEN(s) (sizeof s - 1)
/* `kiln gc`: deletes the attempt logs under log_dir that no rule keeps. Kept: each task's
 * keep_per_task latest attempts, every attempt of the latest run, each task's latest
 * success, and attempts still open (running, or left for a later kiln). Logs no attempt
 * names go too (a killed kiln's unrecorded starts), with the exit-status and progress files
 * of every log removed. Returns the number of logs removed. */
int cache_gc_logs(Cache *c, const char *log_dir, int keep_per_task, long long *bytes_freed);
/* `kiln gc`: deletes stored objects no recorded success refers to; returns the count. */
int cache_gc(Cache *c, long long *bytes_freed);

/* ssh hosts (cache/placements.c). The content hash of a workspace file or directory (as
 * inputs are hashed, through the memo): 0, or -1 when it cannot be read. */
int cache_content_hash(Cache *c, const char *path, char out[33]);
/* What was copied to host at path: 1 with its hash and the host's listing then, or 0. */
int cache_placement_get(Cache *c, const char *host, const char *path, Buf *hash, Buf *listing);
/* Records a copy (hash NULL: forgets it); joins the open write batch. 0, or -1. */
int cache_placement_put(Cache *c, const char *host, const char *path, const char *hash, const char *listing);
/* Per ssh host (the attempts' host column): what run run_id (0: the latest that ran
 * anything on hosts) did there, and what kiln has placed there (HistoryHost is
 * state/history.h's). The run's summary and `kiln status` both count from these records. */
void cache_each_host(Cache *c, int64_t run_id, void (*fn)(void *ctx, const HistoryHost *h), void *ctx);
/* Every path recorded on host, in path order. */
void cache_each_placement(Cache *c, const char *host, void (*fn)(void *ctx, const char *path, const char *hash),
			  void *ctx);

#endif
