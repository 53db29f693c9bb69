/* ssh_agent.h — one long-lived shell per host that starts the run's short jobs there and
 * sends their ends back over one connection, instead of one ssh command per attempt (a
 * channel, a login shell, tee, wc and tar each: 2.6x a plain multiplexed ssh loop).
 *
 * The agent is `sh` on the host, started over the host's master connection when the first
 * attempt that it can carry starts there. kiln writes "B n\n" and n bytes to its stdin (read
 * by `head -c n`): the start parts of the attempts started in one pass of the scheduler
 * (ssh_job.c's, with agent = 1) after one rm of their stale outputs and one mkdir of their
 * folders, in braces (a batch cut short runs nothing). The batch claims each job at once (a
 * follow command that finds a job unclaimed while the agent's pid there lives waits for it:
 * a loaded host may take seconds to get to a batch) and starts it in a background shell of
 * its own that starts its job (`setsid sh job.sh & wait`: it reaps the job the moment it
 * ends, whatever the host's init does with orphans); job.sh writes its pid, and at its
 * end (an EXIT trap; TERM, INT and HUP trapped to exit) appends "ID STATUS" to A/ends and
 * wakes the reporter through a FIFO. A start that fails before that says so by its own EXIT
 * trap. At each wake-up the reporter sends every end appended since the last as one record
 * on stdout:
 *
 *     KILN-ENDS ID:STATUS:OUT ...
 *     one tar (one 512-byte block a record: it ends with its two end blocks) holding, per
 *     end in that order, the start's stderr, J/exit, J/log and (OUT 1: it exited 0) the
 *     outputs that come back
 *     KILN-SENT
 *
 * which this side turns, end by end, into what a follow command would have left (the log
 * appended to the local log, the outputs' tar after it, the last words in its stderr file)
 * and ends as ssh_end.c ends any attempt. Jobs run exactly as before: detached, in
 * .kiln/jobs/ID, with the same claim, so a killed kiln re-attaches to them by the follow
 * command, and a job that runs longer than SSH_AGENT_LIVE_SEC is handed to a follow command
 * too (its log then streams live; a job killed by SIGKILL, which no trap sees, is noticed
 * so). When the agent's connection ends, its jobs are followed one by one; when it cannot
 * run there, the host's attempts go the old way. KILN_SSH_AGENT=0 turns it off. */
#ifndef KILN_SSH_AGENT_H
#define KILN_SSH_AGENT_H

#include "ssh_internal.h"

/* Jobs running this long are followed by a command of their own: a live log. */
#define SSH_AGENT_LIVE_SEC 3

/* Queues rm's start (start_part: ssh_job_start_script with agent = 1, after the copies'
 * listing, which must be empty) for h's agent, starting the agent if needed: 0, or -1 when
 * the agent cannot carry it (the caller starts it the old way). */
int ssh_agent_queue(SshExec *se, Remote *rm, const char *start_part);
/* Whether rm's attempt can go through an agent: one node, no map, nothing copied for it,
 * no outputs that stay there, and agents not turned off. */
int ssh_agent_can_carry(const Remote *rm);
/* Sends what was queued; reads what the agents sent and ends those attempts; hands long
 * jobs to follow commands; follows the jobs of an agent whose connection ended. */
void ssh_agent_pump(SshExec *se);
/* The next time pump has work without a signal: ms, or -1. */
int ssh_agent_poll_ms(const SshExec *se);
/* The agents' connections end (the jobs there run on). */
void ssh_agent_close_all(SshExec *se);

#endif
