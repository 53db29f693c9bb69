/* exec.h — the executor seam: start a task attempt, learn when it ended, stop it. The
 * scheduler talks only to this and never asks which executor a job runs on: what differs
 * (whose slots a job takes, who enforces timeouts, whether a stopped run may leave jobs
 * behind) is said by the executor's fields. `local` (exec_local.c) spawns processes here
 * under kiln-keeper; `plot` (exec_plot.c) draws charts in this process; `slurm`
 * (exec_slurm.c) submits batch jobs; `ssh` (ssh/) runs them on hosts{}. The table of them,
 * with each one's recipe block and the tasks it refuses, is executors.c's. */
#ifndef KILN_EXEC_H
#define KILN_EXEC_H

#include <sys/types.h>

#include "../../base/graph.h"
#include "../../cache/cache.h"

enum JobEnd {
	JOB_RUNNING,
	JOB_EXITED,      /* exit_code says how */
	JOB_SIGNALED,    /* killed by term_signal */
	JOB_START_FAILED, /* could not be started; message in the log */
	JOB_LOST,         /* lost with its host (ssh), or killed while no kiln watched (local): not the
			     task's failure; it runs again */
	JOB_HOST_DOWN     /* no host it may run on answered within the bound (ssh): class host-down */
};

/* Where an attempt runs and the GPU devices it holds there: the one value its record (the
 * host and gpus columns), CUDA_VISIBLE_DEVICES (exec_gpu_env) and the release of its
 * devices are written from. Leased by the scheduler for jobs on this machine, by the ssh
 * executor on a host; a Slurm job's are Slurm's (host "", no devices). */
typedef struct {
	char host[64];
	int gpus[64];
	int ngpus;
} Lease;
/* "0,3" (or "") for the lease's devices, in out (n bytes). */
void lease_gpus_text(const Lease *l, char *out, size_t n);
/* Fills l's devices from a recorded list "0,3" (the gpus column); returns how many. */
int lease_parse_gpus(Lease *l, const char *list);

/* One attempt of one task. The scheduler fills the inputs; the executor the rest. */
typedef struct Job {
	Task *task;
	int attempt;          /* its number among all of the task's attempts, across runs (log name) */
	int run_try;          /* its number among this run's attempts of the task (retries count) */
	char *log_path;       /* malloc'd, owned by the job */
	Lease lease;          /* where it runs and the devices it holds ({gpus} is the task's count) */
	int gpu_claims[8];    /* its devices' machine-wide claims (gpu.c: fds the pool owns); the */
	int ngpu_claims;      /* local executor hands them to the keeper, which holds them till
				 the attempt ends: another kiln here sees them leased after a kill -9 too */
	int ports[16];        /* reserved TCP ports: {port}, {port1}, ... */
	int nports;
	char **env;           /* extra "K=V" entries kiln sets, NULL-terminated, owned */
	char rdzv_host[64];   /* torchrun's rendezvous ({rdzv}) when not here (ssh: the first node), or "" */
	int rdzv_port;        /* and its port, when not the last one reserved here, or 0 */
	char *items_path;     /* a map shard's item list ({items}, KILN_ITEMS), owned, or NULL */
	char *items_listed;   /* Slurm: kiln's list, of which items_path is the job's own copy
				 (a requeued job starts at the first item not made), owned, or NULL */
	Task **items;         /* and its items in that list's order (owned array): an executor
				 whose hosts lack this file system copies their inputs and outputs */
	int nitems;
	char *progress_path;  /* KILN_PROGRESS, owned */
	char *torchrun_dir;   /* PET_LOG_DIR, torchrun's folder for the attempt (it would make one
				 in /tmp per run and never remove it), removed when it ends; owned, or NULL */
	struct Progress *progress; /* its latest readings (progress.c), or NULL */
	int resume_kept;      /* the task's resume state is kept for this attempt (same key as the last) */
	int resumed;          /* and some of it was there: the attempt continued from it (KILN_RESUME=1) */
	struct ResumeWatch *resume_watch; /* copies its resume files as they settle, or NULL */
	/* set by the executor */
	pid_t pid;            /* process (and process group) id, local only */
	int exec_token;       /* the executor's own name for the job (local: the keeper's token) */
	int64_t started_ns, ended_ns;
	int64_t deadline_ns;  /* 0: none */
	int64_t kill_at_ns;   /* when SIGKILL follows a SIGTERM; 0: not stopping, -1: sent */
	int64_t grace_ns;     /* SIGTERM to SIGKILL, set by the scheduler */
	int timed_out, interrupted;
	int stop_landed;      /* a stop signal of kiln's reached a live process of it: an exit 0
				 after it is the command's handler quitting, not its work done (set
				 where the end alone cannot tell: the local executor, which records the
				 command's own status; an ssh job's shell and a Slurm job's state do) */
	enum JobEnd end;
	int exit_code, term_signal;
	char reason[256];     /* set by an executor that knows better (e.g. Slurm's job state) */
	int unschedulable;    /* the executor's system can never start it (its reason says why) */
	char waiting[64];     /* why it has not started in its executor's queue ("Resources"), or "" */
	int64_t waiting_since_ns; /* when waiting last changed */
	/* executors whose jobs outlive kiln (reattaches): */
	char job_id[256];     /* the executor's id for the job (never its host: that is the lease's), or "" */
	int adopted;          /* re-attached to a job a previous kiln started */
	double ran_before_sec; /* and how long it had run by then (its record's; ssh: till lost) */
	int adopted_lost;     /* or to the job of this run's attempt N that was lost with its host (N) */
	int stopped_stale;    /* stopped the job a previous kiln left for the task: its key differed */
	int kept_lost;        /* lost with its host, and kept: the next attempt takes it up if the host
				 answers soon (it may run on there) */
	int never_started;    /* lost before its start got to its host (a kill came first): it runs
				 again, and the host lost nothing */
	int superseded;       /* stopped for an earlier job of its task, found finished or running on
				 where its host answered again (ssh): given back as lost, that job
				 taken up (reason says which) */
	int seen_running;     /* Slurm: its job was seen started (a pending one has no command to wait
				 for): 1, or 2 once seen COMPLETING (Slurm followed its processes' end) */
	int64_t end_seen_ns;  /* Slurm: when its job was first seen ended by a signal with no exit file
				 yet (its command may still be quitting: slurm_queue.c), or 0 */
	char key[33];         /* the task's key when it started (hex), to re-attach only to the same work */
	long long attempt_row;/* its attempt's record (adopted jobs: the row the first kiln opened) */
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
	/* What the stopping line adds when its jobs run (Slurm: SIGKILL comes with its
	 * scancel, after the cluster's KillWait), or NULL. */
	const char *stop_note;
	/* 1: {port}s are reserved here by the scheduler; 0: the job finds its own (Slurm). */
	int kiln_ports;
	/* 1: jobs are recorded with job_id and key so a later kiln re-attaches (adopt). */
	int reattaches;
	/* 1: a task's resume state stays on the machine its attempt ran on (ssh hosts): the
	 * next attempt goes back there (said when an attempt is lost with its host). */
	int state_on_host;
	/* 1: jobs read the state (charts): everything recorded so far is committed first. */
	int reads_state;
	/* 1: a job's files are this workspace's as kiln sees them (this machine; Slurm's shared
	 * file system): its resume files' last whole copies are taken here (cache/resume.h);
	 * 0: they lie elsewhere (ssh hosts). */
	int workspace_files;
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
	/* After has_room said no to t, which asks for GPUs: appends what its devices are doing
	 * ("v800: GPU 0 held by another kiln's job there, GPU 1 busy 95 % util"), or nothing
	 * when it waits for something else; NULL: not said. */
	void (*gpus_wait_text)(Executor *ex, const Task *t, Buf *out);
	/* t's bounded wait for devices is over: -1 when none of those it may use is busy with
	 * others' work (it waits for kiln's own leases: ordinary queueing); else, when take,
	 * leases it the least busy ones (held for the start() that follows, as has_room does)
	 * and returns 1, or 0 when none can be had (their hosts' slots full). NULL: unbounded. */
	int (*gpus_after_wait)(Executor *ex, const Task *t, int take);
	/* On a stop: 1 when the job is left running for a later kiln to re-attach to (the
	 * executor drops its references and the scheduler frees the job); NULL or 0: it is
	 * signalled like any job. hangup: kiln lost its terminal (SIGHUP), which leaves work
	 * running as --detach does. */
	int (*detach)(Executor *ex, Job *job, int hangup);
	/* Registers a job a previous kiln started on this executor (an open attempt row): the
	 * next start() of that task with the same key attaches to it instead. NULL: none. */
	void (*adopt)(Executor *ex, const OpenAttempt *a);
	/* Whether start() of t with this key would re-attach to an adopted job (its outputs and
	 * resume state are then left as they are; held gets the devices it holds); NULL: never. */
	int (*adoptable)(Executor *ex, const Task *t, const char *key_hex, Lease *held);
	/* Why t must not start now, never to start in this run: an attempt of it another host's
	 * kiln started may still run there (local: the workspace on a shared file system); NULL:
	 * nothing holds it. Under --force the attempt is given up (its record closed) instead. */
	const char *(*held_elsewhere)(Executor *ex, const Task *t);
	/* Told after each commit of the state: every end reap() gave is recorded; NULL: not needed. */
	void (*committed)(Executor *ex);
	/* Appends its part of the status line while jobs wait in its queue ("12 pending:
	 * Resources"); NULL: none. */
	void (*describe)(Executor *ex, Buf *out);
	/* Prints the executor's part of the end summary (ssh: per host); NULL: none. */
	void (*summarize)(Executor *ex);
	void (*destroy)(Executor *ex);
	void *impl;
};

struct lua_State;

/* What the command line gives the executors it makes. */
typedef struct {
	const Graph *g;        /* the recipe: its blocks (graph_block: slurm{}, hosts{}) */
	struct Cache *cache;
	int detach;            /* --detach: a stop leaves attempts running for the next kiln */
	long long run_id;
	int max_jobs;          /* --max-jobs: jobs queued at once (Slurm); 0: no cap */
	double busy_mem, busy_util; /* the GPU busy test (ssh hosts' devices, as locally) */
	double host_wait_sec;  /* how long a task waits for a host it may use to answer (ssh) */
	const char *state_dir; /* .kiln/NAME: the executor's own files (scripts, sockets) */
} ExecSetup;

/* One kind of executor: a row of the table below. A new executor is a file in exec/ (or a
 * room of its own, as ssh/) and one row. */
typedef struct {
	const char *name;  /* as --executor and a task's executor = "..." name it */
	const char *about; /* one line for `kiln help run` */
	/* its recipe block (slurm{}, hosts{}): the global that reads it into the graph
	 * (graph_set_block under the block's name), or NULL */
	const char *block;
	int (*read_block)(struct lua_State *L);
	/* 1 when a task that names no executor runs here because of what it says (ssh: it
	 * names hosts); NULL: only when named */
	int (*claims)(const Task *t);
	/* 1 with why in words ("belongs to a map{}, which ...") when t cannot run here */
	int (*refuses)(const Task *t, Buf *why);
	/* Checks the loaded recipe (every host a task names is declared); 0, or -1 with a
	 * file:line message. NULL: nothing to check. */
	int (*check)(const Graph *g, Buf *err);
	/* `kiln status`: what its system's queue holds of the open attempts an earlier kiln
	 * left (Slurm: "12 pending: Resources, 3 running"), appended to out; NULL: nothing. */
	void (*queue_status)(struct Cache *c, Buf *out);
	/* For a plan's ETA: the job slots and GPUs its machines offer as the recipe declares
	 * them (ssh: the hosts' jobs and gpus), 0 where not declared (learned on connecting);
	 * returns how many machines. NULL: its system's own (Slurm), not bounded here. */
	int (*plan_capacity)(const Graph *g, int *slots, int *gpus);
	/* `kiln log -f` of an open attempt no kiln follows whose log is on its machines (ssh: the
	 * host's copy): writes the log of job_id on host (as g's recipe declares it) to stdout
	 * from byte skip, until the job ends there (state_dir: ExecSetup's); 0, or -1 with why
	 * in err. NULL: the log is here (local) or on the shared file system (Slurm). */
	int (*follow_log)(const Graph *g, const char *state_dir, const char *host, const char *job_id, long long skip,
			  Buf *err);
	/* `kiln log -f` with no kiln at work: 1 when its system holds job_id to run, now or
	 * again (Slurm: running, pending, requeued after a preemption, whose job script left
	 * the exit file of the stopped run), as asked there now. NULL: its end is final. */
	int (*holds_job)(const char *job_id);
	/* Makes the executor for a run, or NULL with a message (a tool missing). */
	Executor *(*make)(const ExecSetup *setup, Buf *err);
} ExecutorKind;

/* The table (executors.c): every kind, NULL-ended; the first is the default (local). Each
 * kind is defined in its executor's own file. */
extern const ExecutorKind *const exec_kinds[];
/* The row named name, or NULL. */
const ExecutorKind *exec_kind(const char *name);
/* "local, slurm or ssh" for messages; the names as a NULL-ended list (RecipeLoad's). */
const char *exec_kind_names(void);
const char *const *exec_kind_list(void);

/* The local executor. A run's attempts are started by its kiln-keeper (exec/keeper.c),
 * each in a session of its own, so they outlive a killed kiln; a job id
 * "local/HOST/PID/START/KPID/KSTART" names the attempt's leader and its keeper (the host is
 * the lease's). cache closes the rows of adopted attempts found stale; detach: a stop
 * leaves attempts running (--detach). */
Executor *exec_local_new(struct Cache *cache, int detach);
/* When adopted attempts no run will take up are stopped: before a run, those whose task is
 * gone from the recipe; after it, those of tasks the run needed but did not re-attach (their
 * key changed, or they were restored); by kiln clean, those of the tasks it cleans (needed):
 * their outputs are about to go, so nothing they finish may be taken up later. */
typedef enum { STALE_BEFORE_RUN, STALE_AFTER_RUN, STALE_CLEAN } StaleWhen;
/* Stops them, each said on stderr and its record closed. Returns how many. */
int exec_local_stop_stale(Executor *local, const Graph *g, StaleWhen when);
/* Whether the local attempt job_id ("local/PID/START/KPID/KSTART") still runs on this
 * host: its leader or its keeper, the same processes (start times match). */
int exec_local_job_alive(const char *job_id);
/* Whether the keeper of the local attempt logging to log_path wrote how it ended (beside
 * the log): so it has, whatever the state says (a kiln killed before it recorded the end). */
int exec_local_ended(const char *log_path);
/* Before a run: adopts the attempts a killed or detached kiln left that can be re-attached
 * (by their records; after a killed kiln also by their keepers), leases in gpus (or NULL) the devices
 * they hold, closes as abandoned the records of attempts gone without a word, and stops
 * every other process of a killed kiln (cache_reap_orphans, whose count it returns). */
struct GpuPool;
int exec_local_take_over(Executor *local, struct Cache *c, struct GpuPool *gpus);
/* The built-in executor: renders plot{} tasks (their typed spec) in this process from the
 * metrics in db_path, writing each attempt's log like any task. */
Executor *exec_plot_new(const char *db_path);
/* The refusal every executor that places a job on one machine shares: a task spread over
 * several nodes (ranks or torchrun with nnodes > 1) needs Slurm (torchrun: or ssh hosts). */
int exec_refuses_nodes(const Task *t, Buf *why);
/* The child's GPU environment, the same under every executor: CUDA_VISIBLE_DEVICES from
 * the lease (and CUDA_DEVICE_ORDER=PCI_BUS_ID: NVML and nvidia-smi count in PCI order),
 * appended to job->env (which has room). Nothing when the lease holds no devices. */
void exec_gpu_env(Job *job);

/* The signals a stop may send (a task's stop_signal; SIGTERM by default), as a shell's
 * trap names them: a job script's shells outlive each (ssh_job.c, job_script.c). */
#define EXEC_STOP_SIGNALS "TERM INT HUP QUIT USR1 USR2"
/* Shell text: for each stop signal, a trap that exits with the status the signal would
 * have given (128 + its number), having first recorded it with `kiln_end "N stopped"`
 * when record; "; "-separated, ending in "; ". */
void exec_stop_traps(Buf *b, int record);
/* kiln_kill SIG PGID in a job script (an ssh host's, a Slurm job's that passes its stops on
 * itself): each process of the job once, as os_signal_attempt does for local attempts.
 * The job is its shell's session (setsid), not only its group: `timeout` moves itself and
 * its command to a group of their own. Where a torchrun agent is among them, its workers
 * are left to it (it passes the signal on; so are the workers of an agent no command line
 * names, `accelerate launch`: TORCHELASTIC_RUN_ID in their environment, not their parent's),
 * and a timeout is left out (told, it would pass
 * the signal to its command twice, the command's group told already);
 * a filter reading a pipe (tee, grep, gzip, ...: EXEC_PIPE_FILTERS) is left to end with its
 * input, and a Python multiprocessing worker (a DataLoader's: python with its parent's
 * command line, or multiprocessing's spawn or forkserver) to its parent where that handles
 * the signal (SigCgt in /proc/PID/status; not SIGINT, which reaches every process as a
 * terminal's Ctrl-C does); the others are told parents first ("-": none to
 * tell). SIGKILL, SIGCONT: every
 * group of the session. Without ps (or none of those there): the group's signal. */
#define EXEC_PIPE_FILTERS "tee|grep|egrep|fgrep|sed|awk|gawk|mawk|nawk|ts|cut|tr|cat|col|fold|nl|head|tail|sort|uniq|wc|" \
		     "gzip|pigz|bzip2|xz|zstd|lz4|logger|rotatelogs"
#define EXEC_KILL_FN \
	"kiln_kill() { w=$(ps -ww -eo pid=,ppid=,pgid=,sid=,comm=,args= 2>/dev/null | awk -v g=\"$2\" -v s=\"$1\" " \
	"'function cg(k,  l, f, b, d, v) { if (!(s in N)) return 0; f = \"/proc/\" k \"/status\"; b = N[s] - 1; " \
	"while ((getline l < f) > 0) if (l ~ /^SigCgt:/) { sub(/^SigCgt:[ \\t]*/, \"\", l); " \
	"d = substr(l, length(l) - int(b / 4), 1); v = index(\"0123456789abcdef\", tolower(d)) - 1; close(f); " \
	"return int(v / 2 ^ (b % 4)) % 2 } close(f); return 0 } " \
	"function el(k) { return system(\"grep -qz ^TORCHELASTIC_RUN_ID= /proc/\" k \"/environ 2>/dev/null\") == 0 } " \
	"BEGIN { N[\"HUP\"] = 1; N[\"INT\"] = 2; N[\"QUIT\"] = 3; N[\"USR1\"] = 10; N[\"USR2\"] = 12; N[\"TERM\"] = 15 } " \
	"$3 == g || $4 == g { p[$1] = $2; q[$1] = $3; c[$1] = $5; x = $0; " \
	"sub(/^ *[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ +[^ ]+ */, \"\", x); r[$1] = x; if ($3 != g) moved = 1; " \
	"for (i = 6; i <= 7 && i <= NF; i++) { n = split($i, a, \"/\"); if (a[n] == \"torchrun\") t[$1] = 1 } " \
	"for (i = 7; i < NF && $i ~ /^-/; i++) if ($i == \"-m\" && $(i + 1) ~ /^torch\\.distributed\\.(run|launch)$/) " \
	"t[$1] = 1; if ($5 == \"timeout\") o[$1] = 1; " \
	"if (s != \"KILL\" && s != \"CONT\" && $5 ~ /^(" EXEC_PIPE_FILTERS ")$/ && system(\"test -p /proc/\" $1 \"/fd/0\") == 0) " \
	"f[$1] = 1 } END { if (s == \"KILL\" || s == \"CONT\") { if (moved) for (k in q) if (!(q[k] in seen)) { seen[q[k]] = 1; " \
	"printf \"-%s \", q[k] } exit } if (s != \"INT\") for (k in p) if ((p[k] in p) && (c[k] ~ /^python/ && r[k] == r[p[k]] || " \
	"r[k] ~ /--multiprocessing-fork|from multiprocessing\\./) && cg(p[k])) y[k] = 1; " \
	"if (s != \"KILL\" && s != \"CONT\") for (k in p) if ((p[k] in p) && !(p[k] in t) && c[k] ~ /^python/ && el(k) && !el(p[k])) y[k] = 1; " \
	"any = moved; for (k in t) any = 1; for (k in f) any = 1; for (k in y) any = 1; if (any) { s = \"-\"; " \
	"for (k in p) { d = 0; x = k; while ((p[x] in p) && d < 64) { x = p[x]; d++ } e[k] = d; if (d > m) m = d } " \
	"for (l = 0; l <= m; l++) for (k in p) if (e[k] == l && !(p[k] in t) && !(k in f) && !(k in o) && !(k in y)) " \
	"{ printf \"%s \", k; s = \"\" } printf \"%s\", s } }'); " \
	"case \"$w\" in -) ;; '') kill -$1 -\"$2\" 2>/dev/null ;; *) kill -$1 $w 2>/dev/null ;; esac; }\n"

/* Shell text setting $kiln_dfl to a prefix that runs a command with SIGINT and SIGQUIT at
 * their defaults: a command started with & by a shell without job control has them
 * ignored, which no shell can undo, and a stop_signal = "INT" would not reach it (Python's
 * KeyboardInterrupt needs SIGINT not ignored at its start). env --default-signal
 * (coreutils 8.31 on), else perl; else empty. */
#define EXEC_DFL_SETUP \
	"kiln_dfl=; if env --default-signal=INT,QUIT true 2>/dev/null; then kiln_dfl='env --default-signal=INT,QUIT'; " \
	"elif command -v perl >/dev/null 2>&1; then kiln_dfl='perl -e$SIG{INT}=$SIG{QUIT}=\"DEFAULT\";exec@ARGV'; fi\n"
/* A signal's name as kill(1) and scancel take it ("TERM"); "KILL" for SIGKILL. */
const char *exec_signal_name(int sig);

/* Builds the shell script text that runs job->task exactly as the local executor would;
 * malloc'd. remote: for an ssh host (the job's leased GPUs kept, PATH led by the copy of
 * kiln's tools in the workspace there); prelude: shell text run first there (an ssh host's
 * `prelude`, activating an environment), or NULL; go_path: a file the job waits for (two
 * minutes at most, then it ends doing nothing) before anything else — a Slurm job may start
 * before kiln committed its id, and one a kiln killed in between never recorded would run on
 * beside the next attempt — or NULL. Exposed for tests of the quoting. */
char *exec_job_script(const Job *job, const char *workspace, const char *exit_path, int remote, const char *prelude,
		      const char *go_path);
/* Whether t's Slurm job script passes a stop's signal to its command itself (kiln then
 * signals the script's shell alone: scancel --batch): every process of the command is the
 * script's, none in an srun step on other nodes (torchrun's launchers, ranks over nodes),
 * which only a signal to the whole job reaches. */
int exec_script_passes_stops(const Task *t);
/* The environment entries both executors give a task: PATH led by kiln's shims
 * (<workspace>/.kiln/shims: tee, deaf to stop signals) and ended by kiln's own directory. */
const char *exec_path_entry(void);
/* Writes the shims exec_path_entry() names where missing or changed (a read when they are
 * as they should be), before attempts start; where they cannot be written, tasks find the
 * system's tee. */
void exec_write_shims(void);
/* The tee shim's text (sh): an ssh host's copy goes first on PATH there (.kiln/bin). */
const char *exec_tee_shim(void);
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
/* Whether a job that ended so (end, exit_code) did its work: exit 0, not timed out, and not
 * an exit 0 after a stop signal of kiln's reached it (a timeout's or a Ctrl-C's: the
 * command's handler quitting, `trap ... TERM; exit 0`); one that ended by itself before the
 * signal stands. What the scheduler records and an executor's counts (an ssh host's) say. */
int exec_job_done(const Job *job, enum JobEnd end, int exit_code);

/* A job a previous kiln started for task (an open attempt row), kept by the executors that
 * re-attach until a start() of that task takes it (used). */
typedef struct {
	char *task, *job_id, *key, *log;
	Lease lease;   /* where it runs and what it holds, from its record */
	int attempt, used;
	int earlier;   /* ssh: recorded lost with its host by a kiln a kill stopped (not this run) */
	int finished;  /* ssh: found on its host exited 0, never recorded (an orphan): nothing runs */
	long long row; /* 0: found running, never recorded (local) */
	double ran_sec; /* how long it had run: when lost with its host (ssh), or by now (a record's) */
} AdoptedJob;
void exec_adopted_add(AdoptedJob **list, int *n, const OpenAttempt *a);
void exec_adopted_free(AdoptedJob *list, int n);
/* Makes job the re-attached attempt a: its job id, lease, attempt number, log and record. */
void exec_attach(Job *job, const AdoptedJob *a);
/* The unused adopted job of the task to re-attach to: its latest attempt (a killed kiln may
 * leave one that ended unrecorded beside the retry it had started; the others are stale),
 * or NULL. */
AdoptedJob *exec_adopted_latest(AdoptedJob *list, int n, const char *task);
/* Whether that job has this key (start() would re-attach to it). */
int exec_adopted_matches(AdoptedJob *list, int n, const Task *t, const char *key_hex);

/* Ends job now (end, exit code, reason or NULL) and files it in an executor's list of ended
 * jobs, for its next reap. */
void exec_end_job(Job *job, enum JobEnd end, int code, const char *reason, Job ***ended, int *n, int *cap);
/* Appends job to an executor's growable list of jobs (running, ended, draining). */
void exec_push_job(Job ***list, int *n, int *cap, Job *job);
/* s with {port}, {portK} and {gpus} replaced by this attempt's reserved ports and its
 * task's number of devices, {rdzv} (torchrun's rendezvous, runner/recipe/torchrun.h) by
 * 127.0.0.1 and the last reserved port, and {items} by a map shard's item list (its full
 * path: shell-quoted where s is a shell string, shell, as the recipe's placeholders are):
 * malloc'd, or NULL when s holds none of them. */
int exec_has_attempt_words(const char *s);
char *exec_expand_attempt(const char *s, const Job *job, int shell);

/* Writes all of s to fd (EINTR retried; gives up on an error). */
void exec_write_all(int fd, const char *s, size_t n);
/* Writes the log header (command, environment kiln set, attempt) to fd. */
void exec_write_log_header(int fd, const Job *job);
/* For a shell-string task run by a job script (job_script.c: one exec fewer than sh -c),
 * the line saying so under the header, the header's `/bin/sh -c` being what it stands for;
 * where: "there " on a host, "" on a Slurm node. */
void exec_write_shell_note(int fd, const Job *job, const char *where);
/* Opens the job's log file for writing (parents created); returns fd or -1. */
int exec_open_log(const Job *job);

/* A map shard's list of its items' outputs (the first of each, a line each, in the item
 * list's order) beside its item list: .kiln/maps/RUNNER.outputs. Its path (malloc'd). */
char *exec_map_outputs_path(const char *items_path);
/* Writes that list for the job's items at path: 0, or -1 (cannot write). */
int exec_write_map_outputs(const Job *job, const char *path);
/* Names path (taken) as the list {items} and KILN_ITEMS give the command. */
void exec_set_items_path(Job *job, char *path);

#endif
