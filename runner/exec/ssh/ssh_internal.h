/* ssh_internal.h — what the ssh executor's files share: an attempt on a host (Remote) and
 * the executor's state (SshExec). exec_ssh.c starts, follows, stops and re-attaches jobs;
 * ssh_end.c ends them (the status the host reports, the outputs' tar unpacked here). */
#ifndef KILN_SSH_INTERNAL_H
#define KILN_SSH_INTERNAL_H

#include "../exec.h"
#include "ssh_host.h"
#include "ssh_place.h"

/* the ssh command runs (zero: a re-attached job starts there); the inputs are copied there
 * first; the outputs' tar is unpacked here */
enum Phase { PH_RUN, PH_PLACE, PH_FETCH };

typedef struct {
	Job *job;
	SshHost *host;
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
	Placement placement; /* what this attempt copied there (recorded once listed there) */
	int refollows;       /* follows started again after a dropped connection */
	/* a map shard's runner (ssh_map.c): */
	char *map_outputs;   /* its items' outputs list (here and there), or NULL: not a runner */
	int map_kind, map_code; /* how it ended (ssh_job_outcome's kind), while its outputs come */
	pid_t harvest_pid;   /* the harvest under way, or 0 */
	int64_t harvest_at_ns; /* the next one */
	long harvested;      /* its items before this one are here */
} Remote;

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
	const Task *held;   /* has_room's choice for the start() that follows */
	SshHost *held_host;
	int held_gpus[64], held_ngpus;
	int waiting;        /* a task waits for a host's busy GPUs: poll their readings */
	int64_t all_down_since_ns;
} SshExec;

/* The executor (the table's constructor, ssh_hosts.c's row), or NULL with a message when
 * hosts, ssh or rsync are missing. */
Executor *exec_ssh_new(const ExecSetup *setup, Buf *err);
/* Files job's end (code, reason) for the next reap. */
void ssh_end_job(SshExec *se, Job *job, enum JobEnd end, int code, const char *reason);
/* Appends a line (fmt with one %s) to the job's local log. */
void ssh_log_line(const Job *job, const char *fmt, const char *arg);
/* Gives rm's slot, CPUs, memory and GPUs back to its host and frees it. */
void ssh_release_remote(SshExec *se, Remote *rm);
/* Spawns the start command (start_part given) or the follow command for rm; 0 or -1. */
int ssh_spawn_follow(Remote *rm, const char *start_part);
/* rm's attempt ended (end, code, reason): the host's counts, the slot freed, the job filed. */
void ssh_finished(SshExec *se, Remote *rm, enum JobEnd end, int code, const char *reason);
/* The follow command (status 'status') or the outputs' unpacking ended. */
void ssh_follow_ended(SshExec *se, Remote *rm, int status);
void ssh_unpack_ended(SshExec *se, Remote *rm, int status);
/* Starts unpacking the tar that follows the log in the local log (at rm->unpack_at) into
 * dir (NULL: the workspace); 0 when it cannot start. */
int ssh_unpack_tar(Remote *rm, const char *dir);

/* ssh_map.c: a map shard's runner on a host. Its placement (its items' inputs and its two
 * lists; {items} and KILN_ITEMS pointed there): as place_prepare. */
int ssh_map_place(SshExec *se, Remote *rm, HostLookup find, Buf *err);
/* A re-attached runner: its lists are those the earlier kiln wrote. */
void ssh_map_reattached(SshExec *se, Remote *rm);
/* It ended (kind and code as ssh_job_outcome's): its outputs' tar is unpacked aside; 0 when
 * that cannot start. Then fetch_ended moves them in and ends the attempt. */
int ssh_map_fetch(SshExec *se, Remote *rm, int kind, int code);
void ssh_map_fetch_ended(SshExec *se, Remote *rm, int status);
/* While it runs: a harvest of its complete outputs when one is due, and its end. */
void ssh_map_harvest(SshExec *se, Remote *rm);
void ssh_map_harvest_ended(SshExec *se, Remote *rm, int status);

#endif
