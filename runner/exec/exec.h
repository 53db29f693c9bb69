/* exec.h — the executor seam: start a task attempt, learn when it ended, stop it. The
 * scheduler talks only to this and never asks which executor a job runs on: what differs
 * (whose slots a job takes, who enforces timeouts, whether a stopped run may leave jobs
 * behind) is said by the executor's fields. `local` (exec_local.c) spawns processes here;
 * `slurm` (exec_slurm.c) submits batch jobs. */
#ifndef KILN_EXEC_H
#define KILN_EXEC_H

#include <sys/types.h>

#include "../../base/graph.h"

struct Cache;

enum JobEnd {
	JOB_RUNNING,
	JOB_EXITED,      /* exit_code says how */
	JOB_SIGNALED,    /* killed by term_signal */
	JOB_START_FAILED, /* could not be started; message in the log */
	JOB_LOST,         /* lost with its host (ssh), or killed while no kiln watched (local): not the
			     task's failure; it runs again */
	JOB_HOST_DOWN     /* no host it may run on answered within the bound (ssh): class host-down */
};

/* One attempt of one task. The scheduler fills the inputs; the executor the rest. */
typedef struct Job {
	Task *task;
	int attempt;          /* its number among all of the task's attempts, across runs (log name) */
	int run_try;          /* its number among this run's attempts of the task (retries count) */
	char *log_path;       /* malloc'd, owned by the job */
	char gpu_list[128];   /* "0,3" or "" */
	int ngpus;            /* devices in gpu_list: {gpus} */
	int ports[16];        /* reserved TCP ports: {port}, {port1}, ... */
	int nports;
	char **env;           /* extra "K=V" entries kiln sets, NULL-terminated, owned */
	char *items_path;     /* a map shard's item list ({items}, KILN_ITEMS), owned, or NULL */
	char *progress_path;  /* KILN_PROGRESS, owned */
	struct Progress *progress; /* its latest readings (progress.c), or NULL */
	int resume_kept;      /* the task's resume state is kept for this attempt (same key as the last) */
	int resumed;          /* and some of it was there: the attempt continued from it (KILN_RESUME=1) */
	/* set by the executor */
	pid_t pid;            /* process (and process group) id, local only */
	int exec_token;       /* the executor's own name for the job (local: the keeper's token) */
	int64_t started_ns, ended_ns;
	int64_t deadline_ns;  /* 0: none */
	int64_t kill_at_ns;   /* when SIGKILL follows a SIGTERM; 0: not stopping, -1: sent */
	int64_t grace_ns;     /* SIGTERM to SIGKILL, set by the scheduler */
	int timed_out, interrupted;
	enum JobEnd end;
	int exit_code, term_signal;
	char reason[256];     /* set by an executor that knows better (e.g. Slurm's job state) */
	/* executors whose jobs outlive kiln (reattaches): */
	char job_id[256];     /* the executor's id for the job, or "" (ssh: "host:id/gpus") */
	int adopted;          /* re-attached to a job a previous kiln started */
	char key[33];         /* the task's key when it started (hex), to re-attach only to the same work */
	long long attempt_row;/* adopted jobs: the attempt row the first kiln opened */
	struct Executor *ex;  /* the executor running it */
	struct Job *next;     /* scheduler's running list */
} Job;

typedef struct Executor Executor;
struct Executor {
	const char *name;  /* as recipes and --executor name it: "local", "slurm" */
	const char *title; /* in messages: "attached to Slurm job 12" */
	/* 1: jobs take this machine's job slots, CPUs, memory and leased GPUs, and the
	 * scheduler enforces timeouts; 0: the executor's own system does (Slurm). */
	int local_slots;
	/* 1: the scheduler enforces timeouts (SIGTERM, then SIGKILL after the grace period,
	 * through signal()); 0: the executor's system does (Slurm's --time). */
	int kiln_timeouts;
	/* 1: {port}s are reserved here by the scheduler; 0: the job finds its own (Slurm). */
	int kiln_ports;
	/* 1: jobs are recorded with job_id and key so a later kiln re-attaches (adopt). */
	int reattaches;
	/* 1: jobs read the state (charts): everything recorded so far is committed first. */
	int reads_state;
	/* Starts the job; returns 0, or -1 with a message in the job's log and end set. */
	int (*start)(Executor *ex, Job *job);
	/* Collects jobs that ended since the last call, without blocking: fills out with at
	 * most max of them and returns the count. */
	int (*reap)(Executor *ex, Job **out, int max);
	/* Sends sig to the whole job (its process group; for Slurm, scancel). */
	void (*signal)(Executor *ex, Job *job, int sig);
	/* Milliseconds until the executor wants reap() called again without a signal (a
	 * status poll), or -1 when SIGCHLD is enough. */
	int (*poll_ms)(Executor *ex);
	/* Whether task t may start now (a cap on queued jobs; ssh: a host with room for it,
	 * held for the start() that follows); NULL: always. */
	int (*has_room)(Executor *ex, const Task *t);
	/* On a stop: 1 when the job is left running for a later kiln to re-attach to (the
	 * executor drops its references and the scheduler frees the job); NULL or 0: it is
	 * signalled like any job. hangup: kiln lost its terminal (SIGHUP), which leaves work
	 * running as --detach does. */
	int (*detach)(Executor *ex, Job *job, int hangup);
	/* Registers a job a previous kiln started for task (an open attempt row): the next
	 * start() of that task with the same key attaches to it instead. NULL: none. */
	void (*adopt)(Executor *ex, const char *task, int attempt, const char *job_id, const char *key_hex,
		      const char *log_path, long long attempt_row);
	/* Whether start() of t with this key would re-attach to an adopted job (its outputs and
	 * resume state are then left as they are; gpus, 128 bytes, gets the devices it holds,
	 * "0,3" or ""); NULL: never. */
	int (*adoptable)(Executor *ex, const Task *t, const char *key_hex, char *gpus);
	/* Told after each commit of the state: every end reap() gave is recorded; NULL: not needed. */
	void (*committed)(Executor *ex);
	/* Prints the executor's part of the end summary (ssh: per host); NULL: none. */
	void (*summarize)(Executor *ex);
	void (*destroy)(Executor *ex);
	void *impl;
};

/* The local executor. A run's attempts are started by its kiln-keeper (runner/keeper.c),
 * each in a session of its own, so they outlive a killed kiln; a job id
 * "local/HOST/PID/START/KPID/KSTART/GPUS" names the attempt's leader and its keeper. cache
 * closes the rows of adopted attempts found stale; detach: a stop leaves attempts running
 * (--detach). */
Executor *exec_local_new(struct Cache *cache, int detach);
/* Stops adopted attempts no run will take up: before the run (after_run 0) those whose task
 * is gone from the recipe, after it (1) those of tasks the run needed but did not re-attach
 * (their key changed, or they were restored). Returns how many. */
int exec_local_stop_stale(Executor *local, const Graph *g, int after_run);
/* Before a run: adopts the attempts a killed or detached kiln left that can be re-attached
 * (by their records; after a killed kiln also by their keepers), leases in gpus the devices
 * they hold, closes as abandoned the records of attempts gone without a word, and stops
 * every other process of a killed kiln (cache_reap_orphans, whose count it returns). */
struct GpuPool;
int exec_local_take_over(Executor *local, struct Cache *c, struct GpuPool *gpus);
/* Whether job_id is the local executor's. */
int exec_local_is_job_id(const char *job_id);
/* The built-in executor: renders plot{} tasks (their typed spec) in this process from the
 * metrics in db_path, writing each attempt's log like any task. */
Executor *exec_plot_new(const char *db_path);

/* Slurm settings: the recipe's slurm{} block and the command line. */
typedef struct {
	RecipeSlurm recipe;
	int max_jobs;       /* jobs in the queue at once */
	int detach;         /* leave jobs running when kiln is stopped */
	long long run_id;
	const char *state_dir; /* where job scripts and exit files go (.kiln/slurm) */
} SlurmConfig;

/* The Slurm executor (sbatch/squeue/scancel), or NULL with a message when they are missing. */
Executor *exec_slurm_new(const SlurmConfig *cfg, Buf *err);
/* ssh settings: the hosts (the graph's hosts{}), the cache that records what was copied
 * where, and the command line's. */
typedef struct {
	const Graph *g;
	struct Cache *cache;
	int detach;            /* leave remote jobs running when kiln is stopped */
	long long run_id;
	double busy_mem, busy_util; /* the GPU busy test, as locally */
	const char *state_dir; /* .kiln/ssh: sockets, follow commands' stderr */
	double host_wait_sec;  /* how long a task waits for a host it may use to answer (host-down) */
} SshConfig;

/* The ssh executor (exec_ssh.c), or NULL with a message when hosts, ssh or rsync are missing. */
Executor *exec_ssh_new(const SshConfig *cfg, Buf *err);

/* Builds the shell script text that runs job->task exactly as the local executor would;
 * malloc'd. remote: for an ssh host (the job's leased GPUs kept, PATH led by the copy of
 * kiln's tools in the workspace there). Exposed for tests of the quoting. */
char *exec_job_script(const Job *job, const char *workspace, const char *exit_path, int remote);
/* The environment entries both executors give a task (PATH with kiln's own directory). */
const char *exec_path_entry(void);
/* "KILN_WORKSPACE=<absolute workspace>": every local task process carries it in its
 * environment (children inherit it), so a kiln started after a kill -9 finds every
 * process the dead one left, whether or not its attempt was recorded. */
const char *exec_workspace_marker(void);
/* The path of this kiln binary. */
const char *exec_self(void);
/* "@kiln" as a command's first word means this kiln binary: the one place that knows.
 * The program to run for argv word i of t (exec_self() for "@kiln" at 0), and whether t
 * runs kiln itself (it then reads the state). */
const char *exec_argv_word(const Task *t, int i);
int exec_runs_kiln(const Task *t);

/* A job a previous kiln started for task (an open attempt row), kept by the executors that
 * re-attach (Slurm, ssh) until a start() of that task takes it (used). */
typedef struct {
	char *task, *job_id, *key, *log;
	int attempt, used;
	long long row;
} AdoptedJob;
void exec_adopted_add(AdoptedJob **list, int *n, const char *task, int attempt, const char *job_id,
		      const char *key_hex, const char *log_path, long long row);
void exec_adopted_free(AdoptedJob *list, int n);
/* Makes job the re-attached attempt a: its job id, attempt number, log and record. */
void exec_attach(Job *job, const AdoptedJob *a);
/* Whether the first unused adopted job of t's task in list has this key (start() would
 * re-attach to it). */
int exec_adopted_matches(const AdoptedJob *list, int n, const Task *t, const char *key_hex);

/* Appends job to an executor's growable list of jobs (running, ended, draining). */
void exec_push_job(Job ***list, int *n, int *cap, Job *job);
/* s with {port}, {portK} and {gpus} replaced by this attempt's reserved ports and its
 * number of leased devices, and {rdzv} (torchrun's rendezvous, runner/torchrun.h) by
 * 127.0.0.1 and the last reserved port: malloc'd, or NULL when s holds none of them. */
int exec_has_attempt_words(const char *s);
char *exec_expand_attempt(const char *s, const Job *job);

/* Writes all of s to fd (EINTR retried; gives up on an error). */
void exec_write_all(int fd, const char *s, size_t n);
/* Writes the log header (command, environment kiln set, attempt) to fd. */
void exec_write_log_header(int fd, const Job *job);
/* Opens the job's log file for writing (parents created); returns fd or -1. */
int exec_open_log(const Job *job);

#endif
