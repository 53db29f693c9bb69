/* ssh_host.h — one server of hosts{} as the ssh executor sees it: its connection (one
 * OpenSSH master per host, BatchMode, multiplexed), its capacity and what is free of it
 * (job slots, CPUs, memory, GPUs leased by device ID from its nvidia-smi readings), whether
 * it is up, and what it did this run. Commands run there through sh; nothing of kiln's is
 * installed there. */
#ifndef KILN_SSH_HOST_H
#define KILN_SSH_HOST_H

#include <sys/types.h>

#include "../../../base/graph.h"
#include "../gpu.h"

/* After this many connection failures in a row a host is down; it is tried again after a
 * back-off that doubles from HOST_RETRY_FIRST_SEC up to HOST_RETRY_MAX_SEC. */
#define HOST_DOWN_AFTER 2
#define HOST_RETRY_FIRST_SEC 2
#define HOST_RETRY_MAX_SEC 30
/* ... but at most this while jobs lost with it may have run on there (stale jobs): each
 * second sooner it is seen back, a job there that is further along is taken back sooner, and
 * its replacement elsewhere stopped sooner (a try costs a background ssh that fails). */
#define HOST_RETRY_STALE_SEC 3

/* One server of the recipe's hosts{} block (or --hosts FILE): reached by ssh. */
typedef struct {
	const char *name;     /* as tasks' host = ... name it */
	const char *address;  /* ssh destination: "user@v800", or a Host of ~/.ssh/config */
	const char *workdir;  /* the workspace's copy there, under the login's home unless absolute
			       * (default "kiln-work/FOLDER-HASH": this workspace's own) */
	const char *owner;    /* this workspace's absolute path: the workdir's .kiln/owner there says
			       * whose copy it holds, and a workdir another workspace holds is refused */
	const char *owner_tag; /* 8 hex digits of it: its jobs' GPU leases there are named with it */
	const char *gpus;     /* "0,1,2,3": the devices kiln may lease there, or NULL: every one nvidia-smi lists */
	int cpus, jobs;       /* 0: the host's own count (nproc), and cpus + GPUs */
	long long mem_mib;    /* 0: no limit kept */
	const char **ssh;     /* further ssh options, like {"-p", "2222"} or {"-F", "lab_config"} */
	int nssh;
	const char *prelude;  /* shell text run before every job there ("source ~/conda/bin/activate x"), or NULL */
	const char **reach;   /* hosts it reaches by ssh itself (their address and ssh options work from
				 there): copies from it to them go directly, not through this machine */
	int nreach;
	const char *file;     /* where it was declared */
	int line;
} RecipeHost;

/* The hosts{} block as the graph keeps it (graph_block(g, "hosts"); ssh_hosts.c reads it). */
typedef struct {
	RecipeHost *hosts; /* sorted by name */
	int n;
} RecipeHosts;

/* Readings asked of a host in the background, one at a time, through a shell kept there for
 * them (ssh_reader_*, ssh_ask.c). Zeroed: none asked yet. */
typedef struct {
	pid_t pid;         /* the shell's local ssh, or 0: none runs */
	int in_fd, out_fd; /* its stdin (questions) and stdout (answers), while open */
	int open;
	int asked;         /* a question is out, its answer not taken */
	Buf got;           /* what came back of it so far */
	char mark[48];     /* the line that ends each answer, its exit status after it */
} SshReader;

typedef struct SshHost {
	const RecipeHost *spec;
	char *control_path;   /* "ControlPath=.kiln/ssh/NAME.sock": the master connection's socket */
	int connected;        /* the first contact succeeded: capacity known, workdir made */
	char *home_workdir;   /* the workdir as an absolute path there */
	GpuPool *gpus;        /* from nvidia-smi there (NULL: none listed) */
	int cpus, jobs;       /* capacity */
	long long mem_mib;
	int free_jobs, free_cpus;
	long long free_mem;
	/* health */
	int down, failures_in_a_row;
	int64_t retry_at_ns;
	pid_t probe_pid;       /* a down host's master connection, started in the background, or 0 */
	int64_t down_since_ns; /* when it went down (0: up) */
	int64_t failed_ns;     /* when a try of it last failed */
	char last_error[512];
	/* this run */
	int ran, failed, lost, stopped, running;
	int taken_up;   /* of those lost, jobs that ran on there and were re-attached */
	int taken_up_earlier; /* and jobs the killed kiln before had lost with it, re-attached */
	int unplaced;   /* tasks failed (host-down) because it was down and no other host could take them */
	double gpu_sec;
	int tools_placed;     /* kiln's tools copied this run (or found there as they are here) */
	int tools_in_flight;  /* a copy step carrying them there is under way */
	char *tools_there;    /* " NAME:SIZE:MTIME ... " of kiln's tools there at the first contact, or NULL */
	int kiln_placed;      /* and kiln itself (for `ranks`: kiln launch runs there) */
	int swept;            /* jobs a killed kiln left unrecorded there were stopped (exec_ssh.c) */
	char *gpus_first;     /* the first contact's GPU readings, for the pool's first read (or NULL) */
	SshReader gpu_read;   /* nvidia-smi there, read in the background for the next refresh */
	SshReader progress_read; /* the running jobs' progress files there (ssh_progress.c) */
	int64_t progress_at_ns;  /* when they are read next */
	int progress_fresh;      /* the reading under way asks for a job asked less than twice */
	char *sweep_found;    /* what ssh_sweep_listing printed at the first contact, until swept (or NULL) */
	int chosen;           /* holds a node of the multi-node job being placed (place_choose skips it) */
	char *listing;        /* the listing of recorded placements, read once per run (or NULL) */
	char *listing_script; /* the commands that list them, for the first contact to run (or NULL) */
	Buf ended_jobs;       /* " .kiln/jobs/ID" of jobs recorded here this run: removed there at the end */
	Buf stale_jobs;       /* " ID" of jobs lost with it whose work went elsewhere (they may run on
			       * there): stopped when it answers again unless they finished there or
			       * write progress (then in stale_kept), or at the run's end */
	Buf stale_logged;     /* " ID" of those whose task reads its progress from its log
			       * (log_progress): one running there is asked about like one writing
			       * KILN_PROGRESS, not stopped at once */
	Buf stale_kept;       /* " ID" of those that finished there (exit 0), " live:ID" of those that
			       * run on and write progress: the executor takes each back if its task
			       * has not finished elsewhere (for one that runs on: if it is further
			       * along than the attempt that replaced it), else stops it (ssh_stale.c) */
	StrMap copied;        /* path -> content hash (owned) copied there this run */
	StrMap made;          /* path -> "SIZE:MTIME:INODE" (owned) of an output made there this run,
			       * as its copy here was when it came back */
	StrMap in_flight;     /* path -> int: copies of it under way there (both owned) */
	struct Agent *agent;  /* its agent this run (ssh_agent.c), or NULL */
	int agent_off;        /* its agent could not run or ended: attempts go the old way */
} SshHost;

/* The shell text that lists the jobs an earlier kiln left in a workdir (ssh_attach.c): the
 * first contact runs it too, so a run's sweep costs no command of its own. */
extern const char ssh_sweep_listing[];

/* The argv to run `sh -c remote` there (remote NULL: ssh's own flags only, for rsync -e),
 * NULL-terminated, malloc'd (the strings are the host's or static; free the array only). */
char **ssh_argv(const SshHost *h, const char *remote);
/* The ssh command line as one shell-quoted string, for rsync's -e. malloc'd. */
char *ssh_command_text(const SshHost *h);
/* The shell command line that runs script there under sh (for a pipeline run here). malloc'd. */
char *ssh_spawn_text(const SshHost *h, const char *script);

/* Runs remote there and waits: its stdout into out (when given), stderr into err. Returns
 * its exit status; 255 or -1: ssh itself failed (the host is unreachable). */
int ssh_run(SshHost *h, const char *remote, Buf *out, Buf *err);
/* Runs scripts[i] (NULL: nothing) on hosts[i] for each i < n, side by side, to their ends. */
void ssh_run_each(SshHost **hosts, char **scripts, int n);
/* Starts remote there without waiting, stdout and stderr to the fds given: the pid (watched
 * by os_children_watch), or -1. */
pid_t ssh_spawn(SshHost *h, const char *remote, int out_fd, int err_fd);
/* Starts script there under sh, its stdin and stdout pipes here (*in_fd non-blocking, for
 * writing; *out_fd non-blocking and waking os_wait_event when it has data), stderr to err_fd:
 * the local ssh's pid (watched by os_children_watch), or -1. */
pid_t ssh_spawn_piped(SshHost *h, const char *script, int err_fd, int *in_fd, int *out_fd);
/* A reading there in the background: ask sends remote (a few lines of sh whose output is
 * small) to r's shell, starting it on the host's connection if none runs: 0, or -1 (it could
 * not start, or a question is still out). take: 1 while the answer is on its way, else 0
 * (remote's exit status 0) or -1 (another status, the shell's ssh ended, nothing asked), the
 * answer's text into out. An answer wakes os_wait_event. busy: a question is out. stop: the
 * shell ended, anything unanswered dropped (zeroed again). */
int ssh_reader_ask(SshHost *h, SshReader *r, const char *remote);
int ssh_reader_take(SshReader *r, Buf *out);
int ssh_reader_busy(const SshReader *r);
void ssh_reader_stop(SshReader *r);
/* Any local program (rsync) the same way: argv[0] looked up on PATH; and run to its end
 * (stdout into out, stderr into err when given), returning its exit status or -1. */
pid_t ssh_spawn_local(char *const argv[], int out_fd, int err_fd);
int ssh_run_local(char *const argv[], Buf *out, Buf *err);

/* The first contact (or a retry of a down host when its back-off is over): makes the
 * workdir, reads nproc, memory and the GPUs. 0 when the host is usable now. A down host's
 * retry starts its master connection in the background and answers -1 until that is in: a
 * host whose packets go nowhere (ssh's 5 s ConnectTimeout a try) must not hold up the
 * run's other work. ssh_host_connect_wait waits for that retry (the run's end). */
int ssh_host_connect(SshHost *h, double busy_mem, double busy_util, Buf *err);
int ssh_host_connect_wait(SshHost *h, double busy_mem, double busy_util, Buf *err);
/* ssh_host_connect, but a host's first contact too starts in the background (-1 until it is
 * in): asking after a job a killed kiln left there must not hold up the run for a host that
 * has gone silent. */
int ssh_host_connect_soon(SshHost *h, double busy_mem, double busy_util, Buf *err);
/* Whether kiln cannot tell yet that h answers: down, or its first contact still under way. */
static inline int ssh_host_unanswered(const SshHost *h) { return h->down || (!h->connected && h->probe_pid > 0); }
/* The first contacts of several hosts at once (each as ssh_host_connect, side by side:
 * a run's start waits for the slowest host, not for their sum). */
void ssh_hosts_connect(SshHost **hosts, int n, double busy_mem, double busy_util);
/* A connection to h failed with why: counts towards marking it down (with back-off). */
void ssh_host_failed(SshHost *h, const char *why);
/* A command there went through: the failure count starts again. */
void ssh_host_ok(SshHost *h);
/* Whether t may run on h (host = / hosts = ), and the CPUs it holds there. */
int ssh_host_allows(const SshHost *h, const Task *t);
int ssh_host_task_cpus(const Task *t, const SshHost *h);
/* The end-of-run line for h: done / failed / lost / stopped, GPU time, paths held, DOWN. */
void ssh_host_print_summary(const SshHost *h, int held);
/* Appends to script (run in the workdir there) the commands that stop h's stale jobs (and
 * the running ones kept, not settled yet); ask: those that finished there (exit 0), and those
 * running on that have a KILN_PROGRESS file, are gathered into $S as " ID" and " live:ID"
 * instead (the contact prints it after KILN-STALE: stale_kept). */
void ssh_host_stop_stale(const SshHost *h, Buf *script, int ask);
/* Whether word is one of list's (" A B ..."), and list without it. */
int ssh_word_in(const Buf *list, const char *word);
void ssh_word_drop(Buf *list, const char *word);
/* Ends h's master connection (kiln leaves it for the next run otherwise: ControlPersist). */
void ssh_host_close(SshHost *h);
void ssh_host_free(SshHost *h);

/* Appends `kiln_kill SIG <the pid in .kiln/jobs/ID/pid there>; ` to a script that defined
 * kiln_kill (EXEC_KILL_FN, exec.h; ssh_job_set_dir does). */
void ssh_kill_job(Buf *b, const char *sig, const char *id, int id_len);

#endif
