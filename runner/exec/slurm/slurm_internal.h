/* slurm_internal.h — what the Slurm executor's files share. exec_slurm.c is the executor
 * (start, stop, re-attach, slurm{}); slurm_submit.c turns the attempts started since the
 * last submission into sbatch calls (one job array for those that ask for the same
 * resources), at a polite rate, retrying what the controller could not take just now;
 * slurm_queue.c follows them with one squeue per poll: their states, why they wait, and
 * the waits that can never end. */
#ifndef KILN_SLURM_INTERNAL_H
#define KILN_SLURM_INTERNAL_H

#include "../exec.h"

/* The recipe's slurm{} block: where Slurm tasks go, and how hard kiln may push. */
typedef struct {
	const char *partition, *account, *qos, *constraint;
	const char **extra;  /* further sbatch flags */
	int nextra;
	int array_max;       /* elements of one array running at once (%T); 0: the default */
	double max_submit_rate; /* sbatch calls per second at most; 0: the default */
} RecipeSlurm;

#define SLURM_ARRAY_MAX_DEFAULT 64    /* a throttle that keeps a shared cluster usable by others */
#define SLURM_SUBMIT_RATE_DEFAULT 2.0 /* sbatch calls per second: what cluster admins ask for */
#define SLURM_ARRAY_SIZE 1000         /* elements per array (Slurm's MaxArraySize is 1001 by default) */

typedef struct {
	ExecSetup cfg;
	RecipeSlurm recipe;
	char workspace[4096];
	Job **queued;        /* started, not yet submitted: the next submission takes them */
	int nqueued, queued_cap;
	Job **active;        /* submitted: followed by squeue */
	int nactive, cap;
	Job **ended;
	int nended, ended_cap;
	AdoptedJob *adopted;
	int nadopted;
	int64_t next_poll_ns;
	int interval_ms;
	int64_t next_submit_ns; /* the rate limit, and the back-off after a refused submission */
	int backoff_ms;
	char **cancels;      /* job ids to scancel: one call for a stop's many jobs */
	int *cancel_sigs;    /* and for each, the signal to send it (stop_signal), or 0: cancel */
	int ncancels;
	int submissions;     /* sbatch calls this run */
	int arrays;          /* of which job arrays */
	char submit_trouble[256]; /* the last transient sbatch error, said once */
	int kill_wait_s;     /* Slurm's KillWait (scontrol show config), read when first needed */
	int kill_wait_known;
	char **go;           /* go files of jobs submitted since the last commit (slurm_let_go) */
	int ngo, go_cap;
} SlurmExec;

/* Runs a Slurm command: stdout into out, stderr into err (when given); its exit status, or -1. */
int slurm_tool(char *const argv[], Buf *out, Buf *err);
/* Where job's script writes its exit code (and, with {port}, its ports). malloc'd. */
char *slurm_exit_path(const SlurmExec *se, const Job *job);
char *slurm_ports_path(const SlurmExec *se, const Job *job);
/* "<state dir>/<task>@<attempt>.go": written once the job's id is committed, the job waits for
 * it before anything else (exec_job_script); slurm_let_go writes it. */
char *slurm_go_path(const SlurmExec *se, const Job *job);
void slurm_let_go(const char *go_path);
/* The next squeue soon (a job was submitted or signalled). */
void slurm_poll_soon(SlurmExec *se);
/* Ends job now (not submitted, or refused): its end, code and reason, for the next reap. */
void slurm_end_job(SlurmExec *se, Job *job, enum JobEnd end, int code, const char *reason);

/* Submits what is queued when the rate allows: one sbatch per call (an array for the
 * queued jobs that ask for the same resources, the oldest first). */
void slurm_submit_queued(SlurmExec *se);
/* Milliseconds until the next submission may go, or -1 when nothing is queued. */
int slurm_submit_due_ms(const SlurmExec *se);

/* One squeue for every submitted job: ended ones move to the ended list; waiting ones keep
 * their reason (Job.waiting); a reason that can never clear fails its job (unschedulable). */
void slurm_poll_queue(SlurmExec *se);
/* How many of the followed jobs Slurm calls ended by a signal while kiln waits for their
 * commands to quit (their exit files), and Slurm's KillWait, the longest they may take. */
int slurm_ending(const SlurmExec *se, int *kill_wait);
/* Whether Slurm's pending reason can never clear for the job (a partition's node or time
 * limit, a QOS or association limit it exceeds, a constraint or account that does not
 * exist); what it means in words into why. */
int slurm_reason_is_final(const char *reason, char *why, size_t n);

/* Plain words for a pending reason that clears by itself but reads cryptically
 * ("BeginTime": a requeued job waits for its begin time), or NULL. */
const char *slurm_reason_gloss(const char *reason);

/* The table's queue_status (exec.h): the open Slurm attempts an earlier kiln left, by state
 * and pending reason, as squeue has them now. */
void slurm_queue_status(Cache *c, Buf *out);
/* ExecutorKind.holds_job: squeue lists job_id pending, requeued, configuring, running,
 * suspended or resizing. */
int slurm_holds_job(const char *job_id);

#endif
