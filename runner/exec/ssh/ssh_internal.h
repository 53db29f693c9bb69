/* ssh_internal.h — what the ssh executor's files share: an attempt on a host (Remote) and
 * the executor's state (SshExec). exec_ssh.c starts, follows, stops and re-attaches jobs;
 * ssh_end.c ends them (the status the host reports, the outputs' tar unpacked here). */
#ifndef KILN_SSH_INTERNAL_H
#define KILN_SSH_INTERNAL_H

#include "../exec.h"
#include "ssh_host.h"
#include "ssh_job.h"
#include "ssh_place.h"

/* the ssh command runs (zero: a re-attached job starts there); the inputs are copied there
 * first; the outputs' tar is unpacked here */
enum Phase { PH_RUN, PH_PLACE, PH_FETCH };

#define SSH_MAX_NODES 16 /* hosts one multi-node job may span */
struct Gang;

typedef struct Remote {
	Job *job;
	SshHost *host;
	Lease *lease;        /* its devices there: the job's (the first node) or own_lease */
	Lease own_lease;
	struct Gang *gang;   /* the nodes of a multi-node job (ssh_gang.c), or NULL */
	int node;            /* its rank among them; 0 brings the outputs and reports the job's end */
	char *node_log;      /* a later node's stream, joined to the job's log at its end, or NULL */
	enum Phase phase;
	pid_t pid;           /* the local ssh (follow) or rsync (fetch) process */
	char id[48];         /* the job's directory name there */
	char *err_path;      /* the follow command's stderr */
	int cpus;
	long long mem;
	int signalled;       /* the last signal sent, for a group that ended without status */
	long long log_prefix;/* bytes of the local log before the remote log's first */
	long long unpack_at; /* where the log ends in the local log, and the outputs' tar begins */
	char *report;        /* the follow command's stderr: its last words */
	char *progress_seen; /* the end of its progress file there as last read (ssh_progress.c), or NULL */
	int progress_asked;  /* readings that asked for it */
	Placement placement; /* what this attempt copied there (recorded once listed there) */
	int refollows;       /* follows started again after a dropped connection */
	int probing;         /* pid is ssh asking whether the host still answers after a dropped stream */
	char dropped_why[200]; /* then: how the stream ended */
	/* a map shard's runner (ssh_map.c): */
	char *map_outputs;   /* its items' outputs list (here and there), or NULL: not a runner */
	int map_kind, map_code; /* how it ended (ssh_job_outcome's kind), while its outputs come */
	pid_t harvest_pid;   /* the harvest under way, or 0 */
	int64_t harvest_at_ns; /* the next one */
	int64_t harvest_every_ns; /* and the time between them now */
	long harvested;      /* its items before this one are here */
	int agent;           /* its start went to its host's agent: 1 queued, 2 sent (its end comes from it) */
	int64_t agent_sent_ns;
	char agent_id[48];   /* the agent (.kiln/agents/ID there) its start went to, or "" */
} Remote;

/* The log of a job lost with its host: what came before the connection dropped is in the
 * attempt's local log; the rest is fetched if the job is stopped there (ssh_attach.c). */
typedef struct {
	char *id;            /* the job's directory name there */
	SshHost *host;
	char *log;           /* the lost attempt's local log */
	long long received;  /* bytes of the job's log that came before the drop */
	int stale;           /* its work went elsewhere: stopped there, its log's rest to fetch */
	int superseded;      /* an open attempt's job stopped for another job of its task */
	int64_t next_ns;     /* its job still ran there: asked again from then */
} LostLog;

typedef struct {
	ExecSetup cfg;
	SshHost *hosts;
	int nhosts;
	Remote **active;
	int nactive, cap;
	Job **ended;
	int nended, ended_cap;
	pid_t *helpers; /* kill commands sent, reaped as they end */
	int nhelpers, helpers_cap;
	AdoptedJob *adopted;
	int nadopted;
	LostLog *lost_logs;
	int nlost_logs;
	const Task *held;   /* has_room's choice for the start() that follows: */
	int nheld;          /* its hosts (one per node), each with t->opts->gpus devices leased */
	SshHost *held_hosts[SSH_MAX_NODES];
	int held_gpus[SSH_MAX_NODES][64];
	int waiting;        /* a task waits for a host's busy GPUs, or for a host to answer: poll */
	int64_t all_down_since_ns;
	const Task *home_waiter; /* the last task found waiting for its home host (ssh_home) to answer */
	const Task *reattaching; /* has_room found this task's job to take up (se->held) */
	int stale_down;     /* a down host holds jobs to stop when it answers: poll */
} SshExec;

/* A multi-node job: its nodes' attempts, ended together (ssh_gang.c). */
typedef struct Gang {
	Job *job;
	struct Remote *nodes[SSH_MAX_NODES]; /* NULL once a node's attempt is released */
	int n, running;
	int failed;            /* a node failed or was lost: the others were stopped */
	enum JobEnd end;       /* the job's end: the first failure's, else the first node's */
	int code, term_signal;
	char reason[256];
} Gang;

/* What rm's remote script reports at its end. */
static inline enum ReportKind ssh_report_of(const Remote *rm)
{
	return rm->map_outputs ? REPORT_MAP : rm->node > 0 ? REPORT_STATUS : REPORT_OUTPUTS;
}
/* The local file rm's stream goes to: the job's log, or a later node's own. */
static inline const char *ssh_stream_path(const Remote *rm) { return rm->node_log ? rm->node_log : rm->job->log_path; }

/* The executor (the table's constructor, ssh_hosts.c's row), or NULL with a message when
 * hosts, ssh or rsync are missing. */
Executor *exec_ssh_new(const ExecSetup *setup, Buf *err);
/* Files job's end (code, reason) for the next reap. */
void ssh_end_job(SshExec *se, Job *job, enum JobEnd end, int code, const char *reason);
/* Appends a line (fmt with one %s) to the job's local log. */
void ssh_log_line(const Job *job, const char *fmt, const char *arg);
/* Gives rm's slot, CPUs, memory and GPUs back to its host and frees it. */
void ssh_release_remote(SshExec *se, Remote *rm);
/* Starts rm's job there (its inputs are there): through its host's agent when it can
 * carry it, else by a start command of its own; 0, or -1 when the attempt ended at once. */
int ssh_start_remote(SshExec *se, Remote *rm);
/* A local helper (a kill command, an ended agent's ssh) reaped as it ends. */
void ssh_push_helper(SshExec *se, pid_t pid);
/* Spawns the start command (start_part given) or the follow command for rm; 0 or -1. */
int ssh_spawn_follow(Remote *rm, const char *start_part);
/* rm's attempt ended (end, code, reason): the host's counts, the slot freed, the job filed. */
void ssh_finished(SshExec *se, Remote *rm, enum JobEnd end, int code, const char *reason);
/* The follow command (status 'status') or the outputs' unpacking ended. */
void ssh_follow_ended(SshExec *se, Remote *rm, int status);
/* The question whether rm's host still answers (after its stream dropped) has its answer:
 * the job followed again there, or lost with the host. */
void ssh_probe_ended(SshExec *se, Remote *rm, int status);
void ssh_unpack_ended(SshExec *se, Remote *rm, int status);
/* Unpacks the tar that follows the log in the local log (at rm->unpack_at) into dir (NULL:
 * the workspace): 2 when it was small enough to unpack here and now (*status as tar's from
 * waitpid), 1 when tar was started (reap() sees its end), 0 when it cannot start. */
int ssh_unpack_tar(Remote *rm, const char *dir, int *status);

/* ssh_map.c: a map shard's runner on a host. Its placement (its items' inputs and its two
 * lists; {items} and KILN_ITEMS pointed there): as place_prepare. */
int ssh_map_place(SshExec *se, Remote *rm, HostLookup find, Buf *err);
/* A re-attached runner: its lists are those the earlier kiln wrote. */
void ssh_map_reattached(SshExec *se, Remote *rm);
/* It ended (kind and code as ssh_job_outcome's): its outputs' tar is unpacked aside; 0 when
 * that cannot start, 1 when tar started, 2 when it was unpacked here and the attempt has
 * ended (fetch_ended ran). fetch_ended moves them in and ends the attempt. */
int ssh_map_fetch(SshExec *se, Remote *rm, int kind, int code);
void ssh_map_fetch_ended(SshExec *se, Remote *rm, int status);
/* While it runs: a harvest of its complete outputs when one is due, and its end. */
void ssh_map_harvest(SshExec *se, Remote *rm);
void ssh_map_harvest_ended(SshExec *se, Remote *rm, int status);

/* ssh_room.c: the executor's has_room — hosts leased for t's nodes into se->held* (1),
 * or 0 while t waits (for room, busy GPUs, a host to answer). */
int ssh_has_room(Executor *ex, const Task *t);
/* What the devices of the hosts t may use are doing, when has_room said no ("v800: GPU 0
 * held by another kiln's job there; v801: GPU 0 busy 95 % util"); nothing while it waits
 * for a host to answer. */
void ssh_gpus_wait_text(Executor *ex, const Task *t, Buf *out);
/* Executor.gpus_after_wait: the least busy devices of a host t may use, once its bounded wait
 * is over (a task of one node). */
int ssh_gpus_after_wait(Executor *ex, const Task *t, int take);
/* Gives back what has_room leased for a task that did not start. */
void ssh_release_held(SshExec *se);
/* The host node `node` of t goes back to (NULL: any): the one holding its resume state
 * (place_home), else, while it does not answer, the one its job was lost with in this run
 * or left running on by a killed kiln (*lost set): that job may run on there. */
SshHost *ssh_home(SshExec *se, const Task *t, int node, int *lost);
/* How long t waits for that host while it does not answer: for resume state --host-wait, or
 * the seconds of work kept there (cache_resume_seconds), whichever is longer; for a lost job
 * as long as it had run (at least until the host's first retry is answered), at most
 * --host-wait: waiting never costs more than starting afresh would throw away; and whether
 * home has been waited for that long and a try of it at that wait's end failed too (t then
 * starts afresh elsewhere). */
double ssh_home_wait_sec(const SshExec *se, const Task *t);
int ssh_home_given_up(const SshExec *se, const SshHost *home, const Task *t);

/* ssh_gang.c: multi-node jobs (torchrun nnodes = M): M hosts leased together, one launcher
 * each, ended, stopped and re-attached together. How many nodes t spans (1 for most). */
int ssh_nodes(const Task *t);
/* Starts the gang of nodes held for job (after the first node's attempt, rm, is made). */
Gang *ssh_gang_new(SshExec *se, Remote *head);
/* Fills in node rm's own environment (its devices, host and rank) before its script. */
void ssh_gang_node_env(Remote *rm);
/* A node's attempt ended (its counts taken, released): the gang's end is filed when it
 * was the last; a failure stops the others. */
void ssh_gang_node_ended(SshExec *se, Gang *g, int node, const char *host, enum JobEnd end, int code,
			 int term_signal, const char *reason);
/* Re-attaches the later nodes named in a job id "ID+HOST:GPUS+..." (head: node 0's, following). */
void ssh_gang_reattach(SshExec *se, Remote *head, const char *job_id);
/* ssh_attach.c: on a host's first contact in a run, the jobs in its workdir that no open
 * attempt names (a kill -9 struck before their record): kept for their task to take up
 * (same key), else stopped; stop_orphans stops those no task took up (the run's end). */
void ssh_sweep_orphans(SshExec *se, SshHost *h);
void ssh_stop_orphans(SshExec *se);
/* Tries again (in the background, on each host's back-off) the down hosts holding jobs whose
 * work went elsewhere, so a host that answers has them stopped then, not at the run's end
 * (they may hold its GPUs for hours), and makes first contact with those not asked yet in
 * this run; 1 while some such host is still down or connecting (poll). */
int ssh_stop_stale_when_back(SshExec *se);
/* A job lost with its host (the connection dropped, the host did not answer) may run on
 * there: kept as an orphan, re-attached by its task's next attempt if the host answers again
 * and the job is still there (single-node tasks, a map's shards among them; that attempt
 * waits for the host: ssh_room.c). */
void ssh_keep_lost(SshExec *se, const Remote *rm);
/* The same for a job a killed kiln had recorded lost (cache_each_lost_job): its task's next
 * attempt waits for the host as long as the job had run, and takes it up if it is there. */
void ssh_adopt_lost(SshExec *se, const OpenAttempt *o);
/* ssh_progress.c: every few seconds, per host with jobs running, the ends of their
 * KILN_PROGRESS files there are read in the background into their attempts' local progress
 * files, which the scheduler reads as it reads a local task's (the status line, `progress`
 * lines with a rate and an ETA). Polled by the executor's reap. */
void ssh_progress_poll(SshExec *se);
/* The milliseconds until the next reading is due (-1: none), for the executor's poll. */
int ssh_progress_poll_ms(const SshExec *se);
/* The last "done/total" reading of rm's job as last read back, or of job id on h (asked
 * there now): 1 with them set, 0 when there is none. */
int ssh_progress_of(const Remote *rm, long long *done, long long *total);
int ssh_progress_there(SshHost *h, const char *id, long long *done, long long *total);
/* The same from task t's log_progress over the end of a log: rm's job's (as it streamed
 * here), or job id's on h (asked there now). 0 when t has none, or the log shows none. */
int ssh_log_progress_of(const Remote *rm, long long *done, long long *total);
int ssh_log_progress_there(SshHost *h, const Task *t, const char *id, long long *done, long long *total);

/* ssh_stale.c: the lost log of job id (its first len bytes), or NULL; a log kept (received:
 * the bytes of the job's log already in the local log; superseded: an open attempt's job
 * stopped for another of its task), and dropped. */
LostLog *ssh_lost_log(SshExec *se, const char *id, size_t len);
void ssh_add_lost_log(SshExec *se, const char *id, SshHost *h, const char *log, long long received, int superseded);
void ssh_drop_lost_log(SshExec *se, LostLog *l);
/* Job id (of task t, or NULL: stopped whatever it did) went stale, its work gone elsewhere:
 * it is stopped at h's next contact (h->stale_jobs), unless that finds it finished, or
 * running with progress to compare (KILN_PROGRESS, or t's log_progress) (ssh_settle_kept);
 * its log's rest fetched. */
void ssh_went_stale(SshExec *se, SshHost *h, const char *id, const Task *t);
/* "cd" to h's workdir, which a remote command then follows with " && ...". */
void ssh_cd_workdir(Buf *b, const SshHost *h);
/* The stale jobs a host's contact found finished there (stale_kept), settled: one whose task
 * has not started again is left for its next attempt to take up; one whose task's later
 * attempt runs elsewhere is taken back, that attempt stopped (SIGKILL) to end as lost
 * (job->superseded, its reason saying why) and the next re-attaching to it (its outputs
 * fetched); the others are left. 1 while some wait for that later attempt to start (poll). */
int ssh_settle_kept(SshExec *se);
/* Appends to each lost attempt's local log what its job wrote there after the connection
 * dropped, once that job was stopped (its work went elsewhere) and its host answers; its
 * directory there then goes. final: the run's end (the stops just sent: waits up to 1 s for
 * each job to end). */
void ssh_fetch_lost_logs(SshExec *se, int final);
/* Whether start() of t will re-attach to a job left for it (the same key, on a host that
 * answers; a lost job's still there): it then needs no room of has_room's. */
int ssh_reattaches(SshExec *se, const Task *t);
/* The job left for t that is taken up first (NULL: none): of those unused, the earliest
 * attempt's (it has run longest), one no record names last; lost_only: only those that had
 * run (a job id and a time), which t's next attempt may wait for. The others are stopped when
 * one is taken up or t starts afresh. */
AdoptedJob *ssh_task_job(const SshExec *se, const Task *t, int lost_only);
/* The kind's follow_log (exec.h): the job's log there, streamed until the job ends. */
int ssh_follow_log(const Graph *g, const char *state_dir, const char *host, const char *job_id, long long skip,
		   Buf *err);
/* start() of job re-attaches to the job an earlier kiln left for its task (1), or the task
 * starts afresh (0: none, its host is down, or its key changed, when it is stopped). */
int ssh_reattach(SshExec *se, Job *job);
/* rm's attempt ends before its job ran there: released, its end filed (through its gang). */
void ssh_node_failed(SshExec *se, Remote *rm, enum JobEnd end, int code, const char *reason);
/* Sends sig to one attempt there (exec_ssh.c). */
void ssh_signal_remote(SshExec *se, Remote *rm, int sig);
/* Makes and registers the attempt of job on h (its lease filled in; room taken). */
Remote *ssh_new_remote(SshExec *se, Job *job, SshHost *h, int node);
/* Finds a host by name (HostLookup). */
SshHost *ssh_find_host(void *se, const char *name);

#endif
