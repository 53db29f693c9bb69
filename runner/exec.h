/* exec.h — the executor interface: start a task attempt, learn when it ended, stop it.
 * The scheduler talks only to this; `local` (exec_local.c) spawns processes here. */
#ifndef KILN_EXEC_H
#define KILN_EXEC_H

#include <sys/types.h>

#include "graph.h"

enum JobEnd {
	JOB_RUNNING,
	JOB_EXITED,      /* exit_code says how */
	JOB_SIGNALED,    /* killed by term_signal */
	JOB_START_FAILED /* could not be started; message in the log */
};

/* One attempt of one task. The scheduler fills the inputs; the executor the rest. */
typedef struct Job {
	Task *task;
	int attempt;
	char *log_path;       /* malloc'd, owned by the job */
	char gpu_list[128];   /* "0,3" or "" */
	char **env;           /* extra "K=V" entries kiln sets, NULL-terminated, owned */
	/* set by the executor */
	pid_t pid;            /* process (and process group) id, local only */
	int64_t started_ns, ended_ns;
	int64_t deadline_ns;  /* 0: none */
	int64_t kill_at_ns;   /* when SIGKILL follows a SIGTERM; 0: not stopping */
	int timed_out, interrupted;
	enum JobEnd end;
	int exit_code, term_signal;
	struct Job *next;     /* scheduler's running list */
} Job;

typedef struct Executor Executor;
struct Executor {
	const char *name;
	/* Starts the job; returns 0, or -1 with a message in the job's log and end set. */
	int (*start)(Executor *ex, Job *job);
	/* Collects jobs that ended since the last call, without blocking: fills out with at
	 * most max of them and returns the count. */
	int (*reap)(Executor *ex, Job **out, int max);
	/* Sends sig to the whole job (its process group). */
	void (*signal)(Executor *ex, Job *job, int sig);
	void (*destroy)(Executor *ex);
	void *impl;
};

Executor *exec_local_new(void);

/* Writes the log header (command, environment kiln set, attempt) to fd. */
void exec_write_log_header(int fd, const Job *job);
/* Opens the job's log file for writing (parents created); returns fd or -1. */
int exec_open_log(const Job *job);

#endif
