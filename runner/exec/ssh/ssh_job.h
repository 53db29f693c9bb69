/* ssh_job.h — the text of one remote attempt for the ssh executor (exec_ssh.c): the shell
 * scripts run on its host and the meaning of their last words.
 *
 * On the host, the attempt lives in WORKDIR/.kiln/jobs/ID: job.sh (the local executor's
 * command and environment, piped into tee), pid (its process group), log, exit. The start
 * script clears the task's outputs there, writes job.sh, starts it under setsid and waits; a
 * follow script (re-attach) streams the log until the group is gone. Both end with the
 * report: on stderr "KILN-EXIT n LOGBYTES" or "KILN-GONE", the hashes of outputs that stay
 * there, and on stdout, after the log, a tar of the outputs that come back, then
 * "KILN-SENT" on stderr. */
#ifndef KILN_SSH_JOB_H
#define KILN_SSH_JOB_H

#include "../exec.h"
#include "ssh_host.h"

/* What a remote script reports at its end: a task's status and outputs (above), a map
 * shard's (below), or the status alone (a multi-node job's nodes after the first). */
enum ReportKind { REPORT_OUTPUTS, REPORT_MAP, REPORT_STATUS };

/* The shell functions that decide who has job folder $1, each by a file made with
 * noclobber (O_EXCL, by a builtin: no process started for it): whoever makes it first wins.
 * kiln_claim DIR [WORD [FILE]]: a start claims it to run (the claim stays empty: its pid
 * follows); anyone else claims it to stop a start that may still be on its way ("stop" in
 * it: no pid will come, so nothing waits for one). A start that claimed it then makes
 * $1/go ("start") right before it becomes the job, so one slow to get there (a stalled file
 * system, a loaded host) is told apart from one that will never come: kiln_stopped, run by
 * whoever has waited long enough for its pid, is true when the start will start nothing (it
 * made $1/go "stop" first, or someone had), false when the job is starting (its pid comes).
 * A file just made may not hold its word yet: an empty one is read again (it is being
 * written), and taken for a start if it stays empty. A folder gone (its job ended and was
 * cleared) has nothing left to start. */
#define SSH_CLAIM_FN \
	"kiln_claim() { set -C; printf '%s' \"$2\" 2>/dev/null > \"$1/${3:-claim}\"; c=$?; set +C; return $c; }\n" \
	"kiln_stopped() { [ -d \"$1\" ] || return 0; kiln_claim \"$1\" stop go && return 0; g=; n=0; " \
	"while read g 2>/dev/null < \"$1/go\"; " \
	"[ -z \"$g\" ] && [ $n -lt 1000 ]; do n=$((n + 1)); done; [ \"$g\" = stop ]; }\n"

/* "cd WORKDIR; J=.kiln/jobs/ID": every remote script starts so. */
void ssh_job_set_dir(Buf *b, const SshHost *h, const char *id);
/* The start part (after set_dir): clears the outputs (a map shard's: those in its list
 * map_outputs), writes job.sh, starts it, waits. agent: for the host's agent (ssh_agent.h),
 * job.sh writes its log there only (no tee) and J/send names the outputs that come back.
 * gpu_mark ("kiln-gpu-lease:IDS:TAG", or NULL): job.sh's last argument, with the host's
 * nvidia-smi path after a colon, for other kilns' readings there (ssh_host.c). malloc'd. */
char *ssh_job_start_script(const Job *job, const char *id, const char *prelude, const char *map_outputs, int agent,
			   const char *gpu_mark);
/* For an agent's batch of starts (ssh_agent.c), what job's start would clear and make
 * there, so one rm and one mkdir serve them all: "if [ -e P ]...; then set -- \"$@\" P...; fi"
 * lines appended to clear, the folders (its job directory first) to dirs, each after a space. */
void ssh_job_batch_paths(const Job *job, const char *id, Buf *clear, Buf *dirs);
/* The follow part for a job started by another connection. */
void ssh_job_follow_script(Buf *b, const Task *t, enum ReportKind how, const char *map_outputs, const char *agent_id);
/* The report every remote script ends with (above). A map shard's (map_outputs: the list of
 * its items' outputs there) sends whatever of them exists however the job ended, after
 * "KILN-EXIT n LOGBYTES" or "KILN-GONE LOGBYTES". */
void ssh_job_report_end(Buf *b, const Task *t, enum ReportKind how, const char *map_outputs);
/* The tar, on stdout, of the outputs in the list map_outputs that exist there, from its line
 * skip + 1 on; complete_only (a harvest while the shard runs) leaves out the last of them,
 * which may be half written. */
void ssh_job_map_tar(Buf *b, const char *map_outputs, long skip, int complete_only);
/* Whether t has outputs that come back here (in the tar after its log). */
int ssh_job_fetches(const Task *t);
/* One line for a failure on host h that its complaint text explains: "HOST: what: its
 * workdir DIR is full (No space left on device): ..." when the host's disk or quota is
 * full, else "HOST: what: " and the complaint's first line. */
void ssh_job_complaint(const SshHost *h, const char *what, const char *text, char *out, size_t n);
/* The words in text by which a host's tools say its disk or quota is full, or NULL. */
const char *ssh_job_full_words(const char *text);
/* How a remote script ended, from its stderr in err_path (all of it into *text, malloc'd):
 * 1 "KILN-EXIT" (code, the log's size there in logbytes; with fetched outputs only once
 * "KILN-SENT" says their tar is whole), 2 "KILN-GONE", 3 "KILN-NOJOB" (nothing to follow),
 * 4 "KILN-START-FAILED" (the job could not be set up there: a full disk, a workdir that
 * cannot be entered; the shell's complaint in why), 5 "KILN-NOSTART" (its start never got
 * there: a kill struck kiln first; "KILN-NOSTART slow": it was too slow to become the job
 * and was stopped before it did), 0 the connection failed (ssh's complaint in why). A map
 * shard's (REPORT_MAP) 1 and 2 only once "KILN-SENT" came. */
int ssh_job_outcome(const char *err_path, const Task *t, enum ReportKind how, char **text, int *code,
		    long long *logbytes, char *why, size_t n);
/* Keeps a local log's header only (a re-attach streams the remote log from its start). */
void ssh_job_truncate_to_header(const char *path);
/* Points the job's KILN_PROGRESS at its directory there (the file stays on the host). */
void ssh_job_remote_env(Job *job, const char *id);

#endif
