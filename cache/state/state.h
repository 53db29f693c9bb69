/* state.h — kiln's SQLite database (.kiln/state.db): the file-hash memo, every task's
 * successes (key, key components, output hashes), the last success per task, runs and
 * attempts. WAL, prepared statements made once, writes batched in one transaction until
 * state_commit(). Library module: errors come back as -1 plus a message. */
#ifndef KILN_STATE_H
#define KILN_STATE_H

#include <stdint.h>

#include "../../base/util.h"
#include "../../base/hash.h"

#define STATE_SCHEMA_VERSION 12

typedef struct State State;

typedef struct {
	const char *path;
	int64_t size, mtime_ns, ino, ctime_ns, hashed_ns;
	Hash hash;
} FileMemo;

/* Opens or creates the database; an older schema is migrated in one transaction (or
 * rebuilt) with a note on stderr. A damaged file (SQLite: malformed, not a database) is
 * moved aside as PATH.damaged-<time> with a note, and an empty state is opened; read-only,
 * it is an error naming the path and the command that recovers. */
State *state_open(const char *path, int readonly, Buf *err);
/* Renames the damaged database at path (and its -wal/-shm) to path.damaged-<time> and
 * says so on stderr with why; 0, or -1 when it cannot be moved. */
int state_move_aside(const char *path, const char *why);
/* Whether the last failure of s was SQLite finding the file damaged. */
int state_damaged(const State *s);
/* Copies every committed record from the write-ahead log into the database file and
 * empties the log (SQLite's TRUNCATE checkpoint); 0, or -1 (a reader holds it: the log
 * stays as it is, which loses nothing). */
int state_checkpoint(State *s);
/* Commits what is pending and closes; 0, or -1 when something was not recorded. */
int state_close(State *s);
/* Commits the open batch. 0, or -1 when it or any write in it failed (full disk, I/O
 * error): the batch is rolled back and state_error() says why; every later write fails
 * too, so a caller stops rather than report successes that are not recorded. */
int state_commit(State *s);
/* The first write failure ("cannot record results in PATH: ... (what to do)"), or NULL. */
const char *state_error(const State *s);
/* Whether writes are waiting in an open transaction. */
int state_pending(const State *s);

/* Calls fn for every memo row; the strings live only during the call. 0, or -1 when
 * reading failed part way (see state_damaged). */
int state_each_memo(State *s, void (*fn)(void *ctx, const FileMemo *m), void *ctx);
int state_put_memo(State *s, const FileMemo *m);

/* Calls fn for every task's last success: its task, key and outputs packed (a uint32 count,
 * 4 spare bytes, then each declared output's Hash in order: STATE_PACKED_SIZE(count)
 * bytes, alive during the call), or NULL when the row's do not unpack. */
#define STATE_PACKED_SIZE(count) (8 + (size_t)(count) * sizeof(Hash))
int state_each_last(State *s, void (*fn)(void *ctx, const char *task, Hash key, const unsigned char *outputs),
		    void *ctx);
/* Finds the success of task with key; fills outputs / components when non-NULL. 1 if found. */
int state_find_success(State *s, const char *task, Hash key, Buf *outputs, Buf *components);
/* Writes return 0, or -1 with state_error() set. */
int state_put_success(State *s, const char *task, Hash key, const char *components, const char *outputs,
		      int64_t run_id);
/* Points the task's last success at key (an earlier success being restored), with its
 * outputs text (as recorded with the success; kept packed). */
int state_set_last(State *s, const char *task, Hash key, const char *outputs);
/* Recorded outputs are one text per success, a line "<32 hex> <path>" per declared output;
 * this is its one parser: reads the line at *p and moves past it. 1, 0 at the end, -1
 * when malformed. */
int state_outputs_next(const char **p, Hash *hash, const char **path, size_t *path_len);
/* Calls fn with every output hash any recorded success refers to. */
void state_each_output_hash(State *s, void (*fn)(void *ctx, Hash h), void *ctx);

/* A run's row (its start time, host, pid, command line), committed at once; its id or -1. */
int64_t state_begin_run(State *s, double started, const char *host, int pid, const char *command);
int state_end_run(State *s, int64_t run_id, const char *outcome);
/* An attempt as it starts: where it runs and what it holds, each a column of its own. */
typedef struct {
	const char *task;
	int attempt;          /* 0: a restore */
	const char *executor; /* "local", "slurm", "ssh", "plot" */
	const char *host;     /* where it runs: this machine's name, an ssh host's, NULL (Slurm places it) */
	const char *gpus;     /* the devices leased to it, "0,3", or "" */
	int pgid;             /* its process group here, or 0 */
	const char *log, *job_id, *key; /* NULL: none */
	const char *ports;    /* "29500,29501": its TCP ports ({port}), or NULL */
	double started;       /* when it started (wall clock), or 0: now */
} AttemptRecord;
int64_t state_attempt_started(State *s, int64_t run_id, const AttemptRecord *a);
int state_attempt_ended(State *s, int64_t id, int exit_code, const char *outcome, const char *failure);
/* What an executor learns of an attempt after it started: its job id (a batch job is
 * submitted after its record is written), the ports it found on its node. */
int state_attempt_job_id(State *s, int64_t id, const char *job_id);
int state_attempt_ports(State *s, int64_t id, const char *ports);
/* `kiln accept` of an unfinished or running attempt: its work counts for key (hex) now. */
int state_attempt_key(State *s, int64_t id, const char *key);
/* How long the attempt waited for its GPUs before it started. */
int state_attempt_waited(State *s, int64_t id, double seconds);
/* An attempt a previous kiln left open (job_id set, never ended), as recorded; strings
 * live until the callback returns. */
typedef struct {
	int64_t row;
	AttemptRecord rec;
	double ended; /* a lost one's end (wall clock); 0: open */
	int superseded; /* a lost one's task has a later attempt */
} OpenAttempt;
void state_each_open_job(State *s, void (*fn)(void *ctx, const OpenAttempt *a), void *ctx);
/* The ssh attempts lost with their host (failure host-lost) in the runs before run_id (0: the
 * last run) that a kill ended, since the last run that ended cleanly: their jobs may run on
 * there (superseded: not their task's latest attempt, whose work went to a later one). */
void state_each_lost_job(State *s, int64_t run_id, void (*fn)(void *ctx, const OpenAttempt *a), void *ctx);
/* Local attempts on host that never ended (a killed kiln): fn(ctx, id, task, pgid). */
void state_each_open_attempt(State *s, const char *host, void (*fn)(void *ctx, int64_t id, const char *task, int pgid),
			     void *ctx);
/* Log path of the task's latest attempt, and (stands, when given) how that attempt stands:
 * ATTEMPT_RUNNING (not ended), ATTEMPT_SUCCEEDED or ATTEMPT_ENDED (otherwise; history.h names
 * them); 1 if found. */
int state_last_log(State *s, const char *task, Buf *out, int *stands);

/* For the cache modules that own other tables of the same file (results.c): the
 * statement *sql, prepared once per State on first use (keyed by the address sql), or NULL
 * when it cannot be prepared. The writer form also joins the open write batch (and sets
 * the sticky error when it cannot prepare); state_write runs a bound write statement,
 * 0 or -1 (state_error). */
typedef struct sqlite3_stmt sqlite3_stmt;
sqlite3_stmt *state_statement(State *s, const char *const *sql);
sqlite3_stmt *state_statement_writer(State *s, const char *const *sql);
int state_write(State *s, sqlite3_stmt *st);

#endif
