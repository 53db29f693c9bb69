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

#endif
