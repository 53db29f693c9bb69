/* job_end.c — what the scheduler says of an attempt that failed: how it ended in words,
 * its failure class (from the way it ended and its log's tail), and the note that ends its
 * log; and of one lost, how it runs again. The classes themselves are recipe/failure.c's. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "../recipe/failure.h"
#include "sched_internal.h"

void failure_describe_end(const Job *job, char *out, size_t n)
{
	const Task *t = job->task;
	char dur[32];
	format_duration(t->opts->timeout_sec, dur, sizeof dur);
	if (job->reason[0])
		snprintf(out, n, "%s", job->reason);
	else if (job->timed_out)
		snprintf(out, n, "timed out after %s (process group killed)", dur);
	else if (job->end == JOB_START_FAILED)
		snprintf(out, n, "could not start (see its log)");
	else if (job->end == JOB_SIGNALED)
		snprintf(out, n, "killed by signal %d (%s)", job->term_signal, strsignal(job->term_signal));
	else
		snprintf(out, n, "exit status %d", job->exit_code);
	if (job->end == JOB_EXITED && task_shell(t) && !t->opts->shell) {
		size_t len = strlen(out);
		failure_hint_bash(job->log_path, out + len, n - len);
	}
}

/* A command string with bash's syntax that /bin/sh (dash, on Debian and Ubuntu) refused:
 * what dash says of `source`, `[[`, arrays and process substitution, `${v//a/b}`, `<<<`. */
void failure_hint_bash(const char *log_path, char *out, size_t n)
{
	static const char *const said[] = {": source: not found", ": [[: not found", "Syntax error: \"(\" unexpected",
					   "Syntax error: redirection unexpected", ": Bad substitution", ": shopt: not found",
					   ": declare: not found", ": pushd: not found", "Illegal option -o pipefail", NULL};
	char tail[4096];
	failure_read_tail(log_path, tail, sizeof tail);
	for (int i = 0; said[i]; i++)
		if (strstr(tail, said[i])) {
			snprintf(out, n, "; the line is bash's (/bin/sh, dash, says `%s`): shell = \"bash\" on the task runs "
				 "it under bash", said[i][0] == ':' ? said[i] + 2 : said[i]);
			return;
		}
	if (n)
		out[0] = 0;
}

/* A task of ranks (launch.c) failed because one rank did: the others then report lost
 * peers, so only the failed rank's lines ("[rank R] ...") say what happened. Keeps those
 * in tail, in place. */
static void keep_failed_rank(char *tail)
{
	const char *said = strstr(tail, "[kiln launch] rank ");
	int rank;
	char prefix[32];
	if (!said || sscanf(said, "[kiln launch] rank %d", &rank) != 1)
		return;
	int n = snprintf(prefix, sizeof prefix, "[rank %d] ", rank);
	char *out = tail;
	for (char *line = tail, *next; *line; line = next) {
		next = strchr(line, '\n');
		next = next ? next + 1 : line + strlen(line);
		if (!strncmp(line, prefix, (size_t)n)) {
			memmove(out, line, (size_t)(next - line));
			out += next - line;
		}
	}
	*out = 0;
}

enum FailureClass failure_of_job(const Job *job)
{
	char tail[16384];
	failure_read_tail(job->log_path, tail, sizeof tail);
	keep_failed_rank(tail);
	FailureFacts f = {.timed_out = job->timed_out, .signaled = job->end == JOB_SIGNALED && !job->interrupted,
			  .start_failed = job->end == JOB_START_FAILED, .exit_code = job->exit_code, .reason = job->reason,
			  .host_down = job->end == JOB_HOST_DOWN || job->end == JOB_LOST, .unschedulable = job->unschedulable,
			  .tail = tail};
	return failure_classify(&f);
}

void failure_note_in_log(const Job *job, const char *why)
{
	FILE *f = fopen(job->log_path, "a+");
	if (!f)
		return;
	int last = fseek(f, -1, SEEK_END) == 0 ? fgetc(f) : '\n'; /* on a line of its own */
	fprintf(f, "%s# kiln: attempt %d failed: %s\n", last == '\n' ? "" : "\n", job->attempt, why);
	fclose(f);
}

const char *lost_runs_again(const Job *job)
{
	const Task *t = job->task;
	if (job->ex->local_slots)
		return "";
	if (!job->ex->state_on_host) /* Slurm */
		return t->opts->nresume ? ", from its resume state, spending no retry" : ", spending no retry";
	if (t->opts->nresume) /* ssh_room.c waits for it */
		return " there once the host answers (its resume state is there)";
	if (job->kept_lost)
		return ", taking up its job there if the host answers soon (it may run on), else elsewhere";
	return job->never_started ? "" : " elsewhere";
}
