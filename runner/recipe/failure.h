/* failure.h — what kind of failure an attempt had, from how it ended and the tail of its
 * log: the class is shown in the summary and `kiln log`, recorded with the attempt, and
 * decides whether a retry is spent on it (a task's `retry_on`). */
#ifndef KILN_FAILURE_H
#define KILN_FAILURE_H

#include "../../base/graph.h"
#include "../../base/util.h"

enum FailureClass {
	FC_ERROR,     /* a plain error: the command failed on its own */
	FC_OOM,       /* out of memory (CUDA or host) */
	FC_COMM,      /* NCCL / gloo / rendezvous timeout or connection failure */
	FC_PORT,      /* address already in use */
	FC_PREEMPTED, /* killed by a signal kiln did not send, or preempted by the cluster */
	FC_TIMEOUT,   /* ran past the task's timeout */
	FC_MISSING,   /* a file or program it needs does not exist */
	FC_GPU_BUSY,  /* no GPU became free within the task's wait */
	FC_HOST_DOWN, /* no host it may run on answered (ssh), or its host was lost too often */
	FC_INPUT_CHANGED, /* an input changed while it ran: its result is not recorded */
	FC_UNSCHEDULABLE, /* the cluster can never start it (Slurm: a partition's node or time limit) */
	FC_COUNT
};

#define FC_BIT(c) (1u << (c))
/* Without retry_on, retries are spent on every class but those the same attempt is bound
 * to repeat: the same batch runs out of the same memory, a missing file stays missing. An
 * input that changed is never retried in the run: the task's key is the old content's, so
 * the next run decides it afresh. */
#define FC_DEFAULT_RETRY                                                                                   \
	(((1u << FC_COUNT) - 1) & ~FC_BIT(FC_OOM) & ~FC_BIT(FC_MISSING) & ~FC_BIT(FC_INPUT_CHANGED) &          \
	 ~FC_BIT(FC_UNSCHEDULABLE))

/* How an attempt ended, as the classifier needs it. */
typedef struct {
	int timed_out;      /* kiln stopped it at its timeout */
	int signaled;       /* killed by a signal kiln did not send */
	int start_failed;   /* the program could not be started */
	int host_down;      /* no host it may run on could take it, or it was lost with one */
	int unschedulable;  /* its executor's system said it can never start it */
	int exit_code;
	const char *reason; /* the executor's word (e.g. Slurm's "PREEMPTED"), or "" */
	const char *tail;   /* the last bytes of its log, or "" */
} FailureFacts;

enum FailureClass failure_classify(const FailureFacts *f);
/* The class's name in recipes and messages: "oom", "comm", "port", "preempted", ... */
const char *failure_name(enum FailureClass c);
/* The class named name, or -1. */
int failure_parse(const char *name);
/* "error, oom, comm, ..." for messages. */
const char *failure_names(void);
/* Reads at most max-1 bytes from the end of the log at path into buf (NUL-terminated;
 * NULs become spaces; kiln's header, which quotes the command, left out). Returns the
 * length, 0 when unreadable. */
size_t failure_read_tail(const char *path, char *buf, size_t max);
/* When a word of t's command names a file that is not in the workspace (where commands run)
 * but is beside the recipe (`python3 train.py` run with -C elsewhere): a sentence saying so
 * and how to name it, "; ..." into out; else out is "". */
void failure_hint_missing(const Task *t, char *out, size_t n);

#endif
