/* exec_local_internal.h — the local executor's state, shared by exec_local.c (starting,
 * reaping, signalling attempts under kiln-keeper) and exec_local_attach.c (re-attaching to
 * attempts a previous kiln left). Not for other modules. */
#ifndef KILN_EXEC_LOCAL_INTERNAL_H
#define KILN_EXEC_LOCAL_INTERNAL_H

#include "../../base/util.h"
#include "exec.h"

#include <stdint.h>

/* Each keeper holds a shared lock on this file from its start until it has read everything
 * its kiln sent: a later kiln takes it exclusively before it looks for the attempts a killed
 * kiln left, so a start that kiln sent is made (and found) before that look, not after. */
#define LOCAL_KEEPER_LOCK ".kiln/keeper.lock"

/* An attempt whose keeper was killed on its own: kiln, the subreaper, became its leader's
 * parent and does the keeper's part itself (exec_local.c: keeper_lost). */
typedef struct {
	Job *job;
	int status;       /* the leader's wait status, once leader_done */
	int leader_done;  /* 1: it ended; -1: it ended while the keeper died, how is not known */
	long long kill_at_ns; /* draining: when its leftovers get SIGKILL (0: not yet) */
	pid_t hint;       /* os_attempt_alive's */
} KeptAttempt;

/* An attempt of a kiln on another host (the workspace on a file system both share) that
 * has not ended: its task does not start here (exec_local_attach.c: local_held_elsewhere). */
typedef struct {
	char *task, *host;
	int attempt;
	double started; /* wall clock */
	long long row;
	char *why;      /* the task's failure text, once made */
} HeldElsewhere;

typedef struct {
	Job **jobs; /* running jobs, to map reaped pids back */
	int njobs, cap;
	Job **ended; /* jobs that failed to start: reported by the next reap */
	int nended, ended_cap;
	StrMap programs; /* "prog\nPATH" -> resolved path (resolve_program) */
	char *keeper;    /* kiln-keeper beside this binary: the parent of this run's attempts */
	pid_t keeper_pid; /* this run's keeper, started with the first attempt; 0: none */
	long long keeper_start;
	long long last_start;  /* the start time of the attempt the keeper started last */
	int sock;        /* the keeper's socket (keeper.h), -1 when none */
	KeptAttempt *kept; /* attempts of a keeper killed on its own, kept by kiln since */
	int nkept;
	uint32_t next_token, ends_read, ends_confirmed; /* ends read, and confirmed recorded */
	AdoptedJob *adopted; /* attempts a previous kiln left running (or ended unrecorded) */
	int nadopted;
	HeldElsewhere *held; /* other hosts' attempts, not ended */
	int nheld;
	char **exits;    /* exit files of ended attempts, removed at the end of the run */
	int nexits;
	struct Cache *cache; /* closes the rows of stale adopted attempts */
	int detach;      /* --detach: a stop leaves attempts running */
	int detached;    /* attempts left running: the keeper lives on for them */
} LocalExec;

/* "<log without .log>.exit": where the attempt's keeper writes how it ended. malloc'd. */
char *local_exit_path(const char *log_path);
/* Reads the keeper's exit file into job (end, code, signal): 1 when it is there. */
int local_read_exit_file(const char *path, Job *job);
/* A job id "local/PID/START/KPID/KSTART": the attempt's leader (its session and group) and
 * its keeper, each with its start time (the host is the attempt's lease, a column of its
 * record; ids written before it was had "local/HOST/.../GPUS", read alike). 0, or -1. */
int local_parse_id(const char *id, pid_t *pid, long long *start, pid_t *keeper, long long *keeper_start);
/* The executor's adopt (exec.h; the caller checked the attempt can be re-attached to) and
 * adoptable. */
void local_adopt(Executor *ex, const OpenAttempt *a);
int local_adoptable(Executor *ex, const Task *t, const char *key_hex, Lease *held);
/* The executor's held_elsewhere (exec.h). */
const char *local_held_elsewhere(Executor *ex, const Task *t);
/* Attaches job to the attempt a previous kiln left for its task when its key is the same
 * (1), or stops that stale attempt (0: job starts afresh). */
int local_reattach(Executor *ex, Job *job);

#endif
