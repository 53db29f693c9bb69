/* os_fake.h — a scripted base/os.h for unit tests of the executors and the scheduler,
 * linked in place of base/os-posix.c (see os.h). Nothing runs: a spawned program is a
 * record whose end the test decides; `ssh ...` and other commands run through os_run get
 * the output a test's handler gives; kiln-keeper, the parent of local attempts, is a thread
 * speaking its protocol (runner/exec/keeper.h) that starts each attempt as a record and
 * ends it as fake_attempt_status says. One test at a time: the state is process-wide. */
#ifndef KILN_OS_FAKE_H
#define KILN_OS_FAKE_H

#include <sys/types.h>

#include "../../base/os.h"

/* An attempt the fake keeper was asked to start. */
typedef struct {
	char *log, *program, *cwd;
	char **argv, **env; /* NULL-terminated */
	pid_t pid;
} FakeAttempt;

/* How the fake keeper ends an attempt: its wait status (exit 0: 0, exit 1: 1 << 8). Set by
 * the test before the run; NULL: every attempt exits 0. Called on the keeper's thread. */
extern int (*fake_attempt_status)(const FakeAttempt *a);
/* What os_run answers for argv (ssh, rsync, nvidia-smi...): its exit status, stdout into out
 * and stderr into err (either may be NULL). NULL: every command exits 0 silently. */
extern int (*fake_run)(char *const argv[], Buf *out, Buf *err);

/* os_wait_event returns sig once, as if kiln had been sent it (0: none). */
void fake_signal_next(int sig);
/* The attempts started so far (the keeper's records), oldest first. */
int fake_attempt_count(void);
const FakeAttempt *fake_attempt(int i);
/* The value of NAME in attempt a's environment, or NULL. */
const char *fake_attempt_env(const FakeAttempt *a, const char *name);
/* Every os_run command line so far, each "argv0 argv1 ...\n", in order. */
const char *fake_run_log(void);
/* The signals os_signal sent, "pid:sig " each. */
const char *fake_signal_log(void);
/* A process that runs until the test is over (an attempt a previous kiln left): its start
 * time, as os_process_start reads it, is 1000 + its pid. */
pid_t fake_live_process(void);
/* Forgets every record (between tests); the keeper thread of the last run is gone by then. */
void fake_reset(void);

#endif
