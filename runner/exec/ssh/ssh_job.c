/* ssh_job.c — the text of a remote attempt (ssh_job.h): the scripts the ssh executor runs
 * on a host for it, and what their last words on stderr mean. */
#define _GNU_SOURCE
#include "ssh_job.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ssh_place.h"

/* The remote script's last words, on stderr: "KILN-EXIT n LOGBYTES" (the job's status and
 * its log's size there), or "KILN-GONE" (it ended without a status: killed). After exit 0
 * come the hashes of the outputs that stay there (ssh_place.c) and, on stdout after the log,
 * a tar of the others, then "KILN-SENT": the stream is whole. */
void ssh_job_report_end(Buf *b, const Task *t, enum ReportKind how, const char *map_outputs)
{
	if (how == REPORT_STATUS) { /* a node of a multi-node job other than the first: no outputs */
		buf_puts(b, "if [ -f \"$J/exit\" ]; then read rc < \"$J/exit\"; echo \"KILN-EXIT $rc $(wc -c < \"$J/log\")\" >&2\n"
			    "else echo KILN-GONE >&2; fi\n");
		return;
	}
	if (how == REPORT_MAP) { /* a map shard: whatever it made comes back, however it ended */
		buf_puts(b, "if [ -f \"$J/exit\" ]; then read rc < \"$J/exit\"; echo \"KILN-EXIT $rc $(wc -c < \"$J/log\")\" >&2\n"
			    "else echo \"KILN-GONE $(wc -c < \"$J/log\")\" >&2; fi\n");
		ssh_job_map_tar(b, map_outputs, 0, 0);
		buf_puts(b, "echo KILN-SENT >&2\n");
		return;
	}
	buf_puts(b, "if [ -f \"$J/exit\" ]; then read rc < \"$J/exit\"\n"
		    "[ \"$rc\" = 0 ] && {\n");
	place_stay_script(b, t);
	buf_puts(b, ":; }\necho \"KILN-EXIT $rc $(wc -c < \"$J/log\")\" >&2\n");
	int fetched = 0;
	for (int i = 0; i < t->noutputs; i++)
		fetched += t->outputs[i][0] != '/' && !(t->opts->stays && t->opts->stays[i]);
	if (fetched) {
		buf_puts(b, "if [ \"$rc\" = 0 ]; then tar cf - --");
		for (int i = 0; i < t->noutputs; i++)
			if (t->outputs[i][0] != '/' && !(t->opts->stays && t->opts->stays[i])) {
				buf_putc(b, ' ');
				buf_shell_quote(b, t->outputs[i]);
			}
		buf_puts(b, " 2> \"$J/tar.err\"; echo KILN-SENT >&2; fi\n");
	}
	buf_puts(b, "else echo KILN-GONE >&2; fi\n");
}

void ssh_job_map_tar(Buf *b, const char *map_outputs, long skip, int complete_only)
{
	/* the list holds one output per line in the items' order; complete_only: an output is
	 * sent only once a later one exists (the shard has moved on from it) */
	buf_printf(b, "tail -n +%ld ", skip + 1);
	buf_shell_quote(b, map_outputs);
	buf_puts(b, " | while IFS= read -r p; do [ -e \"$p\" ] && printf '%s\\n' \"$p\"; done");
	if (complete_only) /* a harvest while it runs: the last existing output may be half written */
		buf_puts(b, " | sed '$d'");
	buf_puts(b, " | tar cf - -T - 2> \"$J/tar.err\"\n");
}

/* Whether t has outputs that come back here (in the tar after its log). */
int ssh_job_fetches(const Task *t)
{
	for (int i = 0; i < t->noutputs; i++)
		if (t->outputs[i][0] != '/' && !(t->opts->stays && t->opts->stays[i]))
			return 1;
	return 0;
}

/* Following job dir J of a job started by another connection (re-attach, or after a dropped
 * connection): its whole log, until its group leader is gone (tail notices within a second
 * or two), then the same last words. */
void ssh_job_follow_script(Buf *b, const Task *t, enum ReportKind how, const char *map_outputs, const char *agent_id)
{
	/* no pid: claim the job so a start still on its way does nothing (nothing to follow), or
	 * wait for the pid of the start that claimed it. A start sent to an agent that still
	 * lives there is on its way (a loaded host: the agent claims it when it gets to its
	 * batch): waited for, unclaimed, up to 5 minutes. No folder: the start never got there
	 * (a kill struck kiln before its batch went): the folder is made and claimed, so a start
	 * still on its way starts nothing, and it says so at once. A start that claimed it and
	 * has not become the job after 3 s is stopped before it does (kiln_stopped: ssh_job.h;
	 * the attempt then runs again, once), or, found starting it, waited for (5 minutes at most) */
	if (agent_id)
		buf_printf(b, "a=; read a 2>/dev/null < .kiln/agents/%s/pid; w=0\n", agent_id);
	else
		buf_puts(b, "a=; w=0\n");
	buf_puts(b, "i=0; while [ ! -s \"$J/pid\" ]; do\n"
		    "  if [ -n \"$a\" ] && [ ! -f \"$J/claim\" ] && [ $w -lt 3000 ] && kill -0 \"$a\" 2>/dev/null; then\n"
		    "    w=$((w + 1)); sleep 0.1; continue\n"
		    "  fi\n"
		    "  [ -d \"$J\" ] || { mkdir -p \"$J\" && kiln_claim \"$J\" stop && { echo KILN-NOSTART >&2; exit 0; }; }\n"
		    "  kiln_claim \"$J\" stop && { echo KILN-NOJOB >&2; exit 0; }\n"
		    "  [ -s \"$J/claim\" ] && { echo KILN-NOJOB >&2; exit 0; }\n"
		    "  i=$((i + 1)); if [ $i -gt 30 ]; then kiln_stopped \"$J\" && { echo KILN-NOSTART slow >&2; exit 0; }\n"
		    "    [ $i -gt 3030 ] && { echo KILN-NOJOB >&2; exit 0; }; fi\n"
		    "  sleep 0.1\n"
		    "done\nread p < \"$J/pid\"\n"
		    "tail -c +1 -s 0.1 -f --pid=\"$p\" \"$J/log\"\n");
	ssh_job_report_end(b, t, how, map_outputs);
}

void ssh_job_set_dir(Buf *b, const SshHost *h, const char *id)
{
	/* a step that cannot be done there ends the script with the marker; a full file system
	 * is named, since some tools then say only "I/O error" (dash's printf) */
	buf_puts(b, "kiln_cannot() { [ \"$(df -Pk . 2>/dev/null | awk 'NR == 2 { print ($4 < 64) }')\" = 1 ] && "
		    "echo 'No space left on device' >&2; echo KILN-START-FAILED >&2; exit 97; }\n");
	buf_puts(b, SSH_CLAIM_FN EXEC_KILL_FN "cd ");
	buf_shell_quote(b, h->home_workdir);
	buf_printf(b, " || kiln_cannot\nJ=.kiln/jobs/%s\n", id);
}

/* What a start clears there (the outputs, and the resume state unless this attempt
 * continues from it: an output that is also resume state stays) and the folders it makes:
 * each path shell-quoted after a space in rm and dirs, "[ -e P ]" joined by || in test,
 * " && [ -d D ]" for each folder in there. */
static void start_paths(const Job *job, Buf *rm, Buf *test, Buf *dirs, Buf *there)
{
	const Task *t = job->task;
	int nresume = t->opts->nresume;
	for (int k = 0; k < t->noutputs + nresume; k++) { /* the outputs, then the resume paths */
		const char *path = k < t->noutputs ? t->outputs[k] : t->opts->resume[k - t->noutputs];
		int is_resume = k >= t->noutputs;
		for (int r = 0; r < nresume && !is_resume; r++)
			is_resume = !strcmp(t->opts->resume[r], path);
		if (path[0] == '/' || (is_resume && job->resume_kept))
			continue;
		buf_putc(rm, ' ');
		buf_shell_quote(rm, path);
		buf_printf(test, "%s[ -e ", test->len ? " || " : "");
		buf_shell_quote(test, path);
		buf_puts(test, " ]");
		const char *slash = strrchr(path, '/');
		if (slash) {
			char *parent = xasprintf("%.*s", (int)(slash - path), path);
			buf_putc(dirs, ' ');
			buf_shell_quote(dirs, parent);
			buf_puts(there, " && [ -d ");
			buf_shell_quote(there, parent);
			buf_puts(there, " ]");
			free(parent);
		}
	}
}

void ssh_job_batch_paths(const Job *job, const char *id, Buf *clear, Buf *dirs)
{
	Buf rm = {0}, test = {0}, there = {0};
	buf_printf(dirs, " .kiln/jobs/%s", id);
	start_paths(job, &rm, &test, dirs, &there);
	if (rm.len)
		buf_printf(clear, "if %s; then set -- \"$@\"%s; fi\n", buf_str(&test), buf_str(&rm));
	buf_free(&rm);
	buf_free(&test);
	buf_free(&there);
}

/* The start part: clears the outputs there, writes the job script, starts it detached. */
char *ssh_job_start_script(const Job *job, const char *id, const char *prelude, const char *map_outputs, int agent,
			   const char *gpu_mark)
{
	const Task *t = job->task;
	char *exit_path = xasprintf(".kiln/jobs/%s/exit", id);
	char *script = exec_job_script(job, ".", exit_path, 1, prelude, NULL);
	Buf b = {0};
	/* J is new (each attempt's id is its own). A stale output there must not come back as
	 * this attempt's: one test and rm, one mkdir for J and the outputs' folders (none when
	 * they are there: an agent's batch made them all at once) */
	Buf rm = {0}, test = {0}, dirs = {0}, there = {0};
	buf_puts(&dirs, "\"$J\"");
	start_paths(job, &rm, &test, &dirs, &there);
	if (rm.len)
		buf_printf(&b, "if %s; then rm -rf --%s; fi\n", buf_str(&test), buf_str(&rm));
	if (agent) /* the batch made them all at once (ssh_job_batch_paths) */
		buf_printf(&b, "[ -d \"$J\" ]%s || ", buf_str(&there));
	buf_printf(&b, "mkdir -p -- %s || kiln_cannot\n", buf_str(&dirs));
	if (map_outputs) { /* a shard's items: stale outputs go, their folders are made */
		buf_puts(&b, "xargs -r -d '\\n' rm -rf -- < ");
		buf_shell_quote(&b, map_outputs);
		buf_puts(&b, " && grep / ");
		buf_shell_quote(&b, map_outputs);
		buf_puts(&b, " | sed 's#/[^/]*$##' | sort -u | xargs -r -d '\\n' mkdir -p -- || kiln_cannot\n");
	}
	buf_free(&rm);
	buf_free(&test);
	buf_free(&dirs);
	buf_free(&there);
	/* the job script is the command's script piped into tee, which writes the log there and
	 * streams it to us, and with -p goes on writing the log once this connection is gone
	 * (the job runs on, detached: setsid, a session and group of its own); this shell is the
	 * group leader's parent, so `wait` sees the end at once */
	buf_puts(&b, "printf '%s' ");
	Buf piped = {0}, exits = {0};
	exec_stop_traps(&exits, 0);
	if (agent) /* the agent sends the log at the end (or a follow streams it): no tee. The job
		    * shell is the group leader: its pid first; its end, however it exits but by
		    * SIGKILL (a follow notices that), to the agent's list of ends (ssh_agent.c) */
		buf_printf(&piped, "echo $$ > .kiln/jobs/%s/pid; kiln_agent=$1; set --\n"
				   "trap 'echo \"%s $?\" >> \"$kiln_agent/ends\"; echo E >&3' EXIT\n"
				   "%s\n{\n%s} < /dev/null > .kiln/jobs/%s/log 2>&1\n",
			   id, id, buf_str(&exits), script, id);
	else /* its pid written by the group leader itself: a stop that reads it finds the group
	      * (written by this shell after `&`, it was there before setsid had made the group,
	      * and a slow start's stop missed it: the job ran on). A stop's SIGTERM reaches the
	      * whole group, but the leader and tee outlive it (a trap that does nothing, reset in
	      * the children; tee ignoring it): a command that saves its state when told to stop
	      * is still writing, its lines still reach the log (tee gone, its prints failed and
	      * the save with them), and the job ends, for the follow, when the last writer has.
	      * The leader's own stderr is /dev/null (tee's stays this connection's, on fd 9): the
	      * shell says "Terminated" there when the stop ends a process of its pipeline, and once
	      * this connection had dropped (the job followed again by another) that write was a
	      * SIGPIPE that ended the leader, and with it the job for its follow, mid-save */
		buf_printf(&piped, "echo $$ > .kiln/jobs/%s/pid; set --\ntrap : " EXEC_STOP_SIGNALS "\nexec 9>&2 2>/dev/null\n"
				   "{\n%s} < /dev/null 2>&1 9>&- | (trap '' " EXEC_STOP_SIGNALS "; exec tee -p .kiln/jobs/%s/log 2>&9 9>&-)\n",
			   id, script, id);
	buf_shell_quote(&b, buf_str(&piped));
	buf_free(&piped);
	buf_free(&exits);
	/* claim: whoever makes J/claim first decides (mkdir is atomic). A re-attach or a sweep
	 * that finds no job yet claims it, and then this script, late after a kill -9, starts
	 * nothing; the pid is in J/pid before anything else looks for it (written, then moved) */
	buf_puts(&b, " > \"$J/job.sh\" || kiln_cannot\n");
	if (agent && ssh_job_fetches(t)) { /* J/send: the outputs the agent's reporter adds to its tar */
		Buf send = {0};
		buf_puts(&send, "set -- \"$@\"");
		for (int i = 0; i < t->noutputs; i++)
			if (t->outputs[i][0] != '/' && !(t->opts->stays && t->opts->stays[i])) {
				buf_putc(&send, ' ');
				buf_shell_quote(&send, t->outputs[i]);
			}
		buf_puts(&send, "\n");
		buf_puts(&b, "printf '%s' ");
		buf_shell_quote(&b, buf_str(&send));
		buf_puts(&b, " > \"$J/send\" || kiln_cannot\n");
		buf_free(&send);
	}
	/* an agent's batch claimed it already, before this shell was started (ssh_agent.c) */
	buf_printf(&b, "%skiln_claim \"$J\" || { echo KILN-CLAIMED >&2; exit 0; }\n", agent ? "[ \"$kiln_claimed\" = 1 ] || " : "");
	/* kiln runs one attempt of a task at a time: the task's last job here, if it is still
	 * live, is stale (a kill -9 struck before its attempt was recorded) and must not write
	 * its outputs beside this one. .kiln/jobs/task-HASH names that job (shell builtins
	 * only: no process per job dir) */
	uint64_t h = 1469598103934665603ULL; /* FNV-1a of the task's name */
	for (const char *c = t->name; *c; c++)
		h = (h ^ (unsigned char)*c) * 1099511628211ULL;
	buf_printf(&b, "T=.kiln/jobs/task-%016llx\n", (unsigned long long)h);
	buf_puts(&b, "if read d 2>/dev/null < \"$T\" && [ \".kiln/jobs/$d\" != \"$J\" ] && [ -d \".kiln/jobs/$d\" ] && "
		     "[ ! -f \".kiln/jobs/$d/exit\" ]; then kiln_claim \".kiln/jobs/$d\" stop; i=0; "
		     "while [ ! -s \".kiln/jobs/$d/pid\" ] && ! kiln_stopped \".kiln/jobs/$d\" && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done; "
		     "read q 2>/dev/null < \".kiln/jobs/$d/pid\" && kiln_kill KILL \"$q\"; fi\n"
		     "echo \"${J#.kiln/jobs/}\" > \"$T\"\n");
	/* the last word before the job: one who waited too long for its pid may have stopped it */
	buf_puts(&b, "kiln_claim \"$J\" start go || { echo KILN-CLAIMED >&2; exit 0; }\n");
	buf_puts(&b, EXEC_DFL_SETUP); /* the job shell starts with SIGINT and SIGQUIT at their defaults */
	Buf mark = {0}; /* the job shell's last argument while it runs: its devices, for other kilns (set -- drops it) */
	if (gpu_mark)
		buf_printf(&mark, " \"%s:$(command -v nvidia-smi)\"", gpu_mark);
	if (agent) { /* job.sh reports its own end from here on (its pid, its EXIT trap); this
		      * shell stays its parent and reaps it the moment it ends. An orphaned job's
		      * zombie waits for the host's init, which may reap late (seconds on some VMs) or
		      * never (a container whose PID 1 is not an init): its pid would still answer
		      * kill -0, and a follow's `tail --pid` would wait on it, the job's slot idle */
		buf_printf(&b, "trap - EXIT; setsid $kiln_dfl /bin/sh \"$J/job.sh\" \"$A\"%s & wait $!\n", buf_str(&mark));
		buf_free(&mark);
		free(script);
		free(exit_path);
		return b.data;
	}
	buf_printf(&b, "setsid $kiln_dfl /bin/sh \"$J/job.sh\"%s 3>&- &\n"
		       "p=$!\n"
		       "wait $p\n", buf_str(&mark));
	buf_free(&mark);
	free(script);
	free(exit_path);
	return b.data;
}

/* Keeps the local log's header only (a re-attach streams the remote log from its start). */
void ssh_job_truncate_to_header(const char *path)
{
	size_t len;
	char *text = read_file(path, &len);
	char *end = text ? strstr(text, "\n# --\n") : NULL;
	if (end && truncate(path, (off_t)(end - text + 6)) != 0)
		warn("cannot truncate %s", path);
	free(text);
}

/* Replaces the job's KILN_PROGRESS (ssh_progress.c reads it back) and PET_LOG_DIR with
 * paths in its folder there, which goes when the job is collected. */
void ssh_job_remote_env(Job *job, const char *id)
{
	for (char **e = job->env; e && *e; e++)
		if (!strncmp(*e, "KILN_PROGRESS=", 14)) {
			free(*e);
			*e = xasprintf("KILN_PROGRESS=.kiln/jobs/%s/progress", id);
		} else if (!strncmp(*e, "PET_LOG_DIR=", 12) && job->torchrun_dir) { /* kiln's, not the user's */
			free(*e);
			*e = xasprintf("PET_LOG_DIR=.kiln/jobs/%s/torchrun", id);
		}
}

/* How the follow command ended, from its stderr (text: all of it, malloc'd, or NULL):
 * "KILN-EXIT n LOGBYTES" (1: n in code, the log's size there in logbytes; with fetched
 * outputs only once "KILN-SENT" says their stream is whole), "KILN-GONE" (2), "KILN-NOJOB"
 * (3), "KILN-START-FAILED" (4), "KILN-NOSTART" (5; "KILN-NOSTART slow": stopped before it
 * began), or 0: the connection failed, ssh's complaint in why. */
int ssh_job_outcome(const char *err_path, const Task *t, enum ReportKind how, char **text, int *code,
		    long long *logbytes, char *why, size_t n)
{
	size_t len;
	*text = read_file(err_path, &len);
	int kind = 0;
	const char *w;
	if (*text && (w = strstr(*text, "KILN-EXIT "))) {
		char *end;
		*code = (int)strtol(w + 10, &end, 10);
		*logbytes = strtoll(end, NULL, 10);
		int sends = how == REPORT_MAP || (how == REPORT_OUTPUTS && *code == 0 && ssh_job_fetches(t));
		kind = sends && !strstr(w, "KILN-SENT") ? 0 : 1;
	} else if (*text && (w = strstr(*text, "KILN-GONE"))) {
		*logbytes = strtoll(w + 9, NULL, 10); /* a map shard's: its tar follows the log */
		kind = how == REPORT_MAP && !strstr(w, "KILN-SENT") ? 0 : 2;
	} else if (*text && (strstr(*text, "KILN-NOJOB") || strstr(*text, "KILN-CLAIMED"))) {
		kind = 3;
	} else if (*text && strstr(*text, "KILN-START-FAILED")) {
		kind = 4;
	} else if (*text && strstr(*text, "KILN-NOSTART")) {
		kind = 5;
	}
	const char *shown = *text && **text && strncmp(*text, "KILN-", 5) ? *text : "the connection ended";
	snprintf(why, n, "%s", shown);
	why[strcspn(why, "\r\n")] = 0;
	return kind;
}

/* What a host's file system says when it is full, as errno's words appear in its tools'
 * complaints (sh, mkdir, rsync, tar). */
static const char *const full_words[] = {"No space left on device", "Disk quota exceeded", "File too large"};

const char *ssh_job_full_words(const char *text)
{
	for (size_t i = 0; text && i < sizeof full_words / sizeof *full_words; i++)
		if (strstr(text, full_words[i]))
			return full_words[i];
	return NULL;
}

void ssh_job_complaint(const SshHost *h, const char *what, const char *text, char *out, size_t n)
{
	const char *full = ssh_job_full_words(text);
	if (full) {
		snprintf(out, n, "%s: %s: its workdir %s is full (%s): free space there, then run again", h->spec->name,
			 what, h->home_workdir, full);
		return;
	}
	const char *line = text;
	while (line && !strncmp(line, "KILN-", 5)) /* kiln's own markers say nothing to a person */
		line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL;
	const char *said = line && *line ? line : "the host gave no reason";
	snprintf(out, n, "%s: %s: %.*s", h->spec->name, what, (int)strcspn(said, "\r\n"), said);
}

